"""Albums in a running daemon: the tracks of one inbox subfolder (its disc folders included) are taken only once the
whole folder is stable, decided together, and keep their folders below the genre folder; the emptied inbox folder is
removed; tracks that clearly disagree are a compilation, each in its own genre, and the log says so."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from mutagen.id3 import ID3, TALB

from conftest import shared_clip, write_mp3
from daemon_harness import Daemon, Folders, drop
from genresort.analysis.audio import TruncatedAudioError
from genresort.analysis.decision import AlbumVerdict, Prediction, Thresholds, decide
from genresort.library.journal import Journal
from genresort.service.albums import Albums, signature_of
from genresort.service.workers import AnalysisCrashed

STABILITY = 1.5


def run_daemon(folders: Folders, drop_tracks: Callable[[Daemon], list[Path]]) -> tuple[Daemon, list[dict]]:
    """A real daemon on `folders` (every track sure of its genre); `drop_tracks` drops the tracks once it is ready;
    each track's outcome line, once all are sorted and the daemon is stopped."""
    daemon = Daemon(folders, folders.env(confidence_threshold=0.0, stability_seconds=STABILITY))
    try:
        daemon.wait_ready()
        lines = [daemon.wait_outcome(path) for path in drop_tracks(daemon)]
        assert daemon.terminate() == 0
    finally:
        daemon.close()
    return daemon, lines


def test_an_album_copied_in_slowly_is_taken_whole_decided_together_and_its_folder_kept(tmp_path: Path) -> None:
    folders = Folders(tmp_path / "music")
    album = folders.inbox / "Master of Puppets"
    clips = [shared_clip("metal", 0), shared_clip("metal", 1), shared_clip("metal", 2), shared_clip("classical", 0)]
    tracks = [album / "CD1" / "01.mp3", album / "CD1" / "02.mp3", album / "CD2" / "01.mp3", album / "CD2" / "02.mp3"]

    def copy_slowly(daemon: Daemon) -> list[Path]:
        for clip, target in zip(clips, tracks, strict=True):  # each file stable before the next comes
            drop(clip, target)
            time.sleep(STABILITY * 0.8)
        daemon.mark("copied")
        return tracks

    daemon, lines = run_daemon(folders, copy_slowly)
    said = daemon.stream()
    copied = next(index for index, item in enumerate(said) if item.kind == "mark" and item.text == "copied")
    sorted_at = [
        index for index, item in enumerate(said) if item.kind == "log" and item.record["event"] == "file.sorted"
    ]
    assert len(sorted_at) == 4 and min(sorted_at) > copied  # nothing taken while the folder was still being copied
    (genre,) = {line["album_genre"] for line in lines}
    assert genre == max(lines[0]["album_votes"], key=lambda vote: vote[1])[0]
    own = [line["genre"] for line in lines]
    assert own.count(genre) >= 3 and not any(line["compilation"] for line in lines)
    for line, target in zip(lines, tracks, strict=True):
        assert Path(line["destination"]) == folders.library / genre / target.relative_to(folders.inbox)
    assert not album.exists()  # emptied, and removed
    assert folders.inbox.is_dir()


def test_tracks_that_clearly_disagree_are_a_compilation_each_in_its_own_genre(tmp_path: Path) -> None:
    folders = Folders(tmp_path / "music")
    album = folders.inbox / "Mixed Bag"
    clips = [shared_clip("metal", 3), shared_clip("classical", 1), shared_clip("metal", 4), shared_clip("classical", 2)]
    tracks = [album / f"{number:02d}.mp3" for number in range(1, len(clips) + 1)]

    def drop_with_a_cover(daemon: Daemon) -> list[Path]:
        (album / "cover.jpg").parent.mkdir(parents=True)
        (album / "cover.jpg").write_bytes(b"\xff\xd8\xff" + bytes(100))
        return [drop(clip, track) for clip, track in zip(clips, tracks, strict=True)]

    daemon, lines = run_daemon(folders, drop_with_a_cover)
    assert {line["genre"] for line in lines} == {"Metal", "Classical"}, lines
    for line, track in zip(lines, tracks, strict=True):
        assert line["compilation"] is True and line["album_genre"] is None
        assert Path(line["destination"]) == folders.library / line["genre"] / "Mixed Bag" / track.name
    assert sorted(path.name for path in album.iterdir()) == ["cover.jpg"]  # what is not audio stays, said once
    assert len(daemon.logs("file.skipped")) == 1


