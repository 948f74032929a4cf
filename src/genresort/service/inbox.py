"""The inbox: a watcher whose events are only hints, scans that are the truth, and the stability gate that
holds each file until it has stopped changing.

Events get lost (network shares, queue overflow, an observer restart), so a periodic rescan finds what they
missed; every file waits in the gate until its size and mtime have stopped changing.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from structlog.typing import FilteringBoundLogger
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from genresort.analysis.audio import AUDIO_EXTENSIONS

PARTIAL_DOWNLOAD_SUFFIXES = (".part", ".crdownload", ".filepart", ".tmp", ".partial", ".download", ".!qb")
MOUNTINFO = Path("/proc/self/mountinfo")

# inotify only sees changes made through this machine's kernel; these file systems are written by others too.
POLLED_FILESYSTEMS = frozenset({"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "sshfs", "fuse"})

LIMIT_ERRNOS = frozenset({errno.ENOSPC, errno.EMFILE})  # what inotify says when out of watches or instances


def is_candidate(path: Path) -> bool:
    """A music file by its name, and not a partial download or hidden file (hidden folders below the inbox
    are the scanner's and the event filter's business: the inbox itself may well sit below one)."""
    name = path.name.lower()
    if name.startswith(".") or "~syncthing~" in name or name.endswith(PARTIAL_DOWNLOAD_SUFFIXES):
        return False
    return path.suffix.lower() in AUDIO_EXTENSIONS


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
    """Every candidate music file under `folder`, skipping hidden folders (the staging folders are hidden too).

    Symbolic links are not followed: a link loop must not hang the scan, and a link is not a file we own.
    """
    try:
        entries = list(os.scandir(folder))
    except OSError as error:
        log.error("scan.unreadable", folder=str(folder), error=error.strerror)
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
            log.error("scan.unreadable", folder=str(path), error=error.strerror)


def rescan(folder: Path, offer: Callable[[Path], None], log: FilteringBoundLogger) -> None:
    """Offer every candidate file in `folder` to the gate: this finds what the events missed."""
    started = time.monotonic()
    files = 0
    for path in scan_folder(folder, log):
        offer(path)
        files += 1
    log.info("scan.finished", folder=str(folder), files=files, seconds=round(time.monotonic() - started, 3))


class StabilityGate:
    """Holds each file until its (size, mtime_ns) has stayed the same for `stability_seconds`.

    A file still being written (a download, a copy over the network) would otherwise be sorted half-written.
    Partial-download names are refused outright, so `x.mp3.part` renamed to `x.mp3` is seen only as `x.mp3`.
    Thread-safe: the observer offers paths while the main thread collects the stable ones.
    """

    def __init__(self, stability_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._stability_seconds = stability_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._watched: dict[Path, tuple[tuple[int, int], float]] = {}  # path -> (signature, unchanged since)

    def offer(self, path: Path) -> None:
        """Start (or continue) watching `path`; anything that is not a candidate regular file is ignored."""
        if not is_candidate(path):
            return
        with self._lock:
            self._observe(path)

    def release_stable(self) -> list[Path]:
        """The files that have stopped changing; they leave the gate. Vanished files are forgotten."""
        with self._lock:
            released = []
            for path in list(self._watched):
                if not self._observe(path):
                    continue
                unchanged_since = self._watched[path][1]
                if self._clock() - unchanged_since >= self._stability_seconds:
                    del self._watched[path]
                    released.append(path)
            return released

    def watching(self) -> int:
        with self._lock:
            return len(self._watched)

    def _observe(self, path: Path) -> bool:
        """Record the file's current signature, restarting its wait if it changed; False if it is gone."""
        try:
            status = os.stat(path, follow_symlinks=False)
        except OSError:
            self._watched.pop(path, None)
            return False
        if not stat.S_ISREG(status.st_mode):
            self._watched.pop(path, None)
            return False
        signature = (status.st_size, status.st_mtime_ns)
        previous = self._watched.get(path)
        if previous is None or previous[0] != signature:
            self._watched[path] = (signature, self._clock())
        return True


class EventHints(FileSystemEventHandler):
    """Turns watchdog's file events into offers to the stability gate.

    Folder events carry no news of their own: watchdog reports the files of a folder created or moved in.
    Files in hidden folders below the inbox (a sync tool's temporary folders, our own staging) are ignored,
    like the scan ignores them.
    """

    def __init__(self, inbox: Path, offer: Callable[[Path], None]) -> None:
        self._inbox = inbox
        self._offer = offer

    def on_created(self, event: FileSystemEvent) -> None:
        self._hint(event, event.src_path)

    def on_modified(self, event: FileSystemEvent) -> None:
        self._hint(event, event.src_path)

    def on_moved(self, event: FileSystemEvent) -> None:
        self._hint(event, event.dest_path)

    def on_closed(self, event: FileSystemEvent) -> None:
        self._hint(event, event.src_path)

    def _hint(self, event: FileSystemEvent, path: str | bytes) -> None:
        file = Path(os.fsdecode(path))
        if event.is_directory or not file.is_relative_to(self._inbox):
            return
        if not any(part.startswith(".") for part in file.relative_to(self._inbox).parent.parts):
            self._offer(file)


class InboxWatcher:
    """watchdog's observer on the inbox and its subfolders, which the supervisor can check and restart."""

    def __init__(self, inbox: Path, polling: bool, offer: Callable[[Path], None]) -> None:
        self._inbox = inbox
        self._polling = polling
        self._handler = EventHints(inbox, offer)
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
