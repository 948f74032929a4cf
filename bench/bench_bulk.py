"""Bursts of files into a real `genresort watch`, and the tutorial's pipeline on the same files, in one run.

    .venv/bin/python bench/bench_bulk.py [--files 1000] [--mix 4min:80,30s:15,10min:5] [--repeats 3]
        [--workers N] [--stability-seconds 1] [--tutorial-files 50] [--profile] [--cache DIR] [--json FILE]
    .venv/bin/python bench/bench_bulk.py --smoke      # 12 files, 1 repeat, 6 tutorial files

The corpus (bulk_corpus.py) is built once into `--cache` (default ~/.cache/genresort-bench/corpus-v1, never inside
the project) and only extended later: 44.1 kHz stereo 192 kbps CBR MP3s of 4 and 10 minutes made of GTZAN clips,
and the 30 s clips as they are, every file different. A burst takes the first files of each kind in the `--mix`
shares, in one shuffled order, the same in every repeat.

Each repeat starts a fresh daemon under the tests' harness (tests/daemon_harness.py: its own session, temporary
folders, an empty configuration file, settings as GENRESORT_* variables): this checkout's src/ and models/,
`workers` = the number of cores, `stability_seconds` 1, every other setting the shipped default (no
`confidence_threshold`: the model's placement check decides; the model's own music threshold). The burst's files
are linked (or, across file systems, copied) beforehand into a folder beside the inbox, then renamed into the inbox
one after the other, as a download client does; the run waits until every file has an outcome line. It measures:

- seconds from the first rename to the last outcome (the outcome line's `timestamp`), and files per second (the
  stability wait included); each file's latency, from its own rename to its outcome line: p50, p90, p99, max;
- CPU seconds per file of the daemon's process tree between the first rename and the last outcome: utime + stime
  of the daemon and every live descendant (the analysis workers, multiprocessing's resource tracker) from
  /proc/<pid>/stat, plus cutime + cstime, which hold the children that exited and were waited for meanwhile; the
  daemon process's own share (watching, hashing and staging, tagging, placing, the journal); and the whole life
  of the daemon from start to exit (getrusage of this process's children: start-up included);
- memory, sampled every 0.2 s from the daemon's `daemon.ready` on: the sum over the tree of VmRSS (each shared
  library counted again in every process that maps it: an upper bound) and, every second, of Pss (smaps_rollup: shared
  pages split among the processes that map them, this benchmark and unrelated processes too, so a lower bound for
  the tree alone); the peak of each, and the sum of each process's VmHWM, which a peak between samples cannot
  escape; open file descriptors (/proc/<pid>/fd) and threads (Threads: in /proc/<pid>/status) of the tree, at
  `daemon.ready` and at most, which must not grow with the size of the burst.

The tutorial's pipeline then runs on a subset of the same files (`--tutorial-files`, in the burst's shares; all of
them when that is the burst's size) in a fresh process with one BLAS/OpenMP thread, as the daemon's analysis workers
have: `librosa.load(path, sr=22050, mono=True)` of the whole file, the five features (zero-crossing rate, spectral
centroid, spectral roll-off, 20 MFCCs, chroma) averaged over time, and a scikit-learn classifier's predict (fitted
beforehand on two 30 s clips per genre, not timed); warmed up on 3 corpus files first (numba compiles librosa's
kernels on first use). Its CPU seconds per file (`time.process_time`) are averaged per kind and weighed by the
burst's mix; the ratio is that over genresort's CPU seconds per file (the whole service, the daemon's own work
included, against the analysis alone: the ratio is, if anything, in the tutorial's favour).

`--profile` runs `genresort classify` on 20 files of the burst under cProfile (counting CPU time, not wall time)
and prints the functions with the largest cumulative time and the share of the named steps of an analysis.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pstats
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]  # this checkout's genresort; the tests' daemon harness
from bench_burst import anomalies_of, cpu_seconds, logged_at, process_tree, source_commit  # noqa: E402
from bench_classify import machine  # noqa: E402
from bulk_corpus import build_corpus, parse_mix, read_manifest, round_robin, split_count  # noqa: E402

from daemon_harness import OUTCOME_EVENTS, Daemon, Folders  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data"
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "genresort-bench" / "corpus-v1"
DEFAULT_MIX = "4min:80,30s:15,10min:5"
BURST_ORDER_SEED = 10
SMOKE = {"files": 12, "repeats": 1, "tutorial_files": 6}
SAMPLE_SECONDS = 0.2
PSS_EVERY = 5  # samples: reading smaps_rollup costs ~10 ms of kernel time per 500 MB process, and stalls it
READY_SECONDS = 300.0  # for the daemon to load the model in every worker; generous for a busy machine
BURST_SECONDS = 120.0  # plus SECONDS_PER_FILE per file: the deadline for a whole burst
SECONDS_PER_FILE = 10.0
SETTLE_SECONDS = 2.0  # after the last outcome, for a second outcome of a file to show
TUTORIAL_RATE = 22_050
TUTORIAL_WARMUP_FILES = 3
TUTORIAL_FIT_CLIPS_PER_GENRE = 2
ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")}
PROFILE_FILES = 20
PROFILE_TOP = 25
#: cProfile of `genresort classify`, counting CPU seconds: on a busy machine wall time would count the waiting too.
PROFILE_CODE = """
import cProfile, sys, time
from genresort.cli import main
output = sys.argv[1]
sys.argv = ["genresort", *sys.argv[2:]]
profiler = cProfile.Profile(time.process_time)
try:
    code = profiler.runcall(main)
