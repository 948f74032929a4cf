"""The work queue: worker threads sorting files, each path queued once, transient failures retried with backoff."""

from __future__ import annotations

import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from queue import Empty, Queue

from structlog.typing import FilteringBoundLogger

from genresort.logs import path_text
from genresort.service.pipeline import Outcome, SortOutcome

FIRST_RETRY_SECONDS = 5.0

ERROR = "error"  # counted like an Outcome when sort_file raised


def retry_delay(attempt: int, maximum: float) -> float:
    """Exponential backoff from FIRST_RETRY_SECONDS, so a full disk is not hammered: 5, 10, 20, ... maximum.

    The exponent is bounded: a file retried for weeks must not overflow the float.
    """
    return min(FIRST_RETRY_SECONDS * 2.0 ** min(attempt - 1, 64), maximum)


class WorkQueue:
    """Worker threads calling `sort_file`, each path queued at most once, transient failures retried later.

    A path is "known" from submit until its sort_file returns an outcome other than RETRY (an exception counts
    as RETRY), so events or rescans while it is queued, sorted or waiting for a retry cannot queue it twice.
    `retry_max_seconds=None` reports transient failures instead of retrying them (a one-pass run). A file that
    CHANGED while it was sorted is not retried on a timer but handed to `unsettled` (the stability gate), which
    gives it back once it has settled: a writer that paused is not raced again.
    """

    def __init__(
        self,
        sort_file: Callable[[Path], SortOutcome],
        workers: int,
        retry_max_seconds: float | None,
        log: FilteringBoundLogger,
        clock: Callable[[], float] = time.monotonic,
        unsettled: Callable[[Path], None] | None = None,
    ) -> None:
        self._sort_file = sort_file
        self._unsettled = unsettled
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
                source=path_text(path),
                error=f"{type(error).__name__}: {error}",
                traceback=[f"{frame.filename}:{frame.lineno} in {frame.name}" for frame in frames],
            )
            return ERROR
        finally:
            with self._lock:
                del self._started[threading.get_ident()]

    def _finish(self, path: Path, outcome: str) -> None:
        settling = outcome == Outcome.CHANGED and self._unsettled is not None
        with self._lock:
            self._outcomes[outcome] += 1
            retry = outcome in (Outcome.RETRY, ERROR) or (outcome == Outcome.CHANGED and not settling)
            if retry and self._accepting and self._retry_max_seconds is not None:
                self._attempts[path] += 1
                delay = retry_delay(self._attempts[path], self._retry_max_seconds)
                self._retry_at[path] = self._clock() + delay
            else:
                self._known.discard(path)
                del self._attempts[path]
        if settling and self._accepting:
            self._unsettled(path)  # forgotten first, so that the gate can hand it back once it has settled
