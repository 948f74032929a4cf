"""The log file: every line kept across logrotate's rename and copytruncate, and a clear refusal when the
configured path cannot be a log file."""

from __future__ import annotations

import io
import json
import os
import pty
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from genresort.config import ConfigError
from genresort.logs import LogFile, configure_logging, get_logger
from genresort.service.startup import FOLDER_KEYS


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


@pytest.fixture
def log(tmp_path: Path) -> Iterator[LogFile]:
    log_file = LogFile(tmp_path / "logs" / "genresort.log")
    yield log_file
    log_file.close()


def test_the_folder_is_created_and_lines_are_appended(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "genresort.log"
    path.parent.mkdir()
    path.write_text("an earlier run\n")
    log_file = LogFile(path)
    log_file.write("one\n")
    log_file.flush()
    assert lines(path) == ["an earlier run", "one"]
    log_file.close()


def test_after_logrotate_renames_the_file_new_lines_go_to_a_new_file(log: LogFile) -> None:
    log.write("before\n")
    log.flush()
    os.rename(log.path, log.path.with_suffix(".log.1"))
    log.write("after\n")
    log.flush()
    assert lines(log.path.with_suffix(".log.1")) == ["before"]
    assert lines(log.path) == ["after"]


def test_after_logrotate_renames_and_creates_the_file_new_lines_go_to_the_created_file(log: LogFile) -> None:
    """logrotate's default `create` mode: rename, then an empty file with the old mode at the path."""
    log.write("before\n")
    log.flush()
    os.rename(log.path, log.path.with_suffix(".log.1"))
    log.path.touch(mode=0o640)
    log.write("after\n")
    log.flush()
    assert lines(log.path.with_suffix(".log.1")) == ["before"]
    assert lines(log.path) == ["after"] and log.path.stat().st_mode & 0o777 == 0o640


def test_after_the_file_is_removed_new_lines_go_to_a_new_file(log: LogFile) -> None:
    log.write("before\n")
    log.flush()
    log.path.unlink()
    log.write("after\n")
    log.flush()
    assert lines(log.path) == ["after"]


def test_after_copytruncate_new_lines_start_at_the_beginning(log: LogFile) -> None:
    """copytruncate copies the file and truncates it in place: the same file stays open, and appending puts the
    next line at the new end instead of at the old offset behind a hole of NUL bytes."""
    log.write("first\nsecond\n")
    log.flush()
    shutil.copy(log.path, log.path.with_suffix(".log.1"))
    os.truncate(log.path, 0)
    log.write("third\n")
    log.flush()
    assert lines(log.path.with_suffix(".log.1")) == ["first", "second"]
    assert log.path.read_bytes() == b"third\n"


def test_configured_logging_writes_json_lines_to_the_stream_and_the_file(tmp_path: Path) -> None:
    stream = io.StringIO()
    try:
        configure_logging(tmp_path / "genresort.log", stream=stream)
        get_logger().info("file.sorted", source="/in/a.mp3")
        os.rename(tmp_path / "genresort.log", tmp_path / "genresort.log.1")
        get_logger().info("file.sorted", source="/in/b.mp3")
    finally:
        structlog.reset_defaults()
    assert [json.loads(line)["source"] for line in stream.getvalue().splitlines()] == ["/in/a.mp3", "/in/b.mp3"]
    assert json.loads(lines(tmp_path / "genresort.log.1")[0])["source"] == "/in/a.mp3"
    assert json.loads(lines(tmp_path / "genresort.log")[0])["source"] == "/in/b.mp3"


@pytest.mark.parametrize(
    "where, reason",
    [
        ("folder", "Is a directory"),
        ("under_a_file", "Not a directory"),
        # sysfs refuses new files even to root: a path nobody can create, without changing users
        ("/sys/genresort.log", "Permission denied"),
    ],
)
def test_a_log_file_that_cannot_be_opened_is_refused_naming_the_key(tmp_path: Path, where: str, reason: str) -> None:
    (tmp_path / "folder").mkdir()
    (tmp_path / "a_file").write_text("")
    path = {"folder": tmp_path / "folder", "under_a_file": tmp_path / "a_file" / "genresort.log"}.get(
        where, Path(where)
    )
    with pytest.raises(ConfigError, match=f"log_file {path} cannot be opened for appending: {reason}"):
        LogFile(path)


def test_the_daemon_refuses_a_folder_as_log_file_with_exit_code_2_and_no_traceback(tmp_path: Path) -> None:
    config = tmp_path / "genresort.toml"
    folders = "\n".join(f'{key} = "{key}"' for key in FOLDER_KEYS)  # every folder here, none of them real
    config.write_text(f'{folders}\nlog_file = "."\n')
    environment = {key: value for key, value in os.environ.items() if not key.startswith("GENRESORT_")}
    for command in ("sort", "watch"):
        result = subprocess.run(
            [sys.executable, "-m", "genresort.cli", command, "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
            env=environment,
        )
        assert result.returncode == 2, result.stderr
        assert f"log_file {tmp_path} cannot be opened for appending: Is a directory" in result.stderr
        assert "Traceback" not in result.stderr
        assert not (tmp_path / "inbox").exists()  # refused before anything was touched


def test_on_a_terminal_the_log_is_written_for_a_person_and_the_log_file_stays_json(tmp_path: Path) -> None:
    reader, writer = pty.openpty()
    with open(writer, "w", encoding="utf-8", closefd=True) as terminal:
        configure_logging(tmp_path / "sorting.log", stream=terminal)
        try:
            get_logger().info("file.sorted", source="/inbox/a.mp3", top=[["Jazz", 0.9]])
        finally:
            configure_logging(stream=io.StringIO())  # the logger is global: never leave it on a closed terminal
    shown = os.read(reader, 4096).decode()
    os.close(reader)
    assert ' info    file.sorted  source=/inbox/a.mp3 top=[["Jazz", 0.9]]' in shown and "{" not in shown
    (line,) = (tmp_path / "sorting.log").read_text().splitlines()
    assert json.loads(line)["event"] == "file.sorted"
