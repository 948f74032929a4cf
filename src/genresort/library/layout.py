"""Where in the library a file goes: a `path_template` filled from the file's tags, with names every file system
people keep music on accepts (ext4, Btrfs, APFS, NTFS, FAT32, exFAT, SMB shares).

`render_path("{genre}/{albumartist}/{album}/{track:02d} {title}{ext}", "Jazz", read_track_tags(path), name)` gives
`Jazz/Oscar Peterson/Night Train/03 C Jam Blues.mp3`, relative to the library. The default template,
`{genre}/{filename}`, keeps the file's own name.

Fields: {genre} {albumartist} {artist} {album} {title} {year} {filename} {stem} {ext} are text, {track} and {disc}
whole numbers; each takes a format spec that works on its type (`{track:02d}`, `{album:.40}`). A missing tag falls
back: {albumartist} to the artist, then "Unknown Artist"; {artist} to the album artist, then "Unknown Artist";
{album} to "Unknown Album"; {title} to the file's stem; {year} to "Unknown Year".

A missing number ({track} or {disc}) has no stand-in: "00" or "None" would be wrong. Its field goes, and with it:
- the text joining it to the next field of its folder or file name (`{track:02d} - {title}` -> `{title}`), or, when
  no field follows ({ext} does not count), the text joining it to the field before (`{title} - {track}{ext}` ->
  `{title}{ext}`); when it is the first field, the text before it too (`Track {track}. {title}` -> `{title}`);
- a bracket pair around it: `({track}) {title}` -> `{title}`, `{album} (Disc {disc})` -> `{album}`. Other brackets
  stay, so brackets never come out unpaired (`{track} ({title})` -> `({title})`).
A folder left empty is left out (`Disc {disc}/`); a file name left with nothing before its extension is the
file's stem.

Every folder and file name goes through `safe_component`; see there for the rules and limits. The whole path has
no limit of its own: 256 bytes a component at most, times the template's few components, stays far below Linux's
PATH_MAX (4096 bytes); the library's own path comes on top, which is the caller's to mind.
"""

from __future__ import annotations

import difflib
import os
import re
import string
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import cast

from mutagen.aiff import AIFF
from mutagen.asf import ASF
from mutagen.flac import FLAC
from mutagen.id3 import ID3
from mutagen.mp4 import MP4
from mutagen.oggopus import OggOpus
from mutagen.oggvorbis import OggVorbis
from mutagen.wave import WAVE

from genresort.library.formats import AudioFormat, format_of
from genresort.library.placement import NAME_MAX

DEFAULT_TEMPLATE = "{genre}/{filename}"
UNKNOWN_ARTIST = "Unknown Artist"
UNKNOWN_ALBUM = "Unknown Album"
UNKNOWN_YEAR = "Unknown Year"

#: An extension longer than this (in UTF-8 bytes) is no extension: "{ext}" is then empty, as place_file counts it.
EXTENSION_MAX = 32
#: What replaces every character some file system refuses.
REPLACEMENT = "_"

NUMBER_FIELDS = frozenset({"track", "disc"})
TEXT_FIELDS = frozenset({"genre", "albumartist", "artist", "album", "title", "year", "filename", "stem", "ext"})
FIELDS = NUMBER_FIELDS | TEXT_FIELDS

#: Refused by Windows, and so by NTFS, FAT, exFAT and SMB shares: `/ \\ : * ? " < > |`, the control characters, and
#: lone surrogates (a name that was not UTF-8: no file system of Windows or macOS can store it).
_UNSAFE = re.compile(r'[/\\:*?"<>|\x00-\x1f\x7f\ud800-\udfff]')
#: Device names Windows keeps, whatever the case and whatever extension follows ("aux.mp3").
_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL"]
    + [f"{device}{number}" for device in ("COM", "LPT") for number in "0123456789\u00b9\u00b2\u00b3"]
)
_PAIRS = {"(": ")", "[": "]"}
_BRACKETS = "()[]"
#: A width or precision this long asks for a name no file system takes (and for memory to render it first).
_HUGE_NUMBER = re.compile(r"\d{4,}")


