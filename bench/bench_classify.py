"""How fast genresort classifies a file, how soon it is ready and how much memory it needs.

    .venv/bin/python bench/bench_classify.py [--runs 5] [--json results.json]

Every run starts fresh processes (this script with `--worker`), so each run pays its own cold start and has its
own peak memory; the tables show the median over runs. Each round runs these workers one after the other (see
`ROUND`), so that load from other processes hits genresort and the baseline alike:

- `genresort`: import + `GenreModel.load()` + `threadpool_limits(limits=1)` (as the daemon's analysis workers and
  `genresort classify` do), a first analysis, then `model.analyse()` on each test file;
- `baseline`: the naive approach, decoding the whole file with librosa and feeding all of it to the same networks,
  with default BLAS threading;
- `windows`: the product path (one BLAS thread too) with 1-8 analysis windows on the 4-minute file.

Once, after the runs, `daemon_memory()` starts a real `genresort watch`, drops the 4-minute file into its inbox
and reads the memory of the daemon and of its analysis worker when the file is sorted (`--no-daemon` skips it).

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
import shutil
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
DAEMON_DEADLINE_SECONDS = 300.0  # for the daemon to get ready, and then to sort the file; generous for a busy machine


def measure(call: Callable[[], T]) -> tuple[T, float, float]:
    """(result, wall seconds, CPU seconds of this process, all threads) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = call()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def one_blas_thread() -> None:
    """What the product does right after `GenreModel.load()` (`analysis._serve`, the daemon's analysis worker
    process, and `cli._classify`): limit every BLAS/OpenMP pool loaded by then to one thread, for good (no `with`).
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)


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
    module, import_wall, import_cpu = measure(lambda: importlib.import_module("genresort.analysis.model"))
    result: Result = {"import_wall": import_wall, "import_cpu": import_cpu, "import_rss_mb": peak_mb()}
    model, result["load_wall"], result["load_cpu"] = measure(lambda: module.GenreModel.load(Path(spec["model_dir"])))
    # Exactly as analysis._serve does right after loading the model: one BLAS thread from here on.
    _, result["limit_wall"], result["limit_cpu"] = measure(one_blas_thread)
    result["ready_since_spawn_wall"] = time.time() - spec["spawned_at"]
    result["ready_since_spawn_cpu"] = time.process_time()  # CPU since the interpreter started
    result["load_rss_mb"] = peak_mb()
    result["ready_wall"] = result["import_wall"] + result["load_wall"] + result["limit_wall"]
    result["ready_cpu"] = result["import_cpu"] + result["load_cpu"] + result["limit_cpu"]
    _, result["first_wall"], result["first_cpu"] = measure(lambda: model.analyse(Path(spec["files"]["30 s"])))
    for name, path in spec["files"].items():
        _, result[f"{name}_wall"], result[f"{name}_cpu"] = measure(lambda path=path: model.analyse(Path(path)))
    result["peak_rss_mb"] = peak_mb()
    return result


def baseline_worker(spec: dict[str, Any]) -> Result:
    """The naive approach: decode the whole file at 16 kHz mono, then run the same networks on all of it.

    It keeps the default BLAS threading (no `threadpool_limits`): it is the baseline, unchanged.
    """
    import librosa

    from genresort.analysis.features.clip import extract_clip_features
    from genresort.analysis.features.spectrogram import SAMPLE_RATE
    from genresort.analysis.model import GenreModel

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
    from genresort.analysis.audio import decode_analysis_windows
    from genresort.analysis.features.clip import FeatureSet, extract_clip_features
    from genresort.analysis.features.spectrogram import SAMPLE_RATE
    from genresort.analysis.model import GenreModel

    model = GenreModel.load(Path(spec["model_dir"]))
    one_blas_thread()  # as analysis._serve does right after loading the model
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

#: What each round runs, one after the other, in the inherited environment.
ROUND = ("genresort", "baseline", "windows")


def run_worker(kind: str, spec: dict[str, Any]) -> Result:
    """Run one worker in a fresh interpreter and return its results (the last line it prints)."""
    spec = {**spec, "spawned_at": time.time()}
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, "--spec", json.dumps(spec)]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
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


# --- a real daemon --------------------------------------------------------------------------------------------


def process_memory(pid: int) -> dict[str, float]:
    """MB of one process from /proc/<pid>/status: VmHWM (peak), VmRSS = RssAnon + RssFile + RssShmem.

    RssAnon is the process's own (spawned workers exec afresh, so nothing anonymous is shared with the daemon);
    RssFile is mostly shared libraries, counted again in every process that maps them. Pss is no help for a
    total here: it splits those pages with every process on the machine that maps the same libraries (the
    benchmark itself, a team-mate's test run), so it changed by 50 MB between two runs of the same code.
    """
    memory = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile", "RssShmem"):
            memory[key] = int(value.split()[0]) / 1024  # kB
    return memory


def child_pids(parent: int) -> list[int]:
    """Live children of `parent`, from /proc/*/stat (this kernel has no /proc/<pid>/task/*/children)."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat_line = (entry / "stat").read_text()
        except OSError:
            continue
        state, parent_pid = stat_line[stat_line.rindex(")") + 2 :].split()[:2]  # the name may hold ")"
        if int(parent_pid) == parent and state != "Z":
            children.append(int(entry.name))
    return sorted(children)


