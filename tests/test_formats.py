"""Every format genresort takes is known by its content and decoded, and every way one can be unusable gets its
own reason: real files of each format written by tests/audio_files.py, renamed, cut short, damaged and locked."""

from __future__ import annotations

import re
import shutil
import struct
from pathlib import Path
from uuid import UUID

import av
import numpy as np
import pytest
from mutagen.id3 import APIC, ID3, TIT2

from audio_files import (
    AUDIO_FORMATS,
    ENCODINGS,
    content_encryption,
    sized,
    tone_in_noise,
    with_asf_header_object,
    write_audio,
)
from genresort.analysis.audio import (
    AUDIO_EXTENSIONS,
    AudioError,
    DamagedAudioError,
    NotAudioError,
    ProtectedAudioError,
    TruncatedAudioError,
    WindowPlan,
    decode_analysis_windows,
    probe,
    resample,
    to_mono,
)
from genresort.library.formats import (
    HEAD_BYTES,
    AudioFormat,
    asf_protected,
    detect_format,
    format_of,
    read_asf_header,
    read_head,
)

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
#: What libsndfile decodes; FFmpeg the others.
SNDFILE_DECODES = {"mp3", "flac", "ogg-vorbis", "aiff", "wav"}
TAGS = {"title": "Night Train", "artist": "Oscar Peterson", "genre": "Jazz"}
EXTENDED_CONTENT_ENCRYPTION = UUID("298AE614-2622-4C17-B935-DAE07EE9289C").bytes_le


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
    assert songs[name].suffix in AUDIO_EXTENSIONS


@pytest.mark.parametrize(
    ("name", "wrong_name", "decoder"),
    [("mp3", "song.m4a", "libsndfile"), ("flac", "song.mp3", "libsndfile"), ("m4a-aac", "song.ogg", "ffmpeg")],
)
def test_content_decides_not_the_extension(
    songs: dict[str, Path], tmp_path: Path, name: str, wrong_name: str, decoder: str
) -> None:
    renamed = copy_as(songs[name], tmp_path / wrong_name)
    assert format_of(renamed) is EXPECTED[name]
    assert probe(renamed).decoder == decoder
    heard = decode_analysis_windows(renamed, RATE, WindowPlan())
    for window, expected in zip(heard, decode_analysis_windows(songs[name], RATE, WindowPlan()), strict=True):
        np.testing.assert_array_equal(window, expected)


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
    assert probe(path).duration == pytest.approx(SECONDS, abs=0.1)


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


# --- decoding -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", AUDIO_FORMATS)
def test_every_format_decodes_to_mono_at_the_asked_rate(songs: dict[str, Path], name: str) -> None:
    info = probe(songs[name])
    assert info.duration == pytest.approx(SECONDS, abs=0.15)
    assert info.channels == 2 and info.container is EXPECTED[name]
    assert info.decoder == ("libsndfile" if name in SNDFILE_DECODES else "ffmpeg")
    [window] = decode_analysis_windows(songs[name], RATE, WindowPlan())
    assert window.dtype == np.float32 and window.ndim == 1
    assert len(window) == pytest.approx(SECONDS * RATE, rel=0.02)
    assert 0.1 < float(np.max(np.abs(window))) < 1.0


@pytest.mark.parametrize(
    ("name", "seconds", "likeness"),
    [("m4a-alac", 600.0, 0.999), ("m4a-aac", 120.0, 0.99)],
    ids=["ten-minute-alac", "two-minute-aac"],
)
def test_a_long_m4a_is_heard_in_its_windows(tmp_path: Path, name: str, seconds: float, likeness: float) -> None:
    """FFmpeg seeks to each window: what it hears there is the signal written there. (Ten minutes of ALAC: AAC's
    encoder would take 9 s to write them; the container and its seeking are the same.)"""
    path = write_audio(tmp_path / "long.m4a", name, seconds)
    plan = WindowPlan(window_seconds=6.0, window_count=4)
    windows = decode_analysis_windows(path, RATE, plan)
    assert [len(window) for window in windows] == [6 * RATE] * 4
    signal = tone_in_noise(seconds)
    starts = np.linspace(0.1 * seconds, 0.9 * seconds - 6.0, 4)
    for window, start in zip(windows, starts, strict=True):
        first = round(start * 44100)
        written = resample(to_mono(signal[:, first : first + 6 * 44100].T), 44100, RATE)
        assert np.corrcoef(window, written)[0, 1] > likeness


# --- what cannot be heard, and why --------------------------------------------------------------------------------


def ogg_crc(page: bytes) -> int:
    """Ogg's page checksum: CRC-32 with polynomial 0x04C11DB7, unreflected, computed with the field zeroed."""
    crc = 0
    for byte in page:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7 if crc & 0x80000000 else crc << 1) & 0xFFFFFFFF
    return crc


