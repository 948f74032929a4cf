"""The daemon's parts on real folders and a real watchdog observer: stability gate, scan, queue, mount detection.

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
import structlog
from structlog.testing import capture_logs
from watchdog.events import FileCreatedEvent

from genresort.config import Settings
from genresort.service.inbox import (
    EventHints,
    InboxWatcher,
    StabilityGate,
    filesystem_type,
    inbox_filesystem,
    mount_points,
    rescan,
    scan_folder,
    wants_polling,
)
from genresort.service.oneshot import sort_files
from genresort.service.pipeline import Outcome, SortOutcome
from genresort.service.startup import FolderError, prepare_folders
from genresort.service.supervisor import stall_limit
from genresort.service.workqueue import WorkQueue, retry_delay

STABILITY = 5.0
LOG = structlog.get_logger()


class ManualClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def wait_until(condition: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def write(path: Path, content: bytes = b"\xff\xfb" + b"music" * 400) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


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
        if outcome is not Outcome.RETRY:
            self.library.mkdir(exist_ok=True)
            path.rename(self.library / path.name)
        return SortOutcome(outcome, path, self.library / path.name)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def gate(clock: ManualClock) -> StabilityGate:
    return StabilityGate(STABILITY, clock)


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


# --- the stability gate ---------------------------------------------------------------------------------


def test_gate_releases_a_file_only_after_it_is_unchanged_for_the_stability_time(
    inbox: Path, gate: StabilityGate, clock: ManualClock
) -> None:
    song = write(inbox / "song.mp3")
    gate.offer(song)

    clock.advance(STABILITY - 0.1)
    assert gate.release_stable() == []
    clock.advance(0.1)
    assert gate.release_stable() == [song]
    assert gate.release_stable() == []  # released once: it has left the gate


def test_gate_holds_a_file_written_in_chunks_until_the_last_write(
    inbox: Path, gate: StabilityGate, clock: ManualClock
) -> None:
    song = inbox / "song.mp3"
    gate.offer(write(song, b"first chunk"))
    for chunk in range(10):
        with open(song, "ab") as stream:
            stream.write(b"more music %d" % chunk)
        clock.advance(STABILITY - 1)  # each write comes before the wait is over
        assert gate.release_stable() == []

    clock.advance(STABILITY - 0.1)
    assert gate.release_stable() == []
    clock.advance(0.1)
    assert gate.release_stable() == [song]


def test_gate_restarts_the_wait_when_only_the_mtime_changes(
    inbox: Path, gate: StabilityGate, clock: ManualClock
) -> None:
    song = write(inbox / "song.mp3")
    gate.offer(song)
    clock.advance(STABILITY - 1)
    os.utime(song, ns=(0, os.stat(song).st_mtime_ns + 1))
    assert gate.release_stable() == []

    clock.advance(STABILITY - 0.1)
    assert gate.release_stable() == []
    clock.advance(0.1)
    assert gate.release_stable() == [song]


@pytest.mark.parametrize(
    "name",
    [
        "song.mp3.part",
        "song.mp3.crdownload",
        "song.mp3.filepart",
        "song.mp3.tmp",
        "song.mp3.partial",
        "song.mp3.download",
        ".syncthing.song.mp3.tmp",
        "~syncthing~song.mp3",
        ".song.mp3",
        "notes.txt",
    ],
)
def test_gate_never_releases_partial_downloads_hidden_or_non_music_files(
    inbox: Path, gate: StabilityGate, clock: ManualClock, name: str
) -> None:
    gate.offer(write(inbox / name))
    clock.advance(STABILITY * 100)

    assert gate.release_stable() == []
    assert gate.watching() == 0


def test_events_in_hidden_folders_below_the_inbox_are_ignored_but_a_hidden_parent_is_fine(tmp_path: Path) -> None:
    inbox = tmp_path / ".local" / "inbox"  # the inbox itself may sit below a hidden folder
    offered: list[Path] = []
    hints = EventHints(inbox, offered.append)
    for name in ("song.mp3", ".hidden/song.mp3", "album/.incomplete/song.mp3", "album/song.mp3"):
        hints.on_created(FileCreatedEvent(str(inbox / name)))
    hints.on_created(FileCreatedEvent(str(tmp_path / "elsewhere.mp3")))
    assert offered == [inbox / "song.mp3", inbox / "album" / "song.mp3"]


def test_gate_sees_a_renamed_download_under_its_final_name_only(
    inbox: Path, gate: StabilityGate, clock: ManualClock
) -> None:
    partial = write(inbox / "song.mp3.part")
    gate.offer(partial)
    clock.advance(STABILITY)
    final = partial.rename(inbox / "song.mp3")
    gate.offer(final)

    clock.advance(STABILITY)
    assert gate.release_stable() == [final]


def test_gate_forgets_files_that_vanish_and_ignores_links_and_folders(
    inbox: Path, gate: StabilityGate, clock: ManualClock
) -> None:
    gone = write(inbox / "gone.mp3")
    link = inbox / "link.mp3"
    link.symlink_to(write(inbox.parent / "outside.mp3"))
    folder = inbox / "folder.mp3"
    folder.mkdir()
    for path in (gone, link, folder):
        gate.offer(path)
    gone.unlink()

    clock.advance(STABILITY)
    assert gate.release_stable() == []
    assert gate.watching() == 0


# --- scanning -------------------------------------------------------------------------------------------


def test_scan_finds_music_in_subfolders_and_skips_hidden_folders_and_partial_files(inbox: Path) -> None:
    wanted = [write(inbox / "a.mp3"), write(inbox / "album" / "b.flac"), write(inbox / "album" / "cd 2" / "c.ogg")]
    for name in (".genresort-staging/x.mp3", ".Trash-1000/old.mp3", "d.mp3.part", ".e.mp3", "cover.jpg"):
        write(inbox / name)
    (inbox / "loop").symlink_to(inbox)

    assert sorted(scan_folder(inbox, LOG)) == sorted(wanted)


# --- the real observer ----------------------------------------------------------------------------------


@pytest.mark.parametrize("polling", [False, True], ids=["inotify", "polling"])
def test_rename_from_part_is_released_once_under_the_final_name(inbox: Path, polling: bool) -> None:
    gate = StabilityGate(0.3)
    watcher = InboxWatcher(inbox, polling, gate.offer)
    watcher.start()
    released: list[Path] = []
    try:
        partial = inbox / "song.mp3.part"
        for _ in range(5):
            with open(partial, "ab") as stream:
                stream.write(b"music" * 1000)
            time.sleep(0.1)
        partial.rename(inbox / "song.mp3")

        wait_until(lambda: released.extend(gate.release_stable()) or released)
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            released.extend(gate.release_stable())
            time.sleep(0.05)
    finally:
        watcher.stop()

    assert released == [inbox / "song.mp3"]


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


def test_rescan_finds_files_the_observer_never_reported(inbox: Path) -> None:
    before = [write(inbox / "a.mp3"), write(inbox / "album" / "b.wav")]
    offered: list[Path] = []
    watcher = InboxWatcher(inbox, False, offered.append)
    watcher.start()
    try:
        time.sleep(0.5)
        assert offered == []  # files present before the start raise no events

        with capture_logs() as logs:
            rescan(inbox, offered.append, LOG)
    finally:
        watcher.stop()

    assert sorted(offered) == sorted(before)
    assert logs[-1]["event"] == "scan.finished" and logs[-1]["files"] == 2


def test_watcher_notices_its_inbox_vanished_and_restarts_once_it_is_back(inbox: Path) -> None:
    offered: list[Path] = []
    watcher = InboxWatcher(inbox, False, offered.append)
    watcher.start()
    try:
        assert watcher.is_alive()
        inbox.rmdir()
        wait_until(lambda: not watcher.is_alive())

        with pytest.raises(OSError):
            watcher.restart()
        inbox.mkdir()
        watcher.restart()
        song = write(inbox / "song.mp3")
        wait_until(lambda: song in offered)
    finally:
        watcher.stop()


@pytest.mark.parametrize("polling", [False, True], ids=["inotify", "polling"])
def test_a_folder_moved_into_the_inbox_offers_its_files(inbox: Path, tmp_path: Path, polling: bool) -> None:
    """watchdog reports the files inside; the daemon relies on it (and on the rescan)."""
    album = tmp_path / "album"
    songs = [write(album / "one.mp3"), write(album / "disc 2" / "two.flac")]
    offered: list[Path] = []
    watcher = InboxWatcher(inbox, polling, offered.append)
    watcher.start()
    try:
        album.rename(inbox / "album")
        moved = [inbox / song.relative_to(tmp_path) for song in songs]
        wait_until(lambda: set(moved) <= set(offered))
    finally:
        watcher.stop()


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
def settings(tmp_path: Path, inbox: Path) -> Settings:
    return Settings(
        inbox=inbox,
        library=tmp_path / "library",
        quarantine=tmp_path / "quarantine",
        unsure=tmp_path / "unsure",
        state_dir=tmp_path / "state",
        stability_seconds=1.0,
    )


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


# --- folders and mounts ---------------------------------------------------------------------------------


def test_prepare_folders_creates_missing_folders(settings: Settings) -> None:
    prepare_folders(settings)

    for folder in (settings.inbox, settings.library, settings.quarantine, settings.unsure, settings.state_dir):
        assert folder.is_dir() and list(folder.iterdir()) == []


def test_prepare_folders_names_the_key_of_a_folder_it_cannot_create(settings: Settings, tmp_path: Path) -> None:
    write(tmp_path / "not-a-folder")
    settings = settings.model_copy(update={"quarantine": tmp_path / "not-a-folder" / "quarantine"})

    with pytest.raises(FolderError, match="quarantine folder .*not-a-folder/quarantine"):
        prepare_folders(settings)


MOUNTINFO = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
40 27 254:1 / /srv rw,relatime shared:2 - ext4 /dev/vdb rw
41 40 0:50 / /srv/music rw,relatime shared:30 master:7 - nfs4 nas:/export/music rw,vers=4.2
42 27 0:51 / /mnt/share rw,relatime - cifs //nas/share rw,vers=3.0
43 27 0:52 / /home/ann/remote rw,nosuid,nodev - fuse.sshfs ann@host:/music rw,user_id=1000
44 27 0:53 / /media/My\\040Disk rw,relatime - nfs srv:/disk rw
45 27 0:54 / /mnt/stacked rw - nfs srv:/a rw
46 27 0:55 / /mnt/stacked rw - ext4 /dev/vdc rw
"""


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/srv/music/inbox", "nfs4"),
        ("/srv/musicbox/inbox", "ext4"),  # a name that merely starts like a mount point is not inside it
        ("/srv/other", "ext4"),
        ("/mnt/share/inbox", "cifs"),
        ("/home/ann/remote/inbox", "fuse.sshfs"),
        ("/media/My Disk/inbox", "nfs"),
        ("/mnt/stacked/inbox", "ext4"),  # the last mount on a point hides the earlier ones
        ("/home/ann/inbox", "ext4"),
    ],
)
def test_filesystem_type_takes_the_longest_mount_point_holding_the_path(path: str, expected: str) -> None:
    assert filesystem_type(Path(path), MOUNTINFO) == expected


