"""The sorting log: JSON lines on stdout (journald picks them up) and optionally in a file; on a terminal, the
same lines as a person reads them.

One line per outcome, with a stable event name (`file.sorted`, `file.unsure`, `file.duplicate`,
`file.quarantined`, `file.retry`, `daemon.ready`, `daemon.stopping`, ...) so people and scripts can filter.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path
from typing import TextIO

import structlog

from genresort.config import ConfigError


class JsonLinesWriter:
    """Writes each rendered line to every stream and flushes, so nothing is lost to a crash."""

    def __init__(self, streams: list[TextIO | LogFile]) -> None:
        self._streams = streams
        self._lock = threading.Lock()

    def msg(self, message: str) -> None:
        with self._lock:
            for stream in self._streams:
                stream.write((human_line(json.loads(message)) if is_terminal(stream) else message) + "\n")
                stream.flush()

    log = debug = info = warning = warn = error = critical = exception = msg


class LogFile:
    """The log file, opened for appending, that follows logrotate.

    Before each line it checks that the path still names the file it holds open; when logrotate has renamed or
    removed it (its default `create` mode), the line goes to a new file at the path. Appending (O_APPEND) keeps
    `copytruncate` working too: after the truncation the next line lands at the new end, not at the old offset.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stream = open_for_appending(path)

    def write(self, text: str) -> None:
        if self._rotated():
            self._reopen()
        self._stream.write(text)

    def flush(self) -> None:
        self._stream.flush()

    def close(self) -> None:
        self._stream.close()

    def _rotated(self) -> bool:
        try:
            named = os.stat(self.path)
        except FileNotFoundError:
            return True
        held = os.fstat(self._stream.fileno())
        return (named.st_dev, named.st_ino) != (held.st_dev, held.st_ino)

    def _reopen(self) -> None:
        """A new file at the path; if it cannot be made, lines keep going to the old one rather than nowhere."""
        try:
            stream = open(self.path, "a", encoding="utf-8")
        except OSError:
            return
        self._stream.close()
        self._stream = stream


def open_for_appending(path: Path) -> TextIO:
    """The log file opened for appending (its folder created); ConfigError naming `log_file` if it cannot be."""
    try:
        if not path.parent.exists():
            path.parent.mkdir(parents=True)
        return open(path, "a", encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"log_file {path_text(path)} cannot be opened for appending: {error.strerror}") from error


def configure_logging(log_file: Path | None = None, stream: TextIO = sys.stdout) -> None:
    streams: list[TextIO | LogFile] = [stream]
    if log_file is not None:
        streams.append(LogFile(log_file))
    writer = JsonLinesWriter(streams)
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.EventRenamer("event"),
            structlog.processors.JSONRenderer(sort_keys=False, default=str),
        ],
        logger_factory=lambda *args: writer,
        cache_logger_on_first_use=False,
    )


def is_terminal(stream: TextIO | LogFile) -> bool:
    """A person at a terminal reads the log, not a program: JSON lines only go where they are not on a terminal."""
    return not isinstance(stream, LogFile) and stream.isatty()


def human_line(record: dict) -> str:
    """One log line as a person reads it: the time (UTC), the level, the event, then the fields as key=value."""
    time = str(record.pop("timestamp", ""))[11:19]
    level = record.pop("level", "")
    event = record.pop("event", "")
    fields = " ".join(
        f"{key}={value if isinstance(value, str) else json.dumps(value)}" for key, value in record.items()
    )
    return f"{time} {level:<7} {event}  {fields}".rstrip()


def get_logger() -> structlog.typing.FilteringBoundLogger:
    return structlog.get_logger()


def path_text(path: Path) -> str:
    """A path as text that can always be written: bytes that are not UTF-8 (old drives, SMB shares) are shown as
    \\xNN escapes instead of the lone surrogates Python decodes them to, which no UTF-8 stream accepts."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")