finally:
    profiler.dump_stats(output)
sys.exit(code)
"""
#: (label, the end of the file's path, function name): the steps of an analysis, for the profile's summary
PROFILE_STEPS = (
    ("GenreModel.load (once)", "analysis/model.py", "load"),
    ("GenreModel.analyse", "analysis/model.py", "analyse"),
    ("  decode_analysis_windows", "analysis/audio.py", "decode_analysis_windows"),
    ("    to_mono", "analysis/audio.py", "to_mono"),
    ("    resample", "analysis/audio.py", "resample"),
    ("  power_spectrogram (STFT)", "features/spectrogram.py", "power_spectrogram"),
    ("  log_mel_patches", "features/embedding.py", "log_mel_patches"),
    ("  MusicnnNetwork.run", "features/embedding.py", "run"),
    ("    onnxruntime InferenceSession.run", "onnxruntime_inference_collection.py", "run"),
    ("  predict_vector", "analysis/model.py", "predict_vector"),
)


# --- the daemon's process tree, sampled ----------------------------------------------------------------------


@dataclass(frozen=True)
class TreeSample:
    seconds: float  # since the sampler started
    processes: int
    rss_mb: float
    pss_mb: float | None  # read every PSS_EVERY samples; None in between, or when a smaps_rollup was unreadable
    fds: int
    threads: int


def read_process(pid: int, with_pss: bool) -> dict[str, int] | None:
    """VmRSS, VmHWM and (with_pss) Pss in kB, Threads and open fds of one process; None when it has gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    values = {}
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "Threads"):
            values[key] = int(value.split()[0])
    if "VmRSS" not in values:  # a zombie: no memory left to count
        return None
    if with_pss:
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
            values["Pss"] = int(rollup.split("\nPss:")[1].split()[0])
        except (OSError, IndexError):
            pass
    return {**values, "fds": fds}


