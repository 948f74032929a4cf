"""How fast genresort classifies a file, how soon it is ready and how much memory it needs.

    .venv/bin/python bench/bench_classify.py [--runs 5] [--json results.json]

Every run starts fresh processes (this script with `--worker`), so each run pays its own cold start and has its
own peak memory; the tables show the median over runs. Each round runs these workers one after the other (see
`ROUND`), so that load from other processes hits genresort and the baseline alike:

- `genresort`: import + `GenreModel.load()`, a first analysis, then `model.analyse()` on each test file; once as
  shipped and once with a single BLAS thread;
- `baseline`: the naive approach, decoding the whole file with librosa and feeding all of it to the same networks;
- `windows`: the product path with 1-8 analysis windows on the 4-minute file.

The 4- and 10-minute 44.1 kHz stereo MP3s are built at run time in a temporary folder from GTZAN clips.
This module imports only the standard library at the top, so a worker's import cost is genresort's alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
Result = dict[str, float]

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "gtzan"
LONG_FILES = {"4 min": 240.0, "10 min": 600.0}  # name -> seconds of the built 44.1 kHz stereo MP3s
WINDOW_COUNTS = (1, 2, 4, 6, 8)
AIM_CPU_PER_4_MIN = 0.4
AIM_READY_SECONDS = 2.0
AIM_PEAK_MB = 300.0


def measure(call: Callable[[], T]) -> tuple[T, float, float]:
    """(result, wall seconds, CPU seconds of this process, all threads) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = call()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def peak_mb() -> float:
    """Peak resident memory of this process so far: VmHWM, not ru_maxrss.

    Linux carries ru_maxrss across fork and exec, so a worker would report the parent's peak (the parent holds a
    10-minute stereo track in memory while building the test files); VmHWM starts afresh at exec.
    """
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) / 1024  # kB


# --- workers: each runs in a fresh process and returns flat {name: number} results --------------------------


def genresort_worker(spec: dict[str, Any]) -> Result:
    """Cold start, first analysis, then the warm per-file cost and the peak memory of the product path."""
    module, import_wall, import_cpu = measure(lambda: importlib.import_module("genresort.model"))
    result: Result = {"import_wall": import_wall, "import_cpu": import_cpu, "import_rss_mb": peak_mb()}
    model, result["load_wall"], result["load_cpu"] = measure(lambda: module.GenreModel.load(Path(spec["model_dir"])))
    result["ready_since_spawn_wall"] = time.time() - spec["spawned_at"]
    result["ready_since_spawn_cpu"] = time.process_time()  # CPU since the interpreter started
    result["load_rss_mb"] = peak_mb()
    result["ready_wall"] = result["import_wall"] + result["load_wall"]
    result["ready_cpu"] = result["import_cpu"] + result["load_cpu"]
    _, result["first_wall"], result["first_cpu"] = measure(lambda: model.analyse(Path(spec["files"]["30 s"])))
    for name, path in spec["files"].items():
        _, result[f"{name}_wall"], result[f"{name}_cpu"] = measure(lambda path=path: model.analyse(Path(path)))
    result["peak_rss_mb"] = peak_mb()
    return result


def baseline_worker(spec: dict[str, Any]) -> Result:
    """The naive approach: decode the whole file at 16 kHz mono, then run the same networks on all of it."""
    import librosa

    from genresort.features.clip import extract_clip_features
    from genresort.features.spectrogram import SAMPLE_RATE
    from genresort.model import GenreModel

    model = GenreModel.load(Path(spec["model_dir"]))

    def naive(path: str) -> tuple[float, float, float, float]:
        audio, decode_wall, decode_cpu = measure(lambda: librosa.load(path, sr=SAMPLE_RATE, mono=True)[0])
        _, rest_wall, rest_cpu = measure(
            lambda: model.predict_clip(extract_clip_features([audio], model.networks, with_handcrafted=False))
        )
        return decode_wall, decode_cpu, rest_wall, rest_cpu

    naive(spec["files"]["30 s"])  # warm-up: librosa's and the resampler's one-off costs
    result: Result = {}
    for name, path in spec["files"].items():
        decode_wall, decode_cpu, rest_wall, rest_cpu = naive(path)
        result[f"{name}_wall"] = decode_wall + rest_wall
        result[f"{name}_cpu"] = decode_cpu + rest_cpu
        result[f"{name}_decode_cpu"] = decode_cpu
    result["peak_rss_mb"] = peak_mb()
    return result