def with_opus_head_byte(opus: bytes, index: int, value: int, checksum: bool) -> bytes:
    """The Opus file with byte `index` of its OpusHead set to `value`; with `checksum`, the first page's checksum
    made right again, so that only what the header says is wrong."""
    data = bytearray(opus)
    data[opus.index(b"OpusHead") + index] = value
    if checksum:
        page_end = 27 + data[26] + sum(data[27 : 27 + data[26]])
        data[22:26] = bytes(4)
        data[22:26] = struct.pack("<I", ogg_crc(bytes(data[:page_end])))
    return bytes(data)


def extended_content_encryption(asf: bytes) -> bytes:
    """A later Windows Media DRM file's Extended Content Encryption object: a WRMHEADER in UTF-16."""
    return with_asf_header_object(
        asf, EXTENDED_CONTENT_ENCRYPTION, sized('<WRMHEADER version="2.0.0.0"/>'.encode("utf-16-le"))
    )


def test_drm_is_seen_in_an_asf_header_and_only_there(songs: dict[str, Path], tmp_path: Path) -> None:
    wma = songs["wma"].read_bytes()
    assert not asf_protected(read_asf_header(songs["wma"]))
    assert len(read_asf_header(songs["mp3"])) <= 24  # no ASF, no header object to read
    for locked in (content_encryption(wma), extended_content_encryption(wma)):
        path = tmp_path / "locked.wma"
        path.write_bytes(locked)
        assert format_of(path) is AudioFormat.ASF
        assert asf_protected(read_asf_header(path))
        with av.open(str(path)) as opened:  # FFmpeg itself would decode this one's (unencrypted) audio
            assert opened.streams.audio


def video_only_mp4(path: Path) -> Path:
    """One second of a grey MPEG-4 video, with no audio track."""
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for index in range(25):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 128, np.uint8), format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def bad_file(kind: str, songs: dict[str, Path], folder: Path) -> Path:
    """A file of `kind` that genresort cannot hear, made from the real ones."""
    if kind == "truncated-m4a":
        whole = write_audio(folder / "whole.m4a", "m4a-aac", 30.0)  # FFmpeg writes its index (moov) last
        return write_bytes(folder / "truncated.m4a", whole.read_bytes()[: whole.stat().st_size // 2])
    if kind == "truncated-m4a-index-first":
        whole = write_audio(folder / "whole.m4a", "m4a-aac", 60.0, container_options={"movflags": "faststart"})
        return write_bytes(folder / "truncated.m4a", whole.read_bytes()[: whole.stat().st_size * 3 // 10])
    if kind == "opus-bit-flip-in-header":
        return write_bytes(folder / "broken.opus", with_opus_head_byte(songs["opus"].read_bytes(), 9, 0, False))
    if kind == "opus-header-of-no-channels":
        return write_bytes(folder / "broken.opus", with_opus_head_byte(songs["opus"].read_bytes(), 9, 0, True))
    if kind == "wma-drm":
        return write_bytes(folder / "locked.wma", content_encryption(songs["wma"].read_bytes()))
    if kind == "m4a-fairplay":  # an iTunes purchase's sample entry is `drms` where a free one has `mp4a`
        return write_bytes(folder / "locked.m4p", songs["m4a-aac"].read_bytes().replace(b"mp4a", b"drms", 1))
    if kind == "text":
        return write_bytes(folder / "notes.txt", b"Track list\n1. Night Train\n2. C Jam Blues\n" * 40)
    if kind == "video-only-mp4":
        return video_only_mp4(folder / "clip.mp4")
    raise ValueError(kind)


def write_bytes(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


#: Each kind of file that cannot be heard, with its error and (a pattern of) its own reason.
UNHEARABLE: dict[str, tuple[type[AudioError], str]] = {
    "truncated-m4a": (TruncatedAudioError, r"M4A/MP4 file is truncated or still being written"),
    "truncated-m4a-index-first": (TruncatedAudioError, r"stops at .* header promises 60\.0 s.*still being written"),
    "opus-bit-flip-in-header": (DamagedAudioError, r"Opus file's header is broken"),
    "opus-header-of-no-channels": (DamagedAudioError, r"Opus file's header is broken"),
    "wma-drm": (ProtectedAudioError, r"protected by DRM \(Windows Media.*cannot hear it"),
    "m4a-fairplay": (ProtectedAudioError, r"protected by DRM \(an iTunes FairPlay.*cannot hear it"),
    "text": (NotAudioError, r"^not an audio file: its content is none of MP3, FLAC"),
    "video-only-mp4": (NotAudioError, r"M4A/MP4 file has no audio track"),
}


@pytest.mark.parametrize("kind", UNHEARABLE)
def test_what_cannot_be_heard_says_why(songs: dict[str, Path], tmp_path: Path, kind: str) -> None:
    error, reason = UNHEARABLE[kind]
    path = bad_file(kind, songs, tmp_path)
    with pytest.raises(error) as raised:
        decode_analysis_windows(path, RATE, WindowPlan())
    assert re.search(reason, raised.value.reason), raised.value.reason
    assert raised.value.path == path and str(path) in str(raised.value)
