"""Durable placement: staging, collisions, duplicates, quarantine, and what a crash or a full disk leaves."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import small_tmpfs
from genresort.digest import sha256_file
from genresort.library.placement import (
    DuplicateFile,
    discard_staged,
    place_file,
    release_original,
    stage_copy,
    staging_folder,
    write_reason,
)


@pytest.fixture
def library(tmp_path: Path) -> Path:
    folder = tmp_path / "library"
    folder.mkdir()
    return folder


def _song(folder: Path, name: str = "song.mp3", content: bytes = b"the music " * 1000) -> Path:
    path = folder / name
    path.write_bytes(content)
    os.utime(path, ns=(1_600_000_000_000_000_000, 1_600_000_000_123_456_789))
    return path


def _stage(song: Path, root: Path) -> Path:
    """A staged copy of `song` in `root`'s staging folder, as the pipeline makes one."""
    with open(song, "rb") as stream:
        return stage_copy(stream, staging_folder(root, "test"), song.suffix).path


def _visible(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def test_sha256_file_matches_hashlib(inbox: Path) -> None:
    song = _song(inbox)
    assert sha256_file(song) == hashlib.sha256(song.read_bytes()).hexdigest()


def test_stage_copy_is_hidden_complete_and_leaves_the_source_alone(inbox: Path, library: Path) -> None:
    song = _song(inbox)
    before = song.stat()

    staged = _stage(song, library)

    assert staged.parent == staging_folder(library, "test")
    assert staged.name.startswith(".") and staged.suffix == ".mp3"
    assert staged.read_bytes() == song.read_bytes()
    assert staged.stat().st_mtime_ns == before.st_mtime_ns
    after = song.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)
    assert _visible(library) == []


def test_place_file_links_into_new_folders_and_keeps_the_staged_copy_for_the_caller(inbox: Path, library: Path) -> None:
    song = _song(inbox)
    staged = _stage(song, library)

    placed = place_file(staged, library / "Jazz" / "Sub", "song.mp3")

    assert placed == library / "Jazz" / "Sub" / "song.mp3"
    assert placed.read_bytes() == song.read_bytes()
    assert placed.stat().st_nlink == 2 and placed.stat().st_ino == staged.stat().st_ino
    discard_staged(staged)
    assert placed.stat().st_nlink == 1
    assert song.exists()  # releasing the original is a separate, later step


def test_collisions_get_numbered_names_and_existing_files_are_never_touched(inbox: Path, library: Path) -> None:
    genre = library / "Jazz"
    genre.mkdir()
    existing = _song(genre, content=b"another song")
    existing_inode = existing.stat().st_ino

    first = place_file(_stage(_song(inbox, content=b"one"), library), genre, "song.mp3")
    second = place_file(_stage(_song(inbox, content=b"two"), library), genre, "song.mp3")

    assert (first.name, second.name) == ("song (2).mp3", "song (3).mp3")
    assert (first.read_bytes(), second.read_bytes()) == (b"one", b"two")
    assert existing.read_bytes() == b"another song" and existing.stat().st_ino == existing_inode


def test_identical_content_raises_duplicate_and_leaves_the_existing_file(inbox: Path, library: Path) -> None:
    genre = library / "Jazz"
    genre.mkdir()
    existing = _song(genre)
    existing_stat = existing.stat()
    staged = _stage(_song(inbox), library)

    with pytest.raises(DuplicateFile) as raised:
        place_file(staged, genre, "song.mp3")

    assert raised.value.existing == existing
    assert staged.stat().st_nlink == 1  # left for the caller to discard
    assert _visible(genre) == ["song.mp3"]
    after = existing.stat()
    assert (after.st_ino, after.st_mtime_ns, after.st_nlink) == (existing_stat.st_ino, existing_stat.st_mtime_ns, 1)


def test_duplicate_is_found_under_a_numbered_name_too(inbox: Path, library: Path) -> None:
    genre = library / "Jazz"
    genre.mkdir()
    _song(genre, content=b"other")
    numbered = _song(genre, "song (2).mp3")
    with pytest.raises(DuplicateFile) as raised:
        place_file(_stage(_song(inbox), library), genre, "song.mp3")
    assert raised.value.existing == numbered


def test_a_symlink_to_identical_content_is_not_a_duplicate(inbox: Path, library: Path, tmp_path: Path) -> None:
    target = _song(tmp_path / "inbox", "elsewhere.mp3")
    genre = library / "Jazz"
    genre.mkdir()
    (genre / "song.mp3").symlink_to(target)
    placed = place_file(_stage(_song(inbox), library), genre, "song.mp3")
    assert placed.name == "song (2).mp3"


@pytest.mark.parametrize(
    ("name", "expected"),
    [("a/b\0c.mp3", "a_b_c.mp3"), ("..", "_"), (".", "_"), ("", "_"), ("Café ☕.flac", "Café ☕.flac")],
)
def test_names_are_sanitised(inbox: Path, library: Path, name: str, expected: str) -> None:
    placed = place_file(_stage(_song(inbox), library), library / "Jazz", name)
    assert placed.name == expected


def test_long_names_are_trimmed_to_255_bytes_keeping_the_extension(inbox: Path, library: Path) -> None:
    name = "é" * 200 + ".mp3"  # 404 bytes in UTF-8
    first = place_file(_stage(_song(inbox, content=b"1"), library), library / "Jazz", name)
    second = place_file(_stage(_song(inbox, content=b"2"), library), library / "Jazz", name)
    for placed in (first, second):
        assert len(os.fsencode(placed.name)) <= 255
    assert first.name.endswith("é.mp3") and second.name.endswith("é (2).mp3")


