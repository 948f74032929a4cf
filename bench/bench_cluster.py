"""`genresort sort` over the same files with the local pool and on a 2-worker Dask LocalCluster, side by side.

    .venv/bin/python bench/bench_cluster.py [--files 40] [--repeats 3] [--workers N] [--cluster-workers 2]
        [--cache DIR] [--json FILE]

The files are the bulk benchmark's 4-minute 44.1 kHz stereo MP3s (bulk_corpus.py, built once into `--cache`, default
~/.cache/genresort-bench/corpus-v1). Each run links them into the inbox of fresh temporary folders and runs this
checkout's `genresort sort` on them as a person would (every setting the shipped default, the model's own music
threshold): locally with `workers` = the number of cores, or with `--cluster` on a LocalCluster of
`--cluster-workers` worker processes of one thread each, started once beforehand (as a real cluster is up before a
sort) and holding no model between runs. Runs alternate, local first, so that a change in the machine's load
falls on both sides alike.

Each run reports files per second over the pass (`scan.finished`'s seconds: from the first file taken to the last
placed; the model loaded beforehand, in the local workers or on every Dask worker) and the whole command's wall
seconds (Python's start, the model's load and, on the cluster, its connection included); medians of the repeats,
and the cluster's files per second over the local pool's. On one machine the cluster can only add its own costs (the
same cores, plus Dask's scheduling and serialisation): the ratio says what they are; a real cluster adds machines.
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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]  # this checkout's genresort; the tests' daemon harness
from bench_bulk import DEFAULT_CACHE, DEFAULT_DATA, describe_machine, place_beside, text_table  # noqa: E402
from bench_burst import source_commit  # noqa: E402
from bulk_corpus import build_corpus  # noqa: E402

from daemon_harness import Folders  # noqa: E402

KIND = "4min"
RUN_SECONDS = 600.0  # one `genresort sort`, at most
SIDES = ("local", "cluster")


def sort_run(files: list[Path], folder: Path, workers: int, cluster: str | None) -> dict[str, Any]:
    """One `genresort sort` of `files` in fresh folders under `folder`, locally or on `cluster`: its figures."""
    folders = Folders(folder)
    for path in files:
        place_beside(path, folders.inbox / path.name)  # the corpus's old mtimes: no stability wait
    env = folders.env(workers=workers, model_dir=ROOT / "models", music_threshold=None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "genresort.cli", "sort", "--config", str(folders.config_file)]
    if cluster is not None:
        command += ["--cluster", cluster]
    started = time.monotonic()
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=RUN_SECONDS)
    wall = time.monotonic() - started
    lines = [json.loads(line) for line in completed.stdout.splitlines() if line.startswith("{")]
    finished = next((line for line in lines if line["event"] == "scan.finished"), None)
    if finished is None:
        sys.exit(
            f"`genresort sort` ({'cluster' if cluster else 'local'}) ended without scan.finished:\n"
            + completed.stdout[-2000:]
            + completed.stderr[-2000:]
        )
    placed = sum(finished.get(outcome, 0) for outcome in ("sorted", "unsure", "not_music"))
    if placed != len(files):
        sys.exit(f"only {placed} of {len(files)} files placed: {finished}\n{completed.stderr[-2000:]}")
    return {
        "files_per_second": len(files) / finished["seconds"],
        "pass_seconds": finished["seconds"],
        "wall_seconds": wall,
        "outcomes": {key: value for key, value in finished.items() if isinstance(value, int) and key != "files"},
    }


def start_cluster(workers: int):
    """A LocalCluster of `workers` processes of one thread each, importing this checkout's genresort."""
    import distributed

    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))
    return distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0")


