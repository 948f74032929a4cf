"""The daemon's parts around `sort_file` on real folders: the work queue, one pass, folders. The inbox side
(stability gate, scans, the observer, the intake and the supervisor) is tested in test_inbox.py.

The sorting itself is replaced by small recording functions: the pipeline is importable, but a Sorter needs a
trained model and analysis processes, and what is tested here is what the daemon does around `sort_file`.
The real daemon process, with the real pipeline, is tested end to end in a separate file.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from genresort.config import Settings
from genresort.service.inbox import InboxWatcher, StabilityGate, rescan
from genresort.service.oneshot import sort_files
from genresort.service.pipeline import Outcome, SortOutcome
from genresort.service.startup import FolderError, prepare_folders
from genresort.service.workqueue import WorkQueue, retry_delay
from test_inbox import LOG, ManualClock, wait_until, write


def make_old(path: Path) -> Path:
    """Last written an hour ago, as a file that has been sitting in the inbox."""
    hour_ago = time.time() - 3600
    os.utime(path, (hour_ago, hour_ago))
    return path


class RecordingSorter:
    """Stands in for Sorter.sort_file: records each call, can hold the worker, and moves the file away
    as the real one does, so a sorted path is gone from the inbox."""

    def __init__(self, library: Path, outcomes: dict[str, Outcome] | None = None) -> None:
        self.library = library
        self.outcomes = outcomes or {}
        self.calls: list[Path] = []
        self.proceed = threading.Event()
        self.proceed.set()

    def sort_file(self, path: Path) -> SortOutcome:
        self.calls.append(path)
        assert self.proceed.wait(10)
        outcome = self.outcomes.get(path.name, Outcome.SORTED)
        if outcome not in (Outcome.RETRY, Outcome.CHANGED):
            self.library.mkdir(exist_ok=True)
            path.rename(self.library / path.name)
        return SortOutcome(outcome, path, self.library / path.name)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def work_started() -> Iterator[list[WorkQueue]]:
    """Queues a test started; stopped afterwards so no worker thread outlives its test."""
    queues: list[WorkQueue] = []
    yield queues
    for work in queues:
        work.stop()
        assert work.join(10)


def start_queue(
    queues: list[WorkQueue], sorter: RecordingSorter, retry_max_seconds: float | None, clock: Callable[[], float]
) -> WorkQueue:
    work = WorkQueue(sorter.sort_file, 1, retry_max_seconds, LOG, clock)
    work.start()
    queues.append(work)
    return work


# --- the real observer and the queue ---------------------------------------------------------------------


def test_many_events_on_one_file_queue_it_once(inbox: Path, tmp_path: Path, work_started: list[WorkQueue]) -> None:
    sorter = RecordingSorter(tmp_path / "library")
    sorter.proceed.clear()  # the worker holds the file while more events arrive
    work = start_queue(work_started, sorter, 900, time.monotonic)
    gate = StabilityGate(0.2)
    watcher = InboxWatcher(inbox, False, gate.offer)
    watcher.start()

    def pump() -> None:
        for path in gate.release_stable():
            work.submit(path)

    try:
        song = inbox / "song.mp3"
        for _ in range(20):  # created, modified and closed events, twenty times over
            with open(song, "ab") as stream:
                stream.write(b"music" * 100)
        wait_until(lambda: pump() or sorter.calls)
        for _ in range(5):  # more events, and rescans, while the file is in flight
            os.utime(song)
            rescan(inbox, gate.offer, LOG)
            time.sleep(0.3)
            pump()
        sorter.proceed.set()
        wait_until(work.idle)
        deadline = time.monotonic() + 1
        while time.monotonic() < deadline:
            pump()
            time.sleep(0.05)
    finally:
        watcher.stop()

    assert sorter.calls == [song]


# --- the work queue -------------------------------------------------------------------------------------


def test_a_path_is_queued_once_while_queued_or_in_flight(
    inbox: Path, tmp_path: Path, work_started: list[WorkQueue]
) -> None:
    sorter = RecordingSorter(tmp_path / "library")
    sorter.proceed.clear()
    work = start_queue(work_started, sorter, 900, time.monotonic)
    song = write(inbox / "song.mp3")

    assert work.submit(song)
    assert not any(work.submit(song) for _ in range(100))
    sorter.proceed.set()
    wait_until(work.idle)

    assert sorter.calls == [song]
    assert work.submit(write(inbox / "song.mp3"))  # a new file under the same name, once the first is done
    wait_until(work.idle)
    assert sorter.calls == [song, song]


def test_retry_waits_for_the_backoff_then_tries_again(
    inbox: Path, tmp_path: Path, clock: ManualClock, work_started: list[WorkQueue]
) -> None:
    sorter = RecordingSorter(tmp_path / "library", {"song.mp3": Outcome.RETRY})
    work = start_queue(work_started, sorter, 900, clock)
    song = write(inbox / "song.mp3")
    work.submit(song)
    wait_until(lambda: work.status().startswith("0 sorting, 0 queued, 1 waiting to retry"))
    assert not work.submit(song)  # waiting for its retry counts as queued

    clock.advance(4.5)
    work.queue_due_retries()
    time.sleep(0.2)
    assert sorter.calls == [song]

    clock.advance(0.5)
    sorter.outcomes.clear()
    work.queue_due_retries()
    wait_until(work.idle)
    assert sorter.calls == [song, song]
    assert work.outcomes() == {"retry": 1, "sorted": 1}


def test_a_file_that_changed_while_sorted_goes_back_to_the_gate_not_to_a_retry_timer(
    inbox: Path, tmp_path: Path, clock: ManualClock, work_started: list[WorkQueue]
) -> None:
    sorter = RecordingSorter(tmp_path / "library", {"song.mp3": Outcome.CHANGED})
    gate = StabilityGate(2.0, clock)
    work = WorkQueue(sorter.sort_file, 1, 900, LOG, clock, unsettled=gate.offer)
    work.start()
    work_started.append(work)
    song = write(inbox / "song.mp3")
    work.submit(song)
    wait_until(work.idle)  # forgotten by the queue, watched by the gate
    assert gate.watching() == 1 and gate.release_stable() == []
    clock.advance(2.0)
    sorter.outcomes.clear()
    for path in gate.release_stable():
        assert work.submit(path)
    wait_until(lambda: len(sorter.calls) == 2 and work.idle())
    assert work.outcomes() == {"changed": 1, "sorted": 1}


def test_an_exception_is_logged_and_retried_without_killing_the_worker(
    inbox: Path, tmp_path: Path, clock: ManualClock, work_started: list[WorkQueue]
) -> None:
    def explode(path: Path) -> SortOutcome:
        raise RuntimeError(f"bug while sorting {path.name}")

    work = WorkQueue(explode, 1, 900, LOG, clock)
    work.start()
    work_started.append(work)
    song = write(inbox / "song.mp3")
    with capture_logs() as logs:
        work.submit(song)
        wait_until(lambda: work.outcomes()["error"] == 1)
        clock.advance(5)
        work.queue_due_retries()
        wait_until(lambda: work.outcomes()["error"] == 2)

    assert work.threads_alive()
    errors = [entry for entry in logs if entry["event"] == "file.error"]
    assert len(errors) == 2
    assert errors[0]["source"] == str(song)
    assert errors[0]["error"] == "RuntimeError: bug while sorting song.mp3"
    assert any("explode" in frame for frame in errors[0]["traceback"])


def test_retry_delay_doubles_from_five_seconds_up_to_the_limit() -> None:
    assert [retry_delay(attempt, 60) for attempt in range(1, 7)] == [5, 10, 20, 40, 60, 60]
    assert retry_delay(10_000, 900) == 900


def test_stop_drops_queued_files_and_waits_for_the_one_in_flight(
    inbox: Path, tmp_path: Path, work_started: list[WorkQueue]
) -> None:
    sorter = RecordingSorter(tmp_path / "library")
    sorter.proceed.clear()
    work = start_queue(work_started, sorter, 900, time.monotonic)
    songs = [write(inbox / f"{number}.mp3") for number in range(3)]
    for song in songs:
        work.submit(song)
    wait_until(lambda: sorter.calls)

    work.stop()
    assert not work.join(0.2)  # still on its file
    assert not work.submit(write(inbox / "late.mp3"))
    sorter.proceed.set()
    assert work.join(5)

    assert sorter.calls == songs[:1]
    assert [song.exists() for song in songs] == [False, True, True]  # the dropped ones wait in the inbox


def test_longest_running_reports_the_file_a_worker_is_stuck_on(
    inbox: Path, tmp_path: Path, clock: ManualClock, work_started: list[WorkQueue]
) -> None:
    sorter = RecordingSorter(tmp_path / "library")
    sorter.proceed.clear()
    work = start_queue(work_started, sorter, 900, clock)
    assert work.longest_running() is None
    song = write(inbox / "song.mp3")
    work.submit(song)
    wait_until(lambda: sorter.calls)

    clock.advance(150)
    assert work.longest_running() == (song, 150)
    sorter.proceed.set()


# --- one pass (genresort sort) ----------------------------------------------------------------------------


@pytest.fixture
def settings(inbox: Path) -> Settings:
    """The other folders are the temporary defaults conftest.away_from_real_folders gives every test."""
    return Settings(inbox=inbox, stability_seconds=1.0)


def test_one_pass_sorts_old_files_at_once_and_waits_for_fresh_ones(inbox: Path, settings: Settings) -> None:
    old = make_old(write(inbox / "old.mp3"))
    fresh = write(inbox / "album" / "fresh.mp3")
    sorter = RecordingSorter(settings.library)
    started: dict[Path, float] = {}

    def sort_file(path: Path) -> SortOutcome:
        started[path] = time.monotonic()
        return sorter.sort_file(path)

    begin = time.monotonic()
    assert sort_files(settings, sort_file, None, LOG) == 0

    assert sorted(sorter.calls) == sorted([old, fresh])
    assert started[old] - begin < 0.5
    assert started[fresh] - begin >= settings.stability_seconds


def test_one_pass_fails_when_a_file_is_quarantined_or_a_named_path_is_missing(inbox: Path, settings: Settings) -> None:
    good = make_old(write(inbox / "good.mp3"))
    bad = make_old(write(inbox / "bad.mp3"))
    sorter = RecordingSorter(settings.library, {"bad.mp3": Outcome.QUARANTINED})
    assert sort_files(settings, sorter.sort_file, [good], LOG) == 0
    assert sort_files(settings, sorter.sort_file, [inbox / "missing.mp3"], LOG) == 1
    with capture_logs() as logs:
        assert sort_files(settings, sorter.sort_file, [bad], LOG) == 1

    assert sorter.calls == [good, bad]
    assert logs[-1]["event"] == "scan.finished" and logs[-1]["quarantined"] == 1


# --- folders -------------------------------------------------------------------------------------------


def test_prepare_folders_creates_missing_folders(settings: Settings) -> None:
    prepare_folders(settings)

    for folder in (settings.inbox, settings.library, settings.quarantine, settings.unsure, settings.state_dir):
        assert folder.is_dir() and list(folder.iterdir()) == []


def test_prepare_folders_names_the_key_of_a_folder_it_cannot_create(settings: Settings, tmp_path: Path) -> None:
    write(tmp_path / "not-a-folder")
    settings = settings.model_copy(update={"quarantine": tmp_path / "not-a-folder" / "quarantine"})

    with pytest.raises(FolderError, match="quarantine folder .*not-a-folder/quarantine"):
        prepare_folders(settings)
