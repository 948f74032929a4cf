"""Durable placement of music files: nothing is ever overwritten, and no crash loses a file.

The order of steps is Maildir's and Syncthing's: copy to a hidden staging name on the destination's
file system and fsync it; hard-link it under its final name (a link never replaces an existing file,
unlike rename); fsync the folder; only then release the inbox original. A SIGKILL at any point
leaves the original in the inbox or a complete file under its final name (often both, which a
retry resolves as a duplicate); partial data only ever exists under staging names.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from genresort.digest import sha256_file

STAGING_DIR = ".genresort-staging"
REASON_SUFFIX = ".reason.json"
NAME_MAX = 255  # bytes per file name on ext4, XFS, Btrfs, tmpfs
_MAX_NUMBER = 10_000  # "song (10000).mp3" - beyond that something is wrong, not merely crowded
_CHUNK = 1 << 20


class DuplicateFile(Exception):
    """A file with the same content (sha256) already sits at the name we wanted; nothing was placed."""

    def __init__(self, existing: Path) -> None:
        super().__init__(f"an identical file is already at {existing}")
        self.existing = existing


@dataclass(frozen=True)
class StagedCopy:
    path: Path
    sha256: str  # of the bytes copied, computed while copying: the file is read once
    size: int


def staging_folder(root: Path, instance: str) -> Path:
    """This instance's hidden staging folder under `root`: recovery clears only its own, never another's."""
    return root / STAGING_DIR / instance


def stage_copy(source: BinaryIO, staging: Path, suffix: str = "") -> StagedCopy:
    """Copy the open `source` from its start into a new hidden file in `staging`, durably, hashing as it goes.

    Staging on the destination's file system is what makes the later link into place atomic. Working from an
    open file (not a path) means the bytes copied are those of the file that was checked, even if its name is
    swapped meanwhile. The copy keeps atime/mtime but not the permission bits: it must stay writable for tagging,
    and the library should get the daemon's umask. A failed copy (ENOSPC, I/O error) is removed before the error
    propagates.
    """
    _make_dirs(staging)
    return copy_to_staged(source, staging_name(staging, suffix))


def staging_name(staging: Path, suffix: str = "") -> Path:
    """A new hidden name in `staging`, keeping the file's suffix (a tag library may go by it) if it is short."""
    suffix = suffix if len(os.fsencode(suffix)) <= 32 else ""
    return staging / f".{uuid.uuid4().hex}{suffix}"


def copy_to_staged(source: BinaryIO, staged: Path) -> StagedCopy:
    """stage_copy into a name chosen beforehand (one a journal may already hold): it must not exist yet."""
    digest = hashlib.sha256()
    size = 0
    try:
        with open(staged, "xb") as copy:
            source.seek(0)
            while chunk := source.read(_CHUNK):
                digest.update(chunk)
                copy.write(chunk)
                size += len(chunk)
            copy.flush()
            times = os.fstat(source.fileno())
            os.utime(copy.fileno(), ns=(times.st_atime_ns, times.st_mtime_ns))
            os.fsync(copy.fileno())
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    fsync_folder(staged.parent)
    return StagedCopy(staged, digest.hexdigest(), size)


def restage(staged: Path, root: Path, instance: str) -> Path:
    """The staged copy, moved to `root`'s staging folder: renamed where `root` is on the same file system,
    copied (and the first copy dropped) where it is not, since a hard link cannot cross file systems."""
    staging = staging_folder(root, instance)
    _make_dirs(staging)
    target = staging / staged.name
    try:
        os.rename(staged, target)
    except OSError as error:
        if error.errno != errno.EXDEV:
            raise
        with open(staged, "rb") as source:
            target = stage_copy(source, staging, staged.suffix).path
        discard_staged(staged)
        return target
    fsync_folder(staging)
    return target


