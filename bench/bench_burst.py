"""How fast a real `genresort watch` gets through a burst of files dropped into its inbox at once.

    .venv/bin/python bench/bench_burst.py [--source DIR ...] [--files 60] [--runs 3] [--workers 1] [--json FILE]

Each run starts a fresh daemon under the tests' harness (tests/daemon_harness.py: its own session, an empty
configuration file, temporary folders, `stability_seconds` 1, `workers` 1 unless told), waits for `daemon.ready`,
then moves N GTZAN clips (a mix of genres, copied beforehand to a folder on the same file system) into the inbox
with one `os.rename` each, so the drop itself takes milliseconds. It measures, from the drop:

- the seconds to the last file's outcome line (`file.sorted`, `file.unsure`, `file.duplicate`, `file.quarantined`;
  every file must have exactly one) and files per second (the 1 s stability wait included);
- each file's latency (its outcome line's `timestamp` minus the time of the drop): median and p90;
- the CPU seconds the daemon and its children (the analysis workers) spent between the drop and the last outcome,
  from /proc (children that exited meanwhile are counted through the daemon's cutime/cstime), and of the daemon
  process alone (everything but the analysis);
- the sum of the peak resident memory (VmHWM) of the daemon and its children, read after the last outcome.

`--source DIR` (repeatable) names a source tree whose `src/` goes first on the daemon's PYTHONPATH and whose
`models/` it uses, so a git worktree of an older commit can be measured with the same script
(`python -m genresort.cli watch` and the GENRESORT_* variables are the same there). With several sources the runs
alternate between them (A B A B ...), so that load from other processes hits them alike; the table shows the
median over runs of each source and its ratio to the first source. Default source: this checkout.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "gtzan"
sys.path.insert(0, str(ROOT / "tests"))
from daemon_harness import Daemon, Folders, logged_names, process_table  # noqa: E402

READY_SECONDS = 300.0  # for the daemon to get ready; generous for a busy machine
BURST_SECONDS_PER_FILE = 10.0  # the deadline for the whole burst, per file
SETTLE_SECONDS = 2.0  # after the last outcome, how long a second outcome for a file is waited for
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
MEASURES = (
    "seconds",
    "files_per_second",
    "latency_median",
    "latency_p90",
    "cpu_seconds",
    "daemon_cpu_seconds",
    "peak_rss_mb",
)


@dataclass(frozen=True)
class Run:
    """One burst through one daemon: the measures, and what the daemon said about the files."""

    source: str
    seconds: float
    files_per_second: float
    latency_median: float
    latency_p90: float
    cpu_seconds: float
    daemon_cpu_seconds: float
    peak_rss_mb: float
    drop_seconds: float  # from the first rename into the inbox to the last
    outcomes: dict[str, int]  # event -> number of files
    anomalies: tuple[str, ...]  # files without exactly one outcome, retries, errors, a non-zero exit
    loadavg_1min: float


# --- inputs ------------------------------------------------------------------------------------------------------


def pick_clips(data: Path, count: int) -> list[Path]:
    """`count` clips taken from the genre folders in turn (the first of each, then the second...), so the burst
    mixes genres."""
    genres = [sorted(folder.glob("*.mp3")) for folder in sorted(data.iterdir()) if folder.is_dir()]
    mixed = [clips[index] for index in range(max(map(len, genres))) for clips in genres if index < len(clips)]
    if len(mixed) < count:
        raise SystemExit(f"{data} holds {len(mixed)} clips, fewer than the {count} asked for")
    return mixed[:count]


def source_commit(source: Path) -> str:
    """The source tree's commit, marked when its working tree differs from it (the daemon imports src/ as is)."""

    def git(*arguments: str) -> str:
        completed = subprocess.run(["git", *arguments], cwd=source, capture_output=True, text=True, check=False)
        return completed.stdout.strip()

    return git("rev-parse", "--short", "HEAD") + (" (with uncommitted changes)" if git("status", "--porcelain") else "")


# --- the daemon's process tree ---------------------------------------------------------------------------------


