"""`genresort sort`: one pass over the inbox (or the given files) through the daemon's code path, then exit."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path

from structlog.typing import FilteringBoundLogger

from genresort.config import Settings
from genresort.library.journal import Journal
from genresort.library.lock import MovesLock
from genresort.logs import path_text
from genresort.progress import ProgressBar
from genresort.service.inbox import StabilityGate, is_candidate, scan_folder
from genresort.service.pipeline import Outcome, Sorter, SortOutcome
from genresort.service.recovery import recover
from genresort.service.startup import open_journal_unlocked, open_state, start_sorter
from genresort.service.supervisor import EXIT_FAILED, EXIT_OK, EXIT_REFUSED, StopSignals, finish_in_flight, tick_seconds
from genresort.service.workqueue import ERROR, WorkQueue


def run_once(settings: Settings, log: FilteringBoundLogger, paths: list[Path] | None, dry_run: bool) -> int:
    """`genresort sort`: one pass over the inbox, or the given files and folders, with the daemon's code path.

    Exit code 1 if any file was quarantined or failed. A dry run takes no lock, moves nothing and prints one
    JSON line per file with what would happen (it reads the journal, to recognise duplicates).
    """
    if paths is None and not settings.inbox.is_dir():
        log.error("daemon.refused", reason=f"the inbox {path_text(settings.inbox)} does not exist or is not a folder")
        return EXIT_REFUSED
    if dry_run:
        journal = open_journal_unlocked(settings, log)
        if journal is None:
            return EXIT_REFUSED
        with journal:
            return sort_once(settings, journal, log, paths, dry_run=True)
    state = open_state(settings, log)
    if state is None:
        return EXIT_REFUSED
    try:
        return sort_once(settings, state.journal, log, paths, dry_run=False)
    finally:
        state.close()


def sort_once(
    settings: Settings, journal: Journal, log: FilteringBoundLogger, paths: list[Path] | None, dry_run: bool
) -> int:
    """The pass itself, once the journal is open (and, unless a dry run, the state folder ours)."""
    started = start_sorter(settings, journal, log, cluster=settings.cluster)
    if started is None:
        return EXIT_REFUSED
    sorter, analysers = started
    try:
        in_flight = settings.workers
        if settings.cluster is not None:
            in_flight = analysers.in_flight
            log.info("cluster.ready", address=settings.cluster, workers=analysers.workers, threads=analysers.threads)
        if not dry_run:
            recover(sorter, MovesLock(settings.state_dir))
        sort_file = partial(plan_and_print, sorter) if dry_run else sorter.sort_file
        return sort_files(settings, sort_file, paths, log, in_flight)
    finally:
        analysers.close()


def sort_files(
    settings: Settings,
    sort_file: Callable[[Path], SortOutcome],
    paths: list[Path] | None,
    log: FilteringBoundLogger,
    in_flight: int | None = None,
) -> int:
    """Sort each file on the workers, `in_flight` at once (default: the `workers` setting), without retries;
    EXIT_FAILED if one failed or a signal cut the pass short. A progress bar on stderr, if it is a terminal."""
    started = time.monotonic()
    files, missing = files_to_sort(settings, paths, log)
    gate = StabilityGate(settings.stability_seconds)
    work = WorkQueue(sort_file, in_flight or settings.workers, retry_max_seconds=None, log=log, unsettled=gate.offer)
    bar = ProgressBar(len(files), "sort")
    with StopSignals() as signals:
        work.start()
        sort_when_stable(files, gate, work, settings, signals, bar)
        if signals.requested.is_set():
            log.info("daemon.stopping", reason=signals.received[0], in_flight=work.in_flight())
        finish_in_flight(work, signals, settings.file_timeout_seconds, tick_seconds(settings), log)
    outcomes = work.outcomes()
    bar.draw(files_done(outcomes))
    bar.finish()
    log.info(
        "scan.finished", files=len(files), missing=missing, seconds=round(time.monotonic() - started, 3), **outcomes
    )
    failed = missing + outcomes[Outcome.QUARANTINED] + outcomes[Outcome.RETRY] + outcomes[ERROR]
    return EXIT_FAILED if failed or signals.requested.is_set() else EXIT_OK


def files_to_sort(settings: Settings, paths: list[Path] | None, log: FilteringBoundLogger) -> tuple[list[Path], int]:
    """The candidate files in the inbox, or in the given files and folders; and how many given paths are missing."""
    if paths is None:
        return list(scan_folder(settings.inbox.absolute(), log)), 0
    files: list[Path] = []
    missing = 0
    for given in paths:
        path = given.absolute()
        if path.is_dir():
            files.extend(scan_folder(path, log))
        elif not path.exists():
            log.error("file.error", source=path_text(path), error="no such file or folder")
            missing += 1
        elif is_candidate(path):
            files.append(path)
        else:
            log.warning("file.skipped", source=path_text(path), reason="a partial download or a hidden file")
    return files, missing


def sort_when_stable(
    files: list[Path],
    gate: StabilityGate,
    work: WorkQueue,
    settings: Settings,
    signals: StopSignals,
    bar: ProgressBar,
) -> None:
    """Sort each file, first waiting for those changed in the last stability_seconds (or while being sorted) to
    settle, and drawing `bar` at each tick; returns when all are done or a stop was requested."""
    for path in files:
        if changed_recently(path, settings.stability_seconds):
            gate.offer(path)
        else:
            work.submit(path)
    while not signals.requested.wait(tick_seconds(settings)):
        bar.draw(files_done(work.outcomes()))
        for path in gate.release_stable():
            work.submit(path)
        if gate.watching() == 0 and work.idle():
            return


def files_done(outcomes: Counter[str]) -> int:
    """Files the pass is through with: every outcome but CHANGED, whose file goes back to the gate to be sorted
    again once it has settled."""
    return sum(count for outcome, count in outcomes.items() if outcome != Outcome.CHANGED)


def changed_recently(path: Path, seconds: float) -> bool:
    """By the file's mtime (wall clock): a file last written long ago need not be watched for a while."""
    try:
        modified = os.stat(path).st_mtime_ns / 1e9
    except OSError:
        return False  # gone: sort_file will report it
    return time.time() - modified < seconds


_print_lock = threading.Lock()


def plan_and_print(sorter: Sorter, path: Path) -> SortOutcome:
    """One JSON line on stdout saying what sorting the file would do, in the sorting log's shape; whole lines even
    from several workers."""
    outcome = sorter.plan(path)
    fields = {"event": f"file.{outcome.outcome.value}", "dry_run": True, **sorter.outcome_fields(outcome)}
    line = json.dumps(fields)
    with _print_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    return outcome
