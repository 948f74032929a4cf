"""The inbox: a watcher whose events are only hints, scans that are the truth, the stability gate that holds each
file until it has stopped changing, and the intake thread that runs them.

Events get lost (network shares, queue overflow, an observer restart), so a periodic rescan finds what they
missed; every file waits in the gate until its size and mtime have stopped changing, and, where the platform
reports closes, until a writer that opened it has closed it.
"""

from __future__ import annotations

import enum
import errno
import os
import re
import stat
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from structlog.typing import FilteringBoundLogger
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from genresort.logs import path_text

PARTIAL_DOWNLOAD_SUFFIXES = (".part", ".crdownload", ".filepart", ".tmp", ".partial", ".download", ".!qb")
MOUNTINFO = Path("/proc/self/mountinfo")

# inotify only sees changes made through this machine's kernel; these file systems are written by others too.
POLLED_FILESYSTEMS = frozenset({"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "sshfs", "fuse"})

LIMIT_ERRNOS = frozenset({errno.ENOSPC, errno.EMFILE})  # what inotify says when out of watches or instances


def is_candidate(path: Path) -> bool:
    """Any file but a partial download or a hidden one: its content, not its name, says whether it is audio (the
    pipeline's business), and a file that is not is reported, never silently left. Hidden folders below the inbox
    are the scanner's and the event filter's business: the inbox itself may well sit below one."""
    name = path.name.lower()
    return not (name.startswith(".") or "~syncthing~" in name or name.endswith(PARTIAL_DOWNLOAD_SUFFIXES))


def mount_points(mountinfo: str) -> list[tuple[Path, str]]:
    """(mount point, file system type) for each line of /proc/self/mountinfo, in mount order."""
    mounts = []
    for line in mountinfo.splitlines():
        fields = line.split(" ")
        # Fields: id, parent, major:minor, root, mount point, options, optional fields..., "-", type, source, ...
        if "-" not in fields[6:]:
            continue
        separator = fields.index("-", 6)
        if separator + 1 < len(fields):
            mounts.append((Path(_unescape_octal(fields[4])), fields[separator + 1]))
    return mounts


def _unescape_octal(text: str) -> str:
    """The kernel writes space, tab, newline and backslash in mount points as \\040, \\011, \\012, \\134."""
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), text)


def filesystem_type(path: Path, mountinfo: str) -> str | None:
    """The type of the file system holding the absolute `path`: the longest mount point containing it wins,
    and of mounts stacked on one point the last one, which hides the others."""
    best: tuple[Path, str] | None = None
    for mount_point, kind in mount_points(mountinfo):
        if path.is_relative_to(mount_point) and (best is None or len(mount_point.parts) >= len(best[0].parts)):
            best = (mount_point, kind)
    return best[1] if best else None


def wants_polling(setting: str, filesystem: str | None) -> bool:
    """Polling on request, or on "auto" where inotify would miss changes made by other machines."""
    if setting != "auto":
        return setting == "on"
    return filesystem is not None and (filesystem in POLLED_FILESYSTEMS or filesystem.startswith("fuse."))


def inbox_filesystem(inbox: Path) -> str | None:
    try:
        mountinfo = os.fsdecode(MOUNTINFO.read_bytes())
    except OSError:
        return None
    return filesystem_type(inbox.resolve(), mountinfo)


def scan_folder(folder: Path, log: FilteringBoundLogger) -> Iterator[Path]:
    """Every candidate file under `folder`, skipping hidden folders (the staging folders are hidden too).

    Symbolic links are not followed: a link loop must not hang the scan, and a link is not a file we own.
    """
    try:
        entries = list(os.scandir(folder))
    except OSError as error:
        log.error("scan.unreadable", folder=path_text(folder), error=error.strerror)
        return
    for entry in entries:
        path = folder / entry.name
        try:
            if entry.is_dir(follow_symlinks=False):
                if not entry.name.startswith("."):
                    yield from scan_folder(path, log)
            elif entry.is_file(follow_symlinks=False) and is_candidate(path):
                yield path
        except OSError as error:
            log.error("scan.unreadable", folder=path_text(path), error=error.strerror)


def rescan(folder: Path, offer: Callable[[Path], None], log: FilteringBoundLogger) -> None:
    """Offer every candidate file in `folder` to the gate: this finds what the events missed."""
    started = time.monotonic()
    files = 0
    for path in scan_folder(folder, log):
        offer(path)
        files += 1
    log.info("scan.finished", folder=path_text(folder), files=files, seconds=round(time.monotonic() - started, 3))


