"""The sorting log: JSON lines on stdout (journald picks them up) and optionally in a file.

One line per outcome, with a stable event name (`file.sorted`, `file.unsure`, `file.duplicate`,
`file.quarantined`, `file.retry`, `daemon.ready`, `daemon.stopping`, ...) so people and scripts can filter.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import TextIO

import structlog


class JsonLinesWriter:
    """Writes each rendered line to every stream and flushes, so nothing is lost to a crash."""

    def __init__(self, streams: list[TextIO]) -> None:
        self._streams = streams
        self._lock = threading.Lock()

    def msg(self, message: str) -> None:
        with self._lock:
            for stream in self._streams:
                stream.write(message + "\n")
                stream.flush()

    log = debug = info = warning = warn = error = critical = exception = msg


def configure_logging(log_file: Path | None = None, stream: TextIO = sys.stdout) -> None:
    streams = [stream]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        streams.append(open(log_file, "a", encoding="utf-8"))
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


def get_logger() -> structlog.typing.FilteringBoundLogger:
    return structlog.get_logger()


def path_text(path: Path) -> str:
    """A path as text that can always be written: bytes that are not UTF-8 (old drives, SMB shares) are shown as
    \\xNN escapes instead of the lone surrogates Python decodes them to, which no UTF-8 stream accepts."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")