def test_release_original_removes_it_and_tolerates_a_missing_file(inbox: Path) -> None:
    song = _song(inbox)
    release_original(song)
    assert not song.exists()
    release_original(song)


def test_write_reason_writes_pretty_json_and_no_temporary_file(library: Path) -> None:
    path = library / "song.mp3"
    reason_file = write_reason(path, {"error": "cannot decode", "attempts": 3, "where": path})
    assert reason_file == library / "song.mp3.reason.json"
    assert json.loads(reason_file.read_text()) == {"error": "cannot decode", "attempts": 3, "where": str(path)}
    assert "\n  " in reason_file.read_text()
    assert os.listdir(library) == ["song.mp3.reason.json"]


def test_keep_duplicates_places_identical_content_under_a_numbered_name(inbox: Path, tmp_path: Path) -> None:
    quarantine = tmp_path / "quarantine"
    content = b"broken music"

    placed = place_file(_stage(_song(inbox, content=content), quarantine), quarantine, "song.mp3", keep_duplicates=True)
    again = place_file(_stage(_song(inbox, content=content), quarantine), quarantine, "song.mp3", keep_duplicates=True)

    assert (placed.name, again.name) == ("song.mp3", "song (2).mp3")
    assert placed.read_bytes() == again.read_bytes() == content


def test_keep_duplicates_leaves_room_for_the_reason_suffix_in_long_names(inbox: Path, tmp_path: Path) -> None:
    quarantine = tmp_path / "quarantine"
    song = _song(inbox, "x" * 250 + ".mp3")
    placed = place_file(_stage(song, quarantine), quarantine, song.name, keep_duplicates=True)
    assert write_reason(placed, {"error": "e"}).is_file()


def test_destination_that_cannot_be_a_folder_raises_and_keeps_the_staged_copy(inbox: Path, library: Path) -> None:
    (library / "Jazz").write_bytes(b"a regular file where a folder should be")
    song = _song(inbox)
    staged = _stage(song, library)

    with pytest.raises(NotADirectoryError):
        place_file(staged, library / "Jazz" / "Sub", "song.mp3")

    assert staged.read_bytes() == song.read_bytes()
    discard_staged(staged)
    discard_staged(staged)  # already gone is fine
    assert not staged.exists() and song.exists()


def test_read_only_destination_raises_permission_error(unprivileged_user, user_folder: Path) -> None:
    """As an unprivileged user in folders of its own: root ignores permission bits."""

    def as_the_user() -> None:
        inbox, library = user_folder / "inbox", user_folder / "library"
        inbox.mkdir()
        genre = library / "Jazz"
        genre.mkdir(parents=True)
        staged = _stage(_song(inbox), library)
        genre.chmod(0o555)
        with pytest.raises(PermissionError):
            place_file(staged, genre, "song.mp3")
        assert staged.exists()

    unprivileged_user.call(as_the_user)


@pytest.fixture
def tiny_filesystem(tmp_path: Path):
    """A 64 KiB tmpfs, to run out of space for real."""
    with small_tmpfs(tmp_path / "tiny", "64k") as mountpoint:
        yield mountpoint


def test_full_disk_raises_enospc_and_leaves_no_partial_copy(inbox: Path, tiny_filesystem: Path) -> None:
    song = _song(inbox, content=os.urandom(256 * 1024))
    content = song.read_bytes()

    with pytest.raises(OSError) as raised:
        _stage(song, tiny_filesystem)

    assert raised.value.errno == errno.ENOSPC
    assert os.listdir(staging_folder(tiny_filesystem, "test")) == []
    assert song.read_bytes() == content


_CRASHING_SORT = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from genresort.library import placement

    song, library, kill_at = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    calls = 0
    real_fsync = os.fsync

    def fsync_then_maybe_die(fd):
        global calls
        real_fsync(fd)
        calls += 1
        if calls == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    placement.os.fsync = fsync_then_maybe_die
    with open(song, "rb") as stream:
        staged = placement.stage_copy(stream, placement.staging_folder(library, "test"), ".mp3").path
    placement.place_file(staged, library / "Jazz", song.name)
    placement.discard_staged(staged)
    placement.release_original(song)
    """
)


def test_sigkill_at_any_step_loses_nothing(tmp_path: Path) -> None:
    """Kill the process right after each fsync of a stage/place/release run; nothing may be lost or partial."""
    content = os.urandom(300_000)
    for kill_at in range(1, 20):
        inbox, library = tmp_path / f"inbox{kill_at}", tmp_path / f"library{kill_at}"
        inbox.mkdir()
        library.mkdir()
        song = inbox / "song.mp3"
        song.write_bytes(content)

        run = subprocess.run([sys.executable, "-c", _CRASHING_SORT, str(song), str(library), str(kill_at)])

        placed = library / "Jazz" / "song.mp3"
        assert song.exists() or placed.exists()
        for path in (song, placed):
            if path.exists():
                assert path.read_bytes() == content
        if (library / "Jazz").exists():
            assert _visible(library / "Jazz") in ([], ["song.mp3"])
        if run.returncode == 0:  # ran past the last fsync: every step was covered
            assert placed.exists() and not song.exists()
            break
        assert run.returncode == -signal.SIGKILL
    else:
        pytest.fail("the sort never completed")