def process_role(pid: int) -> str:
    command = (Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")).strip()
    if "resource_tracker" in command:
        return "multiprocessing resource tracker"
    if "spawn_main" in command:
        return "analysis worker"
    return command[:60]


def daemon_tree_memory(pid: int) -> dict[str, dict[str, float]]:
    """{role: memory} of the daemon and each of its children."""
    tree = {"daemon": process_memory(pid)}
    for child in child_pids(pid):
        try:
            role, memory = process_role(child), process_memory(child)
        except OSError:  # it ended meanwhile
            continue
        tree[role if role not in tree else f"{role} ({child})"] = memory
    return tree


def daemon_memory(track: Path, folder: Path, model_dir: Path) -> dict[str, Any]:
    """Memory of a real `genresort watch` (one analysis worker, the default) that has sorted one `track`.

    The daemon runs under the tests' harness (tests/daemon_harness.py): its own session, an empty configuration
    file, GENRESORT_* folders under `folder` and `model_dir`; everything else is its default. Memory is read when it
    logs `daemon.ready` and again when it logs the file's outcome; then it is stopped with SIGTERM.
    """
    sys.path.insert(0, str(ROOT / "tests"))
    from daemon_harness import Daemon, Folders

    folders = Folders(folder / "daemon")
    script = Path(sys.executable).parent / "genresort"  # the installed console script, as a service runs it
    command = [str(script)] if script.exists() else [sys.executable, "-m", "genresort.cli"]
    started = time.perf_counter()
    daemon = Daemon(folders, folders.env(model_dir=model_dir.resolve()), command=[*command, "watch"])
    try:
        daemon.wait_ready(DAEMON_DEADLINE_SECONDS)
        ready_seconds = time.perf_counter() - started
        at_ready = daemon_tree_memory(daemon.pid)
        staged = shutil.copyfile(track, folders.root / track.name)
        dropped = time.perf_counter()
        os.rename(staged, folders.inbox / track.name)  # whole at once, as a finished download appears
        outcome = daemon.wait_outcome(folders.inbox / track.name, DAEMON_DEADLINE_SECONDS)
        outcome_seconds = time.perf_counter() - dropped
        at_outcome = daemon_tree_memory(daemon.pid)
        exit_code = daemon.terminate(timeout=60)
    finally:
        daemon.close()  # SIGKILL to its session (the daemon and its worker, nothing else) if it is still there
    return {
        "command": " ".join([Path(command[0]).name, *command[1:], "watch"]),
        "seconds_to_ready": ready_seconds,
        "event": outcome["event"],
        "seconds_drop_to_outcome": outcome_seconds,
        "exit_code_after_sigterm": exit_code,
        "at_ready": at_ready,
        "at_outcome": at_outcome,
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
    versions = {name: metadata.version(name) for name in ("numpy", "librosa", "soundfile", "soxr", "onnxruntime")}
    return {
        "cpus": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model,
        "python": platform.python_version(),
        "versions": versions,
    }


def git_commit() -> str:
    """The checked-out commit, and whether the working tree differs from it (the workers import src/ as it is)."""
    completed = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True, check=False)
    return completed.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")


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
    g, b, w = (medians_by_label[label] for label in ROUND)
    files, load, end_load = results["files"], results["loadavg_start"], results["loadavg_end"]
    header = (
        f"# genresort classification benchmark\n\n{results['date']} · {results['machine']['cpus']} CPUs "
        f"({results['machine']['cpu_model']}) · Python {results['machine']['python']} · "
        f"model {results['model']} · commit {results['commit']} · medians of {results['runs']} runs, each in "
        f"fresh processes · {results['seconds'] / 60:.1f} minutes in all\n\n"
        f"Load average at start: {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1 / 5 / 15 min); at end: "
        f"{end_load[0]:.2f}; median over the genresort workers: {g['loadavg_1min']:.2f}. Other processes at a load "
        "near the CPU count inflate wall times more than CPU times.\n\n"
        "genresort (and the windows worker) call `threadpool_limits(limits=1)` right after `GenreModel.load()`, "
        "as the daemon's analysis workers (`analysis._serve`) and `genresort classify` do; the baseline runs with "
        "default BLAS threading."
    )
    file_rows = [
        [name, f"{info['duration_s']:.1f} s", f"{info['sample_rate']} Hz", str(info["channels"]), f"{info['size_mb']}"]
        for name, info in files.items()
    ]

    def cold(step: str, key: str) -> list[str]:
        return [step, f"{g[key + '_wall']:.2f}", f"{g[key + '_cpu']:.2f}"]

    cold_rows = [
        cold("import genresort.analysis.model", "import"),
        cold("GenreModel.load()", "load"),
        cold("threadpool_limits(limits=1)", "limit"),
        cold("**ready: the three above** (aim: 2 s)", "ready"),
        cold("process start to ready (interpreter too)", "ready_since_spawn"),
        cold("first analyse() (30 s clip; one-off costs)", "first"),
    ]
    per_file_rows = [
        [
            name,
            f"**{g[f'{name}_cpu']:.3f}**",
            f"{g[f'{name}_wall']:.3f}",
            f"{b[f'{name}_cpu']:.3f}",
            f"{b[f'{name}_wall']:.3f}",
            f"{b[f'{name}_decode_cpu']:.3f}",
            f"{g[f'{name}_cpu'] / b[f'{name}_cpu']:.3f}",
            f"{g[f'{name}_wall'] / b[f'{name}_wall']:.3f}",
        ]
        for name in files
    ]
    memory_rows = [
        ["genresort: after import", f"{g['import_rss_mb']:.0f}"],
        ["genresort: after load", f"{g['load_rss_mb']:.0f}"],
        ["**genresort: after analysing all files** (aim < 300)", f"**{g['peak_rss_mb']:.0f}**"],
        ["baseline: after analysing all files whole", f"{b['peak_rss_mb']:.0f}"],
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
        ("ready (import + load + limit), wall s", "ready_wall", AIM_READY_SECONDS, ".2f"),
        ("peak memory, MB", "peak_rss_mb", AIM_PEAK_MB, ".0f"),
    ]
    aim_rows = [[aim, f"{target:g}", f"{g[key]:{form}}", verdict(g[key], target)] for aim, key, target, form in aims]
    sections = [
        header,
        "## Test files\n\n" + table(["file", "length", "rate", "channels", "MB"], file_rows),
        "## Cold start (seconds)\n\n" + table(["step", "wall", "CPU"], cold_rows),
        "## Per file, warm (seconds)\n\nCPU is `time.process_time()`: every thread of the process. "
        "Ratio = genresort (one BLAS thread, as shipped) / baseline (default BLAS threading).\n\n"
        + table(
            [
                "file",
                "genresort CPU",
                "genresort wall",
                "baseline CPU",
                "baseline wall",
                "baseline decode CPU",
                "CPU ratio",
                "wall ratio",
            ],
            per_file_rows,
        ),
        "## Peak memory (VmHWM, the peak resident set; MB)\n\n" + table(["process", "MB"], memory_rows),
        f"## Analysis windows on the 4-min file (CPU seconds, as shipped; window = "
        f"{results['window_seconds']:g} s)\n\n"
        + table(["windows", "3 s patches", "decode", "features + networks", "predict", "total", "wall"], window_rows),
        "## Aims\n\n" + table(["aim", "target", "as shipped", "verdict"], aim_rows),
    ]
    if results.get("daemon"):
        sections.append(daemon_report(results["daemon"]))
    return "\n\n".join(sections)


def daemon_report(daemon: dict[str, Any]) -> str:
    columns = ("VmHWM", "VmRSS", "RssAnon", "RssFile")
    at_outcome, at_ready = daemon["at_outcome"], daemon["at_ready"]
    rows = [
        [
            role,
            *(f"{memory[column]:.0f}" for column in columns),
            f"{at_ready[role]['VmRSS']:.0f}" if role in at_ready else "",
        ]
        for role, memory in at_outcome.items()
    ]
    total = {column: sum(memory[column] for memory in at_outcome.values()) for column in columns[1:]}
    rows.append(["sum", "", *(f"{total[column]:.0f}" for column in columns[1:]), ""])
    own = total["RssAnon"] + sum(memory["RssShmem"] for memory in at_outcome.values())
    largest_shared = max(memory["RssFile"] for memory in at_outcome.values())
    return (
        f"## A real daemon (once; MB)\n\n`{daemon['command']}` with an empty configuration file: ready after "
        f"{daemon['seconds_to_ready']:.1f} s; the 4-min file, dropped into the inbox, gave `{daemon['event']}` "
        f"{daemon['seconds_drop_to_outcome']:.1f} s later (the stability wait included), when these were read; "
        f"exit code {daemon['exit_code_after_sigterm']} after SIGTERM.\n\n"
        + table(["process", *columns, "VmRSS at daemon.ready"], rows)
        + f"\n\nTogether the processes hold between **{own + largest_shared:.0f}** MB (their own memory, plus the "
        f"largest set of file pages, as if the others' were all shared with it) and **{total['VmRSS']:.0f}** MB "
        "(the VmRSS sum, which counts every shared library again in each process)."
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per measurement; the median is reported")
    parser.add_argument("--json", type=Path, help="also write every sample and the medians to this file")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="GTZAN folder: DATA/<genre>/*.mp3")
    parser.add_argument("--model-dir", type=Path, default=ROOT / "models")
    parser.add_argument("--no-daemon", action="store_true", help="skip the memory of a real `genresort watch`")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.worker:
        print(json.dumps(WORKERS[args.worker](json.loads(args.spec))))
        return
    loadavg_start = os.getloadavg()
    commit = git_commit()
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
            for label in ROUND:
                samples[label].append(run_worker(label, spec))
            print(f"run {run + 1}/{args.runs} done after {time.perf_counter() - started:.0f} s", file=sys.stderr)
        loadavg_end = os.getloadavg()  # before the daemon, which is not part of the runs
        daemon = None if args.no_daemon else daemon_memory(files["4 min"], Path(folder), args.model_dir)
        results = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            "loadavg_start": loadavg_start,
            "loadavg_end": loadavg_end,
            "runs": args.runs,
            "files": {name: {"path": str(path), **describe(path)} for name, path in files.items()},
            "model": f"{model_card['model_id']} sha256:{model_card['model_file']['sha256'][:12]}",
            "shipped_window_count": model_card["window_plan"]["window_count"],
            "window_seconds": model_card["window_plan"]["window_seconds"],
            "medians": {kind: medians(runs) for kind, runs in samples.items()},
            "samples": samples,
            "daemon": daemon,
            "commit": commit if commit == git_commit() else f"{commit}, then {git_commit()} by the end",
            "seconds": time.perf_counter() - started,
        }
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