class TreeSampler:
    """Samples the memory, file descriptors and threads of a process and its descendants every 0.2 s (Pss every
    second), in a thread; keeps the last VmHWM seen of every process, so processes that exit still count towards
    the sum of peaks."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.samples: list[TreeSample] = []
        self.peak_kb: dict[int, int] = {}
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tree-sampler", daemon=True)

    def start(self) -> TreeSample:
        first = self.sample()
        self._thread.start()
        return first

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self.sample()

    def sample(self) -> TreeSample:
        with_pss = len(self.samples) % PSS_EVERY == 0
        processes = {
            pid: values for pid in process_tree(self.root) if (values := read_process(pid, with_pss)) is not None
        }
        for pid, values in processes.items():
            self.peak_kb[pid] = max(self.peak_kb.get(pid, 0), values["VmHWM"])
        taken = TreeSample(
            seconds=round(time.monotonic() - self._started, 2),
            processes=len(processes),
            rss_mb=sum(values["VmRSS"] for values in processes.values()) / 1024,
            pss_mb=(
                sum(values["Pss"] for values in processes.values()) / 1024
                if with_pss and all("Pss" in values for values in processes.values())
                else None
            ),
            fds=sum(values["fds"] for values in processes.values()),
            threads=sum(values["Threads"] for values in processes.values()),
        )
        self.samples.append(taken)
        return taken


# --- one burst ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Burst:
    """One repeat: a fresh daemon, the whole burst, the measures."""

    files: int
    seconds: float  # first rename to the last outcome line
    files_per_second: float
    latency_p50: float
    latency_p90: float
    latency_p99: float
    latency_max: float
    cpu_per_file: float  # the daemon's process tree, first rename to the last outcome
    daemon_cpu_per_file: float  # the daemon process alone, the same span
    lifetime_cpu: float  # the tree from start to exit (getrusage): start-up and shutdown included
    peak_rss_mb: float
    peak_pss_mb: float | None
    peak_sum_mb: float  # the sum of each process's VmHWM
    rss_at_ready_mb: float
    rss_at_end_mb: float
    fds_at_ready: int
    max_fds: int
    threads_at_ready: int
    max_threads: int
    max_processes: int
    ready_seconds: float  # from the start of the daemon to `daemon.ready`
    drop_seconds: float  # first rename to the last
    prepared: str  # how the files were put beside the inbox: "linked", "copied" or both
    bench_cpu: float  # this script's own CPU seconds during the burst (it shares the cores with the daemon)
    loadavg_1min: float  # at the last outcome
    outcomes: dict[str, int]  # event -> files
    models: tuple[str, ...]
    anomalies: tuple[str, ...]
    samples: list[TreeSample] = field(repr=False)


class OutcomeCollector:
    """The first outcome line of each dropped file, read incrementally from what the daemon said (a 1,000-file
    burst would make a scan of every line on every poll cost the cores the daemon needs)."""

    def __init__(self, daemon: Daemon, targets: list[Path]) -> None:
        self.daemon = daemon
        self.names = {str(target) for target in targets}
        self.first: dict[str, dict[str, Any]] = {}
        self._read = 0

    def __call__(self) -> bool:
        stream = self.daemon.stream()
        for item in stream[self._read :]:
            record = item.record
            if item.kind == "log" and record["event"] in OUTCOME_EVENTS and record.get("source") in self.names:
                self.first.setdefault(record["source"], record)
        self._read = len(stream)
        return len(self.first) == len(self.names)


def place_beside(source: Path, target: Path) -> str:
    """Put a corpus file at `target` (beside the inbox) by a hard link, or a copy across file systems: "linked" or
    "copied". The daemon never writes to an inbox original, so the corpus stays as built."""
    try:
        os.link(source, target)
        return "linked"
    except OSError:
        shutil.copyfile(source, target)
        return "copied"


def percentile(values: list[float], percent: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[percent - 1]


def run_burst(files: list[Path], workers: int, stability_seconds: float, folder: Path) -> Burst:
    """Start a daemon in `folder`, drop `files` into its inbox, measure until every file has its outcome line."""
    folders = Folders(folder)
    waiting = folders.root / "waiting"  # beside the inbox, on its file system: a rename moves a file in at once
    waiting.mkdir()
    prepared = {place_beside(path, waiting / path.name) for path in files}
    targets = [folders.inbox / path.name for path in files]
    env = folders.env(
        stability_seconds=stability_seconds, workers=workers, model_dir=ROOT / "models", music_threshold=None
    )
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    usage_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    daemon = Daemon(folders, env, name="bulk")
    sampler = None
    try:
        daemon.wait_ready(READY_SECONDS)
        ready_seconds = time.monotonic() - started
        sampler = TreeSampler(daemon.pid)
        at_ready = sampler.start()
        cpu_before, bench_before = cpu_seconds(process_tree(daemon.pid)), time.process_time()
        dropped = {}
        for path, target in zip(files, targets, strict=True):
            os.rename(waiting / path.name, target)
            dropped[str(target)] = time.time()
        collected = OutcomeCollector(daemon, targets)
        daemon.wait_for(
            collected,
            f"an outcome for each of the {len(targets)} files",
            BURST_SECONDS + SECONDS_PER_FILE * len(targets),
        )
        cpu_after, bench_cpu = cpu_seconds(process_tree(daemon.pid)), time.process_time() - bench_before
        loadavg = os.getloadavg()[0]
        sampler.stop()
        at_end = sampler.sample()
        time.sleep(SETTLE_SECONDS)
        exit_code = daemon.terminate()
    finally:
        if sampler is not None:
            sampler.stop()
        daemon.close()
    lifetime = resource.getrusage(resource.RUSAGE_CHILDREN)
    lifetime_cpu = (lifetime.ru_utime - usage_before.ru_utime) + (lifetime.ru_stime - usage_before.ru_stime)
    every_outcome: dict[Path, list[dict[str, Any]]] = {target: [] for target in targets}
    for record in daemon.outcomes():
        source = Path(record.get("source", ""))
        if source in every_outcome:
            every_outcome[source].append(record)
    first_drop = min(dropped.values())
    latencies = sorted(logged_at(record) - dropped[source] for source, record in collected.first.items())
    seconds = max(logged_at(record) for record in collected.first.values()) - first_drop
    samples = sampler.samples
    return Burst(
        files=len(files),
        seconds=seconds,
        files_per_second=len(files) / seconds,
        latency_p50=percentile(latencies, 50),
        latency_p90=percentile(latencies, 90),
        latency_p99=percentile(latencies, 99),
        latency_max=latencies[-1],
        cpu_per_file=(cpu_after[0] - cpu_before[0]) / len(files),
        daemon_cpu_per_file=(cpu_after[1] - cpu_before[1]) / len(files),
        lifetime_cpu=lifetime_cpu,
        peak_rss_mb=max(sample.rss_mb for sample in samples),
        peak_pss_mb=max((sample.pss_mb for sample in samples if sample.pss_mb is not None), default=None),
        peak_sum_mb=sum(sampler.peak_kb.values()) / 1024,
        rss_at_ready_mb=at_ready.rss_mb,
        rss_at_end_mb=at_end.rss_mb,
        fds_at_ready=at_ready.fds,
        max_fds=max(sample.fds for sample in samples),
        threads_at_ready=at_ready.threads,
        max_threads=max(sample.threads for sample in samples),
        max_processes=max(sample.processes for sample in samples),
        ready_seconds=ready_seconds,
        drop_seconds=max(dropped.values()) - first_drop,
        prepared=" and ".join(sorted(prepared)),
        bench_cpu=bench_cpu,
        loadavg_1min=loadavg,
        outcomes=dict(Counter(record["event"] for record in collected.first.values())),
        models=tuple(sorted({record["model"] for record in collected.first.values() if record.get("model")})),
        anomalies=anomalies_of(daemon, every_outcome, exit_code),
        samples=samples,
    )


# --- the tutorial's pipeline -------------------------------------------------------------------------------------


def tutorial_features(path: str):
    """The tutorial's way: the whole file decoded at 22.05 kHz mono, five features averaged over time (35 numbers).
    Each feature computes its own spectrogram, as the tutorial's calls do."""
    import librosa
    import numpy as np

    audio, rate = librosa.load(path, sr=TUTORIAL_RATE, mono=True)
    features = [
        librosa.feature.zero_crossing_rate(audio),
        librosa.feature.spectral_centroid(y=audio, sr=rate),
        librosa.feature.spectral_rolloff(y=audio, sr=rate),
        librosa.feature.mfcc(y=audio, sr=rate, n_mfcc=20),
        librosa.feature.chroma_stft(y=audio, sr=rate),
    ]
    return np.concatenate([feature.mean(axis=1) for feature in features])