#: A file that a writer may still hold open (an open or a write was reported, its close not yet) is held until the
#: close, or, should the close never be reported (an event lost to a queue overflow or an observer restart, a writer
#: that never closes), until it has been unchanged this long: a writer pausing a minute mid-file is rare, a file
#: sorted a minute late costs nothing. It grows with stability_seconds, which is set high for slow writers, so that
#: it stays well beyond the wait every file gets.
UNCLOSED_QUIET_MINIMUM_SECONDS = 60.0
UNCLOSED_QUIET_FACTOR = 12.0


def unclosed_quiet_seconds(stability_seconds: float) -> float:
    """How long a file still open for writing, as far as the events tell, must be unchanged before it is taken."""
    return max(UNCLOSED_QUIET_MINIMUM_SECONDS, UNCLOSED_QUIET_FACTOR * stability_seconds)


class Hint(enum.Enum):
    """What an event or a scan says about a file, as far as the stability gate cares."""

    FOUND = "found"  # created, moved in, its attributes changed, or found by a scan
    OPENED = "opened"  # for reading or for writing: inotify does not say which
    WRITTEN = "written"  # its content changed
    CLOSED_AFTER_WRITE = "closed after write"
    CLOSED_NO_WRITE = "closed with no write"

    @property
    def starts_watching(self) -> bool:
        """Opens and reads tell only about a file already watched: they happen to files long finished (our own
        reads of a file handed on among them), which must not come back to the gate for them."""
        return self not in (Hint.OPENED, Hint.CLOSED_NO_WRITE)


@dataclass(frozen=True)
class WriterSigns:
    """Whether the events say a writer may still hold the file open: an open not yet followed by a close, or a
    write not yet followed by a close after writing (a reader's close ends an open, but not another's writes)."""

    opened: bool = False
    written: bool = False

    @property
    def may_be_writing(self) -> bool:
        return self.opened or self.written

    def after(self, hint: Hint) -> WriterSigns:
        if hint is Hint.OPENED:
            return replace(self, opened=True)
        if hint is Hint.WRITTEN:
            return replace(self, written=True)
        if hint is Hint.CLOSED_AFTER_WRITE:
            return WriterSigns()
        if hint is Hint.CLOSED_NO_WRITE:
            return replace(self, opened=False)
        return self


Signature = tuple[int, int]  # (size, mtime_ns)


@dataclass(frozen=True)
class Look:
    """One stat of a file: its signature (None when gone or not a regular file) and the clock when the stat
    began and ended, which on a slow share can be seconds apart."""

    signature: Signature | None
    began: float
    ended: float


@dataclass(frozen=True)
class Watched:
    """A file in the gate: its last signature, since when it has had it, and what the events say of writers."""

    signature: Signature
    unchanged_since: float
    writer: WriterSigns


