"""Genre tags written into a staged copy of a music file, and verified by reading them back.

Only a staged copy is ever edited (the caller guarantees this), so a failed or interrupted write
costs nothing: the caller discards the copy and the user's original is still in the inbox.
That is also why every write is checked afterwards instead of trusted.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO

import mutagen
import soundfile as sf
from mutagen.flac import FLAC
from mutagen.id3 import ID3, TCON, TXXX, Encoding, ID3NoHeaderError, ID3v1SaveOptions
from mutagen.mp3 import MP3
from mutagen.oggvorbis import OggVorbis
from mutagen.wave import WAVE

_CHUNK = 1 << 20
_FORMATS = [MP3, FLAC, OggVorbis, WAVE]

GENRE_SEPARATOR = "; "
"""Joins several genres in one ID3v2.3 TCON value: v2.3 has no portable multi-value form, "/" occurs
in real genre names ("Pop/Funk") and "; " is how Windows shows multi-valued properties."""

PREVIOUS_GENRE = "GENRESORT_PREVIOUS_GENRE"
_OUR_GENRE = "GENRESORT_GENRE"

# ID3v2.4 frames with no ID3v2.3 equivalent. mutagen's update_to_v23 deletes them; we put them back
# as off-spec frames (which v2.3 readers skip) because converting must never lose data.
_V24_ONLY_FRAMES = "ASPI EQU2 RVA2 SEEK SIGN TDEN TDRL TDTG TMOO TPRO TSOA TSOP TSOT TSST".split()


class ExistingGenrePolicy(StrEnum):
    """What happens to a genre the file already has (a file without one gets ours in TCON/GENRE, except
    with UNTOUCHED)."""

    KEEP = "keep"  # the genre field stays as it was; ours goes only to GENRESORT_GENRE
    UNTOUCHED = "untouched"  # the genre field is never written, even when empty (used for 'unsure' files)
    OVERWRITE = "overwrite"  # the genre field becomes ours
    ADD = "add"  # the genre field keeps the old genre(s) and gains ours as another value


@dataclass(frozen=True)
class GenreTags:
    genre: str  # plain text, e.g. "Jazz"
    confidence: float  # 0..1
    top: tuple[tuple[str, float], ...]  # the top 3 (genre, probability)
    model_id: str  # e.g. "genresort-gtzan-2026.11 sha256:abcd1234"
    decision: str | None = None  # what was done: the genre, "unsure" or "not-music" (GENRESORT_DECISION)
    music_probability: float | None = None  # the evidence for music or not (GENRESORT_MUSIC_PROBABILITY)
    # A person's assignment: the label the file had before (a genre, "unsure" or "not-music"), kept in
    # GENRESORT_PREVIOUS_GENRE in place of the genre it arrived with
    previous_genre: str | None = None

    def __post_init__(self) -> None:
        # "(8)" or "8" would be read as ID3v1 genre numbers, and ";" is our separator.
        name = self.genre.strip()
        if not name or name != self.genre or name.startswith("(") or name.isdigit() or ";" in name:
            raise ValueError(f"not a plain-text genre name: {self.genre!r}")
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"confidence must be within 0..1, got {self.confidence}")
        # ID3 drops empty text frames on save, which the read-back check would report as a failure.
        if not self.top or not self.model_id.strip():
            raise ValueError("top and model_id must not be empty")


class TagError(Exception):
    """The file cannot be tagged safely; the message names the file and says why."""


def read_genres(path: Path) -> list[str]:
    """The genre(s) a player would show for the file now; [] when it has none or no tags.

    For an MP3 this includes an ID3v1 genre when the ID3v2 tag has none. Raises TagError for
    files that are not readable MP3, FLAC, Ogg Vorbis or WAV.
    """
    tags = _open(path).tags
    if tags is None:
        return []
    if isinstance(tags, ID3):
        return _split_genres(tags["TCON"].genres if "TCON" in tags else [])
    return _split_genres(tags.get("genre", []))


def write_genre_tags(path: Path, tags: GenreTags, policy: ExistingGenrePolicy) -> None:
    """Write our genre tags into `path` in place, then read them back and verify.

    `path` must be a staged copy: on TagError the caller discards it and places the original
    untagged (this is also what happens for a WAV that mutagen cannot give an ID3 chunk).
    MP3 files get an ID3v2.3 tag (what Windows and older players read); FLAC and Ogg Vorbis get
    Vorbis comments; WAV gets an ID3v2.3 chunk.

    GENRESORT_PREVIOUS_GENRE records the genre the file had before genresort first touched it:
    it is written only when the file has a genre and carries no GENRESORT_* genre yet, so
    re-sorting a file never replaces the user's original genre with one of our own.

    Raises TagError when the file is not a supported audio file, mutagen cannot parse or save it
    (mutagen reports I/O errors such as ENOSPC this way too), or the read-back differs from what
    was intended (values, lost frames, changed audio bytes). Either way: discard the copy.
    """
    audio = _open(path)
    try:
        if isinstance(audio, FLAC | OggVorbis):
            _write_vorbis(path, audio, tags, policy)
        else:
            _write_id3(path, audio, tags, policy)
    except mutagen.MutagenError as error:
        raise TagError(f"Cannot tag {path}: {error}") from error


def audio_payload_sha256(path: Path) -> str:
    """sha256 of the audio alone, so that tag edits can be proven not to touch the sound.

    MP3: the bytes between the leading ID3v2 tag(s) and any trailing APEv2/ID3v1 tags.
    FLAC: the bytes after the metadata blocks. Ogg Vorbis and WAV: the decoded PCM (their tag
    writers may legitimately rewrite container bytes around unchanged audio).
    """
    span = audio_span(path)
    if span is None:
        return _pcm_sha256(path)
    with open(path, "rb") as f:
        return _sha256_range(f, *span)


def audio_span(path: Path) -> tuple[int, int] | None:
    """(start, end) offsets of the audio bytes, which our tag writing never changes: for MP3 between the leading
    ID3v2 tag(s) and any trailing APEv2/ID3v1 tags, for FLAC after the metadata blocks. None for Ogg Vorbis and
    WAV, whose tag writers may rewrite container bytes around unchanged audio."""
    audio = _open(path)
    if isinstance(audio, OggVorbis | WAVE):
        return None
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        start = _id3v2_end(f)
        if isinstance(audio, FLAC):
            return _flac_audio_start(f, start, path), size
        return start, _mp3_audio_end(f, start, size, path)


# --- writing ---------------------------------------------------------------------------------


def _plan(tags: GenreTags, existing: list[str], policy: ExistingGenrePolicy, seen_before: bool) -> dict[str, list[str]]:
    """The fields to write, by Vorbis-style name ("GENRE" = the genre field; absent = leave it)."""
    top3 = GENRE_SEPARATOR.join(f"{name} {probability:.3f}" for name, probability in tags.top)
    plan = {
        _OUR_GENRE: [tags.genre],
        "GENRESORT_CONFIDENCE": [f"{tags.confidence:.3f}"],
        "GENRESORT_TOP3": [top3],
        "GENRESORT_MODEL": [tags.model_id],
    }
    if tags.decision is not None:
        plan["GENRESORT_DECISION"] = [tags.decision]
    if tags.music_probability is not None:
        plan["GENRESORT_MUSIC_PROBABILITY"] = [f"{tags.music_probability:.3f}"]
    if tags.previous_genre is not None:
        plan[PREVIOUS_GENRE] = [tags.previous_genre]
    elif existing and not seen_before:
        plan[PREVIOUS_GENRE] = existing
    if policy is ExistingGenrePolicy.UNTOUCHED:
        return plan
    if not existing or policy is ExistingGenrePolicy.OVERWRITE:
        plan["GENRE"] = [tags.genre]
    elif policy is ExistingGenrePolicy.ADD and tags.genre.casefold() not in {g.casefold() for g in existing}:
        plan["GENRE"] = [*existing, tags.genre]
    return plan


def _write_id3(path: Path, audio: mutagen.FileType, tags: GenreTags, policy: ExistingGenrePolicy) -> None:
    is_mp3 = isinstance(audio, MP3)
    if audio.tags is None:
        audio.add_tags()
    existing = _split_genres(audio.tags["TCON"].genres if "TCON" in audio.tags else [])
    # audio.tags of an MP3 has ID3v1 fields merged in: right for knowing the current genre, but the
    # tag we rewrite must hold only what the ID3v2 tag holds (the ID3v1 tag is kept byte for byte).
    id3 = _load_id3v2(path) if is_mp3 else audio.tags
    seen_before = f"TXXX:{_OUR_GENRE}" in id3 or f"TXXX:{PREVIOUS_GENRE}" in id3
    plan = _plan(tags, existing, policy, seen_before)
    keys_before, unknown_before = set(id3.keys()), _unknown_frame_ids(id3)
    trailer = _id3v1_trailer(path) if is_mp3 else b""
    payload_before = audio_payload_sha256(path)

    for name, values in plan.items():
        text = [GENRE_SEPARATOR.join(values)]
        if name == "GENRE":
            id3.add(TCON(encoding=Encoding.UTF8, text=text))
        else:
            id3.add(TXXX(encoding=Encoding.UTF8, desc=name, text=text))
    _convert_to_v23(id3)
    if is_mp3:
        # mutagen can only regenerate or drop an ID3v1 tag; dropping and re-appending keeps it unchanged.
        id3.save(path, v1=ID3v1SaveOptions.REMOVE, v2_version=3)
        if trailer:
            with open(path, "ab") as f:
                f.write(trailer)
    else:
        audio.save(v2_version=3)

    after = _load_id3v2(path) if is_mp3 else WAVE(path).tags
    problems = []
    if after is None or after.version[:2] != (2, 3):
        problems.append(f"the tag is not ID3v2.3 ({after and after.version})")
    else:
        for name, values in plan.items():
            key = "TCON" if name == "GENRE" else f"TXXX:{name}"
            if key not in after or after[key].text != [GENRE_SEPARATOR.join(values)]:
                problems.append(f"{key} reads back as {after[key].text if key in after else None}")
        if lost := sorted(keys_before - set(after.keys())):
            problems.append(f"frames lost: {', '.join(lost)}")
        if lost := sorted((unknown_before - _unknown_frame_ids(after)).elements()):
            problems.append(f"unknown frames lost: {', '.join(lost)}")
    if is_mp3 and _id3v1_trailer(path) != trailer:
        problems.append("the ID3v1 tag changed")
    _check(path, problems, payload_before)


def _write_vorbis(path: Path, audio: FLAC | OggVorbis, tags: GenreTags, policy: ExistingGenrePolicy) -> None:
    if audio.tags is None:
        audio.add_tags()
    before = audio.tags.as_dict()  # lower-case keys
    pictures_before = _pictures(audio)
    existing = _split_genres(before.get("genre", []))
    seen_before = _OUR_GENRE.lower() in before or PREVIOUS_GENRE.lower() in before
    plan = _plan(tags, existing, policy, seen_before)
    payload_before = audio_payload_sha256(path)

    for name, values in plan.items():
        audio.tags[name] = values  # replaces every comment of that name
    audio.save()

    reread = type(audio)(path)
    after = reread.tags.as_dict() if reread.tags is not None else {}
    expected = before | {name.lower(): values for name, values in plan.items()}
    problems = [
        f"{key.upper()} reads back as {after.get(key)} instead of {expected.get(key)}"
        for key in sorted(expected.keys() | after.keys())
        if after.get(key) != expected.get(key)
    ]
    if _pictures(reread) != pictures_before:
        problems.append("embedded pictures changed")
    _check(path, problems, payload_before)


def _check(path: Path, problems: list[str], payload_before: str) -> None:
    if audio_payload_sha256(path) != payload_before:
        problems.append("the audio bytes changed")
    if problems:
        raise TagError(f"Tagging {path} did not verify ({'; '.join(problems)}); the copy must not be used")


def _convert_to_v23(id3: ID3) -> None:
    """Convert in memory to ID3v2.3, keeping frames v2.3 has no equivalent for (see _V24_ONLY_FRAMES)."""
    keep = [frame for frame_id in _V24_ONLY_FRAMES for frame in id3.getall(frame_id)]
    id3.update_to_v23()
    if "TCON" in id3 and len(id3["TCON"].text) > 1:
        # update_to_v23 splits TCON into values that saving would join with "/"; use our separator
        id3["TCON"].text = [GENRE_SEPARATOR.join(id3["TCON"].genres)]
    for frame in keep:
        id3.add(frame)


# --- reading ---------------------------------------------------------------------------------


def _open(path: Path) -> mutagen.FileType:
    try:
        audio = mutagen.File(path, options=_FORMATS)
    except mutagen.MutagenError as error:
        raise TagError(f"Cannot read the tags of {path}: {error}") from error
    if audio is None:
        raise TagError(f"Cannot tag {path}: it is not an MP3, FLAC, Ogg Vorbis or WAV file")
    return audio


def _load_id3v2(path: Path) -> ID3:
    """The file's ID3v2 tag without ID3v1 fields merged in; an empty one when it has none."""
    try:
        return ID3(path, load_v1=False)
    except ID3NoHeaderError:
        return ID3()


