"""The library layout: tags read from real files of every format (by their content), paths rendered from a
template with the fallbacks and the rule for missing numbers, names every music file system accepts, and
templates checked with messages that say what is wrong."""

from __future__ import annotations

import random
import shutil
import unicodedata
from pathlib import Path, PurePosixPath

import pytest
from mutagen.id3 import ID3, TALB, TDRC, TIT2, TPE1, TPE2, TPOS, TRCK
from mutagen.mp4 import MP4
from mutagen.wave import WAVE

from audio_files import AUDIO_FORMATS, write_audio
from genresort.library.layout import (
    DEFAULT_TEMPLATE,
    TrackTags,
    read_track_tags,
    render_path,
    safe_component,
    validate_template,
)
from genresort.library.placement import place_file

FULL_TAGS = {  # FFmpeg's metadata keys; each muxer writes them in its format's own fields
    "title": "C Jam Blues",
    "artist": "Oscar Peterson",
    "album_artist": "The Oscar Peterson Trio",
    "album": "Night Train",
    "track": "3/12",
    "disc": "1/2",
    "date": "1963-05-01",
    "genre": "Jazz",
}
FULL = TrackTags(
    artist="Oscar Peterson",
    albumartist="The Oscar Peterson Trio",
    album="Night Train",
    title="C Jam Blues",
    track=3,
    disc=1,
    year="1963",
)
ALBUM_TEMPLATE = "{genre}/{albumartist}/{album}/{track:02d} {title}{ext}"
#: Checked here independently of the module: what Windows (NTFS, FAT, exFAT, SMB) refuses in a name.
FORBIDDEN = set('/\\:*?"<>|\x7f') | {chr(code) for code in range(0x20)}
DEVICES = {"CON", "PRN", "AUX", "NUL"} | {f"{device}{n}" for device in ("COM", "LPT") for n in "0123456789¹²³"}


def assert_safe(name: str) -> None:
    """Every file system genresort may write to accepts `name`, and shows it as one name."""
    assert name, "empty name"
    assert not FORBIDDEN & set(name), name
    assert not any(0xD800 <= ord(char) <= 0xDFFF for char in name), name  # encodable as UTF-8 and UTF-16
    assert not name.startswith((" ", ".")) and not name.endswith((" ", ".")), name
    assert name.split(".")[0].rstrip(" ").upper() not in DEVICES, name
    assert len(name.encode("utf-8")) <= 255, name
    assert len(name.encode("utf-16-le")) // 2 <= 255, name
    assert unicodedata.is_normalized("NFC", name), name


def utf16_units(name: str) -> int:
    return len(name.encode("utf-16-le")) // 2


# --- reading tags ------------------------------------------------------------------------------------------------


def write_tagged(path: Path, audio_format: str) -> Path:
    """A 1-second file of `audio_format` with FULL's tags in its own fields. FFmpeg writes a WAV's tags as LIST/INFO,
    which mutagen does not read (players read its ID3 chunk), and a WMA's date as `date`, not WM/Year: those two get
    the fields players read."""
    if audio_format != "wav":
        return write_audio(path, audio_format, seconds=1.0, tags=FULL_TAGS | {"WM/Year": "1963"})
    write_audio(path, "wav", seconds=1.0)
    wave = WAVE(path)
    wave.add_tags()
    for frame, text in (
        (TIT2, "C Jam Blues"),
        (TPE1, "Oscar Peterson"),
        (TPE2, "The Oscar Peterson Trio"),
        (TALB, "Night Train"),
        (TRCK, "3/12"),
        (TPOS, "1/2"),
        (TDRC, "1963-05-01"),
    ):
        wave.tags.add(frame(encoding=3, text=text))
    wave.save()
    return path


@pytest.mark.parametrize("audio_format", AUDIO_FORMATS)
def test_tags_of_every_format(tmp_path: Path, audio_format: str) -> None:
    assert read_track_tags(write_tagged(tmp_path / f"track.{audio_format}", audio_format)) == FULL