class StabilityGate:
    """Holds each file until its (size, mtime_ns) has stayed the same for `stability_seconds`, and one that a
    writer may still hold open until the writer closes it (or it has been unchanged for the longer
    `unclosed_quiet_seconds`).

    A file still being written (a download, a copy over the network) would otherwise be sorted half-written;
    a writer that pauses longer than the stability wait is caught by its close, where the platform reports
    closes (inotify), and only by the stability wait where it does not (polling, network shares).
    Partial-download names are refused outright, so `x.mp3.part` renamed to `x.mp3` is seen only as `x.mp3`.
    Thread-safe: the observer and the scans offer paths while another thread collects the stable ones. The lock
    is never held during a stat, which on a slow share may take seconds: stat first, then record under the lock.
    """

    def __init__(
        self,
        stability_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        stat: Callable[[Path], os.stat_result] = os.lstat,
    ) -> None:
        self._stability_seconds = stability_seconds
        self._quiet_seconds = unclosed_quiet_seconds(stability_seconds)
        self._clock = clock
        self._stat = stat
        self._lock = threading.Lock()
        self._watched: dict[Path, Watched] = {}

    def offer(self, path: Path, hint: Hint = Hint.FOUND) -> None:
        """Start (or continue) watching `path`; anything that is not a candidate regular file is ignored."""
        if not is_candidate(path) or not (hint.starts_watching or self._is_watched(path)):
            return
        look = self._look(path)
        with self._lock:
            self._record(path, look, hint)

    def release_stable(self) -> list[Path]:
        """The files that have stopped changing; they leave the gate. Vanished files are forgotten."""
        with self._lock:
            paths = list(self._watched)
        looks = [(path, self._look(path)) for path in paths]
        released = []
        with self._lock:
            for path, look in looks:
                if path not in self._watched:  # forgotten while we looked
                    continue
                watched = self._record(path, look, Hint.FOUND)
                if watched is not None and look.began - watched.unchanged_since >= self._wait(watched):
                    del self._watched[path]
                    released.append(path)
        return released

    def watching(self) -> int:
        with self._lock:
            return len(self._watched)

    def settled(self, folder: Path, album_of: Callable[[Path], Path | None]) -> bool:
        """Whether the album at `folder` is stable as a whole: none of its files is still in the gate, and no file
        was added to or removed from the folder for the stability wait (its mtime), so that a folder still being
        copied, file after file, is not taken half-way."""
        with self._lock:
            if any(album_of(path) == folder for path in self._watched):
                return False
        try:
            changed = os.stat(folder).st_mtime
        except OSError:
            return True  # gone: its files, if any are left, are for their own turn
        return time.time() - changed >= self._stability_seconds

    def _is_watched(self, path: Path) -> bool:
        with self._lock:
            return path in self._watched

    def _wait(self, watched: Watched) -> float:
        return self._quiet_seconds if watched.writer.may_be_writing else self._stability_seconds

    def _look(self, path: Path) -> Look:
        began = self._clock()
        try:
            status = self._stat(path)
        except OSError:
            return Look(None, began, self._clock())
        signature = (status.st_size, status.st_mtime_ns) if stat.S_ISREG(status.st_mode) else None
        return Look(signature, began, self._clock())

    def _record(self, path: Path, look: Look, hint: Hint) -> Watched | None:
        """Under the lock: the file's new state, its wait restarted if its signature changed; None if it is gone.

        A changed signature counts from the end of the stat (the change may have come while it ran), an unchanged
        one up to its beginning (see release_stable), so a slow stat never shortens the wait.
        """
        if look.signature is None:
            self._watched.pop(path, None)
            return None
        previous = self._watched.get(path)
        if previous is None and not hint.starts_watching:  # it left the gate while we looked
            return None
        writer = (previous.writer if previous else WriterSigns()).after(hint)
        unchanged = previous is not None and previous.signature == look.signature
        watched = Watched(look.signature, previous.unchanged_since if unchanged else look.ended, writer)
        self._watched[path] = watched
        return watched


class EventHints(FileSystemEventHandler):
    """Turns watchdog's file events into offers to the stability gate.

    Folder events carry no news of their own: watchdog reports the files of a folder created or moved in.
    Files in hidden folders below the inbox (a sync tool's temporary folders, our own staging) are ignored,
    like the scan ignores them. A write counts as a sign of a writer only where closes are reported too
    (`closes_reported`): with polling, no close would ever end it.
    """

    def __init__(self, inbox: Path, offer: Callable[[Path, Hint], None], closes_reported: bool) -> None:
        self._inbox = inbox
        self._offer = offer
        self._written = Hint.WRITTEN if closes_reported else Hint.FOUND

    def on_created(self, event: FileSystemEvent) -> None:
        self._hint(event, event.src_path, Hint.FOUND)

    def on_moved(self, event: FileSystemEvent) -> None:
        self._hint(event, event.dest_path, Hint.FOUND)

    def on_attrib(self, event: FileSystemEvent) -> None:
        self._hint(event, event.src_path, Hint.FOUND)

    def on_modified(self, event: FileSystemEvent) -> None:
        self._hint(event, event.src_path, self._written)

    def on_opened(self, event: FileSystemEvent) -> None:
        self._hint(event, event.src_path, Hint.OPENED)

    def on_closed(self, event: FileSystemEvent) -> None:
        self._hint(event, event.src_path, Hint.CLOSED_AFTER_WRITE)

    def on_closed_no_write(self, event: FileSystemEvent) -> None:
        self._hint(event, event.src_path, Hint.CLOSED_NO_WRITE)

    def _hint(self, event: FileSystemEvent, path: str | bytes, hint: Hint) -> None:
        file = Path(os.fsdecode(path))
        if event.is_directory or not file.is_relative_to(self._inbox):
            return
        if not any(part.startswith(".") for part in file.relative_to(self._inbox).parent.parts):
            self._offer(file, hint)