@dataclass(frozen=True)
class TrackTags:
    """The tags a path template reads; None where the file has none (or none that makes sense: track "A1")."""

    artist: str | None = None
    albumartist: str | None = None
    album: str | None = None
    title: str | None = None
    track: int | None = None  # a positive number: "3/12" is 3; 0 (iTunes' "no number" beside a total) is None
    disc: int | None = None
    year: str | None = None  # four digits: a date "1963-05-01" gives "1963"


# --- reading tags ------------------------------------------------------------------------------------------------

# Each field's keys in each family of tags, in order of preference.
_ID3_KEYS = {
    "artist": ("TPE1",),
    "albumartist": ("TPE2",),
    "album": ("TALB",),
    "title": ("TIT2",),
    "track": ("TRCK",),
    "disc": ("TPOS",),
    "year": ("TDRC",),  # mutagen reads ID3v2.3's TYER as TDRC
}
_VORBIS_KEYS = {
    "artist": ("ARTIST",),
    "albumartist": ("ALBUMARTIST", "ALBUM ARTIST"),  # foobar2000 writes the second
    "album": ("ALBUM",),
    "title": ("TITLE",),
    "track": ("TRACKNUMBER",),
    "disc": ("DISCNUMBER",),
    "year": ("DATE",),
}
_MP4_KEYS = {
    "artist": ("\xa9ART",),
    "albumartist": ("aART",),
    "album": ("\xa9alb",),
    "title": ("\xa9nam",),
    "track": ("trkn",),
    "disc": ("disk",),
    "year": ("\xa9day",),
}
_ASF_KEYS = {
    "artist": ("Author",),
    "albumartist": ("WM/AlbumArtist",),
    "album": ("WM/AlbumTitle",),
    "title": ("Title",),
    "track": ("WM/TrackNumber",),
    "disc": ("WM/PartOfSet",),
    "year": ("WM/Year",),
}


#: How each format is opened, by its content (MP3 and raw AAC carry an ID3v2 tag in front of their frames), and the
#: keys of its family of tags.
_READERS: dict[AudioFormat, tuple[Callable[[Path], object], dict[str, tuple[str, ...]]]] = {
    AudioFormat.MP3: (ID3, _ID3_KEYS),
    AudioFormat.AAC: (ID3, _ID3_KEYS),
    AudioFormat.FLAC: (FLAC, _VORBIS_KEYS),
    AudioFormat.OGG_VORBIS: (OggVorbis, _VORBIS_KEYS),
    AudioFormat.OPUS: (OggOpus, _VORBIS_KEYS),
    AudioFormat.MP4: (MP4, _MP4_KEYS),
    AudioFormat.AIFF: (AIFF, _ID3_KEYS),
    AudioFormat.WAV: (WAVE, _ID3_KEYS),
    AudioFormat.ASF: (ASF, _ASF_KEYS),
}


def read_track_tags(path: Path) -> TrackTags:
    """The artist, album, title, numbers and year of the file at `path`, in whatever format its content is (never
    its name: an MP3 named .m4a is read as MP3). A file without tags, of no format genresort takes, or whose tags
    mutagen cannot parse gives TrackTags() (all None): a layout then uses its fallbacks. OSError if the file cannot
    be read at all."""
    audio_format = format_of(path)
    if audio_format is None:
        return TrackTags()
    opener, keys = _READERS[audio_format]
    try:
        loaded = opener(path)
    except Exception:  # MutagenError (ID3NoHeaderError: an MP3 without a tag), and on damaged tags
        return TrackTags()  # mutagen's parsers also let out KeyError, IndexError, UnicodeDecodeError, ValueError
    tags = loaded if isinstance(loaded, ID3) else getattr(loaded, "tags", None)
    if tags is None:
        return TrackTags()

    def texts(field: str) -> list[str]:  # those of the first of the field's keys that has any
        found = ([text.strip() for text in _texts(tags, key) if text.strip()] for key in keys[field])
        return next((texts for texts in found if texts), [])

    return TrackTags(
        artist=_joined(texts("artist")),
        albumartist=_joined(texts("albumartist")),
        album=_joined(texts("album")),
        title=_joined(texts("title")),
        track=_number(texts("track")),
        disc=_number(texts("disc")),
        year=_year(texts("year")),
    )


