"""The inbox side of the daemon on real folders, real writers and a real watchdog observer: the stability gate and
what the events tell it about writers, scans, the watcher, mount detection, the intake thread, and the supervisor's
loop that must never wait for a scan.

Two things are injected, each because the real one cannot be had here: a slow scan (a slow share needs an NFS or
FUSE mount; a local folder of many files scans in milliseconds, and one big enough to be slow would make the test
slow and its timing depend on the machine) and a stat that blocks (no local file system lets a test hold a stat).
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs
from watchdog.events import FileClosedEvent, FileCreatedEvent, FileModifiedEvent, FileOpenedEvent

from genresort.config import Settings
from genresort.service.inbox import (
    EventHints,
    Hint,
    InboxWatcher,
    Intake,
    StabilityGate,
    filesystem_type,
    inbox_filesystem,
    mount_points,
    rescan,
    scan_folder,
    unclosed_quiet_seconds,
    wants_polling,
)
from genresort.service.supervisor import EXIT_FAILED, StopSignals, Supervisor, stall_limit
from genresort.service.workqueue import WorkQueue

STABILITY = 5.0
QUIET = unclosed_quiet_seconds(STABILITY)
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


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def gate(clock: ManualClock) -> StabilityGate:
    return StabilityGate(STABILITY, clock)


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
    ],
)
def test_gate_never_releases_partial_downloads_or_hidden_files(
    inbox: Path, gate: StabilityGate, clock: ManualClock, name: str
) -> None:
    gate.offer(write(inbox / name))
    clock.advance(STABILITY * 100)

    assert gate.release_stable() == []
    assert gate.watching() == 0


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


# --- what the events say about writers --------------------------------------------------------------------

OPENED, WRITTEN, CLOSED_AFTER_WRITE, CLOSED_NO_WRITE = (
    Hint.OPENED,
    Hint.WRITTEN,
    Hint.CLOSED_AFTER_WRITE,
    Hint.CLOSED_NO_WRITE,
)


@pytest.mark.parametrize(
    ("hints", "held"),
    [
        ([], False),  # found by a scan: today's rule
        ([OPENED], True),  # opened, perhaps for writing, and not yet written
        ([OPENED, WRITTEN], True),  # a writer pausing mid-file
        ([OPENED, WRITTEN, CLOSED_AFTER_WRITE], False),
        ([WRITTEN], True),  # a writer whose open came before the watcher did
        ([WRITTEN, CLOSED_AFTER_WRITE], False),
        ([OPENED, CLOSED_NO_WRITE], False),  # a reader came and went
        ([OPENED, WRITTEN, OPENED, CLOSED_NO_WRITE], True),  # a reader's close does not end a writer's writes
        ([OPENED, WRITTEN, CLOSED_AFTER_WRITE, OPENED, CLOSED_NO_WRITE], False),
    ],
    ids=lambda value: "-".join(hint.name.lower() for hint in value) if isinstance(value, list) else str(value),
)
def test_a_file_a_writer_may_hold_open_waits_for_its_close_or_else_the_quiet_period(
    inbox: Path, gate: StabilityGate, clock: ManualClock, hints: list[Hint], held: bool
) -> None:
    song = write(inbox / "song.mp3")
    gate.offer(song)
    for hint in hints:
        gate.offer(song, hint)

    clock.advance(STABILITY)
    assert gate.release_stable() == ([] if held else [song])
    if held:
        clock.advance(QUIET - STABILITY - 0.1)
        assert gate.release_stable() == []
        clock.advance(0.1)
        assert gate.release_stable() == [song]  # the close never came: taken once unchanged for the quiet period


def test_a_closed_file_is_taken_once_unchanged_for_the_stability_time_counted_from_its_last_write(
    inbox: Path, gate: StabilityGate, clock: ManualClock
) -> None:
    song = write(inbox / "song.mp3")
    gate.offer(song, Hint.OPENED)
    gate.offer(song, Hint.WRITTEN)
    clock.advance(STABILITY * 3)  # the writer pauses, the file open
    assert gate.release_stable() == []
    with open(song, "ab") as stream:
        stream.write(b"the rest")
    gate.offer(song, Hint.WRITTEN)
    clock.advance(1)
    gate.offer(song, Hint.CLOSED_AFTER_WRITE)

    clock.advance(STABILITY - 1.1)
    assert gate.release_stable() == []
    clock.advance(0.1)
    assert gate.release_stable() == [song]


@pytest.mark.parametrize("hint", [Hint.OPENED, Hint.CLOSED_NO_WRITE])
def test_an_open_or_a_read_does_not_bring_back_a_file_the_gate_has_handed_on(
    inbox: Path, gate: StabilityGate, clock: ManualClock, hint: Hint
) -> None:
    """The worker's own reads of a file it was handed must not hand it on again; a write does."""
    song = write(inbox / "song.mp3")
    gate.offer(song)
    clock.advance(STABILITY)
    assert gate.release_stable() == [song]

    gate.offer(song, hint)
    assert gate.watching() == 0
    gate.offer(song, Hint.WRITTEN)
    assert gate.watching() == 1


