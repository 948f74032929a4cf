"""`genresort report`: what the journal says of the sorting, for a person: files per genre and per decision, why
files were quarantined, people's corrections, throughput and the busiest hours. As aligned tables for a terminal,
and as one self-contained HTML page (inline CSS, bar charts drawn here as inline SVG: no script, nothing fetched)
that can be mailed or opened from a share as it is.

The journal is read without the state folder's lock, so the report works while the daemon sorts. Each file counts
once, as it is now (an assigned file under `assigned`, not also under `sorted`), at the time of its last change.
"""

from __future__ import annotations

import html
import sys
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from structlog.typing import FilteringBoundLogger

from genresort.analysis.decision import NOT_MUSIC, UNSURE
from genresort.config import Settings
from genresort.library.journal import FileRecord, HistoryEntry, Step
from genresort.library.layout import genre_folder
from genresort.library.placement import write_text_whole
from genresort.logs import path_text
from genresort.progress import progress
from genresort.service.moves import LABELS, UNDONE
from genresort.service.startup import JOURNAL_NAME, open_journal_unlocked
from genresort.service.supervisor import EXIT_FAILED, EXIT_OK, EXIT_REFUSED

#: The decisions a file can end in, in the report's order.
DECISIONS = ("sorted", "unsure", "not-music", "duplicate", "quarantined", "undone", "assigned")
_IN_A_GENRE = frozenset({"sorted", "assigned"})
_EXAMPLES = 3  # file names shown per quarantine reason
_BUSIEST = 5  # hours listed in the text
_SHORTEST_PERIOD = 60.0  # seconds: a rate over less (a few files in one second) says nothing of the throughput


@dataclass(frozen=True)
class Reason:
    """Why files were quarantined: how many, and the names of the first few."""

    text: str
    files: int
    examples: tuple[str, ...]


@dataclass(frozen=True)
class Correction:
    """Files a person assigned to `genre` from the label they had (a genre, `unsure` or `not-music`)."""

    label: str
    genre: str
    files: int


@dataclass(frozen=True)
class SortingReport:
    since: float | None  # the period asked for starts here (Unix time), if it was
    first: float | None  # the earliest and the latest last change of a file; None with no files
    last: float | None
    decisions: tuple[tuple[str, int], ...]  # every one of DECISIONS with its files (zero too), then any other
    genres: tuple[tuple[str, int], ...]  # most files first
    reasons: tuple[Reason, ...]  # most files first
    corrections: tuple[Correction, ...]  # most files first
    days: tuple[tuple[str, int], ...]  # (local date YYYY-MM-DD, files), oldest first
    hours: tuple[int, ...]  # files per local hour of day, 0 to 23

    @property
    def files(self) -> int:
        return sum(files for _, files in self.decisions)

    @property
    def undone(self) -> int:
        return dict(self.decisions)["undone"]

    @property
    def files_per_hour(self) -> float | None:
        """Over the period from the first file to the last; None where that period is under a minute."""
        if self.first is None or self.last is None or self.last - self.first < _SHORTEST_PERIOD:
            return None
        return self.files / ((self.last - self.first) / 3600)

    @property
    def busiest_hours(self) -> list[tuple[int, int]]:
        """(hour, files) of the hours with files, most files first (the earlier hour first on a tie)."""
        return sorted(((hour, files) for hour, files in enumerate(self.hours) if files), key=lambda pair: -pair[1])


def decision_of(record: FileRecord) -> str:
    """The decision a finished file stands at: given back (undone), or its outcome spelt as its folder is."""
    if record.step is Step.UNDONE:
        return UNDONE
    return LABELS.get(record.outcome, str(record.outcome))


def _name(path: Path) -> str:
    """The last part of a path as text that can always be written (see logs.path_text)."""
    return path_text(Path(path.name))


