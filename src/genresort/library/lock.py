"""The state folder's two locks. The instance lock: two genresort processes on one state folder would process the
same files. The moves lock: a person's moves (`undo`, `assign`, the review page's buttons) run beside a daemon, which
sorts inbox files while they move placed ones, but one at a time, and never while a daemon settles one a crash cut
short.

The lock is taken on the state folder itself (Linux allows flock on a directory), not on a file in it, so
deleting files from the state folder cannot let a second instance in. The kernel drops the lock when its
holder dies, SIGKILL included. The holder's pid is written to ``genresort.pid`` only for the refusal message.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from types import TracebackType

PID_FILE = "genresort.pid"
MOVES_LOCK_FILE = "moves.lock"


class AlreadyRunning(RuntimeError):
    """Another genresort process owns the state folder; two would process the same files."""


class InstanceLock:
    """An exclusive flock on the state folder, held while the descriptor stays open."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self._descriptor: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise AlreadyRunning naming the holder; OSError if the folder cannot be opened."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.state_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise AlreadyRunning(
                f"another genresort (pid {self._holder()}) is using the state folder {self.state_dir}:"
                " stop it first, as two would sort the same files"
            ) from None
        except BaseException:
            os.close(descriptor)
            raise
        self._descriptor = descriptor
        try:
            self._write_pid()
        except BaseException:
            self.release()
            raise

    def _write_pid(self) -> None:
        descriptor = os.open(
            self.state_dir / PID_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644
        )
        try:
            os.write(descriptor, f"{os.getpid()}\n".encode())
        finally:
            os.close(descriptor)

    def _holder(self) -> str:
        """The pid the holder wrote, for the message only: the file may be gone or half-written."""
        try:
            return (self.state_dir / PID_FILE).read_text(errors="replace").strip() or "unknown"
        except OSError:
            return "unknown"

    def release(self) -> None:
        """Close the descriptor, which drops the lock; the pid file stays (the next holder overwrites it)."""
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None

    def __enter__(self) -> InstanceLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exception_type: type[BaseException] | None,
        exception: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


class MovesBusy(RuntimeError):
    """Another undo or assignment holds the moves lock for longer than we wait."""


class MovesLock:
    """An exclusive flock on `moves.lock` in the state folder, held while the descriptor stays open; the kernel drops
    it when its holder dies, so a killed `undo` never blocks the next one."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / MOVES_LOCK_FILE
        self._descriptor: int | None = None

    def try_acquire(self) -> bool:
        """Take the lock if it is free; OSError if the state folder cannot hold the lock file."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            return False
        except BaseException:
            os.close(descriptor)
            raise
        self._descriptor = descriptor
        return True

    def acquire(self, wait_seconds: float) -> None:
        """Take the lock, waiting up to `wait_seconds` for another move to finish; MovesBusy after that."""
        deadline = time.monotonic() + wait_seconds
        while not self.try_acquire():
            if time.monotonic() >= deadline:
                raise MovesBusy(
                    f"another undo or assign on the state folder {self.path.parent} has been running for more than"
                    f" {wait_seconds:.0f} s: try again when it has finished"
                )
            time.sleep(0.05)

    def release(self) -> None:
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None
