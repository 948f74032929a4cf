"""Probing and windowed decoding of audio files.

A decision needs only a few seconds of sound, so we seek to the analysis windows instead of decoding a whole
track: a 10-minute song costs as much as a 30-second clip. Every way a file can fail to give us sound ends in
one `AudioError` subclass whose message a person can act on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import mutagen
import mutagen.mp3
import numpy as np
import soundfile
import soxr

MINIMUM_SECONDS = 1.0
SILENCE_PEAK = 1e-4  # about -80 dBFS: below this every analysis window is digital silence

#: Extensions the decoder reads (libsndfile with its MPEG support).
AUDIO_EXTENSIONS = frozenset({".mp3", ".wav", ".flac", ".ogg", ".oga"})


class AudioError(Exception):
    """The file cannot give us sound to analyse; the message says why in plain words."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class EmptyFileError(AudioError):
    pass


class NotAudioError(AudioError):
    pass


class TruncatedAudioError(AudioError):
    pass


class TooShortError(AudioError):
    pass


class SilentAudioError(AudioError):
    pass


@dataclass(frozen=True)
class AudioInfo:
    path: Path
    sample_rate: int
    channels: int
    frames: int
    format: str

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def probe(path: Path) -> AudioInfo:
    """Read the header only: format, rate, channels, length."""
    path = Path(path)
    with open(path, "rb") as stream:  # a missing or unreadable file is an OSError, not bad audio: it may pass
        if os.fstat(stream.fileno()).st_size == 0:
            raise EmptyFileError(path, "the file is empty (0 bytes)")
    try:
        info = soundfile.info(str(path))
    except (soundfile.SoundFileError, RuntimeError, TypeError) as error:
        raise NotAudioError(path, "not a readable audio file (no MP3, WAV, FLAC or OGG stream found)") from error
    if info.frames <= 0 or info.samplerate <= 0:
        raise NotAudioError(path, "the audio stream holds no samples")
    frames = int(info.frames)
    if info.format == "MP3":
        frames = mp3_frames(path, frames, int(info.samplerate))
    return AudioInfo(path, int(info.samplerate), int(info.channels), frames, str(info.format))


def mp3_frames(path: Path, libsndfile_frames: int, sample_rate: int) -> int:
    """The length of an MP3's audio, in frames, with its ID3 tag left out.

    Without a Xing header libsndfile guesses the length from the file size, tag included, so a 20 MB cover
    adds minutes of sound that is not there. mutagen skips the tag (it reads its 10-byte header, not the tag)
    before it reads the Xing header or, without one, guesses from the size of the audio alone.
    """
    try:
        with open(path, "rb") as stream:
            seconds = mutagen.mp3.MPEGInfo(stream).length
    except mutagen.MutagenError:  # no MPEG frame where mutagen looks for one: libsndfile's count is all we have
        return libsndfile_frames
    return min(libsndfile_frames, round(seconds * sample_rate))


@dataclass(frozen=True)
class WindowPlan:
    """How much of a file to listen to: short clips whole, longer tracks at a few spread-out places."""

    window_seconds: float = 6.0
    window_count: int = 4
    whole_clip_seconds: float = 35.0


def analysis_windows(duration: float, plan: WindowPlan) -> list[tuple[float, float]]:
    """Where to listen in a track of `duration` seconds: (start, length) pairs in seconds.

    A clip up to `whole_clip_seconds` is taken whole (like the 30 s clips the model learnt from). A longer
    track is heard at `window_count` evenly spread places between 10% and 90% of its length, so an intro or
    outro never decides alone.
    """
    window_seconds, window_count = plan.window_seconds, plan.window_count
    if duration <= max(plan.whole_clip_seconds, window_seconds * window_count):
        return [(0.0, duration)]
    first, last = 0.1 * duration, 0.9 * duration - window_seconds
    if last <= first:
        first, last = 0.0, duration - window_seconds
    starts = np.linspace(first, last, window_count)
    return [(float(start), window_seconds) for start in starts]


def to_mono(samples: np.ndarray) -> np.ndarray:
    """(frames,) or (frames, channels) float -> (frames,) float32 average of the channels."""
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    return np.ascontiguousarray(samples, dtype=np.float32)


def resample(samples: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    if source_rate == target_rate:
        return samples
    return soxr.resample(samples, source_rate, target_rate, quality="HQ").astype(np.float32, copy=False)


def decode_window(sound: soundfile.SoundFile, start: float, length: float, target_rate: int) -> np.ndarray:
    """Decode `length` seconds from `start` of an open file, as mono float32 at `target_rate`."""
    rate = sound.samplerate
    first = int(round(start * rate))
    count = min(int(round(length * rate)), sound.frames - first)
    sound.seek(first)
    samples = sound.read(count, dtype="float32", always_2d=True)
    if len(samples) < 0.5 * count:
        raise TruncatedAudioError(
            Path(sound.name),
            f"the audio stops at {(first + len(samples)) / rate:.1f} s although the header promises "
            f"{sound.frames / rate:.1f} s: the file is truncated or still being written",
        )
    return resample(to_mono(samples), rate, target_rate)


def decode_analysis_windows(path: Path, target_rate: int, plan: WindowPlan) -> list[np.ndarray]:
    """The analysis windows of a file as mono float32 arrays at `target_rate`.

    Raises an `AudioError` subclass for anything that is not at least a second of real sound.
    """
    path = Path(path)
    info = probe(path)
    if info.duration < MINIMUM_SECONDS:
        raise TooShortError(path, f"only {info.duration:.2f} s of audio; at least {MINIMUM_SECONDS:.0f} s is needed")
    try:
        with soundfile.SoundFile(str(path)) as sound:
            windows = [
                decode_window(sound, start, length, target_rate)
                for start, length in analysis_windows(info.duration, plan)
            ]
    except (soundfile.SoundFileError, RuntimeError) as error:
        raise NotAudioError(path, f"the audio stream is damaged ({error})") from error
    if sum(len(window) for window in windows) < MINIMUM_SECONDS * target_rate:
        raise TooShortError(path, f"less than {MINIMUM_SECONDS:.0f} s of audio could be decoded")
    if max(float(np.max(np.abs(window), initial=0.0)) for window in windows) < SILENCE_PEAK:
        raise SilentAudioError(path, "the audio is digital silence: there is nothing to listen to")
    return windows
