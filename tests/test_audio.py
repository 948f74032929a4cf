"""Decoding: only the analysis windows are read, and every unusable input gets a clear AudioError."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

from conftest import shared_clip, write_mp3
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
