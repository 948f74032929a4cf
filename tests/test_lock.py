"""The single-instance lock holds across processes, whatever a person deletes, and dies with its holder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from genresort.library.lock import PID_FILE, AlreadyRunning, InstanceLock, MovesBusy, MovesLock

HOLD = """
import sys, time
from pathlib import Path
from genresort.library.lock import InstanceLock
InstanceLock(Path(sys.argv[1])).acquire()
print("locked", flush=True)
time.sleep(600)
"""

HOLD_MOVES = """
import sys, time
from pathlib import Path
from genresort.library.lock import MovesLock
MovesLock(Path(sys.argv[1])).acquire(wait_seconds=1)
print("locked", flush=True)
time.sleep(600)
"""

TRY = """
import sys
from pathlib import Path
from genresort.library.lock import AlreadyRunning, InstanceLock
try:
    InstanceLock(Path(sys.argv[1])).acquire()
except AlreadyRunning as refused:
    print(f"refused: {refused}")
else:
    print("acquired")
"""


def python(script: str, state_dir: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), str(state_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def try_to_lock(state_dir: Path) -> str:
    """What a second process gets: 'acquired' or 'refused: <message>'."""
    out, errors = python(TRY, state_dir).communicate(timeout=60)
    assert not errors, errors
    return out.strip()


@pytest.fixture
def holder(tmp_path: Path):
    """A process holding the lock on tmp_path/state."""
    process = python(HOLD, tmp_path / "state")
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "locked\n", process.stderr.read() if process.stderr else ""
        yield process
    finally:
        process.kill()
        process.communicate(timeout=60)


def test_a_second_process_is_refused_with_the_holders_pid(tmp_path: Path, holder: subprocess.Popen[str]) -> None:
    answer = try_to_lock(tmp_path / "state")

    assert answer.startswith("refused:")
    assert f"pid {holder.pid}" in answer
    assert str(tmp_path / "state") in answer


def test_deleting_every_file_in_the_state_folder_does_not_let_a_second_process_in(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    state_dir = tmp_path / "state"
    for leftover in state_dir.iterdir():
        leftover.unlink()

    answer = try_to_lock(state_dir)

    assert answer.startswith(f"refused: another genresort (pid unknown) is using the state folder {state_dir}")


def test_the_lock_is_dropped_when_its_holder_is_killed(tmp_path: Path, holder: subprocess.Popen[str]) -> None:
    holder.kill()
    holder.wait(timeout=60)

    assert try_to_lock(tmp_path / "state") == "acquired"
    with InstanceLock(tmp_path / "state"):
        assert (tmp_path / "state" / PID_FILE).read_text() == f"{os.getpid()}\n"


def test_the_lock_can_be_taken_again_after_release(tmp_path: Path) -> None:
    with InstanceLock(tmp_path):
        with pytest.raises(AlreadyRunning):
            InstanceLock(tmp_path).acquire()
    with InstanceLock(tmp_path):
        pass


def test_moves_are_one_at_a_time_beside_a_running_instance_and_the_lock_dies_with_its_holder(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    state_dir = tmp_path / "state"  # the instance lock is held: moves have their own
    first, second = MovesLock(state_dir), MovesLock(state_dir)
    assert first.try_acquire()
    assert not second.try_acquire()
    with pytest.raises(MovesBusy, match="another undo or assign"):
        second.acquire(wait_seconds=0.1)
    first.release()
    second.acquire(wait_seconds=0.1)
    second.release()

    moving = python(HOLD_MOVES, state_dir)
    assert moving.stdout is not None and moving.stdout.readline() == "locked\n"
    assert not first.try_acquire()
    moving.send_signal(signal.SIGKILL)
    moving.wait(timeout=60)
    first.acquire(wait_seconds=5)
    first.release()