def _most_first(counts: Counter) -> list:
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def build_report(
    entries: Iterable[HistoryEntry], library: Path, labels: Mapping[Path, str], since: float | None = None
) -> SortingReport:
    """The report on these finished files, read once (a progress bar may follow them). A file's genre is its first
    folder below `library`; `labels` names the folders that are not genres ({unsure folder: "unsure", not-music
    folder: "not-music"}), for the label a corrected file had."""
    decisions: Counter[str] = Counter()
    genres: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    examples: dict[str, list[str]] = {}
    corrections: Counter[tuple[str, str]] = Counter()
    days: Counter[str] = Counter()
    hours = [0] * 24
    times: list[float] = []
    for entry in entries:
        record = entry.record
        decision = decision_of(record)
        decisions[decision] += 1
        if decision in _IN_A_GENRE:
            genres[_name(Path(genre_folder(record.destination, library)))] += 1
        if decision == "quarantined":
            reason = record.last_error or "no reason kept"
            reasons[reason] += 1
            examples.setdefault(reason, []).append(_name(record.source))
        if decision == "assigned":
            before = entry.assigned_from
            label = "unknown" if before is None else labels.get(before.parent) or genre_folder(before, library)
            corrections[label, _name(Path(genre_folder(record.destination, library)))] += 1
        moment = time.localtime(record.updated_at)
        days[time.strftime("%Y-%m-%d", moment)] += 1
        hours[moment.tm_hour] += 1
        times.append(record.updated_at)
    return SortingReport(
        since=since,
        first=min(times, default=None),
        last=max(times, default=None),
        decisions=tuple((decision, decisions[decision]) for decision in DECISIONS)
        + tuple(item for item in _most_first(decisions) if item[0] not in DECISIONS),
        genres=tuple(_most_first(genres)),
        reasons=tuple(Reason(text, files, tuple(examples[text][:_EXAMPLES])) for text, files in _most_first(reasons)),
        corrections=tuple(Correction(label, genre, files) for (label, genre), files in _most_first(corrections)),
        days=tuple(sorted(days.items())),
        hours=tuple(hours),
    )


# --- as text ------------------------------------------------------------------------------------------------------


def _when(moment: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(moment))


def _summary(report: SortingReport) -> list[str]:
    """The report's opening lines: how many files, over which period, at what rate."""
    since = f" since {_when(report.since)}" if report.since is not None else ""
    if not report.files:
        return [f"No file finished{since}."]
    lines = [f"{report.files} files{since}, last changed from {_when(report.first)} to {_when(report.last)}."]
    if report.files_per_hour is not None:
        lines.append(f"Throughput: {report.files_per_hour:.1f} files per hour over that period.")
    return lines


def _table(title: str, headers: Sequence[str], rows: Sequence[Sequence[str | int]]) -> str:
    """A titled table with aligned columns: numbers on the right, text on the left."""
    if not rows:
        return f"{title}: none"
    cells = [list(headers), ["-" * len(header) for header in headers]] + [[str(cell) for cell in row] for row in rows]
    numeric = [isinstance(cell, int) for cell in rows[0]]
    widths = [max(len(line[column]) for line in cells) for column in range(len(headers))]
    lines = [
        "  ".join(
            value.rjust(width) if is_number else value.ljust(width)
            for value, width, is_number in zip(line, widths, numeric, strict=True)
        ).rstrip()
        for line in cells
    ]
    return "\n".join([title, *lines])


def as_text(report: SortingReport) -> str:
    """The report as plain text for a terminal."""
    if not report.files:
        return "\n".join(_summary(report)) + "\n"
    sections = [
        "\n".join(_summary(report)),
        _table("Decisions", ("decision", "files"), report.decisions),
        _table("Genres", ("genre", "files"), report.genres),
        _table(
            "Quarantined",
            ("files", "reason", "for example"),
            [(reason.files, reason.text, ", ".join(reason.examples)) for reason in report.reasons],
        ),
        _table(
            "Corrections by people",
            ("from", "to", "files"),
            [(correction.label, correction.genre, correction.files) for correction in report.corrections],
        )
        + f"\nGiven back by undo: {report.undone}",
        _table("Files per day", ("day", "files"), report.days),
        _table(
            "Busiest hours",
            ("hour", "files"),
            [(f"{hour:02}:00", files) for hour, files in report.busiest_hours[:_BUSIEST]],
        ),
    ]
    return "\n\n".join(sections) + "\n"


# --- as one HTML page ---------------------------------------------------------------------------------------------

