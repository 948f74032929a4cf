"""Probing and windowed decoding of audio files.

A decision needs only a few seconds of sound, so we seek to the analysis windows instead of decoding a whole
track: a 10-minute song costs as much as a 30-second clip. Every way a file can fail to give us sound ends in
one `AudioError` subclass whose message a person can act on.

The content chooses the decoder (`library.formats`), never the name. libsndfile decodes what it read before
(MP3, WAV, FLAC, Ogg Vorbis: the shipped model learnt its decodes, so they must not change) and AIFF (plain PCM,
which it reads sample for sample as FFmpeg does). PyAV, FFmpeg bundled in its wheel, decodes the rest (M4A/MP4
with AAC or ALAC, raw AAC, Opus, WMA) and any file of a known format that libsndfile refuses. Content of no known
format is still offered to libsndfile, which finds MPEG frames further into a file than `library.formats` looks.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import av
import mutagen
import mutagen.mp3
import numpy as np
import soundfile
import soxr

# The errors and AUDIO_EXTENSIONS live in light modules, for callers that only catch or match them (the daemon's
# parent process imports no decoder); they are named here too, for callers of the decoder.
from genresort.analysis.errors import (
    NOT_AUDIO,
    AudioError,  # noqa: F401 (re-exported)
    DamagedAudioError,
    EmptyFileError,
    NotAudioError,
    ProtectedAudioError,
    SilentAudioError,
    TooShortError,
    TruncatedAudioError,
)
from genresort.library.formats import (
    AUDIO_EXTENSIONS,  # noqa: F401 (re-exported)
    AudioFormat,
    asf_protected,
    format_of,
    read_asf_header,
)

MINIMUM_SECONDS = 1.0
SILENCE_PEAK = 1e-4  # about -80 dBFS: below this every analysis window is digital silence
#: How far before a window FFmpeg starts decoding after a seek: the lapped transforms of AAC, Vorbis, Opus and
#: WMA need the packets before a window to rebuild its first samples.
SEEK_PREROLL_SECONDS = 0.5

#: The formats libsndfile decodes (before FFmpeg is tried).
SNDFILE_FORMATS = frozenset(
    {AudioFormat.MP3, AudioFormat.WAV, AudioFormat.FLAC, AudioFormat.OGG_VORBIS, AudioFormat.AIFF}
)
#: FFmpeg's demuxer for each format: the content found by `library.formats` chooses it, not the file's name.
DEMUXERS = {
    AudioFormat.MP3: "mp3",
    AudioFormat.AAC: "aac",
    AudioFormat.FLAC: "flac",
    AudioFormat.OGG_VORBIS: "ogg",
    AudioFormat.OPUS: "ogg",
    AudioFormat.MP4: "mp4",
    AudioFormat.AIFF: "aiff",
    AudioFormat.WAV: "wav",
    AudioFormat.ASF: "asf",
}
FORMAT_NAMES = {
    AudioFormat.MP3: "MP3",
    AudioFormat.AAC: "AAC",
    AudioFormat.FLAC: "FLAC",
    AudioFormat.OGG_VORBIS: "Ogg Vorbis",
    AudioFormat.OPUS: "Opus",
    AudioFormat.MP4: "M4A/MP4",
    AudioFormat.AIFF: "AIFF",
    AudioFormat.WAV: "WAV",
    AudioFormat.ASF: "WMA",
}
#: MP4 sample entries of iTunes' FairPlay DRM (FFmpeg reads them as AAC, but the audio is encrypted).
FAIRPLAY_CODEC_TAGS = frozenset({"drms"})


@dataclass(frozen=True)
class AudioInfo:
    path: Path
    sample_rate: int
    channels: int
    frames: int
    format: str  # as the decoder names it: libsndfile's "MP3", "WAV"...; FFmpeg's "M4A/MP4 (alac)"...
    container: AudioFormat | None = None  # as `library.formats` knows it from the content
    decoder: Literal["libsndfile", "ffmpeg"] = "libsndfile"

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def probe(path: Path) -> AudioInfo:
    """Read the header only: format, rate, channels, length."""
    path = Path(path)
    with open(path, "rb") as stream:  # a missing or unreadable file is an OSError, not bad audio: it may pass
        if os.fstat(stream.fileno()).st_size == 0:
            raise EmptyFileError(path, "the file is empty (0 bytes)")
    container = format_of(path)
    if container is AudioFormat.ASF and asf_protected(read_asf_header(path)):
        raise ProtectedAudioError(path, "protected by DRM (Windows Media rights management): genresort cannot hear it")
    if container is None or container in SNDFILE_FORMATS:
        try:
            return sndfile_probe(path, container)
        except (soundfile.SoundFileError, RuntimeError, TypeError) as error:
            if container is None:
                raise NotAudioError(path, NOT_AUDIO) from error
    return ffmpeg_probe(path, container)


def sndfile_probe(path: Path, container: AudioFormat | None) -> AudioInfo:
    info = soundfile.info(str(path))
    if info.frames <= 0 or info.samplerate <= 0:
        raise NotAudioError(path, "the audio stream holds no samples")
    frames = int(info.frames)
    if info.format == "MP3":
        frames = mp3_frames(path, frames, int(info.samplerate))
    return AudioInfo(path, int(info.samplerate), int(info.channels), frames, str(info.format), container)


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
    """(frames,) or (frames, channels) float -> (frames,) float32 average of the channels.

    Channel by channel: numpy's mean along a short last axis took a third of a long track's decoding time."""
    if samples.ndim == 2:
        total = samples[:, 0].astype(np.float32)
        for channel in range(1, samples.shape[1]):
            total += samples[:, channel]
        samples = total / np.float32(samples.shape[1])
    return np.ascontiguousarray(samples, dtype=np.float32)


def resample(samples: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    if source_rate == target_rate:
        return samples
    return soxr.resample(samples, source_rate, target_rate, quality="HQ").astype(np.float32, copy=False)


def decode_window(sound: soundfile.SoundFile, start: float, length: float, target_rate: int) -> np.ndarray:
    """Decode `length` seconds from `start` of a file open in libsndfile, as mono float32 at `target_rate`."""
    rate = sound.samplerate
    first = int(round(start * rate))
    count = min(int(round(length * rate)), sound.frames - first)
    sound.seek(first)
    samples = sound.read(count, dtype="float32", always_2d=True)
    if len(samples) < 0.5 * count:
        raise truncated(Path(sound.name), (first + len(samples)) / rate, sound.frames / rate)
    return resample(to_mono(samples), rate, target_rate)


def truncated(path: Path, stops_at: float, promised: float) -> TruncatedAudioError:
    return TruncatedAudioError(
        path,
        f"the audio stops at {stops_at:.1f} s although the header promises {promised:.1f} s: "
        "the file is truncated or still being written",
    )


# --- FFmpeg (PyAV) -------------------------------------------------------------------------------------------------


@contextmanager
def ffmpeg_stream(path: Path, container: AudioFormat) -> Iterator[tuple[av.container.InputContainer, av.AudioStream]]:
    """The file open in FFmpeg with the demuxer its content calls for, and its audio stream with the decoder open."""
    with ffmpeg_errors(path, container, opening=True):
        opened = av.open(str(path), format=DEMUXERS[container])
    with opened:
        with ffmpeg_errors(path, container, opening=True):
            stream = audio_stream(path, container, opened)
        yield opened, stream


@contextmanager
def ffmpeg_errors(path: Path, container: AudioFormat, opening: bool) -> Iterator[None]:
    """FFmpeg's failures to open (or, `opening` False, to decode) a file of a known format as AudioErrors with a
    reason in words; an OSError (a permission: the file's fault, not the audio's) passes."""
    try:
        yield
    except av.FFmpegError as error:
        if isinstance(error, OSError):
            raise
        if container is AudioFormat.MP4 and mp4_cut_short(path):
            raise TruncatedAudioError(
                path,
                "the M4A/MP4 file is truncated or still being written: it ends inside its boxes or before its index",
            ) from error
        if not opening:
            raise DamagedAudioError(path, f"the audio stream is damaged ({error.strerror})") from error
        if container is AudioFormat.OPUS:
            raise DamagedAudioError(
                path, f"the Opus file's header is broken: it cannot be decoded ({error.strerror})"
            ) from error
        raise DamagedAudioError(
            path, f"a damaged {FORMAT_NAMES[container]} file: it cannot be decoded ({error.strerror})"
        ) from error


def audio_stream(path: Path, container: AudioFormat, opened: av.container.InputContainer) -> av.AudioStream:
    if not opened.streams.audio:
        raise NotAudioError(path, f"the {FORMAT_NAMES[container]} file has no audio track (a video without sound?)")
    stream = opened.streams.audio[0]
    if stream.codec_context.codec_tag in FAIRPLAY_CODEC_TAGS:
        raise ProtectedAudioError(path, "protected by DRM (an iTunes FairPlay purchase): genresort cannot hear it")
    stream.codec_context.open()  # a broken codec header (an Opus head, an AAC config) fails here, not mid-stream
    return stream


def mp4_cut_short(path: Path) -> bool:
    """Whether an MP4's top-level boxes run past the end of the file, or end without the index (`moov`) that
    FFmpeg writes last: what a file cut short or still being copied looks like."""
    size, position, indexed = path.stat().st_size, 0, False
    with open(path, "rb") as stream:
        while position + 8 <= size:
            stream.seek(position)
            header = stream.read(16)
            box_size = int.from_bytes(header[:4], "big")
            if box_size == 1:  # a 64-bit size follows the type
                box_size = int.from_bytes(header[8:16], "big")
            elif box_size == 0:  # the box runs to the end of the file
                box_size = size - position
            if box_size < 8:
                return False  # no box structure at all: damaged, not cut short
            indexed |= header[4:8] == b"moov"
            position += box_size
    return position > size or not indexed


def ffmpeg_probe(path: Path, container: AudioFormat) -> AudioInfo:
    with ffmpeg_stream(path, container) as (opened, stream):
        rate, channels = stream.codec_context.sample_rate, stream.codec_context.channels
        if stream.duration:
            seconds = float(stream.duration * stream.time_base)
        else:
            seconds = (opened.duration or 0) / av.time_base
        if rate <= 0 or channels <= 0 or seconds <= 0:
            raise NotAudioError(path, "the audio stream holds no samples")
        codec = stream.codec_context.name
        return AudioInfo(
            path, rate, channels, round(seconds * rate), f"{FORMAT_NAMES[container]} ({codec})", container, "ffmpeg"
        )


def ffmpeg_windows(info: AudioInfo, windows: list[tuple[float, float]], target_rate: int) -> list[np.ndarray]:
    assert info.container is not None  # probe hands FFmpeg only files of a known format
    with ffmpeg_stream(info.path, info.container) as (opened, stream):
        with ffmpeg_errors(info.path, info.container, opening=False):
            return [ffmpeg_window(opened, stream, info, start, length, target_rate) for start, length in windows]


def ffmpeg_window(
    opened: av.container.InputContainer,
    stream: av.AudioStream,
    info: AudioInfo,
    start: float,
    length: float,
    target_rate: int,
) -> np.ndarray:
    """Seek FFmpeg to just before `start` and decode `length` seconds, as mono float32 at `target_rate`.

    A packet the decoder cannot read is skipped, as players do. A window that still comes out short is truncation
    when the data ended there (at most one packet, the one the end of the file cut, failed last) or the container
    says it is cut short, and damage when packets failed on the way.
    """
    rate = info.sample_rate
    first = int(round(start * rate))
    count = min(int(round(length * rate)), info.frames - first)
    seek_to = max(0.0, start - SEEK_PREROLL_SECONDS)
    opened.seek(int(seek_to / stream.time_base), stream=stream)
    to_float = av.AudioResampler(format="fltp")  # the sample format only: rate and channels stay
    pieces, heard, position = [], 0, int(round(seek_to * rate))
    broken, failing = 0, 0  # packets that failed before a good frame; packets failing since the last good frame
    for frame in decoded_frames(opened, stream):
        if frame is None:
            failing += 1
            continue
        broken, failing = broken + failing, 0
        if frame.pts is not None:
            position = int(round(float(frame.pts * (frame.time_base or stream.time_base)) * rate))
        samples = to_mono(np.concatenate([part.to_ndarray() for part in to_float.resample(frame)], axis=1).T)
        piece = samples[max(0, first - position) :][: count - heard]
        position += frame.samples
        pieces.append(piece)
        heard += len(piece)
        if heard >= count:
            break
    if heard < 0.5 * count:
        cut_short = info.container is AudioFormat.MP4 and mp4_cut_short(info.path)
        if (broken or failing > 1) and not cut_short:
            raise DamagedAudioError(
                info.path, f"the audio stream is damaged: {broken + failing} packets cannot be decoded"
            )
        raise truncated(info.path, (first + heard) / rate, info.duration)
    return resample(np.concatenate(pieces) if pieces else np.zeros(0, np.float32), rate, target_rate)


def decoded_frames(opened: av.container.InputContainer, stream: av.AudioStream) -> Iterator[av.AudioFrame | None]:
    """The frames FFmpeg decodes from where the container stands, with None for each packet it cannot decode."""
    for packet in opened.demux(stream):
        try:
            yield from packet.decode()
        except av.InvalidDataError:
            yield None


def decode_analysis_windows(path: Path, target_rate: int, plan: WindowPlan) -> list[np.ndarray]:
    """The analysis windows of a file as mono float32 arrays at `target_rate`.

    Raises an `AudioError` subclass for anything that is not at least a second of real sound.
    """
    path = Path(path)
    info = probe(path)
    if info.duration < MINIMUM_SECONDS:
        raise TooShortError(path, f"only {info.duration:.2f} s of audio; at least {MINIMUM_SECONDS:.0f} s is needed")
    places = analysis_windows(info.duration, plan)
    if info.decoder == "ffmpeg":
        windows = ffmpeg_windows(info, places, target_rate)
    else:
        try:
            with soundfile.SoundFile(str(path)) as sound:
                windows = [decode_window(sound, start, length, target_rate) for start, length in places]
        except (soundfile.SoundFileError, RuntimeError) as error:
            if info.container is None:
                raise DamagedAudioError(path, f"the audio stream is damaged ({error})") from error
            # libsndfile gave up inside a file of a known format (a FLAC cut short fails its seek): FFmpeg says why
            windows = ffmpeg_windows(ffmpeg_probe(path, info.container), places, target_rate)
    if sum(len(window) for window in windows) < MINIMUM_SECONDS * target_rate:
        raise TooShortError(path, f"less than {MINIMUM_SECONDS:.0f} s of audio could be decoded")
    if max(float(np.max(np.abs(window), initial=0.0)) for window in windows) < SILENCE_PEAK:
        raise SilentAudioError(path, "the audio is digital silence: there is nothing to listen to")
    return windows
