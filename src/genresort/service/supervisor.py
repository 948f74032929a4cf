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
from genresort.service.inbox import Intake
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
    """The main thread's loop while watching: retries, stall detection, and the systemd watchdog fed only while the
    workers make progress. The intake's thread does the scans and the stability checks, which on a slow share may
    take long: this loop never waits for them, nor for any stat but one (see _stall)."""

    def __init__(
        self,
        settings: Settings,
        intake: Intake,
        work: WorkQueue,
        signals: StopSignals,
        log: FilteringBoundLogger,
    ) -> None:
        self._settings = settings
        self._intake = intake
        self._work = work
        self._signals = signals
        self._log = log
        self._tick = tick_seconds(settings)
        self._watchdog_interval = notify.watchdog_interval()
        self._next_ping = time.monotonic()
        self._stalled = False
        self._status = ""

    def run(self) -> int:
        """Until a stop signal (EXIT_OK) or until the inbox can no longer be watched (EXIT_FAILED)."""
        while not self._signals.requested.wait(self._tick):
            if not self._intake.is_alive():
                return EXIT_FAILED
            self._work.queue_due_retries()
            self._feed_watchdog()
            self._report_status()
        return EXIT_OK

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
        if running is None:
            return None
        path, seconds = running
        timeout = self._settings.file_timeout_seconds
        # The file's size is looked up only once it has taken longer than a small file may: a stat on a slow share
        # is what this loop must not wait for at every tick.
        if seconds > stall_limit(timeout, 0) and seconds > stall_limit(timeout, _size(path)):
            return {"reason": "a worker is stuck on one file", "source": str(path), "seconds": round(seconds)}
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
