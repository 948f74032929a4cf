"""Tags written into real files of every format genresort takes, each in its own genre field, with the user's tags
around them (title, artist, a genre, cover art), read back here with mutagen's own classes, and the audio heard
the same after (decoded with PyAV)."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import av
import numpy as np
import pytest
from mutagen.aiff import AIFF
from mutagen.asf import ASF
from mutagen.flac import FLAC, Picture
from mutagen.id3 import ID3, TCON, TIT2, TPE1
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4, AtomDataType, Atoms, MP4Cover
from mutagen.oggopus import OggOpus
from mutagen.oggvorbis import OggVorbis
from mutagen.wave import WAVE

from audio_files import ENCODINGS, write_audio
from genresort.library.tags import (
    PREVIOUS_GENRE,
    ExistingGenrePolicy,
    GenreTags,
    TagError,
    audio_payload_sha256,
    audio_span,
    read_fields,
    read_genres,
    write_genre_tags,
)

JAZZ = GenreTags("Jazz", 0.873, (("Jazz", 0.873), ("Blues", 0.08), ("Rock", 0.021)), "genresort-test sha256:abcd1234")
BLUES = GenreTags("Blues", 0.6, (("Blues", 0.6),), "genresort-test sha256:abcd1234")
OUR_FIELDS = {
    "GENRESORT_GENRE": "Jazz",
    "GENRESORT_CONFIDENCE": "0.873",
    "GENRESORT_TOP3": "Jazz 0.873; Blues 0.080; Rock 0.021",
    "GENRESORT_MODEL": "genresort-test sha256:abcd1234",
}
TITLE, ARTIST = "Só Danço Samba", "Stan Getz"
COVER = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40  # 10 KB that a reader takes for a PNG

#: The formats genresort tags (tests/audio_files.py's names), by the way each keeps its tags.
FAMILY = {
    "mp3": "id3",
    "aac": "id3",  # raw AAC (ADTS), an ID3v2 tag before it
    "flac": "vorbis",
    "ogg-vorbis": "vorbis",
    "opus": "vorbis",
    "m4a-aac": "mp4",
    "m4a-alac": "mp4",
    "aiff": "id3",
    "wav": "id3",
    "wma": "asf",
}
FORMATS = tuple(FAMILY)
TAGS = {  # each format's tags, read with mutagen's own class for it
    "mp3": lambda path: MP3(path).tags,
    "aac": ID3,
    "flac": lambda path: FLAC(path).tags,
    "ogg-vorbis": lambda path: OggVorbis(path).tags,
    "opus": lambda path: OggOpus(path).tags,
    "m4a-aac": lambda path: MP4(path).tags,
    "m4a-alac": lambda path: MP4(path).tags,
    "aiff": lambda path: AIFF(path).tags,
    "wav": lambda path: WAVE(path).tags,
    "wma": lambda path: ASF(path).tags,
}
GENRE_FIELD = {"id3": "TCON", "vorbis": "GENRE", "mp4": "\xa9gen", "asf": "WM/Genre"}
OUR_FIELD = {"id3": "TXXX:{}", "vorbis": "{}", "mp4": "----:com.apple.iTunes:{}", "asf": "{}"}
TITLE_ARTIST = {
    "id3": ("TIT2", "TPE1"),
    "vorbis": ("TITLE", "ARTIST"),
    "mp4": ("\xa9nam", "\xa9ART"),
    "asf": ("Title", "Author"),
}
JOINED = {"id3", "mp4"}  # several genres in one value ("Rock; Jazz"): ID3v2.3, and MP4, whose readers show one


def user_file(
    folder: Path, audio_format: str, genre: str | None = "Rock", cover: bool = True, **options: dict[str, str]
) -> Path:
    """A file as a person's library has it: title, artist and `genre` in the format's own fields, and `cover` art in
    an M4A or FLAC, added by mutagen (a WAV's tags in an ID3 chunk, the only one mutagen reads). `options` go to
    write_audio."""
    path = folder / f"song{ENCODINGS[audio_format].extension}"
    tags = {"title": TITLE, "artist": ARTIST} | ({"genre": genre} if genre else {})
    write_audio(path, audio_format, seconds=1.0, tags=tags, **options)
    if audio_format == "wav":
        wav = WAVE(path)
        wav.add_tags()
        frames = [TIT2(encoding=3, text=[TITLE]), TPE1(encoding=3, text=[ARTIST])]
        for frame in frames + ([TCON(encoding=3, text=[genre])] if genre else []):
            wav.tags.add(frame)
        wav.save()
    elif audio_format == "flac" and cover:
        flac, picture = FLAC(path), Picture()
        picture.type, picture.mime, picture.data = 3, "image/png", COVER
        flac.add_picture(picture)
        flac.save()
    elif FAMILY[audio_format] == "mp4" and cover:
        m4a = MP4(path)
        m4a["covr"] = [MP4Cover(COVER, MP4Cover.FORMAT_PNG)]
        m4a.save()
    return path


def texts(path: Path, audio_format: str, field: str) -> list[str]:
    """A field's values as text, read with the format's own mutagen class."""
    tags = TAGS[audio_format](path)
    if tags is None or field not in tags:
        return []
    if FAMILY[audio_format] == "id3":
        return list(tags[field].text)
    return [value.decode() if isinstance(value, bytes) else str(value) for value in tags[field]]


def genre_field(path: Path, audio_format: str) -> list[str]:
    return texts(path, audio_format, GENRE_FIELD[FAMILY[audio_format]])


def our_field(path: Path, audio_format: str, name: str) -> list[str]:
    return texts(path, audio_format, OUR_FIELD[FAMILY[audio_format]].format(name))


def decoded(path: Path) -> np.ndarray:
    """Every sample of the file's audio, as FFmpeg decodes it."""
    with av.open(str(path)) as container:
        return np.concatenate([frame.to_ndarray() for frame in container.decode(audio=0)], axis=1)


def boxes(path: Path) -> list[bytes]:
    with open(path, "rb") as f:
        return [atom.name for atom in Atoms(f).atoms]


# --- every format ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("audio_format", FORMATS)
def test_each_format_gets_its_own_genre_field_and_our_fields(tmp_path: Path, audio_format: str) -> None:
    path = user_file(tmp_path, audio_format)
    write_genre_tags(path, JAZZ, ExistingGenrePolicy.OVERWRITE)

    assert genre_field(path, audio_format) == ["Jazz"]
    for name, value in OUR_FIELDS.items():
        assert our_field(path, audio_format, name) == [value]
    assert our_field(path, audio_format, PREVIOUS_GENRE) == ["Rock"]
    title, artist = TITLE_ARTIST[FAMILY[audio_format]]
    assert texts(path, audio_format, title) == [TITLE]
    assert texts(path, audio_format, artist)[0] == ARTIST  # FFmpeg's ASF muxer writes the author twice
    assert read_genres(path) == ["Jazz"]
    assert read_fields(path) == {"GENRE": ["Jazz"], PREVIOUS_GENRE: ["Rock"]} | {
        name: [value] for name, value in OUR_FIELDS.items()
    }


@pytest.mark.parametrize("audio_format", ["mp3", "aac", "aiff", "wav"])
def test_id3_formats_get_id3v23(tmp_path: Path, audio_format: str) -> None:
    path = user_file(tmp_path, audio_format)
    write_genre_tags(path, JAZZ, ExistingGenrePolicy.OVERWRITE)
    assert TAGS[audio_format](path).version[:2] == (2, 3)


@pytest.mark.parametrize("audio_format", ["m4a-aac", "m4a-alac"])
def test_m4a_fields_are_freeform_utf8_atoms_and_the_cover_stays(tmp_path: Path, audio_format: str) -> None:
    path = user_file(tmp_path, audio_format)
    write_genre_tags(path, JAZZ, ExistingGenrePolicy.OVERWRITE)
    tags = MP4(path).tags
    value = tags["----:com.apple.iTunes:GENRESORT_GENRE"][0]
    assert bytes(value) == b"Jazz" and value.dataformat == AtomDataType.UTF8
    assert tags["covr"] == [MP4Cover(COVER, MP4Cover.FORMAT_PNG)]


def test_flac_keeps_its_picture(tmp_path: Path) -> None:
    path = user_file(tmp_path, "flac")
    write_genre_tags(path, JAZZ, ExistingGenrePolicy.OVERWRITE)
    assert [(p.type, p.mime, p.data) for p in FLAC(path).pictures] == [(3, "image/png", COVER)]


@pytest.mark.parametrize("audio_format", FORMATS)
@pytest.mark.parametrize(
    ("policy", "genres"),
    [
        (ExistingGenrePolicy.KEEP, ["Rock"]),
        (ExistingGenrePolicy.OVERWRITE, ["Jazz"]),
        (ExistingGenrePolicy.ADD, ["Rock", "Jazz"]),
        (ExistingGenrePolicy.UNTOUCHED, ["Rock"]),
    ],
)
def test_policy_decides_the_genre_field_and_the_previous_genre_is_kept(
    tmp_path: Path, audio_format: str, policy: ExistingGenrePolicy, genres: list[str]
) -> None:
    path = user_file(tmp_path, audio_format)
    write_genre_tags(path, JAZZ, policy)

    assert read_genres(path) == genres
    joined = FAMILY[audio_format] in JOINED
    assert genre_field(path, audio_format) == (["; ".join(genres)] if joined else genres)
    assert our_field(path, audio_format, "GENRESORT_GENRE") == ["Jazz"]
    assert our_field(path, audio_format, PREVIOUS_GENRE) == ["Rock"]


@pytest.mark.parametrize("audio_format", FORMATS)
@pytest.mark.parametrize(
    ("policy", "genres"), [(ExistingGenrePolicy.KEEP, ["Jazz"]), (ExistingGenrePolicy.UNTOUCHED, [])]
)
def test_a_file_without_a_genre_gets_ours_unless_untouched_and_no_previous_genre(
    tmp_path: Path, audio_format: str, policy: ExistingGenrePolicy, genres: list[str]
) -> None:
    path = user_file(tmp_path, audio_format, genre=None)
    write_genre_tags(path, JAZZ, policy)
    assert genre_field(path, audio_format) == genres
    assert our_field(path, audio_format, "GENRESORT_TOP3") == [OUR_FIELDS["GENRESORT_TOP3"]]
    assert our_field(path, audio_format, PREVIOUS_GENRE) == []


@pytest.mark.parametrize("audio_format", FORMATS)
def test_a_file_tagged_twice_keeps_the_users_previous_genre(tmp_path: Path, audio_format: str) -> None:
    path = user_file(tmp_path, audio_format)
    write_genre_tags(path, JAZZ, ExistingGenrePolicy.OVERWRITE)
    write_genre_tags(path, BLUES, ExistingGenrePolicy.OVERWRITE)
    assert genre_field(path, audio_format) == ["Blues"]
    assert our_field(path, audio_format, "GENRESORT_GENRE") == ["Blues"]
    assert our_field(path, audio_format, PREVIOUS_GENRE) == ["Rock"]


@pytest.mark.parametrize("audio_format", FORMATS)
def test_the_audio_is_untouched(tmp_path: Path, audio_format: str) -> None:
    path = user_file(tmp_path, audio_format)
    original = shutil.copyfile(path, tmp_path / "original")
    payload, sound = audio_payload_sha256(path), decoded(path)

    write_genre_tags(path, JAZZ, ExistingGenrePolicy.ADD)

    assert path.read_bytes() != original.read_bytes()
    assert audio_payload_sha256(path) == payload
    np.testing.assert_array_equal(decoded(path), sound)
    if (span := audio_span(original)) is not None:  # the formats an undo can give back: the same bytes, maybe moved
        start, end = audio_span(path)
        assert path.read_bytes()[start:end] == original.read_bytes()[span[0] : span[1]]


# --- content, not the name, decides -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("audio_format", "name"),
    [
        ("mp3", "song.m4a"),
        ("flac", "song.ogg"),
        ("m4a-aac", "song.flac"),  # mutagen.File would score the name and take these three for FLAC
        ("opus", "song.flac"),
        ("wma", "song.flac"),
        ("aiff", "song.wav"),
        ("aac", "song.mp3"),  # mutagen.File would open it as an MP3 and fail
    ],
)
def test_a_renamed_file_is_tagged_as_its_content(tmp_path: Path, audio_format: str, name: str) -> None:
    path = write_audio(tmp_path / name, audio_format, seconds=1.0, tags={"genre": "Rock"})
    write_genre_tags(path, JAZZ, ExistingGenrePolicy.OVERWRITE)
    assert path.name == name
    assert genre_field(path, audio_format) == ["Jazz"]
    assert our_field(path, audio_format, PREVIOUS_GENRE) == ["Rock"]