def test_mount_points_skips_lines_it_cannot_read() -> None:
    assert mount_points("garbage\n27 1 254:0 / / rw - ext4 /dev/vda rw\n") == [(Path("/"), "ext4")]


@pytest.mark.parametrize(
    ("setting", "filesystem", "expected"),
    [
        ("auto", "nfs", True),
        ("auto", "nfs4", True),
        ("auto", "cifs", True),
        ("auto", "smb3", True),
        ("auto", "fuse.sshfs", True),
        ("auto", "fuse", True),
        ("auto", "9p", True),
        ("auto", "ext4", False),
        ("auto", "btrfs", False),
        ("auto", None, False),
        ("on", "ext4", True),
        ("off", "nfs4", False),
    ],
)
def test_polling_is_chosen_for_network_and_fuse_file_systems(
    setting: str, filesystem: str | None, expected: bool
) -> None:
    assert wants_polling(setting, filesystem) is expected


def test_inbox_filesystem_reads_this_machine_s_mounts(inbox: Path) -> None:
    assert inbox_filesystem(inbox) is not None


def test_a_big_file_on_a_slow_disk_gets_more_time_before_it_counts_as_stuck() -> None:
    small = stall_limit(120.0, 5 * 1024 * 1024)
    two_gigabytes = stall_limit(120.0, 2 * 1024**3)
    assert 150 < small < 152
    assert two_gigabytes > small + 400
