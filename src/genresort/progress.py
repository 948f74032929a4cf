"""A one-line progress bar on stderr for the batch commands (sort, classify, train, evaluate), drawn only when stderr
is a terminal: a pipe, a log file or journald gets nothing extra, and stdout is never touched."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TextIO

BAR_WIDTH = 30


class ProgressBar:
    """`done/total` as a bar on one line of `stream` (default stderr), if that is a terminal and there is more than
    one thing to do (a bar for one file says nothing).

    Each drawing leaves the cursor at the start of the bar's line, so that a line someone else writes to the same
    terminal meanwhile (a sorting log line on stdout, from a worker) overwrites the bar rather than being glued to
    its end; the next drawing puts the bar back below it. Whoever writes a line of their own between drawings
    can `clear()` the bar first, so that a short line leaves no trace of it.
    """

    def __init__(self, total: int, label: str, stream: TextIO | None = None) -> None:
        self.total = total
        self.label = label
        self.stream = sys.stderr if stream is None else stream
        self.shown = self.stream.isatty() and total > 1
        self._line = ""  # what is on the terminal now

    def draw(self, done: int) -> None:
        if not self.shown:
            return
        filled = BAR_WIDTH * min(done, self.total) // self.total
        line = f"{self.label} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{self.total}"
        if line != self._line:
            self._line = line
            self.stream.write(f"\r{line}\r")
            self.stream.flush()

    def clear(self) -> None:
        """Blank the bar's line, before writing a line of one's own."""
        if self._line:
            self.stream.write(f"\r{' ' * len(self._line)}\r")
            self.stream.flush()
            self._line = ""

    def finish(self) -> None:
        """Leave the bar as last drawn on a line of its own."""
        if self._line:
            self.stream.write("\n")
            self.stream.flush()
            self._line = ""


def progress(items: Iterable, total: int, label: str) -> Iterator:
    """Yield `items`, drawing a progress bar on stderr (when it is a terminal) as each one is done."""
    bar = ProgressBar(total, label)
    for done, item in enumerate(items, start=1):
        yield item
        bar.draw(done)
    bar.finish()
