"""Genre tags written into a staged copy of a music file, and verified by reading them back.

Every format in the format's own way: ID3v2.3 (MP3 and raw AAC; an ID3 chunk in WAV and AIFF), Vorbis comments
(FLAC, Ogg Vorbis, Opus), MP4 atoms (M4A: AAC, ALAC) and ASF attributes (WMA). The file's content decides its
format, never its name: an MP3 named .m4a is tagged as the MP3 it is.

Only a staged copy is ever edited (the caller guarantees this), so a failed or interrupted write
costs nothing: the caller discards the copy and the user's original is still in the inbox.
That is also why every write is checked afterwards instead of trusted.
"""

from __future__ import annotations

import hashlib
import reprlib
import struct
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO

import mutagen
from mutagen.aac import AACInfo
from mutagen.aiff import AIFF
from mutagen.asf import ASF, ASFUnicodeAttribute
from mutagen.flac import FLAC
from mutagen.id3 import ID3, TCON, TXXX, Encoding, ID3FileType, ID3NoHeaderError, ID3v1SaveOptions
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4, MP4FreeForm
from mutagen.oggopus import OggOpus
from mutagen.oggvorbis import OggVorbis
from mutagen.wave import WAVE

from genresort.library.formats import AudioFormat, format_of

_CHUNK = 1 << 20


class _ADTS(ID3FileType):
    """A raw AAC (ADTS) stream, tagged as FFmpeg and foobar2000 tag one: an ID3v2 tag before it, perhaps an ID3v1
    tag after it, as an MP3 (mutagen's own AAC class reads no tags)."""

    class _Info(AACInfo):
        def __init__(self, fileobj: BinaryIO, offset: int | None) -> None:
            fileobj.seek(0)
            super().__init__(fileobj)  # which finds the stream after the ID3v2 tag itself


# The mutagen class that reads and writes each format's tags, and the name the messages give the format.
_MUTAGEN: dict[AudioFormat, type[mutagen.FileType]] = {
    AudioFormat.MP3: MP3,
    AudioFormat.AAC: _ADTS,
    AudioFormat.FLAC: FLAC,
    AudioFormat.OGG_VORBIS: OggVorbis,
    AudioFormat.OPUS: OggOpus,
    AudioFormat.MP4: MP4,
    AudioFormat.AIFF: AIFF,
    AudioFormat.WAV: WAVE,
    AudioFormat.ASF: ASF,
}
_FORMAT_NAMES = {
    AudioFormat.MP3: "MP3",
    AudioFormat.AAC: "raw AAC (ADTS)",
    AudioFormat.FLAC: "FLAC",
    AudioFormat.OGG_VORBIS: "Ogg Vorbis",
    AudioFormat.OPUS: "Opus",
    AudioFormat.MP4: "MP4 (M4A)",
    AudioFormat.AIFF: "AIFF",
    AudioFormat.WAV: "WAV",
    AudioFormat.ASF: "WMA (ASF)",
}

GENRE_SEPARATOR = "; "
"""Joins several genres in one ID3v2.3 TCON or MP4 value: v2.3 has no portable multi-value form and MP4 readers
show only an atom's first value, "/" occurs in real genre names ("Pop/Funk") and "; " is how Windows shows
multi-valued properties."""

PREVIOUS_GENRE = "GENRESORT_PREVIOUS_GENRE"
_OUR_GENRE = "GENRESORT_GENRE"

# ID3v2.4 frames with no ID3v2.3 equivalent. mutagen's update_to_v23 deletes them; we put them back
# as off-spec frames (which v2.3 readers skip) because converting must never lose data.
_V24_ONLY_FRAMES = "ASPI EQU2 RVA2 SEEK SIGN TDEN TDRL TDTG TMOO TPRO TSOA TSOP TSOT TSST".split()


