"""The shell around the pipeline: watch the inbox, wait for files to settle, sort them on worker threads.

Events from the file system are only hints; a periodic rescan of the inbox is the truth, because events get
lost (network shares, queue overflow, an observer restart). Every file waits in the stability gate until its
size and mtime have stopped changing, is queued once however many events it raised, and is handed to
`Sorter.sort_file`, which is crash-safe on its own. The main thread supervises: it restarts a dead observer,
rescans on a timer, feeds the systemd watchdog only while the workers make progress, and turns SIGTERM into
an orderly stop that lets the files in hand finish.
"""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import stat
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict
from functools import partial
from pathlib import Path
from queue import Empty, Queue
from types import FrameType, TracebackType

from structlog.typing import FilteringBoundLogger
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from genresort import notify
from genresort.config import ConfigError, Settings
from genresort.journal import AlreadyRunning, InstanceLock
from genresort.model import ModelError
from genresort.pipeline import Outcome, Sorter, SortOutcome, is_candidate, open_sorter

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_REFUSED = 2

FOLDER_KEYS = ("inbox", "library", "quarantine", "unsure", "state_dir")
MOUNTINFO = Path("/proc/self/mountinfo")
# inotify only sees changes made through this machine's kernel; these file systems are written by others too.
POLLED_FILESYSTEMS = frozenset({"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "sshfs", "fuse"})
LIMIT_ERRNOS = frozenset({errno.ENOSPC, errno.EMFILE})  # what inotify says when out of watches or instances
FIRST_RETRY_SECONDS = 5.0
STALL_MARGIN_SECONDS = 30.0  # beyond file_timeout_seconds, a worker on one file is stuck, not slow
#: Hashing, copying and verifying read a file a few times: on a slow share a big file may take this long per byte,
#: and a watchdog restart in the middle would only start it over.
SLOW_DISK_BYTES_PER_SECOND = 5 * 1024 * 1024


def stall_limit(file_timeout_seconds: float, size_bytes: int) -> float:
    """Seconds after which a worker still on one file of `size_bytes` is stuck rather than slow."""
    return file_timeout_seconds + STALL_MARGIN_SECONDS + size_bytes / SLOW_DISK_BYTES_PER_SECOND


ERROR = "error"  # counted like an Outcome when sort_file raised

SignalHandler = Callable[[int, FrameType | None], object] | int | None


class FolderError(Exception):
    """A configured folder cannot be created or written; the message names the key and the folder."""


def prepare_folders(settings: Settings) -> None:
    """Create the working folders and prove each is writable, so a bad mount fails at start, not on a file."""
    for key in FOLDER_KEYS:
        folder: Path = getattr(settings, key)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            descriptor, probe = tempfile.mkstemp(prefix=".genresort-probe-", dir=folder)
            os.close(descriptor)
            os.unlink(probe)
        except OSError as error:
            raise FolderError(f"{key} folder {folder} cannot be created or written: {error.strerror}") from error


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


def retry_delay(attempt: int, maximum: float) -> float:
    """Exponential backoff from FIRST_RETRY_SECONDS, so a full disk is not hammered: 5, 10, 20, ... maximum.

    The exponent is bounded: a file retried for weeks must not overflow the float.
    """
    return min(FIRST_RETRY_SECONDS * 2.0 ** min(attempt - 1, 64), maximum)


class WorkQueue:
    """Worker threads calling `sort_file`, each path queued at most once, transient failures retried later.

    A path is "known" from submit until its sort_file returns an outcome other than RETRY (an exception counts
    as RETRY), so events or rescans while it is queued, sorted or waiting for a retry cannot queue it twice.
    `retry_max_seconds=None` reports transient failures instead of retrying them (a one-pass run).
    """

    def __init__(
        self,
        sort_file: Callable[[Path], SortOutcome],
        workers: int,
        retry_max_seconds: float | None,
        log: FilteringBoundLogger,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sort_file = sort_file
        self._retry_max_seconds = retry_max_seconds
        self._log = log
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: Queue[Path | None] = Queue()  # None tells a worker to stop
        self._known: set[Path] = set()
        self._retry_at: dict[Path, float] = {}
        self._attempts: Counter[Path] = Counter()
        self._started: dict[int, tuple[Path, float]] = {}  # worker thread id -> (path, start time)
        self._outcomes: Counter[str] = Counter()
        self._accepting = True
        self._threads = [
            threading.Thread(target=self._work, name=f"genresort-worker-{number}", daemon=True)
            for number in range(1, workers + 1)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def submit(self, path: Path) -> bool:
        """Queue `path` unless it is already queued, in flight or waiting for a retry; False if not queued."""
        with self._lock:
            if not self._accepting or path in self._known:
                return False
            self._known.add(path)
        self._pending.put(path)
        return True

    def queue_due_retries(self) -> None:
        now = self._clock()
        with self._lock:
            due = [path for path, at in self._retry_at.items() if at <= now]
            for path in due:
                del self._retry_at[path]
        for path in due:
            self._pending.put(path)

    def longest_running(self) -> tuple[Path, float] | None:
        """The file a worker has been on the longest, and for how many seconds."""
        with self._lock:
            if not self._started:
                return None
            path, start = min(self._started.values(), key=lambda item: item[1])
        return path, self._clock() - start

    def threads_alive(self) -> bool:
        return all(thread.is_alive() for thread in self._threads)

    def in_flight(self) -> int:
        with self._lock:
            return len(self._started)

    def idle(self) -> bool:
        """Nothing queued, in flight or waiting for a retry."""
        with self._lock:
            return not self._known

    def outcomes(self) -> Counter[str]:
        """How many files ended in each Outcome (and ERROR), since start."""
        with self._lock:
            return self._outcomes.copy()

    def status(self) -> str:
        """One line for `systemctl status`."""
        with self._lock:
            waiting = len(self._known) - len(self._started) - len(self._retry_at)
            done = ", ".join(f"{count} {outcome}" for outcome, count in sorted(self._outcomes.items()))
            now = f"{len(self._started)} sorting, {waiting} queued, {len(self._retry_at)} waiting to retry"
        return f"{now}; so far {done}" if done else now

    def stop(self) -> None:
        """Take no more files and drop the queued ones (they stay in the inbox for the next start)."""
        with self._lock:
            self._accepting = False
            self._known.difference_update(self._retry_at)
            self._retry_at.clear()
        while True:
            try:
                path = self._pending.get_nowait()
            except Empty:
                break
            with self._lock:
                self._known.discard(path)
        for _ in self._threads:
            self._pending.put(None)

    def join(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds in all for the workers to finish their files; True once all have."""
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in self._threads)

    def _work(self) -> None:
        while (path := self._pending.get()) is not None:
            self._finish(path, self._sort(path))

    def _sort(self, path: Path) -> str:
        """One file; an exception is logged and treated as transient, so one bad file never stops a worker."""
        with self._lock:
            self._started[threading.get_ident()] = (path, self._clock())
        try:
            return self._sort_file(path).outcome
        except Exception as error:
            frames = traceback.extract_tb(error.__traceback__)
            self._log.error(
                "file.error",
                source=str(path),
                error=f"{type(error).__name__}: {error}",
                traceback=[f"{frame.filename}:{frame.lineno} in {frame.name}" for frame in frames],
            )
            return ERROR
        finally:
            with self._lock:
                del self._started[threading.get_ident()]

    def _finish(self, path: Path, outcome: str) -> None:
        with self._lock:
            self._outcomes[outcome] += 1
            if outcome in (Outcome.RETRY, ERROR) and self._accepting and self._retry_max_seconds is not None:
                self._attempts[path] += 1
                delay = retry_delay(self._attempts[path], self._retry_max_seconds)
                self._retry_at[path] = self._clock() + delay
            else:
                self._known.discard(path)
                del self._attempts[path]


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


class StopSignals:
    """SIGTERM and SIGINT become a request the main loop acts on; the old handlers come back on exit.

    The handler only records: logging or joining threads inside it could deadlock on a lock the
    interrupted main thread holds.
    """

    def __init__(self) -> None:
        self.requested = threading.Event()
        self.received: list[str] = []
        self._previous: dict[int, SignalHandler] = {}

    def __enter__(self) -> StopSignals:
        for number in (signal.SIGTERM, signal.SIGINT):
            self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(
        self,
        exception_type: type[BaseException] | None,
        exception: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)

    def _handle(self, number: int, frame: FrameType | None) -> None:
        self.received.append(signal.Signals(number).name)
        self.requested.set()


def finish_in_flight(
    work: WorkQueue, signals: StopSignals, grace_seconds: float, tick: float, log: FilteringBoundLogger
) -> bool:
    """Stop taking files and let the workers finish the ones in hand: sort_file is crash-safe, so finishing
    is cheaper than rolling back. Waits as long as it takes, unless another signal arrives: then only
    `grace_seconds` more. True if every worker finished."""
    work.stop()
    signals_seen = len(signals.received)
    deadline: float | None = None
    while not work.join(tick):
        if deadline is None and len(signals.received) > signals_seen:
            deadline = time.monotonic() + grace_seconds
            log.warning(
                "daemon.stopping", signal=signals.received[-1], in_flight=work.in_flight(), wait_seconds=grace_seconds
            )
        if deadline is not None and time.monotonic() >= deadline:
            return False
    return True


def rescan(folder: Path, offer: Callable[[Path], None], log: FilteringBoundLogger) -> None:
    """Offer every candidate file in `folder` to the gate: this finds what the events missed."""
    started = time.monotonic()
    files = 0
    for path in scan_folder(folder, log):
        offer(path)
        files += 1
    log.info("scan.finished", folder=str(folder), files=files, seconds=round(time.monotonic() - started, 3))


class Supervisor:
    """The main thread's loop while watching: moves stable files to the workers, retries, rescans, restarts
    a dead observer and feeds the systemd watchdog only while the workers make progress."""

    def __init__(
        self,
        settings: Settings,
        inbox: Path,
        gate: StabilityGate,
        work: WorkQueue,
        watcher: InboxWatcher,
        signals: StopSignals,
        log: FilteringBoundLogger,
    ) -> None:
        self._settings = settings
        self._inbox = inbox
        self._gate = gate
        self._work = work
        self._watcher = watcher
        self._signals = signals
        self._log = log
        self._tick = tick_seconds(settings)
        self._watchdog_interval = notify.watchdog_interval()
        self._next_ping = time.monotonic()
        self._next_rescan = time.monotonic() + settings.rescan_seconds
        self._stalled = False
        self._status = ""

    def run(self) -> int:
        """Until a stop signal (EXIT_OK) or until the observer cannot be restarted (EXIT_FAILED)."""
        while not self._signals.requested.wait(self._tick):
            if not self._keep_watcher_alive():
                return EXIT_FAILED
            for path in self._gate.release_stable():
                self._work.submit(path)
            self._work.queue_due_retries()
            if time.monotonic() >= self._next_rescan:
                self._rescan()
            self._feed_watchdog()
            self._report_status()
        return EXIT_OK

    def _keep_watcher_alive(self) -> bool:
        if self._watcher.is_alive():
            return True
        try:
            self._watcher.restart()
        except OSError as error:
            self._log.error("watcher.failed", inbox=str(self._inbox), error=str(error))
            return False
        self._log.warning("watcher.restarted", inbox=str(self._inbox))
        self._rescan()  # events were lost while it was down
        return True

    def _rescan(self) -> None:
        rescan(self._inbox, self._gate.offer, self._log)
        self._next_rescan = time.monotonic() + self._settings.rescan_seconds

    def _feed_watchdog(self) -> None:
        """Silence makes systemd restart us: better than a daemon that looks alive and sorts nothing."""
        problem = self._stall()
        if problem is not None:
            if not self._stalled:
                self._log.error("daemon.stalled", **problem)
            self._stalled = True
            return
        self._stalled = False
        if self._watchdog_interval is not None and time.monotonic() >= self._next_ping:
            notify.watchdog_ping()
            self._next_ping = time.monotonic() + self._watchdog_interval

    def _stall(self) -> dict[str, object] | None:
        """Why the workers are not making progress, or None when they are."""
        if not self._work.threads_alive():
            return {"reason": "a worker thread has died"}
        running = self._work.longest_running()
        if running is not None and running[1] > stall_limit(self._settings.file_timeout_seconds, _size(running[0])):
            return {"reason": "a worker is stuck on one file", "source": str(running[0]), "seconds": round(running[1])}
        return None

    def _report_status(self) -> None:
        status = self._work.status()
        if status != self._status:
            notify.status(status)
            self._status = status


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def tick_seconds(settings: Settings) -> float:
    """How often the main loop looks at the gate: often enough that the stability wait is not stretched much."""
    return min(0.5, settings.stability_seconds / 4)


def lock_state_folder(settings: Settings, log: FilteringBoundLogger) -> InstanceLock | None:
    """Checked folders and the state folder's lock, or None after logging why not (exit code EXIT_REFUSED)."""
    try:
        prepare_folders(settings)
        lock = InstanceLock(settings.state_dir)
        lock.acquire()
    except (FolderError, AlreadyRunning) as error:
        log.error("daemon.refused", reason=str(error))
        return None
    return lock


def start_sorter(settings: Settings, log: FilteringBoundLogger) -> Sorter | None:
    """The loaded sorter, or None after logging why the model or configuration was refused."""
    try:
        return open_sorter(settings, log)
    except (ModelError, ConfigError) as error:
        log.error("daemon.refused", reason=str(error))
        return None


def run_daemon(settings: Settings, log: FilteringBoundLogger) -> int:
    """`genresort watch`: sort every file that arrives in the inbox until SIGTERM or SIGINT; the exit code."""
    lock = lock_state_folder(settings, log)
    if lock is None:
        return EXIT_REFUSED
    try:
        sorter = start_sorter(settings, log)
        if sorter is None:
            return EXIT_REFUSED
        try:
            return watch(settings, sorter, log)
        finally:
            sorter.close()
    finally:
        lock.release()


def watch(settings: Settings, sorter: Sorter, log: FilteringBoundLogger) -> int:
    """The daemon proper, once the state folder is ours and the model loaded.

    Signals are caught only from here on: while the model loads nothing is in flight, so a stop may be abrupt.
    """
    inbox = settings.inbox.absolute()
    filesystem = inbox_filesystem(inbox)
    polling = wants_polling(settings.polling, filesystem)
    gate = StabilityGate(settings.stability_seconds)
    work = WorkQueue(sorter.sort_file, settings.workers, settings.retry_max_seconds, log)
    watcher = InboxWatcher(inbox, polling, gate.offer)
    with StopSignals() as signals:
        sorter.recover()
        work.start()
        try:
            watcher.start()
        except OSError as error:
            hint = ' (inotify limits reached: raise them, or set polling = "on")' if error.errno in LIMIT_ERRNOS else ""
            log.error("daemon.refused", reason=f"cannot watch the inbox {inbox}: {error}{hint}")
            finish_in_flight(work, signals, settings.file_timeout_seconds, tick_seconds(settings), log)
            return EXIT_REFUSED
        rescan(inbox, gate.offer, log)
        notify.ready()
        log.info(
            "daemon.ready",
            inbox=str(inbox),
            library=str(settings.library),
            model=sorter.model_id,
            workers=settings.workers,
            polling=polling,
            filesystem=filesystem,
            pid=os.getpid(),
        )
        exit_code = Supervisor(settings, inbox, gate, work, watcher, signals, log).run()
        reason = signals.received[0] if signals.received else "the inbox can no longer be watched"
        log.info("daemon.stopping", reason=reason, in_flight=work.in_flight())
        notify.stopping()
        watcher.stop()
        finished = finish_in_flight(work, signals, settings.file_timeout_seconds, tick_seconds(settings), log)
    log.info("daemon.stopped", exit_code=exit_code, abandoned=work.in_flight(), finished=finished, **work.outcomes())
    return exit_code


def run_once(settings: Settings, log: FilteringBoundLogger, paths: list[Path] | None, dry_run: bool) -> int:
    """`genresort sort`: one pass over the inbox, or the given files and folders, with the daemon's code path.

    Exit code 1 if any file was quarantined or failed. A dry run takes no lock, moves nothing and prints one
    JSON line per file with what would happen (it does open the journal, creating the state folder if need be).
    """
    if dry_run:
        return sort_once(settings, log, paths, dry_run=True)
    lock = lock_state_folder(settings, log)
    if lock is None:
        return EXIT_REFUSED
    try:
        return sort_once(settings, log, paths, dry_run=False)
    finally:
        lock.release()


def sort_once(settings: Settings, log: FilteringBoundLogger, paths: list[Path] | None, dry_run: bool) -> int:
    """The pass itself, once the state folder is ours (a dry run goes without)."""
    sorter = start_sorter(settings, log)
    if sorter is None:
        return EXIT_REFUSED
    try:
        if not dry_run:
            sorter.recover()
        sort_file = partial(plan_and_print, sorter) if dry_run else sorter.sort_file
        return sort_files(settings, sort_file, paths, log)
    finally:
        sorter.close()


def sort_files(
    settings: Settings,
    sort_file: Callable[[Path], SortOutcome],
    paths: list[Path] | None,
    log: FilteringBoundLogger,
) -> int:
    """Sort each file on the workers, without retries; EXIT_FAILED if one failed or a signal cut the pass short."""
    started = time.monotonic()
    files, missing = files_to_sort(settings, paths, log)
    work = WorkQueue(sort_file, settings.workers, retry_max_seconds=None, log=log)
    with StopSignals() as signals:
        work.start()
        sort_when_stable(files, work, settings, signals)
        if signals.requested.is_set():
            log.info("daemon.stopping", reason=signals.received[0], in_flight=work.in_flight())
        finish_in_flight(work, signals, settings.file_timeout_seconds, tick_seconds(settings), log)
    outcomes = work.outcomes()
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
            log.error("file.error", source=str(path), error="no such file or folder")
            missing += 1
        elif is_candidate(path):
            files.append(path)
        else:
            log.warning("file.skipped", source=str(path), reason="not a music file, or a partial download")
    return files, missing


def sort_when_stable(files: list[Path], work: WorkQueue, settings: Settings, signals: StopSignals) -> None:
    """Sort each file, first waiting for those changed in the last stability_seconds to settle; returns
    when all are done or a stop was requested."""
    gate = StabilityGate(settings.stability_seconds)
    for path in files:
        if changed_recently(path, settings.stability_seconds):
            gate.offer(path)
        else:
            work.submit(path)
    while not signals.requested.wait(tick_seconds(settings)):
        for path in gate.release_stable():
            work.submit(path)
        if gate.watching() == 0 and work.idle():
            return


def changed_recently(path: Path, seconds: float) -> bool:
    """By the file's mtime (wall clock): a file last written long ago need not be watched for a while."""
    try:
        modified = os.stat(path).st_mtime_ns / 1e9
    except OSError:
        return False  # gone: sort_file will report it
    return time.time() - modified < seconds


_print_lock = threading.Lock()


def plan_and_print(sorter: Sorter, path: Path) -> SortOutcome:
    """One JSON line on stdout saying what sorting the file would do; whole lines even from several workers."""
    outcome = sorter.plan(path)
    line = json.dumps(asdict(outcome), default=str, ensure_ascii=False)
    with _print_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    return outcome
