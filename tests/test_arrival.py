"""What arrived is kept around the audio, and gives the original back byte for byte after our tags are written."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile
from mutagen.flac import FLAC, Picture

from genresort.library.arrival import CannotRebuild, read_arrival, read_written, rebuild
from genresort.library.tags import ExistingGenrePolicy, GenreTags, write_genre_tags

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


@pytest.mark.parametrize("suffix", [".wav", ".ogg"])
def test_formats_rewritten_around_their_audio_cannot_be_rebuilt(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"memo{suffix}"
    soundfile.write(path, np.zeros((44100, 1)), 44100)
    with pytest.raises(CannotRebuild, match="rewritten around their audio"):
        read_arrival(path)


def test_a_file_that_is_not_audio_cannot_be_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp3"
    path.write_text("not audio")
    with pytest.raises(CannotRebuild):
        read_arrival(path)