def test_the_quiet_period_is_a_minute_or_twelve_stability_waits() -> None:
    assert unclosed_quiet_seconds(0.5) == 60
    assert unclosed_quiet_seconds(5.0) == 60
    assert unclosed_quiet_seconds(30.0) == 360


@pytest.mark.parametrize(("closes_reported", "hint"), [(True, Hint.WRITTEN), (False, Hint.FOUND)])
def test_a_modification_counts_as_a_writer_only_where_closes_are_reported(
    tmp_path: Path, closes_reported: bool, hint: Hint
) -> None:
    offered: list[tuple[Path, Hint]] = []
    hints = EventHints(tmp_path, lambda path, given: offered.append((path, given)), closes_reported)
    song = str(tmp_path / "song.mp3")
    hints.dispatch(FileOpenedEvent(song))
    hints.dispatch(FileModifiedEvent(song))
    hints.dispatch(FileClosedEvent(song))

    assert [given for _, given in offered] == [Hint.OPENED, hint, Hint.CLOSED_AFTER_WRITE]


def test_events_in_hidden_folders_below_the_inbox_are_ignored_but_a_hidden_parent_is_fine(tmp_path: Path) -> None:
    inbox = tmp_path / ".local" / "inbox"  # the inbox itself may sit below a hidden folder
    offered: list[Path] = []
    hints = EventHints(inbox, lambda path, hint: offered.append(path), closes_reported=True)
    for name in ("song.mp3", ".hidden/song.mp3", "album/.incomplete/song.mp3", "album/song.mp3"):
        hints.on_created(FileCreatedEvent(str(inbox / name)))
    hints.on_created(FileCreatedEvent(str(tmp_path / "elsewhere.mp3")))
    assert offered == [inbox / "song.mp3", inbox / "album" / "song.mp3"]


# --- the gate's lock and slow stats -----------------------------------------------------------------------


class BlockingStat:
    """A stat that, once armed, blocks on one file name until let go: a stat on a hung share, which no local file
    system can give a test."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.armed = False
        self.entered = threading.Event()
        self.let_go = threading.Event()

    def __call__(self, path: Path) -> os.stat_result:
        if self.armed and path.name == self.name:
            self.entered.set()
            assert self.let_go.wait(10)
        return os.lstat(path)


def returns_within(seconds: float, action: Callable[[], object]) -> bool:
    """Whether `action`, run on a thread of its own (so a test that fails does not hang), ends in `seconds`."""
    thread = threading.Thread(target=action, daemon=True)
    thread.start()
    thread.join(seconds)
    return not thread.is_alive()


@pytest.mark.parametrize("blocked", ["release_stable", "offer"])
def test_the_gate_is_not_locked_while_a_stat_hangs(inbox: Path, clock: ManualClock, blocked: str) -> None:
    hung = write(inbox / "on-a-hung-share.mp3")
    other = write(inbox / "other.mp3")
    stat = BlockingStat(hung.name)
    gate = StabilityGate(STABILITY, clock, stat)
    gate.offer(hung)
    stat.armed = True
    hanging = threading.Thread(target=gate.release_stable if blocked == "release_stable" else lambda: gate.offer(hung))
    hanging.start()
    try:
        assert stat.entered.wait(5)

        assert returns_within(1, lambda: gate.offer(other)), "an offer waited for another file's stat"
        assert returns_within(1, gate.watching)
        clock.advance(STABILITY)
        stat.armed = False
        released: list[Path] = []
        assert returns_within(1, lambda: released.extend(gate.release_stable()))
        assert other in released
    finally:
        stat.let_go.set()
        hanging.join(5)


def test_a_slow_stat_never_shortens_the_wait(inbox: Path, clock: ManualClock) -> None:
    """The file changed while the stat ran (it took the whole stability time): its wait counts from the stat's end."""
    song = write(inbox / "song.mp3")

    def slow_stat(path: Path) -> os.stat_result:
        status = os.lstat(path)
        clock.advance(STABILITY)
        return status

    gate = StabilityGate(STABILITY, clock, slow_stat)
    gate.offer(song)  # seen from the end of this stat
    assert gate.release_stable() == []  # this stat began when the wait had just begun
    assert gate.release_stable() == [song]  # this one began a whole stability time after the first ended


# --- scanning -------------------------------------------------------------------------------------------


