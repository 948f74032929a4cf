"""The batch commands' progress bar: drawn when stderr is a terminal (a real pseudo-terminal), absent when it is a
pipe, and never a change to the JSON lines on stdout."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import threading
from pathlib import Path

import genresort.progress
import genresort.training.dataset
from conftest import make_mp3
from daemon_harness import Folders
from genresort.progress import BAR_WIDTH, ProgressBar, progress


def read_until_closed(master: int) -> bytes:
    """All a pseudo-terminal receives until every program writing to it has closed it."""
    received = bytearray()
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: all read, and the other end closed
            return bytes(received)
        if not chunk:
            return bytes(received)
        received.extend(chunk)


class Terminal:
    """A pseudo-terminal: `stream` is its end a program writes to; `said()` closes it and tells all the terminal
    received (the terminal passes it on in pieces)."""

    def __init__(self) -> None:
        self.master, slave = pty.openpty()
        self.stream = open(slave, "w")

    def said(self) -> str:
        self.stream.close()
        return read_until_closed(self.master).decode()

    def close(self) -> None:
        self.stream.close()
        os.close(self.master)


def test_the_bar_counts_done_and_total_on_a_terminal_and_ends_on_a_line_of_its_own() -> None:
    terminal = Terminal()
    try:
        bar = ProgressBar(4, "sort", terminal.stream)
        bar.draw(0)
        bar.draw(2)
        bar.draw(2)  # unchanged: not drawn again
        bar.draw(4)
        bar.finish()
        said = terminal.said()
    finally:
        terminal.close()
    half = "#" * (BAR_WIDTH // 2) + "." * (BAR_WIDTH // 2)
    assert said == (
        f"\rsort [{'.' * BAR_WIDTH}] 0/4\r"
        f"\rsort [{half}] 2/4\r"
        f"\rsort [{'#' * BAR_WIDTH}] 4/4\r"
        "\r\n"  # the terminal's own \r before \n
    )


def test_clear_blanks_the_bar_so_that_a_short_line_leaves_no_trace_of_it() -> None:
    terminal = Terminal()
    try:
        bar = ProgressBar(3, "classify", terminal.stream)
        bar.draw(1)
        bar.clear()
        bar.finish()  # nothing drawn since the clear: no empty line
        said = terminal.said()
    finally:
        terminal.close()
    drawn = f"classify [{'#' * (BAR_WIDTH // 3)}{'.' * (BAR_WIDTH - BAR_WIDTH // 3)}] 1/3"
    assert said == f"\r{drawn}\r\r{' ' * len(drawn)}\r"


def test_nothing_is_drawn_for_one_file_or_on_a_pipe(tmp_path: Path) -> None:
    terminal = Terminal()
    try:
        single = ProgressBar(1, "classify", terminal.stream)
        single.draw(1)
        single.finish()
        terminal.stream.write("end")
        assert terminal.said() == "end"
    finally:
        terminal.close()
    with open(tmp_path / "stderr", "w") as file:
        bar = ProgressBar(5, "sort", file)
        for done in range(6):
            bar.draw(done)
        bar.finish()
    assert (tmp_path / "stderr").read_text() == ""


def test_training_draws_the_shared_bar() -> None:
    assert genresort.training.dataset.progress is genresort.progress.progress
    assert list(progress(iter("abc"), 3, "features")) == ["a", "b", "c"]


# --- the commands, as a person runs them on a terminal --------------------------------------------------------


def run(command: list[str], env: dict[str, str] | None, stderr_on_terminal: bool) -> tuple[int, str, str]:
    """Run `genresort COMMAND...` with stdout a pipe and stderr a pseudo-terminal or a pipe: (exit status,
    stdout, stderr)."""
    arguments = [sys.executable, "-m", "genresort.cli", *command]
    if not stderr_on_terminal:
        result = subprocess.run(arguments, env=env, capture_output=True, text=True, timeout=120)
        return result.returncode, result.stdout, result.stderr
    master, slave = pty.openpty()
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(read_until_closed(master)))
    reader.start()
    try:
        process = subprocess.Popen(arguments, env=env, stdout=subprocess.PIPE, stderr=slave, text=True)
        os.close(slave)
        stdout, _ = process.communicate(timeout=120)
        reader.join(timeout=30)
    finally:
        os.close(master)
    return process.returncode, stdout, b"".join(received).decode()


def songs(folder: Path, count: int) -> list[Path]:
    return [
        make_mp3(folder / f"album {number // 2}" / f"song {number}.mp3", seed=9100 + number) for number in range(count)
    ]


def test_classify_on_many_files_draws_a_bar_on_a_terminal_only_and_prints_the_same_lines(tmp_path: Path) -> None:
    songs(tmp_path / "music", 3)
    command = ["classify", "--json", str(tmp_path / "music")]
    on_terminal = run(command, None, stderr_on_terminal=True)
    on_pipe = run(command, None, stderr_on_terminal=False)
    assert on_terminal[0] == on_pipe[0] == 0, on_terminal[2] + on_pipe[2]
    assert on_terminal[1] == on_pipe[1] and len(on_pipe[1].splitlines()) == 3
    assert f"classify [{'#' * BAR_WIDTH}] 3/3" in on_terminal[2]
    assert on_pipe[2] == ""


def test_classify_on_one_file_draws_no_bar(tmp_path: Path) -> None:
    (song,) = songs(tmp_path, 1)
    status, stdout, stderr = run(["classify", str(song)], None, stderr_on_terminal=True)
    assert status == 0 and stdout.startswith(f"{song}: ")
    assert stderr == ""


def test_a_failure_is_said_on_a_clean_line_of_the_terminal(tmp_path: Path) -> None:
    first, second = songs(tmp_path, 2)
    broken = tmp_path / "broken.mp3"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(1000))
    status, _, stderr = run(["classify", str(first), str(broken), str(second)], None, stderr_on_terminal=True)
    assert status == 1
    pieces = stderr.replace("\n", "\r").split("\r")
    said = next(index for index, piece in enumerate(pieces) if "broken.mp3" in piece)
    assert pieces[said].startswith(f"genresort: {broken}: not an audio file"), stderr
    first_bar = f"classify [{'#' * (BAR_WIDTH // 3)}{'.' * (BAR_WIDTH - BAR_WIDTH // 3)}] 1/3"
    assert first_bar in pieces[:said] and pieces[said - 1] == " " * len(first_bar), stderr  # blanked out first
    assert f"classify [{'#' * BAR_WIDTH}] 3/3" in stderr


def comparable(stdout: str) -> list[dict]:
    """The JSON lines of a pass, without what the clock decides (times, and the order the workers finished in)."""
    lines = [json.loads(line) for line in stdout.splitlines()]
    for line in lines:
        line.pop("timestamp", None)
        line.pop("seconds", None)
    return sorted(lines, key=lambda line: json.dumps(line, sort_keys=True))


def test_sort_draws_a_bar_on_a_terminal_only_and_logs_the_same_lines(tmp_path: Path) -> None:
    folders = Folders(tmp_path / "genresort")
    songs(folders.inbox, 3)
    env = folders.env(stability_seconds=0.5, confidence_threshold=0.0)
    command = ["sort", "--dry-run", "--config", str(folders.config_file)]
    on_terminal = run(command, env, stderr_on_terminal=True)
    on_pipe = run(command, env, stderr_on_terminal=False)
    assert on_terminal[0] == on_pipe[0] == 0, on_terminal[2] + on_pipe[2]
    assert comparable(on_terminal[1]) == comparable(on_pipe[1])
    assert len([line for line in comparable(on_pipe[1]) if line.get("dry_run")]) == 3
    assert f"sort [{'#' * BAR_WIDTH}] 3/3" in on_terminal[2]
    assert on_pipe[2] == ""

    status, stdout, stderr = run(["sort", "--config", str(folders.config_file)], env, stderr_on_terminal=True)
    assert status == 0, stderr
    events = [json.loads(line)["event"] for line in stdout.splitlines()]
    assert events.count("file.sorted") + events.count("file.unsure") == 3 and events[-1] == "scan.finished", stdout
    assert f"sort [{'#' * BAR_WIDTH}] 3/3" in stderr
    assert not list(folders.inbox.rglob("*.mp3"))

    report = ["report", "--config", str(folders.config_file)]
    on_terminal, on_pipe = run(report, env, stderr_on_terminal=True), run(report, env, stderr_on_terminal=False)
    assert on_terminal[0] == on_pipe[0] == 0 and on_terminal[1] == on_pipe[1], on_terminal[2] + on_pipe[2]
    assert f"report [{'#' * BAR_WIDTH}] 3/3" in on_terminal[2] and on_pipe[2] == ""
