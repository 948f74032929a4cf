"""`genresort report`: the journal's files per decision and genre, quarantine reasons, people's corrections,
throughput and busiest hours, as text and as one self-contained HTML page; read while the state folder is locked."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest

from conftest import write_mp3
from daemon_harness import Folders
from genresort.library.journal import FileRecord, HistoryEntry, Journal, Step
from genresort.library.lock import InstanceLock
from genresort.service.report import as_html, as_text, build_report

SHA = "c" * 64
UNSURE, NOT_MUSIC, LIBRARY = Path("/music/unsure"), Path("/music/not-music-folder"), Path("/music/library")
LABELS = {UNSURE: "unsure", NOT_MUSIC: "not-music"}


def genresort(folders: Folders, *arguments: str, **settings: object) -> subprocess.CompletedProcess[str]:
    """Run a command on these folders (every sound music, every genre sure unless `settings` say otherwise)."""
    return subprocess.run(
        [sys.executable, "-m", "genresort.cli", *arguments],
        env=folders.env(**({"confidence_threshold": 0.0} | settings)),
        capture_output=True,
        text=True,
        timeout=300,
    )


def events(result: subprocess.CompletedProcess[str]) -> dict[str, list[dict]]:
    """The JSON log lines of a run, by event."""
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    by_event: dict[str, list[dict]] = {}
    for line in lines:
        by_event.setdefault(line["event"], []).append(line)
    return by_event


def has_row(text: str, *cells: object) -> bool:
    """Whether one line of a text table holds exactly these cells, in order."""
    pattern = r"\s{2,}".join(re.escape(str(cell)) for cell in cells)
    return re.search(rf"^ *{pattern}$", text, re.MULTILINE) is not None


def test_a_day_of_sorting_and_correcting_is_reported_as_text_and_as_one_html_page(tmp_path: Path) -> None:
    folders = Folders(tmp_path / "music")
    originals = tmp_path / "originals"
    for seed, name in enumerate(["a.mp3", "b.mp3", "c.mp3", "d.mp3", "e.mp3"], start=1):
        write_mp3(originals / name, seconds=6, sample_rate=22050, channels=1, seed=seed)  # > 5 s: may be not music
    for name in ["a.mp3", "b.mp3", "c.mp3"]:
        shutil.copyfile(originals / name, folders.inbox / name)
    (folders.inbox / "<b>& notes.mp3").write_text("a shopping list, not a song\n")

    first = events(genresort(folders, "sort"))
    sorted_to = {Path(line["source"]).name: Path(line["destination"]) for line in first["file.sorted"]}
    assert set(sorted_to) == {"a.mp3", "b.mp3", "c.mp3"}
    (quarantined,) = first["file.quarantined"]

    shutil.copyfile(originals / "a.mp3", folders.inbox / "a again.mp3")
    for name in ["d.mp3", "e.mp3"]:
        shutil.copyfile(originals / name, folders.inbox / name)
    second = events(genresort(folders, "sort", music_threshold=1.0))  # every sound below it: not music
    assert len(second["file.duplicate"]) == 1 and len(second["file.not_music"]) == 2
    not_music = {Path(line["source"]).name: Path(line["destination"]) for line in second["file.not_music"]}

    assert genresort(folders, "assign", str(sorted_to["b.mp3"]), "Polka").returncode == 0  # a correction
    assert genresort(folders, "assign", str(not_music["d.mp3"]), "Jazz").returncode == 0  # a person decides
    assert genresort(folders, "undo", str(sorted_to["c.mp3"])).returncode == 0

    page = tmp_path / "report.html"
    with InstanceLock(folders.state):  # as the running daemon holds it: the report reads all the same
        result = genresort(folders, "report", "--html", str(page))
    assert result.returncode == 0, result.stderr
    text = result.stdout

    assert text.startswith("7 files, last changed from ")
    for decision, files in [
        ("sorted", 1),
        ("unsure", 0),
        ("not-music", 1),
        ("duplicate", 1),
        ("quarantined", 1),
        ("undone", 1),
        ("assigned", 2),
    ]:
        assert has_row(text, decision, files), text
    for genre, files in Counter([sorted_to["a.mp3"].parent.name, "Polka", "Jazz"]).items():
        assert has_row(text, genre, files), text
    assert has_row(text, 1, quarantined["reason"], "<b>& notes.mp3"), text
    assert has_row(text, sorted_to["b.mp3"].parent.name, "Polka", 1), text
    assert has_row(text, "not-music", "Jazz", 1), text  # its folder is named not_music: the label is the setting's
    assert "Given back by undo: 1" in text
    days = re.search(r"^Files per day\nday\s+files\n-+\s+-+\n((?:.+\n)+)", text, re.MULTILINE).group(1)
    assert sum(int(line.split()[1]) for line in days.splitlines()) == 7  # today (and yesterday, run at midnight)
    assert re.search(r"^Busiest hours\nhour\s+files\n-+\s+-+\n\d\d:00\s+\d+$", text, re.MULTILINE)

    document = page.read_text()
    assert document.startswith("<!DOCTYPE html>") and document.count("<svg") == 4
    for outside in ("http", "<script", "src=", "href=", "url(", "@import"):
        assert outside not in document
    assert "&lt;b&gt;&amp; notes.mp3" in document and "<b>&" not in document
    assert "Polka" in document and quarantined["reason"] in document
    assert not list(tmp_path.glob(".*.tmp"))  # the temporary page was renamed over the real one

    later = genresort(folders, "report", "--since", "2999-01-01")
    assert later.returncode == 0 and later.stdout == "No file finished since 2999-01-01 00:00.\n"


def test_without_a_journal_yet_the_report_says_so_and_creates_none(tmp_path: Path) -> None:
    folders = Folders(tmp_path / "music")
    result = genresort(folders, "report")
    assert result.returncode == 2 and result.stdout == ""
    assert "there is no journal at" in result.stderr and "nothing was sorted" in result.stderr
    assert not (folders.state / "journal.sqlite3").exists()


def test_a_since_that_is_no_date_is_refused(tmp_path: Path) -> None:
    result = genresort(Folders(tmp_path / "music"), "report", "--since", "yesterday")
    assert result.returncode == 2 and "report --since 'yesterday' is not a date or time" in result.stderr


# --- the pure part, on records made by hand ---------------------------------------------------------------------


def finished(
    at: float,
    outcome: str,
    destination: Path,
    step: Step = Step.DONE,
    error: str | None = None,
    source: str = "song.mp3",
) -> FileRecord:
    return FileRecord(
        id=0,
        source=Path("/music/inbox") / source,
        sha256=SHA,
        size=1,
        mtime_ns=1,
        step=step,
        staged_path=None,
        destination=destination,
        outcome=outcome,
        attempts=0,
        last_error=error,
        updated_at=at,
    )


def entry(record: FileRecord, assigned_from: Path | None = None) -> HistoryEntry:
    return HistoryEntry(record, assigned_from)


@pytest.fixture
def five_hours_east_of_utc(monkeypatch: pytest.MonkeyPatch):
    """A local time zone that is not UTC, so that hours and days read in UTC would be found out."""
    monkeypatch.setenv("TZ", "XYZ-5")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_decisions_genres_reasons_and_corrections_are_counted(five_hours_east_of_utc) -> None:
    noon = datetime(2026, 11, 29, 12, 0).timestamp()
    entries = [
        entry(finished(noon, "sorted", LIBRARY / "Rock/1.mp3")),
        entry(finished(noon, "sorted", LIBRARY / "Rock/2.mp3")),
        entry(finished(noon, "sorted", LIBRARY / "Jazz/3.mp3")),
        entry(finished(noon, "unsure", UNSURE / "4.mp3")),
        entry(finished(noon, "not_music", NOT_MUSIC / "5.mp3")),
        entry(finished(noon, "quarantined", Path("/q/6.mp3"), Step.QUARANTINED, "damaged", "six.mp3")),
        entry(finished(noon, "quarantined", Path("/q/7.mp3"), Step.QUARANTINED, "damaged", "seven.mp3")),
        entry(finished(noon, "quarantined", Path("/q/8.mp3"), Step.QUARANTINED, "silence", "eight.mp3")),
        entry(finished(noon, "duplicate", Path("/q/duplicates/9.mp3"), Step.DUPLICATE, "same content as x")),
        entry(finished(noon, "sorted", Path("/music/inbox/10.mp3"), Step.UNDONE)),
        entry(finished(noon, "assigned", LIBRARY / "Blues/11.mp3"), UNSURE / "11.mp3"),
        entry(finished(noon, "assigned", LIBRARY / "Blues/12.mp3"), LIBRARY / "Rock/12.mp3"),
        entry(finished(noon, "assigned", LIBRARY / "Jazz/13.mp3"), NOT_MUSIC / "13.mp3"),
    ]
    report = build_report(entries, LIBRARY, LABELS)

    assert report.files == 13 and report.undone == 1
    assert dict(report.decisions) == {
        "sorted": 3,
        "unsure": 1,
        "not-music": 1,
        "duplicate": 1,
        "quarantined": 3,
        "undone": 1,
        "assigned": 3,
    }
    assert report.genres == (("Blues", 2), ("Jazz", 2), ("Rock", 2))
    assert [(reason.text, reason.files, reason.examples) for reason in report.reasons] == [
        ("damaged", 2, ("six.mp3", "seven.mp3")),
        ("silence", 1, ("eight.mp3",)),
    ]
    assert {(fix.label, fix.genre, fix.files) for fix in report.corrections} == {
        ("unsure", "Blues", 1),
        ("Rock", "Blues", 1),
        ("not-music", "Jazz", 1),
    }
    assert report.files_per_hour is None  # all at one moment: no rate
    text = as_text(report)
    assert has_row(text, 2, "damaged", "six.mp3, seven.mp3") and has_row(text, "unsure", "Blues", 1)
    assert "Throughput" not in text


def test_busiest_hours_days_and_throughput_are_in_local_time(five_hours_east_of_utc) -> None:
    moments = [
        datetime(2026, 11, 28, 23, 30),
        datetime(2026, 11, 29, 9, 10),
        datetime(2026, 11, 29, 9, 40),
        datetime(2026, 11, 29, 14, 0),
        datetime(2026, 11, 29, 14, 20),
        datetime(2026, 11, 29, 14, 50),
    ]
    entries = [entry(finished(moment.timestamp(), "sorted", LIBRARY / "Rock/x.mp3")) for moment in moments]
    report = build_report(entries, LIBRARY, LABELS, since=datetime(2026, 11, 28).timestamp())

    assert report.busiest_hours == [(14, 3), (9, 2), (23, 1)]
    assert sum(report.hours) == 6 and len(report.hours) == 24
    assert report.days == (("2026-11-28", 1), ("2026-11-29", 5))
    assert report.files_per_hour == pytest.approx(6 / (15 + 20 / 60))  # 23:30 to 14:50
    text = as_text(report)
    assert text.startswith("6 files since 2026-11-28 00:00, last changed from 2026-11-28 23:30 to 2026-11-29 14:50.")
    assert "Throughput: 0.4 files per hour over that period." in text
    assert re.search(r"^Busiest hours\nhour\s+files\n-+\s+-+\n14:00\s+3\n09:00\s+2\n23:00\s+1$", text, re.M)
    assert has_row(text, "2026-11-29", 5)
    assert as_html(report).count("<svg") == 4


def test_nothing_finished_is_said_in_one_line_and_on_a_page_without_charts() -> None:
    report = build_report([], LIBRARY, LABELS, since=datetime(2026, 11, 29, 14, 0).timestamp())
    assert as_text(report) == "No file finished since 2026-11-29 14:00.\n"
    assert "<svg" not in as_html(report) and "No file finished" in as_html(report)


def test_the_journal_history_keeps_finished_records_since_a_time_with_where_an_assigned_file_was(
    tmp_path: Path,
) -> None:
    with Journal(tmp_path / "journal.sqlite3") as journal:

        def place(name: str, folder: Path) -> FileRecord:
            record = journal.claim(Path("/music/inbox") / name, SHA, 1, 1)
            journal.advance(record.id, Step.STAGED, staged_path=tmp_path / f".{name}")
            journal.advance(record.id, Step.PLACING, destination=folder, outcome="unsure")
            journal.advance(record.id, Step.PLACED, destination=folder / name)
            return journal.advance(record.id, Step.DONE)

        before = place("before.mp3", UNSURE)
        since = time.time()
        after = place("after.mp3", UNSURE)
        journal.begin_move(after.id, tmp_path / ".moving.mp3", LIBRARY / "Jazz", "assigned")
        journal.advance(after.id, Step.DONE, destination=LIBRARY / "Jazz/after.mp3", outcome="assigned")
        journal.claim(Path("/music/inbox/unfinished.mp3"), "d" * 64, 1, 1)

        everything = journal.history()
        recent = journal.history(since)

    assert [item.record.id for item in everything] == [before.id, after.id]  # the unfinished one is left out
    assert everything[0].assigned_from is None
    assert [(item.record.id, item.assigned_from) for item in recent] == [(after.id, UNSURE / "after.mp3")]
    (correction,) = build_report(recent, LIBRARY, LABELS, since).corrections
    assert (correction.label, correction.genre, correction.files) == ("unsure", "Jazz", 1)