def test_scan_finds_every_file_in_subfolders_and_skips_hidden_folders_and_partial_files(inbox: Path) -> None:
    """Whatever its name: the pipeline tells audio by its content, and says what it does with the rest."""
    wanted = [
        write(inbox / "a.mp3"),
        write(inbox / "album" / "b.flac"),
        write(inbox / "album" / "cd 2" / "c.ogg"),
        write(inbox / "album" / "cover.jpg"),
        write(inbox / "song.m4a"),
        write(inbox / "notes.txt"),
    ]
    for name in (".genresort-staging/x.mp3", ".Trash-1000/old.mp3", "d.mp3.part", ".e.mp3"):
        write(inbox / name)
    (inbox / "loop").symlink_to(inbox)

    assert sorted(scan_folder(inbox, LOG)) == sorted(wanted)


# --- the real observer ----------------------------------------------------------------------------------


def paths_only(offered: list[Path]) -> Callable[[Path, Hint], None]:
    return lambda path, hint: offered.append(path)


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


def test_rescan_finds_files_the_observer_never_reported(inbox: Path) -> None:
    before = [write(inbox / "a.mp3"), write(inbox / "album" / "b.wav")]
    offered: list[Path] = []
    watcher = InboxWatcher(inbox, False, paths_only(offered))
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
    watcher = InboxWatcher(inbox, False, paths_only(offered))
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
    watcher = InboxWatcher(inbox, polling, paths_only(offered))
    watcher.start()
    try:
        album.rename(inbox / "album")
        moved = [inbox / song.relative_to(tmp_path) for song in songs]
        wait_until(lambda: set(moved) <= set(offered))
    finally:
        watcher.stop()


# --- the intake: a real observer, a real gate, a real writer -----------------------------------------------


class Submitted:
    """Stands in for WorkQueue.submit: records each path with its size and whether the writer was still at work."""

    def __init__(self) -> None:
        self.writer: subprocess.Popen[bytes] | None = None
        self.files: list[tuple[Path, int, bool]] = []

    def __call__(self, path: Path) -> bool:
        writing = self.writer is not None and self.writer.poll() is None
        self.files.append((path, path.stat().st_size, writing))
        return True


@contextmanager
def intake_on(inbox: Path, polling: bool, stability: float, submit: Callable[[Path], object]) -> Iterator[Intake]:
    gate = StabilityGate(stability)
    watcher = InboxWatcher(inbox, polling, gate.offer)
    watcher.start()
    intake = Intake(inbox, watcher, gate, submit, 0.05, 300, LOG)
    intake.start()
    try:
        yield intake
    finally:
        intake.stop()
        assert not intake.is_alive() and not watcher.is_alive()


def write_with_a_pause(source: Path, destination: Path, pause: float) -> subprocess.Popen[bytes]:
    """The issue's slow network copy: one open file, 300000 bytes, a pause longer than the stability wait, the rest."""
    script = f'{{ head -c 300000 "$1"; sleep {pause}; tail -c +300001 "$1"; }} > "$2"'
    return subprocess.Popen(["sh", "-c", script, "sh", str(source), str(destination)])


def test_a_writer_pausing_longer_than_the_stability_wait_keeps_its_file_until_it_closes_it(
    inbox: Path, tmp_path: Path
) -> None:
    source = write(tmp_path / "source.mp3", os.urandom(600_000))
    submitted = Submitted()
    with intake_on(inbox, polling=False, stability=0.3, submit=submitted):
        submitted.writer = write_with_a_pause(source, inbox / "a.mp3", pause=1.5)  # five stability waits
        assert submitted.writer.wait(10) == 0
        wait_until(lambda: submitted.files)
        time.sleep(0.5)

    assert submitted.files == [(inbox / "a.mp3", 600_000, False)], "taken once, whole, after the writer closed it"


def test_with_polling_a_file_is_taken_by_the_stability_wait_alone(inbox: Path, tmp_path: Path) -> None:
    """Polling reports no opens or closes: the wait is all there is (the pipeline's identity check does the rest)."""
    source = write(tmp_path / "source.mp3", os.urandom(600_000))
    submitted = Submitted()
    with intake_on(inbox, polling=True, stability=0.3, submit=submitted):
        submitted.writer = write_with_a_pause(source, inbox / "a.mp3", pause=3)  # the observer polls every second
        wait_until(lambda: submitted.files)
        assert submitted.writer.wait(10) == 0

    assert submitted.files == [(inbox / "a.mp3", 300_000, True)], "taken in the pause, by the stability wait"