def summary(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    medians = {
        side: {
            key: statistics.median(run[key] for run in runs[side])
            for key in ("files_per_second", "pass_seconds", "wall_seconds")
        }
        for side in SIDES
    }
    return {
        "medians": medians,
        "ratio": medians["cluster"]["files_per_second"] / medians["local"]["files_per_second"],
    }


def report(results: dict[str, Any]) -> str:
    settings, machine_ = results["settings"], results["machine"]
    rows = [["", "files/s (median)", "pass s", "command s", "files/s of each repeat"]]
    labels = (
        f"local pool, {settings['workers']} workers",
        f"LocalCluster, {settings['cluster_workers']} workers × 1 thread",
    )
    for side, label in zip(SIDES, labels, strict=True):
        median = results["medians"][side]
        rows.append(
            [
                label,
                f"{median['files_per_second']:.2f}",
                f"{median['pass_seconds']:.1f}",
                f"{median['wall_seconds']:.1f}",
                "  ".join(f"{run['files_per_second']:.2f}" for run in results["runs"][side]),
            ]
        )
    load, end = results["loadavg_start"], results["loadavg_end"]
    return "\n".join(
        [
            f"genresort sort, local pool against a Dask LocalCluster, {results['started']}: commit {results['commit']}",
            f"machine: {machine_['cpu_count']} cores ({machine_['cpu_model']}), {machine_['memory_gb']:.0f} GB; load "
            f"average {load[0]:.2f} at the start, {end[0]:.2f} at the end",
            f"{settings['files']} {KIND} MP3s, {settings['repeats']} repeats of each side, interleaved",
            "",
            text_table(rows),
            "",
            f"cluster / local, files per second: {results['ratio']:.2f}",
        ]
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=40, help=f"{KIND} MP3s in each run")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each side; medians reported")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="the local pool's analysis workers")
    parser.add_argument("--cluster-workers", type=int, default=2, help="the LocalCluster's worker processes")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="the corpus folder, outside the project")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data (MANIFEST.tsv, gtzan/)")
    parser.add_argument("--work-dir", type=Path, help="where each run's folders go (default: the system's tmp)")
    parser.add_argument("--build-processes", type=int, default=os.cpu_count(), help="processes building the corpus")
    parser.add_argument("--json", type=Path, help="also write every run's figures and the medians here")
    return parser.parse_args()


def main() -> None:
    arguments = parse_args()
    cache = arguments.cache.expanduser().resolve()
    if cache.is_relative_to(ROOT):
        sys.exit(f"the corpus cache {cache} is inside the project; give --cache a folder outside {ROOT}")
    files = build_corpus(arguments.data, cache, {KIND: arguments.files}, arguments.build_processes)[KIND]
    started, loadavg_start, commit = datetime.now(UTC), os.getloadavg(), source_commit(ROOT)
    runs: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
    with (
        start_cluster(arguments.cluster_workers) as cluster,
        tempfile.TemporaryDirectory(prefix="bench-cluster-", dir=arguments.work_dir) as scratch,
    ):
        for number in range(1, arguments.repeats + 1):
            for side in SIDES:
                address = cluster.scheduler_address if side == "cluster" else None
                folder = Path(scratch) / f"{side}-{number}"
                run = sort_run(files, folder, arguments.workers, address)
                shutil.rmtree(folder)  # the placed copies: about 6 MB a file
                runs[side].append(run)
                print(
                    f"repeat {number}/{arguments.repeats}, {side}: {run['files_per_second']:.2f} files/s, pass "
                    f"{run['pass_seconds']:.1f} s, command {run['wall_seconds']:.1f} s",
                    flush=True,
                )
    results: dict[str, Any] = {
        "started": started.isoformat(timespec="seconds"),
        "commit": commit,
        "machine": describe_machine(),
        "loadavg_start": loadavg_start,
        "loadavg_end": os.getloadavg(),
        "settings": {
            "files": arguments.files,
            "kind": KIND,
            "repeats": arguments.repeats,
            "workers": arguments.workers,
            "cluster_workers": arguments.cluster_workers,
            "cache": str(cache),
        },
        "runs": runs,
        **summary(runs),
    }
    print()
    print(report(results))
    if arguments.json:
        arguments.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