def _texts(tags: object, key: str) -> list[str]:
    """A key's values as text: ID3 frames' texts, MP4's (track, total) pairs by their first number, ASF attributes by
    their value (WM/TrackNumber may be a number)."""
    if isinstance(tags, ID3):
        return [str(text) for frame in tags.getall(key) for text in frame.text]
    values = tags.get(key, [])  # type: ignore[attr-defined]  (VCommentDict, MP4Tags and ASFTags all have it)
    texts = []
    for value in values:
        value = getattr(value, "value", value)
        texts.append(str(value[0] if isinstance(value, tuple) else value))
    return texts


def _joined(texts: list[str]) -> str | None:
    """Several values (two artists, or one written twice) as one text: "A, B"."""
    return ", ".join(dict.fromkeys(texts)) or None


def _number(texts: list[str]) -> int | None:
    for text in texts:
        digits = re.match(r"\d+", text)
        if digits and int(digits.group()) > 0:
            return int(digits.group())
    return None


def _year(texts: list[str]) -> str | None:
    return next((year.group() for text in texts if (year := re.match(r"\d{4}", text))), None)


# --- the template ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Field:
    name: str
    spec: str
    conversion: str | None


#: A folder or file name of a template: its literal texts and fields, alternating, starting and ending with text.
_Pieces = list[str | _Field]
_GENRE, _EXT, _FILENAME = _Field("genre", "", None), _Field("ext", "", None), _Field("filename", "", None)


def validate_template(template: str) -> str | None:
    """What is wrong with `template`, in plain words, or None when render_path can use it."""
    if not template.strip():
        return "the template is empty"
    try:
        components = _components(template)
    except ValueError as error:
        return f"its braces do not pair up ({error}); write {{{{ and }}}} for a brace in a name"
    if "\\" in template:
        return "it contains \\; folders are separated by /"
    if template.startswith("/"):
        return "it is an absolute path; it must be relative to the library, starting with {genre}/"
    for pieces in components:
        for piece in pieces:
            problem = _field_problem(piece) if isinstance(piece, _Field) else _text_problem(piece)
            if problem:
                return problem
        if len(pieces) == 1 and not pieces[0].strip():
            return "it has an empty folder name (//, a / at the end, or a name of only spaces)"
        if pieces in ([".."], ["."]):
            return f"{pieces[0]!r} cannot be a folder name: every file must stay inside its genre folder"
    if components[0] != ["", _GENRE, ""]:
        return "its first folder must be {genre} alone: the genre folder is where genresort sorts a file"
    last = components[-1]
    if len(last) < 3 or last[-1] != "" or last[-2] not in (_EXT, _FILENAME):
        return "it must end with {ext} or {filename} (without a format spec), so every file keeps its extension"
    return None


def _components(template: str) -> list[_Pieces]:
    """The template's folders and file name, split at the "/" of its literal text (never inside a tag's value).
    ValueError for unpaired braces."""
    components: list[_Pieces] = [[""]]
    for literal, name, spec, conversion in string.Formatter().parse(template):
        first, *others = literal.split("/")
        components[-1][-1] += first
        components.extend([text] for text in others)
        if name is not None:
            components[-1] += [_Field(name, spec or "", conversion), ""]
    return components