def tutorial_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """In a fresh process with one thread (ONE_THREAD, and threadpoolctl for good measure): fit the classifier on
    `spec["fit"]`, warm up on `spec["warmup"]`, then time each of `spec["files"]`."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)
    started = time.process_time()
    fit = spec["fit"]
    vectors = np.stack([tutorial_features(item["path"]) for item in fit])
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    classifier.fit(vectors, [item["genre"] for item in fit])
    fit_cpu = time.process_time() - started

    def timed(path: str) -> dict[str, Any]:
        cpu, wall = time.process_time(), time.perf_counter()
        genre = classifier.predict(tutorial_features(path)[np.newaxis])[0]
        return {"cpu": time.process_time() - cpu, "wall": time.perf_counter() - wall, "genre": str(genre)}

    warmup = [{"name": Path(path).name, **timed(path)} for path in spec["warmup"]]
    files = []
    for number, item in enumerate(spec["files"], start=1):
        files.append({**item, **timed(item["path"])})
        if number % 10 == 0 or number == len(spec["files"]):
            print(f"  tutorial: {number}/{len(spec['files'])} files", file=sys.stderr, flush=True)
    status = Path("/proc/self/status").read_text()
    peak_mb = int(status.split("VmHWM:")[1].split()[0]) / 1024
    return {"fit_clips": len(fit), "fit_cpu": fit_cpu, "warmup": warmup, "files": files, "peak_rss_mb": peak_mb}


def tutorial_subset(files_by_kind: dict[str, list[Path]], count: int) -> dict[str, list[Path]]:
    """The first files of each kind, `count` in all, in the burst's shares (at least one of each kind)."""
    shares = {kind: float(len(paths)) for kind, paths in files_by_kind.items() if paths}
    return {kind: files_by_kind[kind][:number] for kind, number in split_count(count, shares).items()}