def _split_genres(values: list[str]) -> list[str]:
    return [genre.strip() for value in values for genre in value.split(";") if genre.strip()]


def _unknown_frame_ids(id3: ID3) -> Counter[str]:
    return Counter(frame[:4].decode("latin-1") for frame in id3.unknown_frames)


def _pictures(audio: FLAC | OggVorbis) -> list[tuple[int, str, bytes]]:
    """FLAC pictures live in metadata blocks, not comments (Ogg pictures are comments)."""
    return [(p.type, p.mime, p.data) for p in getattr(audio, "pictures", [])]


def _id3v1_trailer(path: Path) -> bytes:
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        if size < 128:
            return b""
        f.seek(size - 128)
        tail = f.read(128)
    return tail if tail.startswith(b"TAG") else b""


# --- audio payload -----------------------------------------------------------------------------


def _id3v2_end(f: BinaryIO) -> int:
    """Offset just past the ID3v2 tag(s) at the start (their padding and footer included)."""
    offset = 0
    while True:
        f.seek(offset)
        header = f.read(10)
        if len(header) < 10 or header[:3] != b"ID3" or any(b & 0x80 for b in header[6:10]):
            return offset
        size = 0
        for byte in header[6:10]:  # "syncsafe": 7 bits per byte
            size = (size << 7) | byte
        has_footer = bool(header[5] & 0x10)
        offset += 10 + size + (10 if has_footer else 0)