def _field_problem(field: _Field) -> str | None:
    conversion = f"!{field.conversion}" if field.conversion else ""
    shown = f"{{{field.name}{conversion}{':' if field.spec else ''}{field.spec}}}"
    if field.name not in FIELDS:
        close = difflib.get_close_matches(field.name, sorted(FIELDS), n=1)
        hint = f"; did you mean {{{close[0]}}}?" if close else ""
        known = " ".join(f"{{{name}}}" for name in sorted(FIELDS))
        return f"{shown} is not a field{hint} (the fields are {known})"
    if field.conversion:
        return f"{shown}: conversions (!{field.conversion}) are not supported; write {{{field.name}}}"
    if "{" in field.spec:
        return f"{shown}: a format spec cannot contain another field"
    if _HUGE_NUMBER.search(field.spec):
        return f"{shown}: that width or precision is far longer than any file name"
    sample: int | str = 1 if field.name in NUMBER_FIELDS else "text"
    try:
        format(sample, field.spec)
    except ValueError:
        kind = "a number" if field.name in NUMBER_FIELDS else "text"
        example = "{track:02d}" if field.name in NUMBER_FIELDS else "{album:.40}"
        return f"{shown}: the format spec {field.spec!r} does not work on {kind} (e.g. {example})"
    return None


def _text_problem(text: str) -> str | None:
    unsafe = _UNSAFE.search(text)
    if unsafe:
        return f"{unsafe.group()!r} cannot be in a file name on Windows, FAT, exFAT or SMB file systems"
    return None


def genre_folder(path: Path, library: Path) -> str:
    """The genre a file placed at `path` is sorted into: the first folder below the library, whatever the template
    put below it (the folder it is in, for a file outside the library)."""
    try:
        return path.relative_to(library).parts[0]
    except (ValueError, IndexError):
        return path.parent.name


# --- rendering ---------------------------------------------------------------------------------------------------


def render_path(template: str, genre: str, tags: TrackTags, filename: str) -> PurePosixPath:
    """The path, relative to the library, that `template` gives a file named `filename` (its name as it arrived)
    with `tags`, sorted into `genre`; every component safe (see safe_component), missing tags as the module says.

    This is the wanted path, not a free one: the caller links the file with placement.place_file into the folder
    `library / path.parent` under `path.name`, which never overwrites ("name (2).ext" if the name is taken).
    ValueError for a template validate_template refuses.
    """
    problem = validate_template(template)
    if problem:
        raise ValueError(f"path template {template!r}: {problem}")
    stem, ext = split_extension(filename)
    values: dict[str, str | int | None] = {
        "genre": genre,
        "albumartist": tags.albumartist or tags.artist or UNKNOWN_ARTIST,
        "artist": tags.artist or tags.albumartist or UNKNOWN_ARTIST,
        "album": tags.album or UNKNOWN_ALBUM,
        "title": tags.title or stem,
        "year": tags.year or UNKNOWN_YEAR,
        "track": tags.track,
        "disc": tags.disc,
        "filename": filename,
        "stem": stem,
        "ext": ext,
    }
    *folders, name = (_without_missing(pieces, values) for pieces in _components(template))
    texts = [_filled(pieces, values) for pieces in folders]
    if name[-2] == _EXT and not _filled(name[:-2], values).strip():
        name = [stem, *name[-2:]]  # nothing before the extension: the file's own stem
    parts = [safe_component(text) for text in texts if text.strip()]  # a folder left empty is left out
    return PurePosixPath(*parts, safe_component(_filled(name, values), extension=ext))


def split_extension(filename: str) -> tuple[str, str]:
    """(stem, extension) of a file name, as "{stem}" and "{ext}" give them: "a.mp3" -> ("a", ".mp3"); a "suffix"
    over EXTENSION_MAX bytes is no extension."""
    stem, ext = os.path.splitext(filename)
    return (stem, ext) if len(ext.encode("utf-8", "surrogatepass")) <= EXTENSION_MAX else (filename, "")


def _filled(pieces: _Pieces, values: Mapping[str, str | int | None]) -> str:
    return "".join(piece if isinstance(piece, str) else format(values[piece.name], piece.spec) for piece in pieces)


