"""Tag writing on real audio files (MP3 written by libsndfile, FLAC, Ogg Vorbis, WAV, a GTZAN clip)."""

from __future__ import annotations

import hashlib
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from mutagen.apev2 import APEv2
from mutagen.flac import FLAC, Picture
from mutagen.id3 import APIC, COMM, ID3, TCON, TDRC, TIT2, TMCL, TMOO, TPE1, TSOP, ID3v1SaveOptions
from mutagen.oggvorbis import OggVorbis

from conftest import shared_clip
from genresort.library import tags as tags_module
from genresort.library.tags import (
    ExistingGenrePolicy,
    GenreTags,
    TagError,
    audio_payload_sha256,
    read_genres,
    write_genre_tags,
)

JAZZ = GenreTags("Jazz", 0.873, (("Jazz", 0.873), ("Blues", 0.08), ("Rock", 0.021)), "genresort-test sha256:abcd1234")
OUR_FIELDS = {
    "GENRESORT_GENRE": "Jazz",
    "GENRESORT_CONFIDENCE": "0.873",
    "GENRESORT_TOP3": "Jazz 0.873; Blues 0.080; Rock 0.021",
    "GENRESORT_MODEL": "genresort-test sha256:abcd1234",
}


def _png() -> bytes:
    """A valid 1x1 PNG, for pictures and for a "PNG named .mp3"."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\0\xff\0\0")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def _write_audio(path: Path, format: str, seconds: float = 1.0) -> Path:
    t = np.arange(int(44100 * seconds)) / 44100
    sf.write(path, np.sin(2 * np.pi * 440 * t) * 0.3, 44100, format=format)
    return path


def _id3_frames(*frames) -> ID3:
    id3 = ID3()
    for frame in frames:
        id3.add(frame)
    return id3


def _id3v2_size(path: Path) -> int:
    """Whole size of the ID3v2 tag at the start, computed here independently of genresort."""
    header = path.read_bytes()[:10]
    assert header[:3] == b"ID3"
    size = 0
    for byte in header[6:10]:
        size = (size << 7) | byte
    return 10 + size


@pytest.fixture
def raw_mp3(tmp_path: Path) -> tuple[Path, bytes]:
    """An MP3 without any tag, and its bytes (all audio)."""
    path = _write_audio(tmp_path / "song.mp3", "MP3")
    return path, path.read_bytes()


@pytest.fixture
def tagged_mp3(raw_mp3: tuple[Path, bytes]) -> Path:
    """An MP3 with an ID3v2.4 tag holding title, artist, picture, comment and genre "Rock"."""
    path, _ = raw_mp3
    _id3_frames(
        TIT2(encoding=3, text=["Só Danço Samba"]),
        TPE1(encoding=3, text=["Stan Getz"]),
        APIC(encoding=3, mime="image/png", type=3, desc="cover", data=_png()),
        COMM(encoding=3, lang="eng", desc="", text=["a comment"]),
        TCON(encoding=3, text=["Rock"]),
    ).save(path, v2_version=4)
    return path


@pytest.fixture
def jazz_clip() -> Path:
    return shared_clip("jazz")


def _txxx(id3: ID3) -> dict[str, str]:
    return {frame.desc: frame.text[0] for frame in id3.getall("TXXX")}


# --- MP3 ---------------------------------------------------------------------------------------


def test_untagged_mp3_gets_id3v23_with_plain_tcon_and_our_frames(raw_mp3: tuple[Path, bytes]) -> None:
    path, audio = raw_mp3
    write_genre_tags(path, JAZZ, ExistingGenrePolicy.KEEP)

    data = path.read_bytes()
    assert data[:4] == b"ID3\x03"
    assert data[_id3v2_size(path) :] == audio  # the audio bytes are exactly what libsndfile wrote
    id3 = ID3(path, translate=False)
    assert id3.version == (2, 3, 0)
    assert id3["TCON"].text == ["Jazz"]
    assert _txxx(id3) == OUR_FIELDS  # no previous genre: the file had none
    assert read_genres(path) == ["Jazz"]


@pytest.mark.parametrize(
    ("policy", "tcon"),
    [
        (ExistingGenrePolicy.KEEP, "Rock"),
        (ExistingGenrePolicy.OVERWRITE, "Jazz"),
        (ExistingGenrePolicy.ADD, "Rock; Jazz"),
        (ExistingGenrePolicy.UNTOUCHED, "Rock"),
    ],
)
def test_policy_decides_tcon_and_previous_genre_is_saved(
    tagged_mp3: Path, policy: ExistingGenrePolicy, tcon: str
) -> None:
    write_genre_tags(tagged_mp3, JAZZ, policy)

    id3 = ID3(tagged_mp3)
    assert id3["TCON"].text == [tcon]
    assert _txxx(id3) == OUR_FIELDS | {"GENRESORT_PREVIOUS_GENRE": "Rock"}
    assert read_genres(tagged_mp3) == tcon.split("; ")


def test_untouched_never_writes_a_genre_even_into_an_untagged_file(raw_mp3: tuple[Path, bytes]) -> None:
    """Files we are unsure about carry our top 3 in TXXX frames but no genre a player would show."""
    path, _ = raw_mp3
    write_genre_tags(path, JAZZ, ExistingGenrePolicy.UNTOUCHED)
    id3 = ID3(path)
    assert "TCON" not in id3 and _txxx(id3) == OUR_FIELDS


def test_add_does_not_repeat_a_genre_already_there(tagged_mp3: Path) -> None:
    rock = GenreTags("rock", 0.9, (("rock", 0.9),), "m")
    write_genre_tags(tagged_mp3, rock, ExistingGenrePolicy.ADD)
    assert ID3(tagged_mp3)["TCON"].text == ["Rock"]


def test_previous_genre_is_the_one_from_before_the_first_run(tagged_mp3: Path) -> None:
    write_genre_tags(tagged_mp3, JAZZ, ExistingGenrePolicy.OVERWRITE)
    blues = GenreTags("Blues", 0.6, (("Blues", 0.6),), "m")
    write_genre_tags(tagged_mp3, blues, ExistingGenrePolicy.OVERWRITE)

    id3 = ID3(tagged_mp3)
    assert id3["TCON"].text == ["Blues"]
    assert _txxx(id3)["GENRESORT_PREVIOUS_GENRE"] == "Rock"
    assert _txxx(id3)["GENRESORT_GENRE"] == "Blues"


def test_a_file_first_sorted_without_genre_gets_no_previous_genre_later(raw_mp3: tuple[Path, bytes]) -> None:
    path, _ = raw_mp3
    write_genre_tags(path, JAZZ, ExistingGenrePolicy.KEEP)
    write_genre_tags(path, JAZZ, ExistingGenrePolicy.OVERWRITE)
    assert "GENRESORT_PREVIOUS_GENRE" not in _txxx(ID3(path))


def test_other_frames_and_audio_are_untouched(tagged_mp3: Path, raw_mp3: tuple[Path, bytes]) -> None:
    _, audio = raw_mp3
    before = ID3(tagged_mp3)
    payload = audio_payload_sha256(tagged_mp3)

    write_genre_tags(tagged_mp3, JAZZ, ExistingGenrePolicy.OVERWRITE)

    after = ID3(tagged_mp3)
    for key in ("TIT2", "TPE1", "COMM::eng"):
        assert after[key].text == before[key].text
    assert after["APIC:cover"].data == _png()
    assert after["APIC:cover"].mime == "image/png"
    assert audio_payload_sha256(tagged_mp3) == payload
    assert tagged_mp3.read_bytes()[_id3v2_size(tagged_mp3) :] == audio


def test_payload_hash_ignores_id3v2_id3v1_and_apev2_tags(raw_mp3: tuple[Path, bytes]) -> None:
    path, audio = raw_mp3
    expected = audio_payload_sha256(path)
    assert expected == hashlib.sha256(audio).hexdigest()

    ape = APEv2()
    ape["Title"] = "title"
    ape.save(path)
    _id3_frames(TIT2(encoding=3, text=["title"])).save(path, v2_version=3, v1=ID3v1SaveOptions.CREATE)
    data = path.read_bytes()
    assert data[:3] == b"ID3" and data[-128:-125] == b"TAG" and b"APETAGEX" in data[-200:-128]
    assert audio_payload_sha256(path) == expected

    ape.save(path)  # mutagen appends an APEv2 tag after an existing ID3v1 tag: the other order
    assert path.read_bytes()[-32:-24] == b"APETAGEX"
    assert audio_payload_sha256(path) == expected


def test_id3v24_is_converted_to_v23_keeping_frames(raw_mp3: tuple[Path, bytes]) -> None:
    path, _ = raw_mp3
    _id3_frames(
        TIT2(encoding=3, text=["title"]),
        TDRC(encoding=3, text=["2019-05-04"]),
        TSOP(encoding=3, text=["Getz, Stan"]),  # v2.4-only: update_to_v23 alone would delete it
        TMOO(encoding=3, text=["calm"]),
        TCON(encoding=3, text=["Rock", "Pop"]),
    ).save(path, v2_version=4)

    write_genre_tags(path, JAZZ, ExistingGenrePolicy.KEEP)

    raw = ID3(path, translate=False)
    assert raw.version == (2, 3, 0)
    assert raw["TYER"].text == ["2019"] and raw["TDAT"].text == ["0405"]
    assert raw["TSOP"].text == ["Getz, Stan"] and raw["TMOO"].text == ["calm"]
    assert raw["TCON"].text == ["Rock; Pop"]
    assert read_genres(path) == ["Rock", "Pop"]
    assert _txxx(raw)["GENRESORT_PREVIOUS_GENRE"] == "Rock; Pop"


def test_frame_that_v23_cannot_hold_makes_tag_error_rather_than_being_lost(raw_mp3: tuple[Path, bytes]) -> None:
    path, _ = raw_mp3
    _id3_frames(TMCL(encoding=3, people=[["saxophone", "Stan Getz"]])).save(path, v2_version=4)
    with pytest.raises(TagError, match="frames lost: TMCL"):
        write_genre_tags(path, JAZZ, ExistingGenrePolicy.KEEP)


def test_id3v1_trailer_is_kept_byte_for_byte(raw_mp3: tuple[Path, bytes]) -> None:
    path, _ = raw_mp3
    _id3_frames(TIT2(encoding=3, text=["title"]), TCON(encoding=3, text=["Rock"])).save(
        path, v2_version=3, v1=ID3v1SaveOptions.CREATE
    )
    trailer = path.read_bytes()[-128:]
    assert trailer[:3] == b"TAG"

    write_genre_tags(path, JAZZ, ExistingGenrePolicy.OVERWRITE)

    assert path.read_bytes()[-128:] == trailer  # still says Rock (genre byte 17): old players see no change
    assert ID3(path)["TCON"].text == ["Jazz"]


def test_genre_only_in_id3v1_counts_as_existing(raw_mp3: tuple[Path, bytes]) -> None:
    path, _ = raw_mp3
    id3 = _id3_frames(TCON(encoding=0, text=["Rock"]))
    id3.save(path, v1=ID3v1SaveOptions.CREATE)
    ID3(path).delete(path, delete_v1=False, delete_v2=True)  # leave only the ID3v1 tag
    assert path.read_bytes()[:3] != b"ID3"
    assert read_genres(path) == ["Rock"]

    write_genre_tags(path, JAZZ, ExistingGenrePolicy.KEEP)

    id3 = ID3(path, load_v1=False)
    assert "TCON" not in id3  # KEEP: players keep showing Rock from the ID3v1 tag
    assert _txxx(id3)["GENRESORT_PREVIOUS_GENRE"] == "Rock"


def test_numeric_id3v1_style_genre_reads_as_text(raw_mp3: tuple[Path, bytes]) -> None:
    path, _ = raw_mp3
    _id3_frames(TCON(encoding=0, text=["(8)"])).save(path, v2_version=3)
    assert read_genres(path) == ["Jazz"]


def test_verification_failure_raises_tag_error(tagged_mp3: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hashes = iter(["before", "after"])
    monkeypatch.setattr(tags_module, "audio_payload_sha256", lambda path: next(hashes))
    with pytest.raises(TagError, match="audio bytes changed") as error:
        write_genre_tags(tagged_mp3, JAZZ, ExistingGenrePolicy.KEEP)
    assert str(tagged_mp3) in str(error.value)


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(np.random.default_rng(7).bytes(50_000), id="random-bytes"),
        pytest.param(_png(), id="png"),
        pytest.param(b"", id="empty"),
    ],
)
def test_non_audio_named_mp3_raises_tag_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "not music.mp3"
    path.write_bytes(content)
    with pytest.raises(TagError, match="not music.mp3"):
        write_genre_tags(path, JAZZ, ExistingGenrePolicy.KEEP)
    with pytest.raises(TagError):
        read_genres(path)
    assert path.read_bytes() == content


def test_truncated_id3_tag_raises_tag_error(tagged_mp3: Path) -> None:
    tagged_mp3.write_bytes(tagged_mp3.read_bytes()[:200])  # cut inside the tag
    with pytest.raises(TagError, match="song.mp3"):
        write_genre_tags(tagged_mp3, JAZZ, ExistingGenrePolicy.KEEP)


def test_real_gtzan_clip(jazz_clip: Path, tmp_path: Path) -> None:
    path = tmp_path / jazz_clip.name
    shutil.copyfile(jazz_clip, path)
    payload = audio_payload_sha256(path)
    frames_before = set(ID3(path).keys())

    write_genre_tags(path, JAZZ, ExistingGenrePolicy.ADD)

    id3 = ID3(path)
    assert id3.version == (2, 3, 0)
    assert frames_before <= set(id3.keys())
    assert id3["TCON"].text == ["Jazz"]
    assert audio_payload_sha256(path) == payload
    assert sf.info(path).frames == sf.info(jazz_clip).frames


# --- other formats -------------------------------------------------------------------------------


def test_flac_gets_vorbis_comments_and_keeps_everything_else(tmp_path: Path) -> None:
    path = _write_audio(tmp_path / "song.flac", "FLAC")
    pcm = sf.read(path)[0]
    flac = FLAC(path)
    flac["TITLE"] = "title"
    flac["GENRE"] = "Rock"
    picture = Picture()
    picture.type, picture.mime, picture.data = 3, "image/png", _png()
    flac.add_picture(picture)
    flac.save()
    payload = audio_payload_sha256(path)

    write_genre_tags(path, JAZZ, ExistingGenrePolicy.ADD)

    flac = FLAC(path)
    assert flac["GENRE"] == ["Rock", "Jazz"]
    assert flac["TITLE"] == ["title"]
    assert flac["GENRESORT_PREVIOUS_GENRE"] == ["Rock"]
    for name, value in OUR_FIELDS.items():
        assert flac[name] == [value]
    assert flac.pictures[0].data == _png()
    assert audio_payload_sha256(path) == payload
    np.testing.assert_array_equal(sf.read(path)[0], pcm)


def test_flac_payload_hash_ignores_metadata(tmp_path: Path) -> None:
    path = _write_audio(tmp_path / "song.flac", "FLAC")
    payload = audio_payload_sha256(path)
    flac = FLAC(path)
    flac["COMMENT"] = "x" * 100_000  # larger than the padding: the audio frames move
    flac.save()
    assert audio_payload_sha256(path) == payload


def test_ogg_vorbis(tmp_path: Path) -> None:
    path = _write_audio(tmp_path / "song.ogg", "OGG")
    payload = audio_payload_sha256(path)
    write_genre_tags(path, JAZZ, ExistingGenrePolicy.OVERWRITE)
    ogg = OggVorbis(path)
    assert ogg["GENRE"] == ["Jazz"]
    assert ogg["GENRESORT_CONFIDENCE"] == ["0.873"]
    assert audio_payload_sha256(path) == payload


def test_wav_gets_an_id3_chunk(tmp_path: Path) -> None:
    path = _write_audio(tmp_path / "song.wav", "WAV")
    pcm = sf.read(path, dtype="int16")[0]
    write_genre_tags(path, JAZZ, ExistingGenrePolicy.KEEP)
    assert read_genres(path) == ["Jazz"]
    np.testing.assert_array_equal(sf.read(path, dtype="int16")[0], pcm)


def test_genre_tags_reject_values_that_are_not_plain_text() -> None:
    for genre in ("(8)", "8", "", " Jazz", "Jazz; Blues"):
        with pytest.raises(ValueError):
            GenreTags(genre, 0.5, (("Jazz", 0.5),), "m")
    with pytest.raises(ValueError):
        GenreTags("Jazz", 1.5, (("Jazz", 1.0),), "m")