def process_tree(root: int) -> list[int]:
    """`root` and all its live descendants."""
    children: dict[int, list[int]] = {}
    for pid, state, parent, _ in process_table():
        if state != "Z":
            children.setdefault(parent, []).append(pid)
    tree, pending = [], [root]
    while pending:
        pid = pending.pop()
        tree.append(pid)
        pending.extend(children.get(pid, []))
    return tree


def cpu_seconds(pids: list[int]) -> tuple[float, float]:
    """CPU seconds so far of these processes, with their children that have exited and been waited for; and of
    the first process alone (the daemon: its watcher, staging, tagging and placing, without the analysis)."""
    ticks = []
    for pid in pids:
        try:
            stat_line = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat_line[stat_line.rindex(")") + 2 :].split()  # fields from the third on (state)
        ticks.append([int(value) for value in fields[11:15]])  # utime, stime, cutime, cstime
    return sum(map(sum, ticks)) / CLOCK_TICKS, sum(ticks[0][:2]) / CLOCK_TICKS


def peak_rss_mb(pids: list[int]) -> float:
    """The sum of the processes' peak resident memory (VmHWM): an upper bound for the tree's peak."""
    total_kb = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        if "VmHWM:" in status:
            total_kb += int(status.split("VmHWM:")[1].split()[0])
    return total_kb / 1024


# --- one run -----------------------------------------------------------------------------------------------------


def daemon_env(folders: Folders, source: Path, workers: int) -> dict[str, str]:
    """The harness's environment for these folders, with `source`'s src/ first on the path and its models."""
    env = folders.env(stability_seconds=1, workers=workers, model_dir=source / "models")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(source / "src"), env.get("PYTHONPATH")]))
    return env


def logged_at(record: dict[str, Any]) -> float:
    """A log line's `timestamp` (ISO 8601, UTC, microseconds) as seconds since the epoch."""
    return datetime.fromisoformat(record["timestamp"]).timestamp()


def burst(source: Path, clips: list[Path], workers: int, folder: Path) -> Run:
    """Start a daemon on `source`, drop `clips` into its inbox at once, measure until every file has its outcome."""
    folders = Folders(folder)
    waiting = folders.root / "waiting"  # on the inbox's file system, so a rename moves a file there at once
    waiting.mkdir()
    for clip in clips:
        shutil.copyfile(clip, waiting / clip.name)
    targets = [folders.inbox / clip.name for clip in clips]
    daemon = Daemon(folders, daemon_env(folders, source, workers), name="burst")
    try:
        daemon.wait_ready(READY_SECONDS)
        cpu_before = cpu_seconds(process_tree(daemon.pid))
        dropped = time.time()
        for clip, target in zip(clips, targets, strict=True):
            os.rename(waiting / clip.name, target)
        drop_seconds = time.time() - dropped
        daemon.wait_for(
            lambda: all(daemon.outcomes(target) for target in targets),
            f"an outcome for each of the {len(targets)} files",
            BURST_SECONDS_PER_FILE * len(targets),
        )
        tree = process_tree(daemon.pid)
        cpu_after = cpu_seconds(tree)
        peak = peak_rss_mb(tree)
        loadavg = os.getloadavg()[0]
        time.sleep(SETTLE_SECONDS)
        exit_code = daemon.terminate()
    finally:
        daemon.close()
    outcomes = {target: daemon.outcomes(target) for target in targets}
    latencies = sorted(logged_at(lines[0]) - dropped for lines in outcomes.values())
    anomalies = anomalies_of(daemon, outcomes, exit_code)
    return Run(
        source=str(source),
        seconds=latencies[-1],
        files_per_second=len(targets) / latencies[-1],
        latency_median=statistics.median(latencies),
        latency_p90=statistics.quantiles(latencies, n=10, method="inclusive")[-1],
        cpu_seconds=cpu_after[0] - cpu_before[0],
        daemon_cpu_seconds=cpu_after[1] - cpu_before[1],
        peak_rss_mb=peak,
        drop_seconds=drop_seconds,
        outcomes=dict(Counter(lines[0]["event"] for lines in outcomes.values())),
        anomalies=anomalies,
        loadavg_1min=loadavg,
    )


