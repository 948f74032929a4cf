"""Decoding: only the analysis windows are read, and every unusable input gets a clear AudioError."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile
from mutagen.id3 import APIC, ID3, TIT2

from conftest import shared_clip, write_mp3
from genresort.analysis import errors
from genresort.analysis.audio import (
    AudioError,
    EmptyFileError,
    NotAudioError,
    SilentAudioError,
    TooShortError,
    TruncatedAudioError,
    WindowPlan,
    analysis_windows,
    decode_analysis_windows,
    probe,
)

RATE = 16_000
PNG_HEADER = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"


def test_a_short_clip_is_taken_whole() -> None:
    assert analysis_windows(30.0, WindowPlan()) == [(0.0, 30.0)]


def test_a_long_track_is_heard_in_spread_windows_away_from_intro_and_outro() -> None:
    plan = WindowPlan(window_seconds=6.0, window_count=4)
    windows = analysis_windows(240.0, plan)
    assert len(windows) == 4
    assert all(length == 6.0 for _, length in windows)
    assert windows[0][0] == pytest.approx(24.0) and windows[-1][0] + 6.0 == pytest.approx(216.0)


def test_a_real_clip_decodes_to_mono_16_khz() -> None:
    windows = decode_analysis_windows(shared_clip("jazz"), RATE, WindowPlan())
    assert len(windows) == 1
    assert windows[0].dtype == np.float32 and windows[0].ndim == 1
    assert len(windows[0]) == pytest.approx(30 * RATE, rel=0.01)


def test_a_long_stereo_mp3_is_read_only_in_its_windows(tmp_path: Path) -> None:
    song = write_mp3(tmp_path / "song.mp3", seconds=100.0)
    windows = decode_analysis_windows(song, RATE, WindowPlan(window_seconds=6.0, window_count=4))
    assert [len(window) for window in windows] == [6 * RATE] * 4


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b"", EmptyFileError),
        (np.random.default_rng(1).bytes(200_000), NotAudioError),
        (b"just some text, saved with the wrong name\n" * 200, NotAudioError),
        (PNG_HEADER + bytes(5000), NotAudioError),
    ],
    ids=["empty", "random-bytes", "text", "png"],
)
def test_files_that_are_not_audio_raise_a_clear_error(tmp_path: Path, content: bytes, error: type) -> None:
    path = tmp_path / "song.mp3"
    path.write_bytes(content)
    with pytest.raises(error) as raised:
        decode_analysis_windows(path, RATE, WindowPlan())
    assert isinstance(raised.value, AudioError)
    assert str(path) in str(raised.value) and raised.value.reason


def test_a_truncated_mp3_raises_truncated(tmp_path: Path) -> None:
    song = write_mp3(tmp_path / "whole.mp3", seconds=120.0)
    truncated = tmp_path / "truncated.mp3"
    truncated.write_bytes(song.read_bytes()[: song.stat().st_size // 4])
    with pytest.raises(TruncatedAudioError, match="truncated"):
        decode_analysis_windows(truncated, RATE, WindowPlan())


def test_a_clip_cut_to_a_few_kilobytes_is_an_audio_error(tmp_path: Path) -> None:
    path = tmp_path / "cut.mp3"
    path.write_bytes(shared_clip("rock").read_bytes()[:3000])
    with pytest.raises(AudioError):
        decode_analysis_windows(path, RATE, WindowPlan())


def test_less_than_a_second_is_too_short(tmp_path: Path) -> None:
    with pytest.raises(TooShortError, match="at least 1 s"):
        decode_analysis_windows(write_mp3(tmp_path / "blip.mp3", seconds=0.5), RATE, WindowPlan())


def test_digital_silence_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "silence.mp3"
    soundfile.write(path, np.zeros((44100 * 5, 2), dtype=np.float32), 44100, format="MP3")
    with pytest.raises(SilentAudioError, match="silence"):
        decode_analysis_windows(path, RATE, WindowPlan())


@pytest.mark.parametrize("format_name", ["WAV", "FLAC", "OGG"])
def test_other_formats_decode(tmp_path: Path, format_name: str) -> None:
    samples, rate = soundfile.read(shared_clip("blues"), dtype="float32")
    path = tmp_path / f"clip.{format_name.lower()}"
    soundfile.write(path, samples[: rate * 5], rate, format=format_name)
    windows = decode_analysis_windows(path, RATE, WindowPlan())
    assert len(windows[0]) == pytest.approx(5 * RATE, rel=0.01)


def test_a_huge_file_of_junk_fails_fast_without_being_read_whole(tmp_path: Path) -> None:
    """A 1 GB sparse file of zeros: the decoder gives up after its header search, it does not read it all."""
    path = tmp_path / "huge.mp3"
    with open(path, "wb") as stream:
        stream.truncate(1 << 30)
    with pytest.raises(NotAudioError):
        decode_analysis_windows(path, RATE, WindowPlan())


def test_a_mislabelled_extension_still_decodes(tmp_path: Path) -> None:
    path = tmp_path / "actually-an-mp3.wav"
    shutil.copyfile(shared_clip("pop"), path)
    assert decode_analysis_windows(path, RATE, WindowPlan())


def test_an_unreadable_file_is_an_os_error_not_bad_audio(tmp_path: Path) -> None:
    """Permission problems pass (a user fixes them); they must not get a file quarantined as corrupt."""
    with pytest.raises(FileNotFoundError):
        decode_analysis_windows(tmp_path / "missing.mp3", RATE, WindowPlan())
    folder = tmp_path / "folder.mp3"
    folder.mkdir()
    with pytest.raises(IsADirectoryError):
        decode_analysis_windows(folder, RATE, WindowPlan())


MPEG1_LAYER3_NO_CRC = b"\xff\xfb"
MPEG1_LAYER3_KBPS = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
MPEG1_SAMPLE_RATES = (44100, 48000, 32000)
OLD_RIP_SECONDS = 180.0
MEGABYTE = 1 << 20


def without_xing_frame(mp3: bytes) -> bytes:
    """The stream with its first frame cut when that frame is a Xing/Info header: what `ffmpeg -write_xing 0`
    writes. libsndfile writes MPEG-1 Layer III without CRC and without an ID3 tag, so the first frame is at 0."""
    assert mp3.startswith(MPEG1_LAYER3_NO_CRC)
    header = int.from_bytes(mp3[:4], "big")
    kbps = MPEG1_LAYER3_KBPS[header >> 12 & 0xF]
    sample_rate = MPEG1_SAMPLE_RATES[header >> 10 & 0x3]
    padding = header >> 9 & 0x1
    mono = header >> 6 & 0x3 == 0x3
    side_info_end = 4 + (17 if mono else 32)
    assert mp3[side_info_end : side_info_end + 4] in (b"Xing", b"Info")
    return mp3[144_000 * kbps // sample_rate + padding :]


def with_id3_tag(path: Path, cover_bytes: int) -> Path:
    """Add an ID3 tag with a title and, if `cover_bytes`, a JPEG-looking front cover of that size (as mutagen saves
    it: the tag goes before the audio)."""
    tag = ID3()
    tag.add(TIT2(encoding=3, text="An old rip"))
    if cover_bytes:
        jpeg = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + np.random.default_rng(2).bytes(cover_bytes) + b"\xff\xd9"
        tag.add(APIC(encoding=3, mime="image/jpeg", type=3, desc="Cover", data=jpeg))
    tag.save(path)
    return path


@pytest.fixture(scope="module")
def old_rip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """Three minutes of a tone in noise as a 320 kbps stereo 44.1 kHz MP3, as libsndfile writes it (with an Info
    frame); encoded once, in about 5 s."""
    sample_rate = 44100
    time = np.arange(int(OLD_RIP_SECONDS * sample_rate)) / sample_rate
    signal = 0.1 * np.sin(2 * np.pi * 440 * time) + 0.02 * np.random.default_rng(3).standard_normal(len(time))
    path = tmp_path_factory.mktemp("old-rip") / "encoded.mp3"
    stereo = np.repeat(signal[:, np.newaxis], 2, axis=1).astype(np.float32)
    soundfile.write(path, stereo, sample_rate, format="MP3", bitrate_mode="CONSTANT", compression_level=0.0)
    return path.read_bytes()


def test_libsndfile_counts_the_tag_as_audio_when_there_is_no_xing_header(old_rip: bytes, tmp_path: Path) -> None:
    """The root cause: without a Xing header libsndfile guesses the length from the file size, cover included."""
    path = tmp_path / "old-rip.mp3"
    path.write_bytes(without_xing_frame(old_rip))
    with_id3_tag(path, cover_bytes=MEGABYTE)
    guessed = soundfile.info(str(path)).duration
    assert guessed == pytest.approx(path.stat().st_size * 8 / 320_000, rel=0.01)
    assert guessed > OLD_RIP_SECONDS + 20


@pytest.mark.parametrize("cover_bytes", [0, MEGABYTE, 20 * MEGABYTE], ids=["no-cover", "1MB-cover", "20MB-cover"])
def test_an_mp3_without_xing_header_and_with_a_big_cover_is_heard_whole(
    old_rip: bytes, tmp_path: Path, cover_bytes: int
) -> None:
    plain = tmp_path / "plain.mp3"
    plain.write_bytes(without_xing_frame(old_rip))
    tagged = with_id3_tag(Path(shutil.copyfile(plain, tmp_path / "tagged.mp3")), cover_bytes)
    assert probe(tagged).duration == pytest.approx(OLD_RIP_SECONDS, abs=0.5)
    plan = WindowPlan(window_seconds=6.0, window_count=4)
    windows = decode_analysis_windows(tagged, RATE, plan)
    assert [len(window) for window in windows] == [6 * RATE] * 4
    for heard, expected in zip(windows, decode_analysis_windows(plain, RATE, plan), strict=True):
        np.testing.assert_array_equal(heard, expected)  # the tag changes nothing of what is heard


def test_an_mp3_with_a_cover_cut_in_half_is_still_truncated(old_rip: bytes, tmp_path: Path) -> None:
    """The Info header promises three minutes; half of them are there."""
    path = tmp_path / "half.mp3"
    path.write_bytes(old_rip[: len(old_rip) // 2])
    with_id3_tag(path, cover_bytes=MEGABYTE)
    with pytest.raises(TruncatedAudioError, match=r"header promises 180\.0 s.*truncated"):
        decode_analysis_windows(path, RATE, WindowPlan())


def test_an_audio_error_crosses_to_another_process_as_itself() -> None:
    sent = errors.TruncatedAudioError(Path("song.mp3"), "the file stops at 12.0 s of 240.0 s")
    received = pickle.loads(pickle.dumps(sent))
    assert type(received) is errors.TruncatedAudioError
    assert (received.path, received.reason, str(received)) == (sent.path, sent.reason, str(sent))