def windows_worker(spec: dict[str, Any]) -> Result:
    """CPU per 4-minute file for more or fewer analysis windows, split into decoding, features and prediction."""
    from genresort.audio import decode_analysis_windows
    from genresort.features.clip import FeatureSet, extract_clip_features
    from genresort.features.spectrogram import SAMPLE_RATE
    from genresort.model import GenreModel

    model = GenreModel.load(Path(spec["model_dir"]))
    path = Path(spec["files"]["4 min"])
    with_handcrafted = model.feature_set != FeatureSet.EMBEDDING  # as model.analyse() decides
    model.analyse(path)  # warm-up
    result: Result = {}
    for count in WINDOW_COUNTS:
        plan = dataclasses.replace(model.window_plan, window_count=count)
        started = time.perf_counter()
        windows, _, decode_cpu = measure(lambda plan=plan: decode_analysis_windows(path, SAMPLE_RATE, plan))
        clip, _, features_cpu = measure(
            lambda windows=windows: extract_clip_features(windows, model.networks, with_handcrafted)
        )
        _, _, predict_cpu = measure(lambda clip=clip: model.predict_clip(clip))
        result[f"k{count}_wall"] = time.perf_counter() - started
        result[f"k{count}_decode_cpu"] = decode_cpu
        result[f"k{count}_features_cpu"] = features_cpu
        result[f"k{count}_predict_cpu"] = predict_cpu
        result[f"k{count}_cpu"] = decode_cpu + features_cpu + predict_cpu
        result[f"k{count}_patches"] = len(next(iter(clip.network_outputs.values()))["taggram"])
    return result


WORKERS: dict[str, Callable[[dict[str, Any]], Result]] = {
    "genresort": genresort_worker,
    "baseline": baseline_worker,
    "windows": windows_worker,
}

#: What each round runs: label -> (worker, extra environment). The one environment variable set here is the
#: experiment itself: an idle OpenBLAS thread spins after each small matrix product (the mel filter bank) and
#: burns CPU without making anything faster, so the product is also measured with a single BLAS thread.
ROUND: dict[str, tuple[str, dict[str, str]]] = {
    "genresort": ("genresort", {}),
    "genresort_1blas": ("genresort", {"OPENBLAS_NUM_THREADS": "1"}),
    "baseline": ("baseline", {}),
    "windows": ("windows", {}),
}


def run_worker(kind: str, spec: dict[str, Any], environment: dict[str, str]) -> Result:
    """Run one worker in a fresh interpreter and return its results (the last line it prints)."""
    spec = {**spec, "spawned_at": time.time()}
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, "--spec", json.dumps(spec)]
    completed = subprocess.run(command, capture_output=True, text=True, check=False, env={**os.environ, **environment})
    if completed.returncode != 0:
        sys.exit(f"the {kind} worker failed:\n{completed.stderr}")
    return {**json.loads(completed.stdout.splitlines()[-1]), "loadavg_1min": os.getloadavg()[0]}


# --- test files ----------------------------------------------------------------------------------------------


def full_clips(data: Path) -> list[Path]:
    """GTZAN clips of (about) 30 s; some in the shared set are 15 s excerpts."""
    import soundfile

    clips = [path for path in sorted(data.glob("*/*.mp3")) if soundfile.info(str(path)).duration >= 29.0]
    if not clips:
        sys.exit(f"no 30 s GTZAN clips under {data}")
    return clips