# --- MP4 layouts ------------------------------------------------------------------------------------------------


# M4A layouts, made with no cover (mutagen adding one would leave padding for our tags in the first, and would
# break the second: see test_a_fragmented_m4a_is_refused_untouched)
FASTSTART = {"movflags": "faststart"}  # the moov (the index) before the mdat (the audio)
FRAGMENTED = {"movflags": "frag_keyframe+empty_moov", "frag_duration": "250000"}  # moof and mdat every 0.25 s


def test_an_m4a_whose_moov_comes_first_is_tagged_and_its_moved_audio_still_plays(tmp_path: Path) -> None:
    path = user_file(tmp_path, "m4a-aac", cover=False, container_options=FASTSTART)
    assert boxes(path).index(b"moov") < boxes(path).index(b"mdat")
    span, payload, sound = audio_span(path), audio_payload_sha256(path), decoded(path)

    write_genre_tags(path, JAZZ, ExistingGenrePolicy.OVERWRITE)

    assert audio_span(path)[0] > span[0]  # the moov grew: mutagen moved the mdat and rewrote the chunk offsets
    assert audio_payload_sha256(path) == payload
    np.testing.assert_array_equal(decoded(path), sound)  # the decoder finds every chunk at its new offset
    assert genre_field(path, "m4a-aac") == ["Jazz"]