def _without_missing(pieces: _Pieces, values: Mapping[str, str | int | None]) -> _Pieces:
    """The pieces without the missing numbers' fields and the text that goes with them (the module's rule)."""
    pieces = list(pieces)
    while missing := [i for i in range(1, len(pieces), 2) if values[pieces[i].name] is None]:  # type: ignore[union-attr]
        index = missing[0]
        before, after = cast(str, pieces[index - 1]), cast(str, pieces[index + 1])
        opening, closing = _unclosed_opening(before), _unopened_closing(after)
        if opening is not None and closing is not None and _PAIRS[before[opening]] == after[closing]:
            before, after = before[:opening], after[closing + 1 :]
        follows = index + 2 < len(pieces) and pieces[index + 2] != _EXT
        if follows:
            after = after[_first_bracket(after) :]
        if not follows or index == 1:
            before = before[: _last_bracket(before) + 1]
        pieces[index - 1 : index + 2] = [before + after]
    return pieces


def _unclosed_opening(text: str) -> int | None:
    """Where the last bracket `text` opens and does not close is."""
    opened: list[int] = []
    for index, char in enumerate(text):
        if char in _PAIRS:
            opened.append(index)
        elif char in _PAIRS.values() and opened:
            opened.pop()
    return opened[-1] if opened else None


def _unopened_closing(text: str) -> int | None:
    """Where the first bracket `text` closes without opening it is."""
    depth = 0
    for index, char in enumerate(text):
        if char in _PAIRS:
            depth += 1
        elif char in _PAIRS.values():
            if depth == 0:
                return index
            depth -= 1
    return None


def _first_bracket(text: str) -> int:
    return next((index for index, char in enumerate(text) if char in _BRACKETS), len(text))


def _last_bracket(text: str) -> int:
    return max(text.rfind(char) for char in _BRACKETS)


# --- safe names --------------------------------------------------------------------------------------------------


def safe_component(text: str, extension: str = "") -> str:
    """`text` as one folder or file name that ext4, Btrfs, APFS, NTFS, FAT32, exFAT and SMB shares all accept.

    - Unicode in NFC (composed): macOS and SMB clients may hand over NFD; one name must not become two.
    - `/ \\ : * ? " < > |`, control characters (0x00-0x1f, 0x7f) and lone surrogates (a name that was not UTF-8)
      become "_", always the same character, so a name reads as it would in a file manager that replaced them.
    - Leading spaces and trailing dots and spaces go (Windows drops them, so two names would meet); a leading dot
      becomes "_" (it would hide the file on Linux and macOS).
    - A Windows device name (CON, PRN, AUX, NUL, COM0-9, LPT0-9, COM and LPT with ¹ ² ³), in any case and before
      any extension, gains "_": "aux.mp3" -> "aux_.mp3".
    - At most NAME_MAX (255) UTF-8 bytes, which ext4 and Btrfs count; that also keeps it within 255 UTF-16 code
      units, which NTFS, FAT32 and exFAT count, as no character takes more UTF-16 units than UTF-8 bytes. A longer
      name is cut at a character (code point) boundary before `extension` (when `text` ends with it), which stays.
    - Nothing left: "_".
    """
    name = _UNSAFE.sub(REPLACEMENT, unicodedata.normalize("NFC", text)).lstrip(" ").rstrip(". ")
    tail = _UNSAFE.sub(REPLACEMENT, unicodedata.normalize("NFC", extension)).rstrip(". ")
    if len(tail.encode()) > EXTENSION_MAX or not name.endswith(tail) or name == tail:
        tail = ""
    base = name[: len(name) - len(tail)]
    if base.startswith("."):
        base = REPLACEMENT + base[1:]
    device = re.match(r"[^.]*", base).group().rstrip(" ")  # type: ignore[union-attr]
    if device.upper() in _RESERVED:
        base = device + REPLACEMENT + base[len(device) :]
    base = base[:NAME_MAX]  # no character is less than a byte
    while len((base + tail).encode()) > NAME_MAX:
        base = base[:-1]
    if not tail:
        base = base.rstrip(". ")
    return (base + tail) or REPLACEMENT
