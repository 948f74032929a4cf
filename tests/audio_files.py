"""Real audio files of every format genresort takes, written by the tests with PyAV's encoders (FFmpeg's).

`write_audio(path, "m4a-aac", tags={"title": ..., "artist": ..., "genre": ...})` writes a few seconds of tones in
noise, stereo 44.1 kHz (Opus: 48 kHz, the only rates it has), in that format's own container, whatever `path`'s
extension says (so a test can name an MP3 `.m4a`). Tags go in through FFmpeg's metadata, which each muxer writes
in its format's own way: ID3v2 in MP3, Vorbis comments in FLAC and Ogg, `©nam`/`©ART`/`©gen` atoms in M4A, an ID3v2
tag before a raw AAC (ADTS) stream (mutagen.File takes that for an MP3 and fails: read it with mutagen.aac.AAC),
an ID3v2 chunk in AIFF (as iTunes and Picard write it), ASF's content description and `WM/Genre` in WMA, and a
LIST/INFO chunk in WAV (which mutagen does not read: it reads only a WAV's ID3 chunk).

Encoders: the PyAV wheel has no libvorbis, so Ogg Vorbis is written with FFmpeg's own (experimental) Vorbis
encoder; every other format uses the usual one (libmp3lame, libopus, aac, alac, wmav2, flac, pcm_s16be/le).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID

import av
import numpy as np


@dataclass(frozen=True)
class Encoding:
    container: str  # FFmpeg's muxer
    codec: str
    extension: str  # the usual extension, for tests that want a natural name
    bit_rate: int = 0  # 0: the encoder's default
    codec_options: dict[str, str] = field(default_factory=dict)
    container_options: dict[str, str] = field(default_factory=dict)


#: Every format `write_audio` writes, by the name tests use.
ENCODINGS: dict[str, Encoding] = {
    "mp3": Encoding("mp3", "libmp3lame", ".mp3"),
    "flac": Encoding("flac", "flac", ".flac"),
    "ogg-vorbis": Encoding("ogg", "vorbis", ".ogg", codec_options={"strict": "experimental"}),
    "opus": Encoding("opus", "libopus", ".opus"),
    "m4a-aac": Encoding("ipod", "aac", ".m4a"),
    "aac": Encoding("adts", "aac", ".aac", container_options={"write_id3v2": "1"}),  # raw AAC, ID3v2 in front
    "m4a-alac": Encoding("ipod", "alac", ".m4a"),
    "aiff": Encoding("aiff", "pcm_s16be", ".aiff", container_options={"write_id3v2": "1"}),
    "wav": Encoding("wav", "pcm_s16le", ".wav"),
    "wma": Encoding("asf", "wmav2", ".wma", bit_rate=128_000),  # wmav2 has no default rate,
}
AUDIO_FORMATS = tuple(ENCODINGS)

SAMPLE_RATE = 44100
OPUS_RATE = 48000  # libopus takes 8, 12, 16, 24 or 48 kHz only
LOOP_SECONDS = 10  # the signal repeats after this
BLOCK = 4096  # samples per frame handed to the encoder (PyAV re-cuts them to the codec's frame size)


def tone_in_noise(seconds: float, sample_rate: int = SAMPLE_RATE, seed: int = 0) -> np.ndarray:
    """(2, samples) float32 stereo: four tones (a different mix on each side) in a little noise, peak below 0.6.

    One block of up to LOOP_SECONDS is made and repeated (the tones are whole numbers of hertz, so it joins without
    a click): ten minutes cost no more to make than ten seconds.
    """
    generator = np.random.default_rng(seed)
    total = int(round(seconds * sample_rate))
    time = np.arange(min(total, LOOP_SECONDS * sample_rate)) / sample_rate
    channels = []
    for _ in range(2):
        frequencies = np.round(generator.uniform(100, 2000, size=4))
        tones = sum(0.1 * np.sin(2 * np.pi * frequency * time) for frequency in frequencies)
        channels.append(tones + 0.02 * generator.standard_normal(len(time)))
    block = np.asarray(channels, dtype=np.float32)
    return np.tile(block, -(-total // block.shape[1]))[:, :total]


def write_audio(
    path: Path,
    audio_format: str,
    seconds: float = 4.0,
    *,
    tags: Mapping[str, str] | None = None,
    seed: int = 0,
    container_options: Mapping[str, str] | None = None,
) -> Path:
    """Write `seconds` of stereo tones in noise to `path` as `audio_format` (one of AUDIO_FORMATS), with `tags`
    (FFmpeg metadata keys: title, artist, album, album_artist, track, genre, date...) in the format's own fields.
    `container_options` go to FFmpeg's muxer, e.g. {"movflags": "faststart"}: an M4A's index before its audio.
    """
    encoding = ENCODINGS[audio_format]
    sample_rate = OPUS_RATE if audio_format == "opus" else SAMPLE_RATE
    signal = tone_in_noise(seconds, sample_rate, seed)
    options = {**encoding.container_options, **(container_options or {})}
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format=encoding.container, options=options) as container:
        container.metadata.update(tags or {})
        stream = container.add_stream(encoding.codec, rate=sample_rate, options=encoding.codec_options)
        stream.layout = "stereo"
        if encoding.bit_rate:
            stream.bit_rate = encoding.bit_rate
        for start in range(0, signal.shape[1], BLOCK):
            frame = av.AudioFrame.from_ndarray(signal[:, start : start + BLOCK].copy(), format="fltp", layout="stereo")
            frame.sample_rate = sample_rate
            frame.pts = start
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


# --- files that cannot be heard ------------------------------------------------------------------------------------

#: The GUID of ASF's Content Encryption object (Windows Media DRM 7), as a file stores it.
CONTENT_ENCRYPTION = UUID("2211B3FB-BD23-11D2-B4B7-00A0C955FC6E").bytes_le


def with_asf_header_object(asf: bytes, guid: bytes, body: bytes) -> bytes:
    """The ASF file with one more object in its header object (whose size and object count follow)."""
    header_size, objects = struct.unpack("<QI", asf[16:28])
    added = guid + struct.pack("<Q", 24 + len(body)) + body
    return asf[:16] + struct.pack("<QI", header_size + len(added), objects + 1) + asf[28:30] + added + asf[30:]


def sized(field: bytes) -> bytes:
    return struct.pack("<I", len(field)) + field


def content_encryption(asf: bytes) -> bytes:
    """A Windows Media DRM 7 file's Content Encryption object: secret data, protection type, key id, licence URL."""
    body = sized(b"\x13\x37secret") + sized(b"DRM\x00") + sized(b"key-id\x00") + sized(b"http://licence.example/\x00")
    return with_asf_header_object(asf, CONTENT_ENCRYPTION, body)
