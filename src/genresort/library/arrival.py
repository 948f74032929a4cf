"""What arrived: the bytes of a file around its audio, kept when it is sorted, so that an undo can give the file
back byte for byte as it arrived, every tag as it was and nothing of genresort's left.

Our tag writing never changes the audio bytes (tags.py proves it for every file it writes), so a sorted file is
its original with other bytes before and after the audio: the original is the kept head, the sorted file's audio,
and the kept tail. The audio may have moved (an M4A whose moov, before its mdat, grew; mutagen then rewrote the
moov's chunk offsets): the kept head is the original's, offsets included, so the rebuilt file is still the original.
What genresort wrote is fingerprinted too, so that an undo can refuse a file a person changed.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from genresort.library.tags import TagError, audio_span

_CHUNK = 1 << 20


class CannotRebuild(Exception):
    """The original cannot be given back from what was kept; the message says why."""


@dataclass(frozen=True)
class Arrival:
    # the bytes before the audio: an MP3's ID3v2 tag, often with cover art; FLAC's metadata blocks; an M4A's boxes
    # before its mdat payload (its moov, if first); an AIFF's chunks before its sound data; a WMA's ASF header
    head: bytes
    tail: bytes  # the bytes after it: APEv2 and ID3v1 tags; an M4A's moov, if last; an AIFF's ID3 chunk


@dataclass(frozen=True)
class Written:
    """The file as genresort left it: a file whose size, modification time or tags differ was changed since."""

    size: int
    mtime_ns: int
    tags_sha256: str  # of the bytes around the audio


def _around_audio(path: Path) -> tuple[bytes, bytes, int]:
    """(head, tail, file size); CannotRebuild where the format's tag writer may rewrite the container."""
    try:
        span = audio_span(path)
    except TagError as error:
        raise CannotRebuild(str(error)) from error
    if span is None:
        raise CannotRebuild(
            f"the audio of {path.name} is not one span of bytes that tagging leaves as it is (Ogg Vorbis, Opus and"
            " WAV files are rewritten around their audio when tagged, a fragmented M4A holds it in pieces)"
        )
    start, end = span
    with open(path, "rb") as stream:
        head = stream.read(start)
        stream.seek(end)
        tail = stream.read()
        return head, tail, os.fstat(stream.fileno()).st_size


def read_arrival(path: Path) -> Arrival:
    """What to keep of a file as it arrived (read from its untouched staged copy)."""
    head, tail, _ = _around_audio(path)
    return Arrival(head, tail)


def read_written(path: Path) -> Written:
    head, tail, size = _around_audio(path)
    return Written(size, os.stat(path).st_mtime_ns, hashlib.sha256(head + tail).hexdigest())


def rebuild(placed: Path, arrival: Arrival, target: BinaryIO) -> None:
    """Write the original into `target`: the kept head, the placed file's audio, the kept tail."""
    head, tail, _ = _around_audio(placed)
    with open(placed, "rb") as stream:
        stream.seek(len(head))
        remaining = os.fstat(stream.fileno()).st_size - len(head) - len(tail)
        target.write(arrival.head)
        while remaining > 0:
            chunk = stream.read(min(_CHUNK, remaining))
            if not chunk:
                raise CannotRebuild(f"{placed} ended before its audio did")
            target.write(chunk)
            remaining -= len(chunk)
        target.write(arrival.tail)
