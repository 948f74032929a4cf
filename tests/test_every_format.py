"""Every common format, as a new user drops them into a running daemon: MP3, FLAC, Ogg Vorbis, Opus, M4A (AAC and
ALAC), raw AAC, AIFF, WAV and WMA are sorted and tagged in their own genre field, the audio untouched; content
decides, not the name; a file that is no audio is never silently left (said once, kept or quarantined as
unknown_files says); and what cannot be heard goes to quarantine with its own reason."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from audio_files import AUDIO_FORMATS, ENCODINGS, content_encryption, write_audio
from daemon_harness import Daemon, Folders, drop
from genresort.library.formats import format_of
from genresort.library.tags import audio_payload_sha256, read_genres

TAGS = {"title": "Night Train", "artist": "Oscar Peterson", "genre": "Old Genre"}
NOTES = b"Track list\n1. Night Train\n2. C Jam Blues\n" * 40


def genresort(folders: Folders, env: dict[str, str], *arguments: str) -> subprocess.CompletedProcess:
    """`genresort ARGUMENTS... --config <the folders' file>`, run for real."""
    command = [sys.executable, "-m", "genresort.cli", *arguments, "--config", str(folders.config_file)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real file of each format, tagged as FFmpeg tags them; an MP3 under an M4A's name; a text file; an M4A
    cut in half; a WMA with Windows Media DRM."""
    folder = tmp_path_factory.mktemp("made")
    for number, audio_format in enumerate(AUDIO_FORMATS):
        write_audio(
            folder / f"{audio_format}{ENCODINGS[audio_format].extension}", audio_format, 8.0, tags=TAGS, seed=number
        )
    write_audio(folder / "disguised.m4a", "mp3", 8.0, tags=TAGS, seed=99)
    (folder / "notes.txt").write_bytes(NOTES)
    whole = write_audio(folder / "whole.m4a", "m4a-aac", 30.0).read_bytes()
    (folder / "truncated.m4a").write_bytes(whole[: len(whole) // 2])
    (folder / "whole.m4a").unlink()
    (folder / "locked.wma").write_bytes(content_encryption((folder / "wma.wma").read_bytes()))
    return folder


def test_a_running_daemon_sorts_every_format_says_why_of_the_rest_and_leaves_no_file_silently(
    made: Path, tmp_path: Path
) -> None:
    folders = Folders(tmp_path / "music")
    daemon = Daemon(folders, folders.env(confidence_threshold=0.0, stability_seconds=0.5, rescan_seconds=1.0))
    try:
        daemon.wait_ready()
        dropped = {path.name: drop(path, folders.inbox / path.name) for path in sorted(made.iterdir())}
        outcomes = {name: daemon.wait_outcome(path) for name, path in dropped.items() if name != "notes.txt"}
        skipped = daemon.wait_for(lambda: daemon.about(dropped["notes.txt"], "file.skipped"), "notes.txt skipped")
        scans = len(daemon.logs("scan.finished"))
        daemon.wait_for(lambda: len(daemon.logs("scan.finished")) >= scans + 2, "two more scans of the inbox")
        assert daemon.terminate() == 0
    finally:
        daemon.close()

    for name, outcome in outcomes.items():
        if name in ("truncated.m4a", "locked.wma"):
            continue
        assert outcome["event"] == "file.sorted", outcome
        placed = Path(outcome["destination"])
        assert placed.parent.parent == folders.library and placed.name == name
        assert read_genres(placed) == [placed.parent.name], name  # the format's own genre field, read back
        assert audio_payload_sha256(placed) == audio_payload_sha256(made / name), name  # the sound untouched
    assert format_of(folders.library / outcomes["disguised.m4a"]["genre"] / "disguised.m4a").value == "mp3"

    assert outcomes["truncated.m4a"]["event"] == "file.quarantined"
    assert "truncated or still being written" in outcomes["truncated.m4a"]["reason"]
    assert outcomes["locked.wma"]["event"] == "file.quarantined"
    assert "protected by DRM" in outcomes["locked.wma"]["reason"]

    (said,) = skipped  # once, however many scans found it since
    assert len(daemon.about(dropped["notes.txt"], "file.skipped")) == 1
    assert said["reason"].startswith("not an audio file") and 'unknown_files = "keep"' in said["reason"]
    assert (folders.inbox / "notes.txt").read_bytes() == NOTES
    assert sorted(path.name for path in folders.inbox.iterdir()) == ["notes.txt"]


def test_with_unknown_files_quarantine_a_file_that_is_no_audio_is_set_aside_with_its_reason(tmp_path: Path) -> None:
    folders = Folders(tmp_path / "music")
    (folders.inbox / "notes.txt").write_bytes(NOTES)
    result = genresort(folders, folders.env(unknown_files="quarantine"), "sort")
    assert result.returncode == 1, result.stdout + result.stderr  # 1: a file was quarantined
    (line,) = [json.loads(line) for line in result.stdout.splitlines() if '"file.quarantined"' in line]
    assert line["reason"].startswith("not an audio file: its content is none of MP3")
    assert (folders.quarantine / "notes.txt").read_bytes() == NOTES and not (folders.inbox / "notes.txt").exists()
    reason = json.loads((folders.quarantine / "notes.txt.reason.json").read_text())
    assert reason["error"] == line["reason"]


def test_a_path_template_of_ones_own_places_by_the_tags_safely_and_assign_and_report_keep_to_it(
    tmp_path: Path,
) -> None:
    """The issue's template case: reserved characters and an over-long title in the tags, one file without a track
    number, and a person's correction that moves a file to another genre in the same layout."""
    folders = Folders(tmp_path / "music")
    template = "{genre}/{albumartist}/{album}/{track:02d} {title}{ext}"
    long_title = "Night Train: " + "very " * 70 + "long?"
    tags = {"album_artist": "AC/DC", "album": "Live. ", "title": long_title, "track": "3/12"}
    first = write_audio(folders.inbox / "first.m4a", "m4a-aac", 8.0, tags=tags, seed=1)
    second = write_audio(folders.inbox / "second.flac", "flac", 8.0, tags={"title": "CON", "artist": "Q"}, seed=2)
    env = folders.env(confidence_threshold=0.0, path_template=template)
    result = genresort(folders, env, "sort")
    assert result.returncode == 0, result.stdout + result.stderr
    placed = {
        Path(line["source"]).name: Path(line["destination"])
        for line in map(json.loads, result.stdout.splitlines())
        if line["event"] == "file.sorted"
    }
    one = placed[first.name].relative_to(folders.library)
    assert one.parts[1:3] == ("AC_DC", "Live") and one.name.startswith("03 Night Train_ very")
    assert one.suffix == ".m4a" and len(one.name.encode()) <= 255
    two = placed[second.name].relative_to(folders.library)
    assert two.parts[1:] == ("Q", "Unknown Album", "CON_.flac")  # no track number: no "00 "; no device name

    genre = one.parts[0]
    other = "Jazz" if genre != "Jazz" else "Blues"
    assigned = genresort(folders, env, "assign", str(placed[first.name]), other)
    assert assigned.returncode == 0, assigned.stdout + assigned.stderr
    (moved,) = (folders.library / other / "AC_DC" / "Live").iterdir()  # the same layout under the person's genre
    assert moved.name.startswith("03 Night Train_ very") and not placed[first.name].exists()
    report = genresort(folders, env, "report")
    assert report.returncode == 0 and "AC_DC" not in report.stdout and other in report.stdout, report.stdout