@pytest.mark.parametrize("audio_format", ["mp3", "flac", "opus", "m4a-aac", "aiff", "wav", "wma"])
def test_a_file_without_tags_has_none(tmp_path: Path, audio_format: str) -> None:
    assert read_track_tags(write_audio(tmp_path / "untagged", audio_format, seconds=1.0)) == TrackTags()


def test_a_renamed_file_is_read_by_its_content(tmp_path: Path) -> None:
    assert read_track_tags(write_tagged(tmp_path / "really an mp3.m4a", "mp3")) == FULL
    assert read_track_tags(write_tagged(tmp_path / "really a flac.mp3", "flac")) == FULL


def test_files_whose_tags_cannot_be_read_have_none(tmp_path: Path) -> None:
    text = tmp_path / "notes.mp3"
    text.write_text("not music at all\n" * 100)
    empty = tmp_path / "empty.flac"
    empty.touch()
    cut = tmp_path / "cut.flac"
    cut.write_bytes(write_tagged(tmp_path / "whole.flac", "flac").read_bytes()[:60])  # in its first metadata block
    damaged = write_tagged(tmp_path / "damaged.wma", "wma")
    data = bytearray(damaged.read_bytes())
    name = "WM/AlbumTitle\0".encode("utf-16-le")
    type_at = data.index(name) + len(name)
    data[type_at : type_at + 2] = (103).to_bytes(2, "little")  # no such attribute type: mutagen raises KeyError
    damaged.write_bytes(bytes(data))
    for path in (text, empty, cut, damaged):
        assert read_track_tags(path) == TrackTags(), path


@pytest.fixture(scope="module")
def untagged_mp3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_audio(tmp_path_factory.mktemp("mp3") / "untagged.mp3", "mp3", seconds=1.0)


@pytest.mark.parametrize(
    ("frames", "expected"),
    [
        ([TRCK(encoding=3, text="07")], TrackTags(track=7)),
        ([TRCK(encoding=3, text="A1")], TrackTags()),  # a vinyl side: no number
        ([TRCK(encoding=3, text="0/12")], TrackTags()),
        ([TDRC(encoding=3, text="2019")], TrackTags(year="2019")),
        ([TDRC(encoding=3, text="circa 1970")], TrackTags()),
        ([TPE1(encoding=3, text=["Simon", "Garfunkel"])], TrackTags(artist="Simon, Garfunkel")),
        ([TPE1(encoding=3, text=["  "]), TIT2(encoding=3, text=[" Blue "])], TrackTags(title="Blue")),
    ],
)
def test_numbers_years_and_texts(tmp_path: Path, untagged_mp3: Path, frames: list, expected: TrackTags) -> None:
    path = Path(shutil.copy(untagged_mp3, tmp_path / "song.mp3"))
    tags = ID3()
    for frame in frames:
        tags.add(frame)
    tags.save(path)
    assert read_track_tags(path) == expected


def test_itunes_zero_track_is_no_track(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "song.m4a", "m4a-aac", seconds=1.0)
    audio = MP4(path)
    audio["trkn"] = [(0, 12)]
    audio["disk"] = [(2, 2)]
    audio.save()
    assert read_track_tags(path) == TrackTags(disc=2)


# --- rendering ---------------------------------------------------------------------------------------------------


def test_full_tags_and_the_default_template() -> None:
    assert render_path(ALBUM_TEMPLATE, "Jazz", FULL, "x.mp3") == PurePosixPath(
        "Jazz/The Oscar Peterson Trio/Night Train/03 C Jam Blues.mp3"
    )
    assert render_path(DEFAULT_TEMPLATE, "Jazz", FULL, "01 - Night Train.flac") == PurePosixPath(
        "Jazz/01 - Night Train.flac"
    )
    assert render_path("{genre}/{year}/{artist} - {title}{ext}", "Jazz", FULL, "x.mp3") == PurePosixPath(
        "Jazz/1963/Oscar Peterson - C Jam Blues.mp3"
    )