class InboxWatcher:
    """watchdog's observer on the inbox and its subfolders, which the intake can check and restart."""

    def __init__(self, inbox: Path, polling: bool, offer: Callable[[Path, Hint], None]) -> None:
        self._inbox = inbox
        self._polling = polling
        # The native observer of this Linux daemon is inotify's, which reports opens and closes; polling does not.
        self._handler = EventHints(inbox, offer, closes_reported=not polling)
        self._observer: BaseObserver | None = None

    def start(self) -> None:
        """Raises OSError when the inbox cannot be watched (missing, out of inotify watches)."""
        observer = PollingObserver() if self._polling else Observer()
        observer.schedule(self._handler, str(self._inbox), recursive=True)
        observer.start()
        self._observer = observer

    def is_alive(self) -> bool:
        """The dispatching thread and every emitter; an emitter stops alone, e.g. when the inbox is deleted."""
        observer = self._observer
        return (
            observer is not None
            and observer.is_alive()
            and all(emitter.is_alive() for emitter in list(observer.emitters))
        )

    def restart(self) -> None:
        self.stop()
        self.start()

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            if self._observer.is_alive():
                self._observer.join()
            self._observer = None


#: At a stop the intake's thread gets this long to finish what it is doing: a scan of a slow share may take minutes
#: and the stop must not wait for it (the thread is a daemon thread; what it does is only hints).
INTAKE_STOP_SECONDS = 5.0


class Intake:
    """The inbox side of the daemon, on a thread of its own: keeps the watcher alive, scans the inbox (at once,
    then every `rescan_seconds` and after a watcher restart) and hands the files the gate finds stable to `submit`
    (the tracks of an album together, once the whole album is; `album_of` says which album a file is of).

    Scans and stability checks stat every file, which on a slow share takes as long as it takes: on this thread,
    the supervisor's loop (signals, the systemd watchdog, stall detection) never waits for them. The thread ends
    only when stopped or when the inbox can no longer be watched (logged as `watcher.failed`).
    """

    def __init__(
        self,
        inbox: Path,
        watcher: InboxWatcher,
        gate: StabilityGate,
        submit: Callable[[Path], object],
        tick_seconds: float,
        rescan_seconds: float,
        log: FilteringBoundLogger,
        scan: Callable[[Path, Callable[[Path], None], FilteringBoundLogger], None] = rescan,
        album_of: Callable[[Path], Path | None] = lambda path: None,
    ) -> None:
        self._inbox = inbox
        self._watcher = watcher
        self._gate = gate
        self._submit = submit
        self._tick_seconds = tick_seconds
        self._rescan_seconds = rescan_seconds
        self._log = log
        self._scan = scan
        self._album_of = album_of
        self._albums_held: dict[Path, list[Path]] = {}  # stable tracks of albums not yet stable as a whole
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="genresort-intake", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        """Stop the thread, and with it the watcher; waits at most INTAKE_STOP_SECONDS."""
        self._stopping.set()
        self._thread.join(INTAKE_STOP_SECONDS)

    def _run(self) -> None:
        try:
            self._take_in()
        except OSError as error:
            self._log.error("watcher.failed", inbox=path_text(self._inbox), error=str(error))
        except Exception as error:  # a bug of ours: logged, and the supervisor stops the daemon
            frames = traceback.extract_tb(error.__traceback__)
            self._log.error(
                "watcher.failed",
                inbox=path_text(self._inbox),
                error=f"{type(error).__name__}: {error}",
                traceback=[f"{frame.filename}:{frame.lineno} in {frame.name}" for frame in frames],
            )
        finally:
            self._watcher.stop()

    def _take_in(self) -> None:
        """Until stopped; raises OSError when a dead watcher cannot be restarted."""
        next_scan = time.monotonic()  # at once: files already in the inbox raise no events
        while not self._stopping.is_set():
            if not self._watcher.is_alive():
                self._watcher.restart()
                self._log.warning("watcher.restarted", inbox=path_text(self._inbox))
                next_scan = time.monotonic()  # events were lost while it was down
            if time.monotonic() >= next_scan:
                self._scan(self._inbox, self._gate.offer, self._log)
                next_scan = time.monotonic() + self._rescan_seconds
            self._hand_on(self._gate.release_stable())
            self._stopping.wait(self._tick_seconds)

    def _hand_on(self, stable: list[Path]) -> None:
        """Submit the stable files; a track of an album only with the rest of it, once it is stable as a whole."""
        for path in stable:
            root = self._album_of(path)
            if root is None:
                self._submit(path)
            else:
                self._albums_held.setdefault(root, []).append(path)
        for root in list(self._albums_held):
            if self._gate.settled(root, self._album_of):
                for path in self._albums_held.pop(root):
                    self._submit(path)