def _mp3_audio_end(f: BinaryIO, start: int, end: int, path: Path) -> int:
    """Offset where the trailing ID3v1 ("TAG", 128 bytes) and APEv2 tags begin, in either order."""
    while True:
        f.seek(max(end - 128, 0))
        if end - start >= 128 and f.read(3) == b"TAG":
            end -= 128
            continue
        f.seek(max(end - 32, 0))
        footer = f.read(32)
        if end - start >= 32 and footer[:8] == b"APETAGEX":
            size = int.from_bytes(footer[12:16], "little")  # items + footer
            has_header = bool(int.from_bytes(footer[20:24], "little") & 0x8000_0000)
            end -= size + (32 if has_header else 0)
            if end < start:
                raise TagError(f"Cannot tag {path}: its APEv2 tag declares an impossible size")
            continue
        return end


def _flac_audio_start(f: BinaryIO, offset: int, path: Path) -> int:
    """Offset of the first audio frame: after "fLaC" and the metadata blocks."""
    f.seek(offset)
    if f.read(4) != b"fLaC":
        raise TagError(f"Cannot tag {path}: no FLAC stream marker")
    offset += 4
    is_last = False
    while not is_last:
        header = f.read(4)
        if len(header) < 4:
            raise TagError(f"Cannot tag {path}: its FLAC metadata is truncated")
        is_last = bool(header[0] & 0x80)
        offset += 4 + int.from_bytes(header[1:4], "big")
        f.seek(offset)
    return offset


def _sha256_range(f: BinaryIO, start: int, end: int) -> str:
    digest = hashlib.sha256()
    f.seek(start)
    remaining = end - start
    while remaining > 0:
        chunk = f.read(min(_CHUNK, remaining))
        if not chunk:
            break
        digest.update(chunk)
        remaining -= len(chunk)
    return digest.hexdigest()


def _pcm_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with sf.SoundFile(path) as sound:
            digest.update(f"{sound.samplerate}:{sound.channels}:".encode())
            for block in sound.blocks(blocksize=65536, dtype="float64"):  # float64 holds int32 PCM exactly
                digest.update(block.tobytes())
    except sf.LibsndfileError as error:
        raise TagError(f"Cannot decode the audio of {path}: {error}") from error
    return digest.hexdigest()