def place_file(staged: Path, destination_dir: Path, name: str, *, keep_duplicates: bool = False) -> Path:
    """Link `staged` into `destination_dir` as `name` (or "stem (2).ext", ...) and return the final path.

    Never overwrites: an existing name with other content makes us try the next number; an existing
    name with identical content means the file is already there: DuplicateFile(existing) is raised,
    unless `keep_duplicates` (the quarantine, which must never drop anything, and keeps room in the
    name for a `.reason.json` sidecar). `staged` must be on the same file system (see stage_copy) and
    is left in place: the caller records the placement in its journal first, then discards it, so a
    crash in between can be told apart by the staged copy's link count.
    """
    reserve = len(REASON_SUFFIX) if keep_duplicates else 0
    fsync_file(staged)  # it may have been tagged since stage_copy fsynced it
    _make_dirs(destination_dir)
    stem, ext = _split_name(_sanitise(name))
    for number in range(1, _MAX_NUMBER + 1):
        target = destination_dir / _numbered(stem, ext, number, NAME_MAX - reserve)
        try:
            os.link(staged, target)
        except FileExistsError:
            if not keep_duplicates and _same_content(staged, target):
                raise DuplicateFile(target) from None
            continue
        fsync_folder(destination_dir)
        return target
    raise FileExistsError(errno.EEXIST, f"no free name for {name!r} after {_MAX_NUMBER} tries", str(destination_dir))


def release_original(path: Path) -> None:
    """Remove the inbox original once its placed copy is durable; already gone is fine.

    The folder is fsynced so that after a crash the journal and the disk agree it is gone.
    """
    path.unlink(missing_ok=True)
    fsync_folder(path.parent)


def write_reason(path: Path, reason: dict) -> Path:
    """Write `reason` as pretty JSON to `<path>.reason.json`, atomically (never a half-written file)."""
    target = path.with_name(path.name + REASON_SUFFIX)
    write_text_whole(target, json.dumps(reason, indent=2, ensure_ascii=False, default=str) + "\n")
    fsync_folder(target.parent)
    return target


def write_text_whole(path: Path, text: str) -> None:
    """Write the file whole or not at all: a temporary file, fsynced, renamed over it. backslashreplace: a name that
    is not UTF-8 (its bytes decoded to lone surrogates) is written as \\udcff escapes rather than failing the write
    (and with it, say, the whole quarantine)."""
    temporary = path.with_name(f".{uuid.uuid4().hex}.tmp")  # short: path.name may be 255 bytes
    try:
        with open(temporary, "x", encoding="utf-8", errors="backslashreplace") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def discard_staged(staged: Path) -> None:
    """Remove a staged copy after a failure; already gone is fine.

    No fsync: a copy that reappears after a crash is only garbage under a hidden staging name.
    """
    staged.unlink(missing_ok=True)


def _sanitise(name: str) -> str:
    name = name.replace("/", "_").replace("\0", "_")
    return "_" if name in ("", ".", "..") else name


def _split_name(name: str) -> tuple[str, str]:
    stem, ext = os.path.splitext(name)
    return (stem, ext) if len(os.fsencode(ext)) <= 32 else (name, "")


def _numbered(stem: str, ext: str, number: int, limit: int) -> str:
    """ "stem.ext", "stem (2).ext", ... shortened from the end of the stem to fit `limit` bytes."""
    tail = (f" ({number})" if number > 1 else "") + ext
    while len(os.fsencode(stem + tail)) > limit:
        stem = stem[:-1]
    return stem + tail


def _same_content(staged: Path, existing: Path) -> bool:
    """Only a regular file counts: a symlink or folder under the name must not absorb our file."""
    try:
        info = os.lstat(existing)
    except FileNotFoundError:  # removed since the link failed; the next name will do
        return False
    return (
        stat.S_ISREG(info.st_mode)
        and info.st_size == staged.stat().st_size
        and sha256_file(existing) == sha256_file(staged)
    )


def _make_dirs(path: Path) -> None:
    """mkdir -p that fsyncs each new folder's parent, so a new genre folder survives a crash too."""
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        try:
            folder.mkdir()
        except FileExistsError:  # created meanwhile by another worker
            pass
        fsync_folder(folder.parent)


def fsync_file(path: Path) -> None:
    """fsync a file, never through a link, never blocking on a FIFO swapped in."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)  # a FIFO swapped in must not block us
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_folder(path: Path) -> None:
    """fsync a folder's entries (a new or removed name is durable once this returns)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