def run_tutorial(data: Path, subset: dict[str, list[Path]], counts: dict[str, int]) -> dict[str, Any]:
    """The tutorial's pipeline on `subset`, in a fresh process; its CPU per file per kind and on the burst's mix."""
    fit = [
        {"path": str(clip.path), "genre": clip.genre}
        for clip in round_robin([clip for clip in read_manifest(data) if clip.quality == "exact"])
    ][: TUTORIAL_FIT_CLIPS_PER_GENRE * len({clip.genre for clip in read_manifest(data)})]
    kinds = [kind for kind in subset if subset[kind]]
    mixed = [
        subset[kind][row] for row in range(max(map(len, subset.values()))) for kind in kinds if row < len(subset[kind])
    ]
    warmup = [str(mixed[number % len(mixed)]) for number in range(TUTORIAL_WARMUP_FILES)]  # one of each kind first
    spec = {
        "fit": fit,
        "warmup": warmup,
        "files": [{"kind": kind, "path": str(path)} for kind, paths in subset.items() for path in paths],
    }
    print(
        f"tutorial pipeline: fit on {len(fit)} clips, warm-up on {len(warmup)} files, {len(spec['files'])} timed",
        flush=True,
    )
    command = [sys.executable, str(Path(__file__).resolve()), "--tutorial-worker"]
    completed = subprocess.run(
        command,
        input=json.dumps(spec),
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **ONE_THREAD},
        check=False,
    )
    if completed.returncode != 0:
        sys.exit(f"the tutorial worker failed (exit code {completed.returncode})")
    result = json.loads(completed.stdout.splitlines()[-1])
    per_kind = {
        kind: statistics.mean(item["cpu"] for item in result["files"] if item["kind"] == kind) for kind in kinds
    }
    weighted = sum(counts[kind] * per_kind[kind] for kind in kinds) / sum(counts[kind] for kind in kinds)
    return {**result, "cpu_per_file_by_kind": per_kind, "cpu_per_file_on_the_mix": weighted, "threads": 1}


# --- profile -----------------------------------------------------------------------------------------------------