def test_the_intake_hands_on_the_files_already_there_once_though_a_worker_reads_them(inbox: Path) -> None:
    songs = [write(inbox / "a.mp3"), write(inbox / "album" / "b.mp3")]
    submitted: list[Path] = []
    with capture_logs() as logs, intake_on(inbox, polling=False, stability=0.2, submit=submitted.append):
        wait_until(lambda: len(submitted) == 2, timeout=3)
        for song in songs:  # as a worker does, raising open and close events
            song.read_bytes()
        time.sleep(0.6)

    assert sorted(submitted) == sorted(songs)
    assert [entry["files"] for entry in logs if entry["event"] == "scan.finished"] == [2]


# --- the supervisor -----------------------------------------------------------------------------------------


@pytest.fixture
def settings(inbox: Path) -> Settings:
    """The other folders are the temporary defaults conftest.away_from_real_folders gives every test."""
    return Settings(inbox=inbox, stability_seconds=0.4)  # a tick of 0.1 s


@pytest.fixture
def watchdog_pings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """A real notify socket, and WATCHDOG_USEC as systemd sets it for WatchdogSec=0.2 (a ping every 0.1 s): yields
    the arrival times of the WATCHDOG=1 messages, taken as they arrive by a thread of its own."""
    address = tmp_path / "notify.sock"
    arrivals: list[float] = []
    done = threading.Event()
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind(str(address))
        receiver.settimeout(0.05)
        monkeypatch.setenv("NOTIFY_SOCKET", str(address))
        monkeypatch.setenv("WATCHDOG_USEC", "200000")
        monkeypatch.delenv("WATCHDOG_PID", raising=False)

        def receive() -> None:
            while not done.is_set():
                try:
                    message = receiver.recv(4096)
                except TimeoutError:
                    continue
                if message == b"WATCHDOG=1":
                    arrivals.append(time.monotonic())

        receiving = threading.Thread(target=receive)
        receiving.start()
        try:
            yield arrivals
        finally:
            done.set()
            receiving.join(5)


def idle_queue() -> WorkQueue:
    work = WorkQueue(lambda path: pytest.fail(f"nothing is to be sorted, yet {path} was"), 1, 900, LOG)
    work.start()
    return work


def test_a_scan_that_hangs_does_not_delay_the_supervisor_s_watchdog_pings(
    inbox: Path, settings: Settings, watchdog_pings: list[float]
) -> None:
    scan_entered, scan_let_go = threading.Event(), threading.Event()

    def hanging_scan(folder: Path, offer: Callable[[Path], None], log: structlog.typing.FilteringBoundLogger) -> None:
        scan_entered.set()
        scan_let_go.wait(10)

    gate = StabilityGate(settings.stability_seconds)
    watcher = InboxWatcher(inbox, False, gate.offer)
    watcher.start()
    intake = Intake(inbox, watcher, gate, lambda path: None, 0.1, 300, LOG, scan=hanging_scan)
    work = idle_queue()
    signals = StopSignals()
    exit_codes: list[int] = []
    supervisor = Supervisor(settings, intake, work, signals, LOG)
    intake.start()
    running = threading.Thread(target=lambda: exit_codes.append(supervisor.run()))
    try:
        assert scan_entered.wait(5)
        started = time.monotonic()
        running.start()
        time.sleep(1.5)
        pings = [at for at in watchdog_pings if at >= started]
    finally:
        signals.requested.set()
        running.join(5)
        scan_let_go.set()
        intake.stop()
        work.stop()
        work.join(5)

    assert exit_codes == [0]
    gaps = [later - earlier for earlier, later in zip([started, *pings], pings, strict=False)]
    assert len(pings) >= 7, pings  # about 14 are due; a loop waiting for the scan would send none
    assert max(gaps) < 0.5, gaps


def test_the_supervisor_stops_the_daemon_when_the_inbox_can_no_longer_be_watched(
    inbox: Path, settings: Settings
) -> None:
    gate = StabilityGate(settings.stability_seconds)
    watcher = InboxWatcher(inbox, False, gate.offer)
    watcher.start()
    intake = Intake(inbox, watcher, gate, lambda path: None, 0.1, 300, LOG)
    work = idle_queue()
    intake.start()
    try:
        with capture_logs() as logs:
            inbox.rmdir()
            assert Supervisor(settings, intake, work, StopSignals(), LOG).run() == EXIT_FAILED
    finally:
        intake.stop()
        work.stop()
        work.join(5)

    [failed] = [entry for entry in logs if entry["event"] == "watcher.failed"]
    assert failed["inbox"] == str(inbox) and "No such file or directory" in failed["error"]


def test_a_big_file_on_a_slow_disk_gets_more_time_before_it_counts_as_stuck() -> None:
    small = stall_limit(120.0, 5 * 1024 * 1024)
    two_gigabytes = stall_limit(120.0, 2 * 1024**3)
    assert 150 < small < 152
    assert two_gigabytes > small + 400


# --- folders and mounts ---------------------------------------------------------------------------------

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