def build_long_mp3(clips: list[Path], seconds: float, path: Path) -> None:
    """Write a `seconds`-long 44.1 kHz stereo MP3 made of GTZAN clips from across the genres, upsampled.

    The right channel is the left one 1.5 s later, so the two channels differ as in a real stereo mix.
    """
    import numpy as np
    import soundfile
    import soxr

    rate, needed = 44_100, int(seconds * 44_100)
    parts, total = [], 0
    for clip in itertools.cycle(clips[:: max(1, len(clips) // 20)]):
        samples, clip_rate = soundfile.read(str(clip), dtype="float32")
        parts.append(soxr.resample(samples, clip_rate, rate))
        total += len(parts[-1])
        if total >= needed + 2 * rate:
            break
    left = np.concatenate(parts)
    delay = int(1.5 * rate)
    stereo = np.stack([left[delay : delay + needed], left[:needed]], axis=1)
    soundfile.write(str(path), stereo, rate, format="MP3")


def describe(path: Path) -> dict[str, Any]:
    import soundfile

    info = soundfile.info(str(path))
    return {
        "duration_s": round(info.duration, 1),
        "sample_rate": info.samplerate,
        "channels": info.channels,
        "size_mb": round(path.stat().st_size / 1e6, 2),
    }


# --- report --------------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    versions = {
        name: metadata.version(name)
        for name in ("numpy", "librosa", "soundfile", "soxr", "onnxruntime", "scikit-learn")
    }
    return {
        "cpus": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model,
        "python": platform.python_version(),
        "versions": versions,
    }


def medians(samples: list[Result]) -> Result:
    return {key: statistics.median(sample[key] for sample in samples) for key in samples[0]}


def table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def verdict(measured: float, aim: float) -> str:
    return "met" if measured <= aim else f"missed by {measured - aim:.2f} ({measured / aim - 1:+.0%})"


def report(results: dict[str, Any]) -> str:
    """The medians as Markdown tables, with the conditions they were measured in."""
    medians_by_label = results["medians"]
    g, g1, b, w = (medians_by_label[label] for label in ("genresort", "genresort_1blas", "baseline", "windows"))
    files, load, end_load = results["files"], results["loadavg_start"], results["loadavg_end"]
    header = (
        f"# genresort classification benchmark\n\n{results['date']} · {results['machine']['cpus']} CPUs "
        f"({results['machine']['cpu_model']}) · Python {results['machine']['python']} · "
        f"model {results['model']} · medians of {results['runs']} runs, each in fresh processes\n\n"
        f"Load average at start: {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1 / 5 / 15 min); at end: "
        f"{end_load[0]:.2f}; median over the genresort workers: {g['loadavg_1min']:.2f}. Other processes at a load "
        "near the CPU count inflate wall times more than CPU times.\n\n"
        '"1 BLAS thread": the same worker run with OPENBLAS_NUM_THREADS=1 (see the script\'s ROUND).'
    )
    file_rows = [
        [name, f"{info['duration_s']:.1f} s", f"{info['sample_rate']} Hz", str(info["channels"]), f"{info['size_mb']}"]
        for name, info in files.items()
    ]

    def cold(step: str, key: str) -> list[str]:
        return [step, f"{g[key + '_wall']:.2f}", f"{g[key + '_cpu']:.2f}", f"{g1[key + '_cpu']:.2f}"]

    cold_rows = [
        cold("import genresort.model", "import"),
        cold("GenreModel.load()", "load"),
        cold("**import + load** (aim: ready in 2 s)", "ready"),
        cold("process start to ready (interpreter too)", "ready_since_spawn"),
        cold("first analyse() (30 s clip; one-off costs)", "first"),
    ]
    per_file_rows = [
        [
            name,
            f"**{g[f'{name}_cpu']:.3f}**",
            f"{g[f'{name}_wall']:.3f}",
            f"{g1[f'{name}_cpu']:.3f}",
            f"{b[f'{name}_cpu']:.3f}",
            f"{b[f'{name}_wall']:.3f}",
            f"{b[f'{name}_decode_cpu']:.3f}",
            f"{g[f'{name}_cpu'] / b[f'{name}_cpu']:.3f}",
            f"{g[f'{name}_wall'] / b[f'{name}_wall']:.3f}",
        ]
        for name in files
    ]
    memory_rows = [
        ["genresort: after import", f"{g['import_rss_mb']:.0f}", f"{g1['import_rss_mb']:.0f}"],
        ["genresort: after load", f"{g['load_rss_mb']:.0f}", f"{g1['load_rss_mb']:.0f}"],
        [
            "**genresort: after analysing all files** (aim < 300)",
            f"**{g['peak_rss_mb']:.0f}**",
            f"{g1['peak_rss_mb']:.0f}",
        ],
        ["baseline: after analysing all files whole", f"{b['peak_rss_mb']:.0f}", ""],
    ]
    window_rows = [
        [
            str(count) + (" (shipped)" if count == results["shipped_window_count"] else ""),
            f"{w[f'k{count}_patches']:.0f}",
            f"{w[f'k{count}_decode_cpu']:.3f}",
            f"{w[f'k{count}_features_cpu']:.3f}",
            f"{w[f'k{count}_predict_cpu']:.3f}",
            f"**{w[f'k{count}_cpu']:.3f}**",
            f"{w[f'k{count}_wall']:.3f}",
        ]
        for count in WINDOW_COUNTS
    ]
    aims = [
        ("CPU per 4-min file, s", "4 min_cpu", AIM_CPU_PER_4_MIN, ".3f"),
        ("import + load, wall s", "ready_wall", AIM_READY_SECONDS, ".2f"),
        ("peak memory, MB", "peak_rss_mb", AIM_PEAK_MB, ".0f"),
    ]
    aim_rows = [
        [aim, f"{target:g}", f"{g[key]:{form}}", verdict(g[key], target), f"{g1[key]:{form}}", verdict(g1[key], target)]
        for aim, key, target, form in aims
    ]
    return "\n\n".join(
        [
            header,
            "## Test files\n\n" + table(["file", "length", "rate", "channels", "MB"], file_rows),
            "## Cold start (seconds)\n\n" + table(["step", "wall", "CPU", "CPU, 1 BLAS thread"], cold_rows),
            "## Per file, warm (seconds)\n\nCPU is `time.process_time()`: every thread of the process. "
            "Ratio = genresort / baseline (as shipped).\n\n"
            + table(
                [
                    "file",
                    "genresort CPU",
                    "genresort wall",
                    "genresort CPU, 1 BLAS thread",
                    "baseline CPU",
                    "baseline wall",
                    "baseline decode CPU",
                    "CPU ratio",
                    "wall ratio",
                ],
                per_file_rows,
            ),
            "## Peak memory (VmHWM, the peak resident set; MB)\n\n"
            + table(["process", "as shipped", "1 BLAS thread"], memory_rows),
            f"## Analysis windows on the 4-min file (CPU seconds, as shipped; window = "
            f"{results['window_seconds']:g} s)\n\n"
            + table(
                ["windows", "3 s patches", "decode", "features + networks", "predict", "total", "wall"], window_rows
            ),
            "## Aims\n\n" + table(["aim", "target", "as shipped", "verdict", "1 BLAS thread", "verdict"], aim_rows),
        ]
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per measurement; the median is reported")
    parser.add_argument("--json", type=Path, help="also write every sample and the medians to this file")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="GTZAN folder: DATA/<genre>/*.mp3")
    parser.add_argument("--model-dir", type=Path, default=ROOT / "models")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.worker:
        print(json.dumps(WORKERS[args.worker](json.loads(args.spec))))
        return
    loadavg_start = os.getloadavg()
    started = time.perf_counter()
    clips = full_clips(args.data)
    model_card = json.loads((args.model_dir / "model_card.json").read_text())
    with tempfile.TemporaryDirectory(prefix="genresort-bench-") as folder:
        files = {"30 s": clips[0]}
        for name, seconds in LONG_FILES.items():
            files[name] = Path(folder) / f"{name.replace(' ', '')}-44k-stereo.mp3"
            build_long_mp3(clips, seconds, files[name])
        spec = {"model_dir": str(args.model_dir.resolve()), "files": {name: str(path) for name, path in files.items()}}
        samples: dict[str, list[Result]] = {label: [] for label in ROUND}
        for run in range(args.runs):
            for label, (kind, environment) in ROUND.items():
                samples[label].append(run_worker(kind, spec, environment))
            print(f"run {run + 1}/{args.runs} done after {time.perf_counter() - started:.0f} s", file=sys.stderr)
        results = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            "loadavg_start": loadavg_start,
            "loadavg_end": os.getloadavg(),
            "runs": args.runs,
            "files": {name: {"path": str(path), **describe(path)} for name, path in files.items()},
            "model": f"{model_card['model_id']} sha256:{model_card['model_file']['sha256'][:12]}",
            "shipped_window_count": model_card["window_plan"]["window_count"],
            "window_seconds": model_card["window_plan"]["window_seconds"],
            "medians": {kind: medians(runs) for kind, runs in samples.items()},
            "samples": samples,
        }
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