def run_profile(files: list[Path], folder: Path) -> dict[str, Any]:
    """`genresort classify` on `files` under cProfile (CPU time): the top functions and the analysis's steps."""
    output = folder / "classify.prof"
    env = {key: value for key, value in os.environ.items() if not key.startswith("GENRESORT_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    command = [sys.executable, "-c", PROFILE_CODE, str(output), "classify", "--json", "--model", str(ROOT / "models")]
    completed = subprocess.run(
        [*command, *map(str, files)], env=env, cwd=folder, capture_output=True, text=True, check=False
    )
    if not output.exists():
        sys.exit(f"the profiled classify failed (exit code {completed.returncode}):\n{completed.stderr}")
    top = io.StringIO()
    pstats.Stats(str(output), stream=top).sort_stats("cumulative").print_stats(PROFILE_TOP)
    stats = pstats.Stats(
        str(output)
    ).stats  # {(file, line, function): (primitive calls, calls, tottime, cumtime, callers)}
    steps = []
    for label, file_end, function in PROFILE_STEPS:
        found = [value for (path, _, name), value in stats.items() if name == function and path.endswith(file_end)]
        if found:
            steps.append({"step": label, "calls": sum(v[1] for v in found), "cpu": sum(v[3] for v in found)})
    total = max(value[3] for value in stats.values())
    return {
        "files": len(files),
        "exit_code": completed.returncode,
        "total_cpu": total,
        "steps": steps,
        "top": top.getvalue().split("\n", 1)[1].strip("\n"),  # without the header naming the temporary file
    }


# --- report ------------------------------------------------------------------------------------------------------

#: (label, Burst field, format) of the table, one row each
ROWS = (
    ("files per second, first drop to last outcome", "files_per_second", ".2f"),
    ("seconds, first drop to last outcome", "seconds", ".1f"),
    ("latency per file p50, s", "latency_p50", ".1f"),
    ("latency per file p90, s", "latency_p90", ".1f"),
    ("latency per file p99, s", "latency_p99", ".1f"),
    ("latency per file max, s", "latency_max", ".1f"),
    ("CPU-s per file, daemon + children", "cpu_per_file", ".3f"),
    ("  of which the daemon process itself", "daemon_cpu_per_file", ".3f"),
    ("CPU-s, daemon start to exit (all)", "lifetime_cpu", ".1f"),
    ("peak RSS, sum over the tree, MB", "peak_rss_mb", ".0f"),
    ("peak PSS, sum over the tree, MB", "peak_pss_mb", ".0f"),
    ("sum of the processes' VmHWM, MB", "peak_sum_mb", ".0f"),
    ("RSS sum at daemon.ready, MB", "rss_at_ready_mb", ".0f"),
    ("RSS sum at the last outcome, MB", "rss_at_end_mb", ".0f"),
    ("open fds of the tree, at ready", "fds_at_ready", "d"),
    ("open fds of the tree, max", "max_fds", "d"),
    ("threads of the tree, at ready", "threads_at_ready", "d"),
    ("threads of the tree, max", "max_threads", "d"),
    ("processes in the tree, max", "max_processes", "d"),
    ("daemon start to daemon.ready, s", "ready_seconds", ".1f"),
    ("first rename to last rename, s", "drop_seconds", ".2f"),
    ("this script's own CPU-s in the burst", "bench_cpu", ".2f"),
    ("load average (1 min) at the end", "loadavg_1min", ".2f"),
)


def medians(bursts: list[Burst]) -> dict[str, float | None]:
    values = {name: [getattr(burst, name) for burst in bursts] for _, name, _ in ROWS}
    return {name: None if None in found else statistics.median(found) for name, found in values.items()}


def text_table(rows: list[list[str]]) -> str:
    """Rows of cells as aligned plain text: the first column to the left, the others to the right."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "\n".join(
        "  ".join(
            cell.ljust(width) if column == 0 else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    )


def cell(value: float | None, form: str) -> str:
    if value is None:
        return "-"
    return format(round(value) if form == "d" else value, form)


def report(results: dict[str, Any]) -> str:
    settings, bursts = results["settings"], [Burst(**burst) for burst in results["bursts"]]
    machine_, load = results["machine"], results["loadavg_start"]
    end_load = results["loadavg_end"]
    lines = [
        f"genresort bulk benchmark, {results['started']}: commit {results['commit']}, model {results['model']}",
        f"machine: {machine_['cpu_count']} cores ({machine_['cpu_model']}), {machine_['memory_gb']:.0f} GB; load "
        f"average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} at the start, {end_load[0]:.2f} / {end_load[1]:.2f} / "
        f"{end_load[2]:.2f} at the end",
        f"burst: {settings['files']} files ("
        + ", ".join(f"{count} x {kind}" for kind, count in settings["counts"].items())
        + f"), corpus in {settings['cache']}, files {bursts[0].prepared} beside the inbox and renamed in; workers "
        f"{settings['workers']}, stability_seconds {settings['stability_seconds']:g}, confidence_threshold and "
        f"music_threshold the model's; {len(bursts)} repeat(s), each a fresh daemon",
        "",
    ]
    header = ["", "median", *(f"repeat {number}" for number in range(1, len(bursts) + 1))]
    rows = [header] + [
        [label, cell(results["medians"][name], form), *(cell(getattr(burst, name), form) for burst in bursts)]
        for label, name, form in ROWS
    ]
    lines.append(text_table(rows))
    for number, burst in enumerate(bursts, start=1):
        outcomes = ", ".join(f"{event} {count}" for event, count in sorted(burst.outcomes.items()))
        lines.append(f"repeat {number}: {outcomes}" + "".join(f"\n  ! {anomaly}" for anomaly in burst.anomalies))
    tutorial = results.get("tutorial")
    if tutorial:
        lines += ["", f"tutorial pipeline (one thread; fit on {tutorial['fit_clips']} clips, not timed):"]
        timed_files = Counter(item["kind"] for item in tutorial["files"])
        kind_rows = [["", "files", "CPU-s per file", "wall s per file"]] + [
            [
                kind,
                str(timed_files[kind]),
                f"{cpu:.3f}",
                f"{statistics.mean(item['wall'] for item in tutorial['files'] if item['kind'] == kind):.3f}",
            ]
            for kind, cpu in tutorial["cpu_per_file_by_kind"].items()
        ]
        kind_rows.append(
            ["on the burst's mix", str(len(tutorial["files"])), f"{tutorial['cpu_per_file_on_the_mix']:.3f}", ""]
        )
        lines.append(text_table(kind_rows))
        warmup = ", ".join(f"{item['name']} {item['cpu']:.2f}" for item in tutorial["warmup"])
        lines.append(
            f"warm-up, CPU-s: {warmup} (after the fit, {tutorial['fit_cpu']:.1f} CPU-s, which compiled numba); "
            f"peak memory (VmHWM) {tutorial['peak_rss_mb']:.0f} MB"
        )
        ratio = results["ratio"]
        lines.append(
            f"ratio, tutorial CPU-s per file / genresort CPU-s per file (medians): {ratio['median']:.1f} "
            f"(repeats: {', '.join(f'{value:.1f}' for value in ratio['repeats'])})"
        )
    profile = results.get("profile")
    if profile:
        lines += [
            "",
            f"profile: `genresort classify` on {profile['files']} files of the burst, cProfile counting CPU time "
            f"({profile['total_cpu']:.1f} CPU-s in all, model load included; exit code {profile['exit_code']})",
        ]
        analyse = next((step["cpu"] for step in profile["steps"] if step["step"] == "GenreModel.analyse"), None)
        step_rows = [["step", "calls", "CPU-s", "ms per file", "share of analyse"]] + [
            [
                step["step"],
                str(step["calls"]),
                f"{step['cpu']:.2f}",
                f"{1000 * step['cpu'] / profile['files']:.1f}",
                f"{step['cpu'] / analyse:.0%}" if analyse else "",
            ]
            for step in profile["steps"]
        ]
        lines += [text_table(step_rows), "", profile["top"]]
    return "\n".join(lines)


def describe_machine() -> dict[str, Any]:
    memory_kb = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
    return {**machine(), "cpu_count": os.cpu_count(), "memory_gb": memory_kb / 1024**2}


# --- main --------------------------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=1000, help="files in each burst")
    parser.add_argument("--mix", default=DEFAULT_MIX, help=f"shares of each kind of file (default {DEFAULT_MIX})")
    parser.add_argument("--repeats", type=int, default=3, help="bursts, each into a fresh daemon; medians reported")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="the daemon's analysis workers")
    parser.add_argument("--stability-seconds", type=float, default=1.0, help="the daemon's stability wait")
    parser.add_argument(
        "--tutorial-files", type=int, default=50, help="files of the burst the tutorial's pipeline runs on (0: none)"
    )
    parser.add_argument(
        "--profile", action="store_true", help=f"cProfile `genresort classify` on {PROFILE_FILES} files"
    )
    parser.add_argument("--smoke", action="store_true", help="12 files, 1 repeat, 6 tutorial files: about a minute")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="the corpus folder, outside the project")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data (MANIFEST.tsv, gtzan/)")
    parser.add_argument("--work-dir", type=Path, help="where each repeat's folders go (default: the system's tmp)")
    parser.add_argument("--build-processes", type=int, default=os.cpu_count(), help="processes building the corpus")
    parser.add_argument("--json", type=Path, help="also write every repeat's figures and the medians here")
    parser.add_argument("--tutorial-worker", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.smoke:
        vars(arguments).update(SMOKE)
    return arguments


def main() -> None:
    arguments = parse_args()
    if arguments.tutorial_worker:
        print(json.dumps(tutorial_worker(json.load(sys.stdin))))
        return
    cache = arguments.cache.expanduser().resolve()
    if cache.is_relative_to(ROOT):
        sys.exit(f"the corpus cache {cache} is inside the project; give --cache a folder outside {ROOT}")
    counts = split_count(arguments.files, parse_mix(arguments.mix))
    tutorial_files = min(arguments.tutorial_files, arguments.files)
    if 0 < tutorial_files < sum(1 for count in counts.values() if count):
        sys.exit(f"--tutorial-files {tutorial_files}: at least one file of each kind of the mix is needed")
    files_by_kind = build_corpus(arguments.data, cache, counts, arguments.build_processes)
    burst = [path for paths in files_by_kind.values() for path in paths]
    random.Random(BURST_ORDER_SEED).shuffle(burst)
    started, loadavg_start, commit = datetime.now(UTC), os.getloadavg(), source_commit(ROOT)
    bursts: list[Burst] = []
    tutorial = profile = None
    with tempfile.TemporaryDirectory(prefix="bench-bulk-", dir=arguments.work_dir) as scratch:
        for number in range(1, arguments.repeats + 1):
            folder = Path(scratch) / f"repeat-{number}"
            run = run_burst(burst, arguments.workers, arguments.stability_seconds, folder)
            shutil.rmtree(folder)  # the placed copies: gigabytes for a full burst
            bursts.append(run)
            print(
                f"repeat {number}/{arguments.repeats}: {run.files_per_second:.2f} files/s, {run.cpu_per_file:.3f} "
                f"CPU-s per file, peak RSS {run.peak_rss_mb:.0f} MB, load {run.loadavg_1min:.2f}",
                flush=True,
            )
        if tutorial_files:
            tutorial = run_tutorial(arguments.data, tutorial_subset(files_by_kind, tutorial_files), counts)
        if arguments.profile:
            print(f"profiling `genresort classify` on {min(PROFILE_FILES, len(burst))} files", flush=True)
            profile = run_profile(burst[:PROFILE_FILES], Path(scratch))
    results_medians = medians(bursts)
    results: dict[str, Any] = {
        "started": started.isoformat(timespec="seconds"),
        "commit": commit if commit == source_commit(ROOT) else f"{commit}, then {source_commit(ROOT)} by the end",
        "model": ", ".join(sorted({model for run in bursts for model in run.models})),
        "machine": describe_machine(),
        "loadavg_start": loadavg_start,
        "loadavg_end": os.getloadavg(),
        "settings": {
            "files": arguments.files,
            "mix": arguments.mix,
            "counts": counts,
            "repeats": arguments.repeats,
            "workers": arguments.workers,
            "stability_seconds": arguments.stability_seconds,
            "cache": str(cache),
            "tutorial_files": tutorial_files,
        },
        "medians": results_medians,
        "bursts": [asdict(run) for run in bursts],
        "tutorial": tutorial,
        "ratio": tutorial
        and {
            "median": tutorial["cpu_per_file_on_the_mix"] / results_medians["cpu_per_file"],
            "repeats": [tutorial["cpu_per_file_on_the_mix"] / run.cpu_per_file for run in bursts],
        },
        "profile": profile,
    }
    print("\n" + report(results))
    if arguments.json:
        arguments.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
