"""The open-world development sets are read whole and as their READMEs describe them."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from conftest import require_shared_data, write_mp3
from genresort.training.fit import NETWORK_NAMES
from genresort.training.openworld import NonMusicFile, features_of, read_nonmusic, read_realworld


def test_nonmusic_manifest_gives_every_file_with_its_kind_and_group() -> None:
    files = read_nonmusic(require_shared_data() / "nonmusic" / "MANIFEST.tsv")
    assert Counter(file.kind for file in files) == {"speech": 34, "environment": 49, "other": 2}
    assert all(file.path.is_file() for file in files)
    assert all(file.group and file.category for file in files)
    assert len({file.group for file in files}) > 40  # speakers and recording groups, not one per kind
    dog = next(file for file in files if file.path.name == "esc10-dog-fold1.mp3")
    assert (dog.kind, dog.category, dog.group) == ("environment", "dog", "esc-fold1")


def test_realworld_manifest_gives_every_song_with_its_published_genres_and_artist() -> None:
    songs = read_realworld(require_shared_data() / "realworld" / "MANIFEST.tsv")
    assert len(songs) == 268
    assert all(song.path.is_file() and song.published_genres for song in songs)
    first = songs[0]
    assert (first.path.name, first.published_genres, first.group) == (
        "MT0000044741.mp3",
        ("Blues",),
        "artist-little walter",
    )
    beach_boys = next(song for song in songs if song.title == "Little Saint Nick")
    assert beach_boys.published_genres == ("Holiday", "Pop/Rock")
    assert sum("Rap" in song.published_genres for song in songs) == 26


def test_features_of_keeps_records_aligned_with_their_clips_and_leaves_out_what_cannot_be_read(tmp_path: Path) -> None:
    sound = NonMusicFile(write_mp3(tmp_path / "tones.mp3", 4.0), "synthetic", "tones", "generator-tones")
    junk_path = tmp_path / "junk.mp3"
    junk_path.write_bytes(b"not audio at all" * 100)
    junk = NonMusicFile(junk_path, "synthetic", "junk", "generator-junk")
    kept, clips = features_of([junk, sound], tmp_path / "cache")
    assert kept == [sound]
    assert set(clips[0].network_outputs) == set(NETWORK_NAMES)
    assert list((tmp_path / "cache").rglob("*.npz"))  # cached for the next run