def test_fallbacks_for_missing_tags() -> None:
    template = "{genre}/{albumartist}/{album} ({year})/{artist} - {title}{ext}"
    assert render_path(template, "Jazz", TrackTags(), "take 2.mp3") == PurePosixPath(
        "Jazz/Unknown Artist/Unknown Album (Unknown Year)/Unknown Artist - take 2.mp3"
    )
    only_artist = TrackTags(artist="Ella Fitzgerald")
    assert render_path(template, "Jazz", only_artist, "a.mp3").parts[1] == "Ella Fitzgerald"
    only_album_artist = TrackTags(albumartist="Various Artists")
    assert render_path(template, "Jazz", only_album_artist, "a.mp3").name == "Various Artists - a.mp3"


@pytest.mark.parametrize(
    ("template", "with_numbers", "without"),
    [
        ("{genre}/{track:02d} {title}{ext}", "03 Song.mp3", "Song.mp3"),
        ("{genre}/{track:02d} - {title}{ext}", "03 - Song.mp3", "Song.mp3"),
        ("{genre}/{disc}-{track:02d} {title}{ext}", "1-03 Song.mp3", "Song.mp3"),
        ("{genre}/Track {track}. {title}{ext}", "Track 3. Song.mp3", "Song.mp3"),
        ("{genre}/[{track:02d}] {title}{ext}", "[03] Song.mp3", "Song.mp3"),
        ("{genre}/{title} ({track}){ext}", "Song (3).mp3", "Song.mp3"),
        ("{genre}/{title} - {track}{ext}", "Song - 3.mp3", "Song.mp3"),
        ("{genre}/{album} - {track:02d} - {title}{ext}", "LP - 03 - Song.mp3", "LP - Song.mp3"),
        ("{genre}/{track} ({title}){ext}", "3 (Song).mp3", "(Song).mp3"),  # brackets never left unpaired
        ("{genre}/{track:02d}{ext}", "03.mp3", "take.mp3"),  # nothing before the extension: the file's stem
        ("{genre}/{album}/Disc {disc}/{title}{ext}", "LP/Disc 1/Song.mp3", "LP/Song.mp3"),  # an empty folder goes
        ("{genre}/{album} (Disc {disc})/{title}{ext}", "LP (Disc 1)/Song.mp3", "LP/Song.mp3"),
    ],
)
def test_a_missing_number_goes_with_its_separator(template: str, with_numbers: str, without: str) -> None:
    tags = TrackTags(album="LP", title="Song", track=3, disc=1)
    assert render_path(template, "Jazz", tags, "take.mp3") == PurePosixPath("Jazz", with_numbers)
    no_numbers = TrackTags(album="LP", title="Song")
    assert render_path(template, "Jazz", no_numbers, "take.mp3") == PurePosixPath("Jazz", without)
    only_disc = TrackTags(album="LP", title="Song", disc=2)  # the track alone missing
    assert "None" not in str(render_path(template, "Jazz", only_disc, "take.mp3"))


def test_reserved_characters_and_trailing_dots_and_spaces() -> None:
    tags = TrackTags(
        artist="AC/DC",
        album=' Live: at "Donington" ... ',
        title='a/b\\c:d*e?f"g<h>i|j\x00k\x1fl\x7fm',
    )
    path = render_path("{genre}/{artist}/{album}/{title}{ext}", "Rock", tags, "x.mp3")
    assert path == PurePosixPath("Rock/AC_DC/Live_ at _Donington_/a_b_c_d_e_f_g_h_i_j_k_l_m.mp3")
    assert render_path("{genre}/{album}/{filename}", "Rock", TrackTags(album=".."), "x. .") == PurePosixPath("Rock/_/x")
    assert render_path("{genre}/{album}/{filename}", "Metal", TrackTags(album=".5: The Gray Chapter"), "a.mp3") == (
        PurePosixPath("Metal/_5_ The Gray Chapter/a.mp3")  # a leading dot would hide the folder
    )