def test_a_folder_of_loose_downloads_whose_tags_name_several_albums_is_no_album(tmp_path: Path) -> None:
    folders = Folders(tmp_path / "music")
    downloads = folders.inbox / "Downloads"
    tracks = []
    for number, (genre, album) in enumerate([("metal", "Ride the Lightning"), ("classical", "Goldberg Variations")]):
        track = drop(shared_clip(genre, 5), tmp_path / f"{number}.mp3")
        tags = ID3()
        tags.add(TALB(encoding=3, text=[album]))
        tags.save(track)
        tracks.append(track)
    _, lines = run_daemon(folders, lambda daemon: [drop(track, downloads / track.name) for track in tracks])
    assert {line["genre"] for line in lines} == {"Metal", "Classical"}, lines
    for line, track in zip(lines, tracks, strict=True):
        assert "album_genre" not in line  # each decided alone, in its own genre, its folder kept
        assert Path(line["destination"]) == folders.library / line["genre"] / "Downloads" / track.name


def test_each_track_is_heard_once_a_bad_one_and_a_late_one_included(tmp_path: Path) -> None:
    """The analysis is scripted (the tracks are tones): what counts is how often each track is heard."""
    album = tmp_path / "inbox" / "Album"
    for number in range(3):
        write_mp3(album / f"{number}.mp3", seconds=2.0, seed=number)
    (album / "bad.mp3").write_bytes((album / "0.mp3").read_bytes()[:4096])  # MP3 by its content, cut short
    heard: list[str] = []

    def analyse(path: Path) -> Prediction:
        name = Path(os.path.realpath(path)).name  # a track is heard through the file held open
        heard.append(name)
        if name == "bad.mp3":
            raise TruncatedAudioError(path, "cut short")
        return Prediction((("Jazz", 0.9), ("Blues", 0.1)), "scripted", 0.99)

    with Journal(tmp_path / "journal.sqlite3") as journal:
        albums = Albums(
            tmp_path / "inbox", tmp_path / "library", analyse, lambda p: decide(p, Thresholds(0.5)), journal
        )

        def turn(name: str) -> tuple[Prediction | None, AlbumVerdict | None]:
            return albums.hear(album, signature_of(album / name))

        first, bad = turn("0.mp3"), turn("bad.mp3")
        assert sorted(heard) == ["0.mp3", "1.mp3", "2.mp3", "bad.mp3"]  # the folder once; the bad track not again
        assert first[0] is not None and first[1].genre == "Jazz" and bad[0] is None
        (album / "0.mp3").unlink()  # sorted at its turn
        write_mp3(album / "3.mp3", seconds=2.0, seed=3)  # a track that comes late
        late = turn("3.mp3")
        assert heard[4:] == ["3.mp3"] and late[0] is not None  # tracks heard and not yet sorted are not heard again
        assert turn("1.mp3")[0] is not None and turn("2.mp3")[0] is not None and len(heard) == 5


def test_an_album_in_a_folder_whose_name_is_not_utf8_is_heard_and_sorted_whole(tmp_path: Path) -> None:
    """Its tracks are heard through the files held open: their names could not be sent to an analysis worker."""
    folders = Folders(tmp_path / "music")
    album = Path(os.fsdecode(os.fsencode(folders.inbox) + b"/Caf\xe9 Album  . /CD1"))
    tracks = [drop(shared_clip("jazz", number), album / f"0{number} trailing .mp3") for number in range(2)]
    result = subprocess.run(
        [sys.executable, "-m", "genresort.cli", "sort", "--config", str(folders.config_file)],
        env=folders.env(confidence_threshold=0.0),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines() if '"file.sorted"' in line]
    (genre,) = {line["album_genre"] for line in lines}
    assert len(lines) == 2 and genre is not None
    assert sorted(path.name for path in (folders.library / genre / album.relative_to(folders.inbox)).iterdir()) == [
        track.name for track in tracks
    ]
    assert list(folders.inbox.iterdir()) == []


def test_a_track_whose_analysis_crashes_while_its_folder_is_heard_is_heard_alone_at_its_turn(tmp_path: Path) -> None:
    """Scripted analysis: a crash of one track's analysis is that track's, never charged to another's turn."""
    album = tmp_path / "inbox" / "Album"
    for number in range(2):
        write_mp3(album / f"{number}.mp3", seconds=2.0, seed=number)

    def analyse(path: Path) -> Prediction:
        if os.path.realpath(path).endswith("1.mp3"):
            raise AnalysisCrashed("the decoder died")
        return Prediction((("Jazz", 0.9), ("Blues", 0.1)), "scripted", 0.99)

    with Journal(tmp_path / "journal.sqlite3") as journal:
        albums = Albums(
            tmp_path / "inbox", tmp_path / "library", analyse, lambda p: decide(p, Thresholds(0.5)), journal
        )
        first, verdict = albums.hear(album, signature_of(album / "0.mp3"))
        assert first is not None and verdict.genre == "Jazz"
        assert albums.hear(album, signature_of(album / "1.mp3")) == (None, verdict)
