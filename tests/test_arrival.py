"""What arrived is kept around the audio, and gives the original back byte for byte after our tags are written."""

from __future__ import annotations

import hashlib
import io
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile
from mutagen.flac import FLAC, Picture
from mutagen.mp4 import Atoms

from genresort.library.arrival import CannotRebuild, read_arrival, read_written, rebuild
from genresort.library.tags import ExistingGenrePolicy, GenreTags, audio_span, read_genres, write_genre_tags
from test_format_tags import FASTSTART, FRAGMENTED, boxes, user_file

JAZZ = GenreTags(genre="Jazz", confidence=0.9, top=(("Jazz", 0.9), ("Blues", 0.1)), model_id="test-model")


def test_a_flac_with_a_picture_is_given_back_as_it_arrived_after_being_tagged(tmp_path: Path) -> None:
    original = tmp_path / "song.flac"
    soundfile.write(original, np.random.default_rng(0).uniform(-0.3, 0.3, (44100 * 3, 2)), 44100)
    tags = FLAC(original)
    tags["genre"] = "Swing"
    picture = Picture()
    picture.type, picture.mime, picture.data = 3, "image/png", b"\x89PNG" + bytes(5000)
    tags.add_picture(picture)
    tags.save()
    sorted_copy = Path(shutil.copyfile(original, tmp_path / "sorted.flac"))
    arrival = read_arrival(sorted_copy)

    write_genre_tags(sorted_copy, JAZZ, ExistingGenrePolicy.OVERWRITE)
    assert FLAC(sorted_copy)["genre"] == ["Jazz"]
    given_back = io.BytesIO()
    rebuild(sorted_copy, arrival, given_back)
    assert given_back.getvalue() == original.read_bytes()
    assert read_written(sorted_copy) != read_written(original)


def sorted_then_assigned(original: Path) -> tuple[Path, io.BytesIO]:
    """A copy of `original` tagged as a sort and then an assignment tag it, and what an undo gives back from it."""
    placed = Path(shutil.copyfile(original, original.with_name(f"placed{original.suffix}")))
    arrival = read_arrival(placed)
    write_genre_tags(placed, JAZZ, ExistingGenrePolicy.OVERWRITE)
    blues = GenreTags("Blues", 1.0, (("Blues", 1.0),), "person", decision="person", previous_genre="Jazz")
    write_genre_tags(placed, blues, ExistingGenrePolicy.OVERWRITE)
    assert read_genres(placed) == ["Blues"]
    given_back = io.BytesIO()
    rebuild(placed, arrival, given_back)
    return placed, given_back


@pytest.mark.parametrize("audio_format", ["mp3", "aac", "flac", "m4a-aac", "m4a-alac", "aiff", "wma"])
def test_every_format_whose_audio_is_one_span_is_given_back_as_it_arrived(tmp_path: Path, audio_format: str) -> None:
    original = user_file(tmp_path, audio_format)  # title, artist, genre; cover art in M4A and FLAC
    _, given_back = sorted_then_assigned(original)
    assert hashlib.sha256(given_back.getvalue()).hexdigest() == hashlib.sha256(original.read_bytes()).hexdigest()


def chunk_offsets(path: Path) -> list[int]:
    """Where the MP4's index (its stco box) says the audio's chunks start."""
    with open(path, "rb") as f:
        stco = Atoms(f).path(b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stco")[-1]
        f.seek(stco.offset + 12)
        (count,) = struct.unpack(">I", f.read(4))
        return list(struct.unpack(f">{count}I", f.read(4 * count)))


def test_an_m4a_whose_moov_comes_first_is_given_back_though_tagging_moved_its_audio(tmp_path: Path) -> None:
    """The moov grows, so mutagen moves the mdat and rewrites the moov's chunk offsets: the kept head is the
    original's moov, offsets and all, and the audio bytes are the same, only elsewhere."""
    original = user_file(tmp_path, "m4a-aac", cover=False, container_options=FASTSTART)
    assert boxes(original).index(b"moov") < boxes(original).index(b"mdat")

    placed, given_back = sorted_then_assigned(original)

    shift = audio_span(placed)[0] - audio_span(original)[0]
    assert shift > 0
    assert chunk_offsets(placed) == [offset + shift for offset in chunk_offsets(original)]
    assert given_back.getvalue() == original.read_bytes()


@pytest.mark.parametrize("audio_format", ["ogg-vorbis", "opus", "wav", "fragmented-m4a"])
def test_formats_whose_audio_is_not_one_span_tagging_keeps_cannot_be_rebuilt(tmp_path: Path, audio_format: str) -> None:
    """Ogg and WAV tag writers rewrite the container around the audio; a fragmented M4A holds it in pieces."""
    if audio_format == "fragmented-m4a":
        path = user_file(tmp_path, "m4a-aac", cover=False, container_options=FRAGMENTED)
        assert boxes(path).count(b"mdat") > 1
    else:
        path = user_file(tmp_path, audio_format)
    with pytest.raises(CannotRebuild, match="not one span of bytes that tagging leaves as it is"):
        read_arrival(path)


def test_a_file_that_is_not_audio_cannot_be_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp3"
    path.write_text("not audio")
    with pytest.raises(CannotRebuild):
        read_arrival(path)