@pytest.mark.parametrize(
    ("name", "extension", "expected"),
    [
        ("CON", "", "CON_"),
        ("aux.mp3", ".mp3", "aux_.mp3"),
        ("nul.tar.gz", ".gz", "nul_.tar.gz"),
        ("Com1 .flac", ".flac", "Com1_ .flac"),
        ("LPT¹", "", "LPT¹_"),
        ("CONCERT.mp3", ".mp3", "CONCERT.mp3"),
        ("", "", "_"),
        (" . ", "", "_"),
        ("song.mp3 ", ".mp3 ", "song.mp3"),
    ],
)
def test_safe_component(name: str, extension: str, expected: str) -> None:
    assert safe_component(name, extension) == expected


def test_reserved_names_from_tags_and_file_names() -> None:
    tags = TrackTags(artist="con", album="Aux", title="PRN")
    assert render_path("{genre}/{artist}/{album}/{title}{ext}", "Pop", tags, "x.mp3") == PurePosixPath(
        "Pop/con_/Aux_/PRN_.mp3"
    )
    assert render_path(DEFAULT_TEMPLATE, "Pop", TrackTags(), "aux.mp3") == PurePosixPath("Pop/aux_.mp3")


@pytest.mark.parametrize(
    ("title", "ext", "kept"),
    [
        ("a" * 300, ".mp3", "a" * 251),  # 255 bytes
        ("音" * 200, ".flac", "音" * 83),  # 3 bytes a character: 254 bytes, 88 UTF-16 units
        ("é" * 300, ".mp3", "é" * 125),  # 2 bytes, 1 unit
        ("🎵" * 200, ".m4a", "🎵" * 62),  # 4 bytes, 2 units (a surrogate pair): never split
    ],
)
def test_an_over_long_name_is_cut_before_its_extension(title: str, ext: str, kept: str) -> None:
    path = render_path("{genre}/{album}/{title}{ext}", "Jazz", TrackTags(album=title, title=title), "x" + ext)
    assert path.name == kept + ext
    assert len(path.name.encode()) <= 255 and len((kept + title[0] + ext).encode()) > 255  # the longest that fits
    assert utf16_units(path.name) <= 255 and utf16_units(path.parent.name) <= 255
    assert path.parent.name == title[: len(path.parent.name)] and len(path.parent.name.encode()) > 255 - 4


def test_unicode_is_composed() -> None:
    decomposed = TrackTags(artist=unicodedata.normalize("NFD", "Beyoncé"), title=unicodedata.normalize("NFD", "Déjà"))
    path = render_path("{genre}/{artist}/{title}{ext}", "Pop", decomposed, unicodedata.normalize("NFD", "é.mp3"))
    assert path == PurePosixPath("Pop/Beyoncé/Déjà.mp3")
    assert all(unicodedata.is_normalized("NFC", part) for part in path.parts)


def test_a_template_render_refuses() -> None:
    with pytest.raises(ValueError, match="must end with"):
        render_path("{genre}/{title}", "Jazz", FULL, "x.mp3")


def test_the_caller_places_with_place_file(tmp_path: Path) -> None:
    """Two different files that render to one path: the second is numbered, nothing is overwritten."""
    library = tmp_path / "library"
    placed = []
    for content in (b"first", b"second"):
        staged = tmp_path / "staged"
        staged.write_bytes(content)
        wanted = render_path(ALBUM_TEMPLATE, "Jazz", FULL, "x.mp3")
        placed.append(place_file(staged, library / wanted.parent, wanted.name))
        staged.unlink()
    folder = library / "Jazz/The Oscar Peterson Trio/Night Train"
    assert placed == [folder / "03 C Jam Blues.mp3", folder / "03 C Jam Blues (2).mp3"]
    assert [path.read_bytes() for path in placed] == [b"first", b"second"]


# --- validating templates ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "template",
    [
        DEFAULT_TEMPLATE,
        ALBUM_TEMPLATE,
        "{genre}/{albumartist}/{album} ({year})/{disc}-{track:02d} {title}{ext}",
        "{genre}/{artist}/{stem}{ext}",
        "{genre}/{album:.40}/{track:>3} {title}{ext}",
        "{genre}/{{{album}}}/{filename}",  # a literal brace
    ],
)
def test_good_templates(template: str) -> None:
    assert validate_template(template) is None


