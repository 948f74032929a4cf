"""The main thread's watch: stop signals, the systemd watchdog fed only while workers make progress, stall
detection, and an orderly stop that lets the files in hand finish."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType, TracebackType

from structlog.typing import FilteringBoundLogger

from genresort.config import Settings
from genresort.service import notify
from genresort.service.inbox import InboxWatcher, StabilityGate, rescan
from genresort.service.workqueue import WorkQueue

EXIT_OK = 0

EXIT_FAILED = 1

EXIT_REFUSED = 2

STALL_MARGIN_SECONDS = 30.0  # beyond file_timeout_seconds, a worker on one file is stuck, not slow

#: Hashing, copying and verifying read a file a few times: on a slow share a big file may take this long per byte,
#: and a watchdog restart in the middle would only start it over.
SLOW_DISK_BYTES_PER_SECOND = 5 * 1024 * 1024


def stall_limit(file_timeout_seconds: float, size_bytes: int) -> float:
    """Seconds after which a worker still on one file of `size_bytes` is stuck rather than slow."""
    return file_timeout_seconds + STALL_MARGIN_SECONDS + size_bytes / SLOW_DISK_BYTES_PER_SECOND


SignalHandler = Callable[[int, FrameType | None], object] | int | None


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
