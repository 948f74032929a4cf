"""Every format genresort takes is known by its content: real files of each format written by tests/audio_files.py,
renamed, and what is not audio."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from mutagen.id3 import APIC, ID3, TIT2

from audio_files import AUDIO_FORMATS, ENCODINGS, write_audio
from genresort.library.formats import HEAD_BYTES, AudioFormat, detect_format, format_of, read_head

RATE = 16_000
SECONDS = 4.0
EXPECTED = {
    "mp3": AudioFormat.MP3,
    "aac": AudioFormat.AAC,
    "flac": AudioFormat.FLAC,
    "ogg-vorbis": AudioFormat.OGG_VORBIS,
    "opus": AudioFormat.OPUS,
    "m4a-aac": AudioFormat.MP4,
    "m4a-alac": AudioFormat.MP4,
    "aiff": AudioFormat.AIFF,
    "wav": AudioFormat.WAV,
    "wma": AudioFormat.ASF,
}
TAGS = {"title": "Night Train", "artist": "Oscar Peterson", "genre": "Jazz"}


@pytest.fixture(scope="module")
def songs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Four seconds of every format, with a title, an artist and a genre, each under its usual extension."""
    folder = tmp_path_factory.mktemp("formats")
    return {
        name: write_audio(folder / f"{name}{ENCODINGS[name].extension}", name, SECONDS, tags=TAGS)
        for name in AUDIO_FORMATS
    }


def copy_as(song: Path, path: Path) -> Path:
    return Path(shutil.copyfile(song, path))


# --- identification ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", AUDIO_FORMATS)
def test_every_format_is_known_by_its_first_bytes(songs: dict[str, Path], name: str) -> None:
    assert format_of(songs[name]) is EXPECTED[name]
    assert detect_format(songs[name].read_bytes()[:HEAD_BYTES]) is EXPECTED[name]  # a small ID3 tag held whole


@pytest.mark.parametrize(("name", "wrong_name"), [("mp3", "song.m4a"), ("flac", "song.mp3"), ("m4a-aac", "song.ogg")])
def test_content_decides_not_the_extension(songs: dict[str, Path], tmp_path: Path, name: str, wrong_name: str) -> None:
    assert format_of(copy_as(songs[name], tmp_path / wrong_name)) is EXPECTED[name]


@pytest.mark.parametrize(("name", "audio_format"), [("flac", AudioFormat.FLAC), ("mp3", AudioFormat.MP3)])
def test_an_id3_tag_with_a_big_cover_in_front_is_skipped(
    songs: dict[str, Path], tmp_path: Path, name: str, audio_format: AudioFormat
) -> None:
    """Some taggers put an ID3v2 tag before a FLAC's `fLaC`; an MP3's cover can be megabytes long."""
    path = copy_as(songs[name], tmp_path / f"covered-{name}")
    tag = ID3()
    tag.add(TIT2(encoding=3, text="Covered"))
    tag.add(APIC(encoding=3, mime="image/jpeg", type=3, desc="Cover", data=np.random.default_rng(0).bytes(300_000)))
    tag.save(path)
    assert path.read_bytes()[:3] == b"ID3"
    assert detect_format(path.read_bytes()[:HEAD_BYTES]) is None  # the tag is longer than the head
    assert detect_format(read_head(path)) is audio_format
    assert format_of(path) is audio_format


def ogg_first_page(packet: bytes) -> bytes:
    """An Ogg page opening a stream (beginning-of-stream flag) that holds `packet` (under 255 bytes)."""
    return b"OggS" + bytes([0, 2]) + bytes(8) + struct.pack("<III", 1, 0, 0) + bytes([1, len(packet)]) + packet


@pytest.mark.parametrize(
    ("packet", "audio_format"),
    [
        (b"OpusHead\x01\x02\x38\x01\x80\xbb\x00\x00\x00\x00\x00", AudioFormat.OPUS),
        (b"\x01vorbis" + bytes(22), AudioFormat.OGG_VORBIS),
        (b"\x7fFLAC\x01\x00\x00\x01fLaC" + bytes(38), None),
        (b"Speex   1.2" + bytes(69), None),
        (b"\x80theora" + bytes(35), None),
    ],
    ids=["opus", "vorbis", "flac-in-ogg", "speex", "theora-video"],
)
def test_an_ogg_is_known_by_its_first_codec(packet: bytes, audio_format: AudioFormat | None) -> None:
    assert detect_format(ogg_first_page(packet)) is audio_format


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"just some text, saved with the wrong name\n" * 200,
        np.random.default_rng(1).bytes(HEAD_BYTES),
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(5000),
        b"ID3\x04\x00\x00\x00\x00\x00\x10" + bytes(16),  # an empty ID3 tag and nothing after it
    ],
    ids=["empty", "text", "random-bytes", "png", "id3-tag-alone"],
)
def test_what_is_not_audio_has_no_format(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "song.mp3"
    path.write_bytes(content)
    assert detect_format(content) is None
    assert format_of(path) is None


def test_random_data_is_almost_never_taken_for_mpeg_frames() -> None:
    """Three consecutive MPEG frame headers are asked for: no false MP3 (or raw AAC) in 2000 random heads."""
    generator = np.random.default_rng(2)
    assert not any(detect_format(generator.bytes(HEAD_BYTES)) for _ in range(2000))