@pytest.mark.parametrize(
    ("template", "words"),
    [
        ("", "empty"),
        ("/{genre}/{filename}", "absolute path"),
        ("{genre}/../{filename}", "'..' cannot be a folder name"),
        ("{genre}//{filename}", "empty folder name"),
        ("{genre}/{filename}/", "empty folder name"),
        ("{genre}\\{filename}", "folders are separated by /"),
        ("{genre}/{artst}/{filename}", "{artst} is not a field; did you mean {artist}?"),
        ("{genre}/{title.upper}{ext}", "{title.upper} is not a field"),
        ("{genre}/{title!r}{ext}", "conversions (!r) are not supported"),
        ("{genre}/{track:s} {title}{ext}", "'s' does not work on a number"),
        ("{genre}/{title:02d}{ext}", "'02d' does not work on text"),
        ("{genre}/{track:09999d}{ext}", "far longer than any file name"),
        ("{genre}/{title{ext}", "braces do not pair up"),
        ("{albumartist}/{genre}/{filename}", "first folder must be {genre} alone"),
        ("{genre} music/{filename}", "first folder must be {genre} alone"),
        ("{artist}/{title}{ext}", "first folder must be {genre} alone"),
        ("{genre}/{title}", "must end with {ext} or {filename}"),
        ("{genre}/{title}.mp3", "must end with {ext} or {filename}"),
        ("{genre}", "must end with {ext} or {filename}"),
        ("{genre}/{artist}: {title}{ext}", "':' cannot be in a file name"),
    ],
)
def test_bad_templates_say_why(template: str, words: str) -> None:
    problem = validate_template(template)
    assert problem is not None and words in problem, problem


# --- every name safe -----------------------------------------------------------------------------------------------

#: Pieces random names are made of: plain text, what file systems refuse, what Unicode normalises, devices.
PIECES = [
    *"abcXYZ019 .-_()[]",
    *'/\\:*?"<>|\x00\x09\x1f\x7f',
    "é",
    "e\u0301",  # e and a combining acute: é in NFC
    "\u212b",  # the Angstrom sign: Å in NFC
    "\u0958",  # a Devanagari letter NFC decomposes (two code points)
    "音楽",
    "🎵",
    "\ud800",  # lone surrogates: a name that was not UTF-8
    "\udcff",
    "CON",
    "aux",
    "Com1",
    "lpt³",
    "nul.",
]
EXTENSIONS = ["", ".mp3", ".flac", ".", ". ", ".m4a ", ".é", ".mp3:", "." + "x" * 40]


def random_text(rng: random.Random) -> str:
    return "".join(rng.choice(PIECES) for _ in range(rng.choice([0, 1, 2, 5, 20, 150])))


def test_every_name_is_safe() -> None:
    rng = random.Random(9)
    for _ in range(3000):
        text, extension = random_text(rng), rng.choice(EXTENSIONS)
        name = safe_component(text + extension, extension)
        assert_safe(name)
        if extension in (".mp3", ".flac") and text.strip(" "):
            assert name.endswith(extension), (text, extension, name)


def test_every_rendered_path_is_safe() -> None:
    rng = random.Random(10)
    templates = [ALBUM_TEMPLATE, DEFAULT_TEMPLATE, "{genre}/{artist}/{album} ({year})/Disc {disc}/{title}{ext}"]
    for _ in range(500):
        tags = TrackTags(
            artist=rng.choice([None, random_text(rng)]),
            albumartist=rng.choice([None, random_text(rng)]),
            album=rng.choice([None, random_text(rng)]),
            title=rng.choice([None, random_text(rng)]),
            track=rng.choice([None, 1, 12, 10**30]),
            disc=rng.choice([None, 2]),
            year=rng.choice([None, "1999"]),
        )
        filename = random_text(rng) + rng.choice(EXTENSIONS)
        path = render_path(rng.choice(templates), "Hip-Hop", tags, filename)
        assert path.parts[0] == "Hip-Hop" and len(path.parts) >= 2
        for part in path.parts:
            assert_safe(part)