_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; color: #222; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; } th, td { padding: .2rem .8rem .2rem 0; text-align: left; vertical-align: top; }
td.n, th.n { text-align: right; } svg { display: block; max-width: 100%; height: auto; }
svg text { font: 12px system-ui, sans-serif; fill: #222; } svg rect { fill: #4a7bb7; }
"""
_ROW = 22  # height of a bar's row, px
_LABEL_CHARS = 32  # longer labels are cut (the whole label is in the bar's tooltip)
_CHAR = 7.0  # width of a character of the labels, roughly, px
_BAR = 360  # the longest bar, px
_COLUMN = 26  # width of an hour's column, px
_COLUMN_HEIGHT = 120  # the tallest column, px


def _bars(rows: Sequence[tuple[str, int]]) -> str:
    """A horizontal bar chart of (label, count), as inline SVG."""
    if not rows:
        return "<p>None.</p>"
    label_width = _CHAR * min(_LABEL_CHARS, max(len(label) for label, _ in rows)) + 12
    most = max(count for _, count in rows) or 1
    width, height = label_width + _BAR + 50, _ROW * len(rows)
    items = []
    for row, (label, count) in enumerate(rows):
        y, length = row * _ROW, _BAR * count / most
        shown = label if len(label) <= _LABEL_CHARS else label[: _LABEL_CHARS - 1] + "\u2026"
        items.append(
            f"<g><title>{html.escape(label)}: {count}</title>"
            f'<text x="{label_width - 8:.0f}" y="{y + 15}" text-anchor="end">{html.escape(shown)}</text>'
            f'<rect x="{label_width:.0f}" y="{y + 4}" width="{length:.1f}" height="{_ROW - 8}"/>'
            f'<text x="{label_width + length + 6:.1f}" y="{y + 15}">{count}</text></g>'
        )
    return f'<svg width="{width:.0f}" height="{height}" viewBox="0 0 {width:.0f} {height}">{"".join(items)}</svg>'


def _columns(hours: Sequence[int]) -> str:
    """Files per hour of the day as a column chart, inline SVG."""
    most = max(hours) or 1
    width, height = _COLUMN * len(hours), _COLUMN_HEIGHT + 36
    items = []
    for hour, files in enumerate(hours):
        x, tall = hour * _COLUMN, _COLUMN_HEIGHT * files / most
        top = 16 + _COLUMN_HEIGHT - tall
        middle = x + _COLUMN / 2
        count = f'<text x="{middle}" y="{top - 4:.1f}" text-anchor="middle">{files}</text>' if files else ""
        items.append(
            f"<g><title>{hour:02}:00 to {hour:02}:59: {files} files</title>{count}"
            f'<rect x="{x + 3}" y="{top:.1f}" width="{_COLUMN - 6}" height="{tall:.1f}"/>'
            f'<text x="{middle}" y="{height - 4}" text-anchor="middle">{hour:02}</text></g>'
        )
    return f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}">{"".join(items)}</svg>'


def _html_table(headers: Sequence[str], rows: Sequence[Sequence[str | int]]) -> str:
    if not rows:
        return "<p>None.</p>"

    def cell(tag: str, value: str | int, is_number: bool) -> str:
        return f"<{tag}{' class=n' if is_number else ''}>{html.escape(str(value))}</{tag}>"

    numeric = [isinstance(value, int) for value in rows[0]]
    head = "".join(cell("th", header, is_number) for header, is_number in zip(headers, numeric, strict=True))
    body = "".join(
        "<tr>" + "".join(cell("td", value, is_number) for value, is_number in zip(row, numeric, strict=True)) + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def as_html(report: SortingReport) -> str:
    """The report as one HTML page that needs nothing else: no script, no file or address it would fetch."""
    summary = "".join(f"<p>{html.escape(line)}</p>" for line in _summary(report))
    sections = []
    if report.files:
        sections = [
            ("Decisions", _bars(report.decisions)),
            ("Genres", _bars(report.genres)),
            (
                "Quarantined",
                _html_table(
                    ("files", "reason", "for example"),
                    [(reason.files, reason.text, ", ".join(reason.examples)) for reason in report.reasons],
                ),
            ),
            (
                "Corrections by people",
                _html_table(
                    ("from", "to", "files"),
                    [(correction.label, correction.genre, correction.files) for correction in report.corrections],
                )
                + f"<p>Given back by undo: {report.undone}</p>",
            ),
            ("Files per day", _bars(report.days)),
            ("Files per hour of the day", _columns(report.hours)),
        ]
    body = "".join(f"<section><h2>{title}</h2>{content}</section>" for title, content in sections)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>genresort: sorting report</title><style>{_STYLE}</style></head>"
        f"<body><h1>genresort: sorting report</h1>{summary}{body}</body></html>\n"
    )


# --- the command --------------------------------------------------------------------------------------------------


def run_report(settings: Settings, log: FilteringBoundLogger, since: float | None, page: Path | None) -> int:
    """`genresort report`: the text on stdout and, with `page`, the HTML page written there. Takes no lock."""
    journal_path = settings.state_dir / JOURNAL_NAME
    if not journal_path.is_file():  # opening would create an empty one
        print(
            f"genresort report: there is no journal at {path_text(journal_path)}: nothing was sorted with this"
            " state folder yet (is state_dir the daemon's?)",
            file=sys.stderr,
        )
        return EXIT_REFUSED
    journal = open_journal_unlocked(settings, log)
    if journal is None:
        return EXIT_REFUSED
    with journal:
        history = journal.history(since)
    labels = {settings.unsure: UNSURE, settings.not_music: NOT_MUSIC}
    report = build_report(progress(history, len(history), "report"), settings.library, labels, since)
    print(as_text(report), end="")
    if page is not None:
        try:
            write_text_whole(page, as_html(report))
        except OSError as error:
            print(f"genresort report: {path_text(page)} cannot be written: {error.strerror}", file=sys.stderr)
            return EXIT_FAILED
    return EXIT_OK