def anomalies_of(daemon: Daemon, outcomes: dict[Path, list[dict[str, Any]]], exit_code: int) -> tuple[str, ...]:
    """What should not happen in a clean burst: a file with more than one outcome, a retry or an error line, an
    outcome for a file that was not dropped, a non-zero exit after SIGTERM."""
    found = [f"{target.name}: {len(lines)} outcomes" for target, lines in outcomes.items() if len(lines) != 1]
    found += [
        f"{record['event']}: {Path(record.get('source', '?')).name} {record.get('reason', '')}".strip()
        for record in daemon.logs("file.retry", "file.error", "file.skipped")
    ]
    dropped_names = {name for target in outcomes for name in logged_names(target)}
    found += [
        f"outcome for a file not dropped: {record.get('source')}"
        for record in daemon.outcomes()
        if record.get("source") not in dropped_names
    ]
    if exit_code != 0:
        found.append(f"exit code {exit_code} after SIGTERM")
    return tuple(found)


# --- report ------------------------------------------------------------------------------------------------------


def medians(runs: list[Run]) -> dict[str, float]:
    return {measure: statistics.median(getattr(run, measure) for run in runs) for measure in MEASURES}


def report(results: dict[str, Any]) -> str:
    """The medians per source as a Markdown table, each with its ratio to the first source."""
    sources = results["sources"]
    first = results["medians"][sources[0]["path"]]
    headers = ["source", "commit", *MEASURES]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    for source in sources:
        values = results["medians"][source["path"]]
        lines.append(
            "| "
            + " | ".join([source["path"], source["commit"], *(f"{values[measure]:.3g}" for measure in MEASURES)])
            + " |"
        )
        if source is not sources[0]:
            ratios = [f"{values[measure] / first[measure]:.3f}" for measure in MEASURES]
            lines.append("| " + " | ".join([f"ratio to {sources[0]['commit']}", "", *ratios]) + " |")
    start, end = results["loadavg_start"], results["loadavg_end"]
    return (
        f"{results['files']} files, workers={results['workers']}, {results['runs']} runs per source, medians; "
        f"load average {start[0]:.2f} / {start[1]:.2f} / {start[2]:.2f} at the start, "
        f"{end[0]:.2f} / {end[1]:.2f} / {end[2]:.2f} at the end\n" + "\n".join(lines)
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, action="append", help="a source tree (repeatable; default: this one)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="GTZAN clips, one folder per genre")
    parser.add_argument("--files", type=int, default=60, help="files in the burst")
    parser.add_argument("--runs", type=int, default=3, help="runs per source")
    parser.add_argument("--workers", type=int, default=1, help="the daemon's analysis workers")
    parser.add_argument("--json", type=Path, help="also write every run and the medians here")
    return parser.parse_args()


def main() -> None:
    arguments = parse_args()
    sources = [path.resolve() for path in arguments.source or [ROOT]]
    clips = pick_clips(arguments.data, arguments.files)
    described = [{"path": str(source), "commit": source_commit(source)} for source in sources]
    loadavg_start = os.getloadavg()
    started = datetime.now(UTC)
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="bench-burst-") as scratch:
        for round_number in range(arguments.runs):
            for index, source in enumerate(sources):
                run = burst(source, clips, arguments.workers, Path(scratch) / f"run-{round_number}-{index}")
                runs.append(run)
                print(
                    f"round {round_number + 1}, {source}: {run.seconds:.2f} s, {run.files_per_second:.2f} files/s, "
                    f"CPU {run.cpu_seconds:.1f} s (daemon {run.daemon_cpu_seconds:.1f} s), {run.outcomes}, "
                    f"load {run.loadavg_1min:.2f}" + "".join(f"\n  ! {anomaly}" for anomaly in run.anomalies),
                    flush=True,
                )
    results = {
        "started": started.isoformat(timespec="seconds"),
        "files": arguments.files,
        "workers": arguments.workers,
        "runs": arguments.runs,
        "sources": described,
        "loadavg_start": loadavg_start,
        "loadavg_end": os.getloadavg(),
        "medians": {str(source): medians([run for run in runs if run.source == str(source)]) for source in sources},
        "all_runs": [asdict(run) for run in runs],
    }
    print(report(results))
    if arguments.json:
        arguments.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