def with_gnre(path: Path, genre_number: int) -> Path:
    """Give an M4A (its moov last) an iTunes `gnre` atom, the ID3v1 genre number + 1, as old iTunes wrote it;
    mutagen itself writes only ©gen."""
    data = bytearray(path.read_bytes())
    with open(path, "rb") as f:
        ilst_path = Atoms(f).path(b"moov", b"udta", b"meta", b"ilst")
    assert boxes(path)[-1] == b"moov"  # nothing after it to move

    def atom(name: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", 8 + len(payload)) + name + payload

    gnre = atom(b"gnre", atom(b"data", struct.pack(">IIH", 0, 0, genre_number)))
    ilst = ilst_path[-1]
    data[ilst.offset + ilst.length : ilst.offset + ilst.length] = gnre
    for parent in ilst_path:
        struct.pack_into(">I", data, parent.offset, struct.unpack_from(">I", data, parent.offset)[0] + len(gnre))
    path.write_bytes(data)
    return path


def test_an_m4a_gnre_genre_is_read_and_replaced_by_a_gen_atom(tmp_path: Path) -> None:
    path = with_gnre(user_file(tmp_path, "m4a-aac", genre=None), 18)  # ID3v1 genre 17: Rock
    assert read_genres(path) == ["Rock"]

    write_genre_tags(path, JAZZ, ExistingGenrePolicy.OVERWRITE)

    assert b"gnre" not in path.read_bytes()
    assert genre_field(path, "m4a-aac") == ["Jazz"]
    assert our_field(path, "m4a-aac", PREVIOUS_GENRE) == ["Rock"]


def test_a_fragmented_m4a_is_refused_untouched(tmp_path: Path) -> None:
    """mutagen moves only the first fragment's offsets when the moov grows: the file would no longer play."""
    path = user_file(tmp_path, "m4a-aac", cover=False, container_options=FRAGMENTED)
    assert boxes(path).count(b"moof") > 1
    before = path.read_bytes()
    with pytest.raises(TagError, match="song.m4a.*fragmented MP4"):
        write_genre_tags(path, JAZZ, ExistingGenrePolicy.OVERWRITE)
    assert path.read_bytes() == before


# --- broken files -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("audio_format", FORMATS)
def test_a_file_cut_inside_its_header_gives_a_tag_error(tmp_path: Path, audio_format: str) -> None:
    path = user_file(tmp_path, audio_format)
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(TagError, match=path.name):
        write_genre_tags(path, JAZZ, ExistingGenrePolicy.OVERWRITE)
    assert len(path.read_bytes()) == 60


@pytest.mark.parametrize(
    ("audio_format", "options", "reason"),
    [
        ("m4a-aac", {}, r"truncated or damaged \(its 'mdat' part"),  # the moov, last, is lost
        ("m4a-aac", FASTSTART, r"truncated or damaged \(its 'mdat' part"),  # mutagen alone would tag this one
        ("aiff", {}, r"truncated or damaged \(its 'FORM' part"),
        ("wma", {}, r"truncated or damaged \(its ASF object"),
    ],
)
def test_a_container_cut_in_half_gives_a_tag_error_that_says_so(
    tmp_path: Path, audio_format: str, options: dict[str, str], reason: str
) -> None:
    path = user_file(tmp_path, audio_format, cover=False, container_options=options)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(TagError, match=reason):
        write_genre_tags(path, JAZZ, ExistingGenrePolicy.OVERWRITE)


def test_an_opus_file_with_a_broken_header_gives_a_tag_error(tmp_path: Path) -> None:
    path = user_file(tmp_path, "opus")
    data = path.read_bytes()
    version = data.index(b"OpusHead") + 8
    path.write_bytes(data[:version] + b"\x10" + data[version + 1 :])  # a major version no decoder knows
    with pytest.raises(TagError, match="as Opus: version 1 unsupported"):
        write_genre_tags(path, JAZZ, ExistingGenrePolicy.OVERWRITE)


@pytest.mark.parametrize("name", ["notes.m4a", "notes.wma", "notes.opus", "notes.aiff"])
def test_text_named_like_audio_gives_a_tag_error(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text("a shopping list, not music\n" * 40)
    with pytest.raises(TagError, match="none of the formats genresort tags"):
        write_genre_tags(path, JAZZ, ExistingGenrePolicy.OVERWRITE)