class ExistingGenrePolicy(StrEnum):
    """What happens to a genre the file already has (a file without one gets ours in the format's genre field:
    TCON, GENRE, ©gen or WM/Genre, except with UNTOUCHED)."""

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

    For an MP3 this includes an ID3v1 genre when the ID3v2 tag has none, for an M4A an iTunes `gnre` genre.
    Raises TagError for a file that is not a readable file of a format genresort tags.
    """
    return _split_genres(read_fields(path).get("GENRE", []))


def read_fields(path: Path) -> dict[str, list[str]]:
    """The genre field (as "GENRE") and the GENRESORT_* fields of the file, as text, by the same names whatever
    the format keeps them in. Raises TagError as read_genres does."""
    audio, _ = _open(path)
    if audio.tags is None:
        return {}
    if isinstance(audio.tags, ID3):
        fields = {frame.desc: frame.text for frame in audio.tags.getall("TXXX") if frame.desc.startswith(_PREFIX)}
        if "TCON" in audio.tags:
            fields["GENRE"] = audio.tags["TCON"].genres
        return fields
    family = _FIELDS[type(audio)]
    fields = {}
    for key, values in family.fields(audio.tags).items():
        if key == family.genre:
            fields["GENRE"] = [family.text(value) for value in values]
        elif key.startswith(family.prefix + _PREFIX):
            fields[key.removeprefix(family.prefix)] = [family.text(value) for value in values]
    return fields


def write_genre_tags(path: Path, tags: GenreTags, policy: ExistingGenrePolicy) -> None:
    """Write our genre tags into `path` in place, then read them back and verify.

    `path` must be a staged copy: on TagError the caller discards it and places the original
    untagged (this is also what happens for a WAV that mutagen cannot give an ID3 chunk).
    MP3 and raw AAC (ADTS) files get an ID3v2.3 tag (what Windows and older players read), WAV and AIFF an ID3v2.3
    chunk: the genre
    in TCON, ours in TXXX frames. FLAC, Ogg Vorbis and Opus get Vorbis comments (GENRE, GENRESORT_*); M4A the
    ©gen atom (an iTunes `gnre` genre becomes ©gen, as mutagen writes it) and freeform
    ----:com.apple.iTunes:GENRESORT_* atoms; WMA WM/Genre and GENRESORT_* attributes.

    GENRESORT_PREVIOUS_GENRE records the genre the file had before genresort first touched it:
    it is written only when the file has a genre and carries no GENRESORT_* genre yet, so
    re-sorting a file never replaces the user's original genre with one of our own.

    Raises TagError when the file is not a supported audio file, mutagen cannot parse or save it
    (mutagen reports I/O errors such as ENOSPC this way too), or the read-back differs from what
    was intended (values, lost frames, changed audio bytes). Either way: discard the copy.
    """
    audio, _ = _open(path)
    if isinstance(audio, MP4) and b"moof" in {name for name, _, _ in _mp4_boxes(path)}:
        raise TagError(
            f"Cannot tag {path}: it is a fragmented MP4, whose fragments' offsets mutagen does not all move when the"
            " tag grows (the file would no longer play)"
        )
    payload_before = audio_payload_sha256(path)
    family = _FIELDS.get(type(audio))
    try:
        if family is None:
            problems = _write_id3(path, audio, tags, policy)
        else:
            problems = _write_fields(path, audio, family, tags, policy)
    except mutagen.MutagenError as error:
        raise TagError(f"Cannot tag {path}: {error}") from error
    if audio_payload_sha256(path) != payload_before:
        problems.append("the audio bytes changed")
    if problems:
        raise TagError(f"Tagging {path} did not verify ({'; '.join(problems)}); the copy must not be used")


def audio_payload_sha256(path: Path) -> str:
    """sha256 of the audio alone, so that tag edits can be proven not to touch the sound.

    The bytes audio_span gives (an M4A's several mdat boxes one after the other); for Ogg Vorbis, Opus and WAV,
    whose tag writers may legitimately rewrite container bytes around unchanged audio, the decoded PCM.
    """
    _, ranges = _open(path)
    if ranges is None:
        return _pcm_sha256(path)
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for start, end in ranges:
            _hash_range(f, start, end, digest)
    return digest.hexdigest()


def audio_span(path: Path) -> tuple[int, int] | None:
    """(start, end) offsets of the audio bytes, which our tag writing never changes (it may move them: compute the
    span of each file). MP3 and raw AAC: between the leading ID3v2 tag(s) and any trailing APEv2/ID3v1 tags; FLAC:
    after the metadata blocks; M4A: the mdat box's payload; AIFF: the SSND chunk's; WMA: the ASF Data Object's.

    None where the audio is not one such span: Ogg Vorbis, Opus and WAV, whose tag writers may rewrite container
    bytes around unchanged audio, and an M4A with its audio in several mdat boxes (a fragmented MP4).
    """
    _, ranges = _open(path)
    return ranges[0] if ranges is not None and len(ranges) == 1 else None


# --- writing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Fields:
    """How a format other than ID3 keeps the genre field and our GENRESORT_* fields."""

    genre: str  # the genre field's key
    prefix: str  # a GENRESORT_* field's key is this and its name
    joined: bool  # several values go into one, joined by GENRE_SEPARATOR (readers show an MP4 atom's first only)
    fields: Callable[[Any], dict[str, Any]]  # the tags' every field: key -> values, as mutagen holds them
    stored: Callable[[str, str], Any]  # (key, text) -> the value mutagen holds
    text: Callable[[Any], str]  # a value mutagen holds -> its text

    def key(self, name: str) -> str:
        """The key of one of _plan's fields ("GENRE" is the genre field)."""
        return self.genre if name == "GENRE" else self.prefix + name


def _mp4_value(key: str, text: str) -> str | MP4FreeForm:
    return text if key == _MP4.genre else MP4FreeForm(text.encode())


def _mp4_text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


_VORBIS = _Fields(
    genre="GENRE",
    prefix="",
    joined=False,
    fields=lambda tags: {key.upper(): values for key, values in tags.as_dict().items()},  # names ignore case
    stored=lambda key, text: text,
    text=str,
)
_MP4 = _Fields("\xa9gen", "----:com.apple.iTunes:", True, lambda tags: dict(tags.items()), _mp4_value, _mp4_text)
_ASF = _Fields("WM/Genre", "", False, lambda tags: tags.as_dict(), lambda key, text: ASFUnicodeAttribute(text), str)
_FIELDS = {FLAC: _VORBIS, OggVorbis: _VORBIS, OggOpus: _VORBIS, MP4: _MP4, ASF: _ASF}  # the others: ID3
_PREFIX = "GENRESORT_"


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


def _write_id3(path: Path, audio: mutagen.FileType, tags: GenreTags, policy: ExistingGenrePolicy) -> list[str]:
    """Writes an MP3's or raw AAC's ID3v2 tag or a WAV's or AIFF's ID3 chunk; returns what did not read back as
    intended."""
    before_stream = isinstance(audio, MP3 | _ADTS)  # a tag before the stream, and maybe an ID3v1 tag after it
    if audio.tags is None:
        audio.add_tags()
    existing = _split_genres(audio.tags["TCON"].genres if "TCON" in audio.tags else [])
    # audio.tags of an MP3 or raw AAC has ID3v1 fields merged in: right for knowing the current genre, but the
    # tag we rewrite must hold only what the ID3v2 tag holds (the ID3v1 tag is kept byte for byte).
    id3 = _load_id3v2(path) if before_stream else audio.tags
    seen_before = f"TXXX:{_OUR_GENRE}" in id3 or f"TXXX:{PREVIOUS_GENRE}" in id3
    plan = _plan(tags, existing, policy, seen_before)
    keys_before, unknown_before = set(id3.keys()), _unknown_frame_ids(id3)
    trailer = _id3v1_trailer(path) if before_stream else b""

    for name, values in plan.items():
        text = [GENRE_SEPARATOR.join(values)]
        if name == "GENRE":
            id3.add(TCON(encoding=Encoding.UTF8, text=text))
        else:
            id3.add(TXXX(encoding=Encoding.UTF8, desc=name, text=text))
    _convert_to_v23(id3)
    if before_stream:
        # mutagen can only regenerate or drop an ID3v1 tag; dropping and re-appending keeps it unchanged.
        id3.save(path, v1=ID3v1SaveOptions.REMOVE, v2_version=3)
        if trailer:
            with open(path, "ab") as f:
                f.write(trailer)
    else:
        audio.save(v2_version=3)

    after = _load_id3v2(path) if before_stream else type(audio)(path).tags
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
    if before_stream and _id3v1_trailer(path) != trailer:
        problems.append("the ID3v1 tag changed")
    return problems


def _write_fields(
    path: Path, audio: mutagen.FileType, family: _Fields, tags: GenreTags, policy: ExistingGenrePolicy
) -> list[str]:
    """Writes Vorbis comments, MP4 atoms or ASF attributes; returns what did not read back as intended."""
    if audio.tags is None:
        audio.add_tags()
    before = family.fields(audio.tags)
    pictures_before = _pictures(audio)
    existing = _split_genres([family.text(value) for value in before.get(family.genre, [])])
    seen_before = family.key(_OUR_GENRE) in before or family.key(PREVIOUS_GENRE) in before
    plan = _plan(tags, existing, policy, seen_before)

    written = {}
    for name, values in plan.items():
        key = family.key(name)
        texts = [GENRE_SEPARATOR.join(values)] if family.joined else values
        written[key] = [family.stored(key, text) for text in texts]
        audio.tags[key] = written[key]  # replaces every value of that key
    audio.save()

    reread = type(audio)(path)
    after = family.fields(reread.tags) if reread.tags is not None else {}
    expected = before | written
    # Compared by repr: mutagen's ASF attributes are equal by value alone; their repr also shows type, language
    # and stream.
    problems = [
        f"{key} reads back as {reprlib.repr(after.get(key))} instead of {reprlib.repr(expected.get(key))}"
        for key in sorted(expected.keys() | after.keys())
        if repr(after.get(key)) != repr(expected.get(key))
    ]
    if _pictures(reread) != pictures_before:
        problems.append("embedded pictures changed")
    return problems


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


def _open(path: Path) -> tuple[mutagen.FileType, list[tuple[int, int]] | None]:
    """The file as mutagen reads it, in the format its content announces (formats.format_of: never its name, which
    mutagen.File also scores), and the byte ranges of its audio (None: compared as decoded PCM). A damaged
    container is named as such before mutagen's vaguer errors."""
    try:
        audio_format = format_of(path)
        if audio_format is None:
            raise TagError(
                f"Cannot tag {path}: its content is none of the formats genresort tags"
                f" ({', '.join(_FORMAT_NAMES.values())})"
            )
        kind = _MUTAGEN[audio_format]
        ranges = _audio_ranges(path, kind)
        return kind(path), ranges
    except OSError as error:
        raise TagError(f"Cannot read {path}: {error}") from error
    except mutagen.MutagenError as error:
        raise TagError(f"Cannot read the tags of {path} as {_FORMAT_NAMES[audio_format]}: {error}") from error


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


def _pictures(audio: mutagen.FileType) -> list[tuple[int, str, bytes]]:
    """FLAC pictures live in metadata blocks, not comments (Ogg pictures are comments, MP4 covers atoms)."""
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

_ASF_DATA_OBJECT = bytes.fromhex("3626b2758e66cf11a6d900aa0062ce6c")  # GUID 75B22636-668E-11CF-A6D9-00AA0062CE6C


def _audio_ranges(path: Path, kind: type[mutagen.FileType]) -> list[tuple[int, int]] | None:
    """Where the audio bytes lie; None for Ogg Vorbis, Opus and WAV (see audio_payload_sha256)."""
    if kind in (OggVorbis, OggOpus, WAVE):
        return None
    if kind is MP4:
        return _payloads(path, _mp4_boxes(path), b"mdat", "'mdat' box")
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        if kind is ASF:
            return _payloads(path, _boxes(f, 0, size, path, _asf_object), _ASF_DATA_OBJECT, "ASF Data Object")
        if kind is AIFF:
            _, start, end = next(_boxes(f, 0, size, path, _iff_chunk), (b"", 0, 0))  # FORM, then its form type
            return _payloads(path, _boxes(f, start + 4, end, path, _iff_chunk), b"SSND", "'SSND' chunk")
        start = _id3v2_end(f)
        if kind is FLAC:
            return [(_flac_audio_start(f, start, path), size)]
        return [(start, _mp3_audio_end(f, start, size, path))]


def _payloads(path: Path, boxes: Iterator[tuple[bytes, int, int]], name: bytes, what: str) -> list[tuple[int, int]]:
    ranges = [(start, end) for box, start, end in boxes if box == name]
    if not ranges:
        raise TagError(f"Cannot tag {path}: it has no {what}, so no audio (truncated or damaged?)")
    return ranges


def _mp4_boxes(path: Path) -> list[tuple[bytes, int, int]]:
    with open(path, "rb") as f:
        return list(_boxes(f, 0, f.seek(0, 2), path, _mp4_box))


def _boxes(
    f: BinaryIO, offset: int, end: int, path: Path, header: Callable[[bytes, int], tuple[bytes, int, int, int] | None]
) -> Iterator[tuple[bytes, int, int]]:
    """(name, payload start, payload end) of each MP4 box, ASF object or IFF chunk from `offset` to `end`, where
    header(its first bytes, room to the end) gives (name, header size, payload size, padding after) or None when
    too few bytes are left for one; TagError for one that claims more bytes than are left."""
    while True:
        f.seek(offset)
        box = header(f.read(max(0, min(24, end - offset))), end - offset)
        if box is None:
            return
        name, header_size, size, padding = box
        start = offset + header_size
        if size < 0 or start + size > end:
            part = f"{name.decode('latin-1')!r} part" if len(name) == 4 else "ASF object"
            raise TagError(
                f"Cannot tag {path}: it is truncated or damaged (its {part} at byte {offset} declares {size} bytes,"
                f" {end - start} are left)"
            )
        yield name, start, start + size
        offset = start + size + padding


def _mp4_box(first: bytes, room: int) -> tuple[bytes, int, int, int] | None:
    if len(first) < 8:
        return None
    size, name = struct.unpack(">I4s", first[:8])
    if size == 1:  # a 64-bit size follows the name
        return (name, 16, struct.unpack(">Q", first[8:16])[0] - 16, 0) if len(first) >= 16 else None
    return name, 8, (room if size == 0 else size) - 8, 0  # size 0: the box runs to the end of the file


def _asf_object(first: bytes, room: int) -> tuple[bytes, int, int, int] | None:
    if len(first) < 24:
        return None
    return first[:16], 24, int.from_bytes(first[16:24], "little") - 24, 0  # GUID, size with the header


def _iff_chunk(first: bytes, room: int) -> tuple[bytes, int, int, int] | None:
    if len(first) < 8:
        return None
    size = int.from_bytes(first[4:8], "big")
    return first[:4], 8, size, size % 2  # chunks are padded to an even length


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


def _hash_range(f: BinaryIO, start: int, end: int, digest: hashlib._Hash) -> None:
    f.seek(start)
    remaining = end - start
    while remaining > 0:
        chunk = f.read(min(_CHUNK, remaining))
        if not chunk:
            break
        digest.update(chunk)
        remaining -= len(chunk)


def _pcm_sha256(path: Path) -> str:
    import soundfile as sf  # libsndfile and numpy: only for the formats that need a decode (not MP3)

    digest = hashlib.sha256()
    try:
        with sf.SoundFile(path) as sound:
            digest.update(f"{sound.samplerate}:{sound.channels}:".encode())
            for block in sound.blocks(blocksize=65536, dtype="float64"):  # float64 holds int32 PCM exactly
                digest.update(block.tobytes())
    except sf.LibsndfileError as error:
        raise TagError(f"Cannot decode the audio of {path}: {error}") from error
    return digest.hexdigest()
