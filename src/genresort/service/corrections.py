"""Corrections a person makes by hand: a file genresort placed in one genre folder that a person moved into another
(`mv library/Metal/x.mp3 library/Rock/`, or into a deeper folder of the other genre under a path_template) is
noticed by the daemon, kept as a labelled example of its new genre (origin "moved", for `genresort retrain`), and
its journal record follows it, so that `undo` and `assign` still find it. The file is left as the person left it:
never moved, retagged or removed (its tags still say the genre it had, which is what an undo expects to find).

A file moved out of the library, into unsure/ or not-music/, or deleted is no correction: nothing is kept.

The check is one walk of the library's folder names (os.scandir gives each file's inode without a stat), one read of
the placed records, and a stat only of what is new since the last check: the file of a record seen for the first
time (its inode, size and mtime are remembered) and the files no record places where they are, among which a moved
file turns up. Such a file is the record's if it has the inode seen at the record's place with the same size and
mtime, or, for a file moved while the daemon was stopped (or copied with its times and then removed), the size, mtime
and tags genresort wrote (the journal keeps them for an undo; formats it keeps none for are found by inode only).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from structlog.typing import FilteringBoundLogger

from genresort.library.arrival import CannotRebuild, read_written
from genresort.library.journal import ExampleOrigin, FileRecord, Journal
from genresort.library.layout import genre_folder
from genresort.library.lock import MovesLock
from genresort.logs import path_text

#: The journal's outcomes of files placed in a genre folder (a sort, or a person's assignment).
IN_A_GENRE = frozenset({"sorted", "assigned"})


@dataclass(frozen=True)
class Identity:
    """A file as it was last seen: the same inode with the same size and mtime is the same file, untouched."""

    inode: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: str) -> Identity:
        status = os.stat(path, follow_symlinks=False)
        return cls(status.st_ino, status.st_size, status.st_mtime_ns)


@dataclass(frozen=True)
class Correction:
    """A placed file a person moved into another genre folder."""

    record: FileRecord  # as the journal had it: its destination is where genresort placed the file
    destination: Path  # where the person put it
    genre: str
    previous_genre: str


def genre_files(library: Path, left_out: Iterable[Path] = ()) -> dict[str, int]:
    """Every regular file inside the library's genre folders (its path as text: a Path each costs more than the walk
    itself) with its inode, from the folders' names alone (no stat of each file). Left out: files directly in the
    library (in no genre), hidden files and folders (the staging folders among them), links, and the folders in
    `left_out` (unsure, not-music or quarantine kept inside the library). A folder that cannot be read is passed
    over."""
    skipped = {str(folder) for folder in left_out}
    files: dict[str, int] = {}
    folders = [(str(library), 0)]
    while folders:
        folder, depth = folders.pop()
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    if entry.name.startswith("."):
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        if entry.path not in skipped:
                            folders.append((entry.path, depth + 1))
                    elif depth > 0 and entry.is_file(follow_symlinks=False):
                        files[entry.path] = entry.inode()
        except OSError:
            continue
    return files


class CorrectionCheck:
    """Finds the placed files people moved into another genre folder and records each as a correction; run once at
    start and then every rescan_seconds (daemon.py). Remembers, between runs, each placed file as it was last seen
    in its place."""

    def __init__(
        self, journal: Journal, library: Path, left_out: Iterable[Path], moves: MovesLock, log: FilteringBoundLogger
    ) -> None:
        self._journal = journal
        self._library = library
        self._left_out = tuple(left_out)
        self._inside = str(library).rstrip(os.sep) + os.sep  # how the path of a file in the library begins
        self._left_out_inside = tuple(str(folder).rstrip(os.sep) + os.sep for folder in self._left_out)
        self._moves = moves
        self._log = log
        self._seen: dict[int, Identity] = {}  # record id -> its file as last seen where the journal places it
        self._unclaimed: dict[str, Identity] = {}  # the files no record names, as the last check saw them

    def run(self) -> list[Correction]:
        """One check, with the moves lock held (an `assign` or `undo` running beside would otherwise change a record
        under it); none while a move holds it: the next run comes soon enough. The corrections recorded."""
        if not self._moves.try_acquire():
            return []
        try:
            corrections = self.find()
            for correction in corrections:
                self.record(correction)
            return corrections
        finally:
            self._moves.release()

    def find(self) -> list[Correction]:
        """The placed files that are no longer where the journal places them and are found in another genre folder."""
        files = genre_files(self._library, self._left_out)
        records = {}  # the path of each record placed in a genre folder -> the record
        for record in self._journal.placed_records():
            if record.outcome in IN_A_GENRE and record.destination is not None:
                path = str(record.destination)
                if self._in_a_genre_folder(path):
                    records[path] = record
        unclaimed = Unclaimed({path: inode for path, inode in files.items() if path not in records}, self._unclaimed)
        gone = []
        seen = {}
        for path, record in records.items():
            inode = files.get(path)
            if inode is None:
                gone.append(record)
                if record.id in self._seen:
                    seen[record.id] = self._seen[record.id]
                continue
            known = self._seen.get(record.id)
            if known is None or known.inode != inode:
                try:
                    known = Identity.of(path)
                except OSError:  # gone since the walk: looked for at the next check
                    continue
            seen[record.id] = known
        self._seen = seen  # records given back or no longer placed are forgotten
        corrections = []
        for record in gone if unclaimed else []:
            found = self._moved_to(record, unclaimed)
            if found is None:
                continue
            unclaimed.discard(found)
            if (identity := unclaimed.identity(found)) is not None:
                self._seen[record.id] = identity  # next time found by its inode, without reading its tags
            destination = Path(found)
            genre = genre_folder(destination, self._library)
            previous = genre_folder(record.destination, self._library)
            if genre != previous:  # moved within its genre (renamed, or into an album folder): no correction
                corrections.append(Correction(record, destination, genre, previous))
        self._unclaimed = unclaimed.identities
        return corrections

    def record(self, correction: Correction) -> None:
        """The record follows the file, the example is kept, and the log says so."""
        record, destination = correction.record, correction.destination
        self._journal.relocate(record.id, destination)
        self._journal.keep_example(record.sha256, destination, correction.genre, ExampleOrigin.MOVED)
        self._log.info(
            "file.corrected",
            source=path_text(record.destination),
            destination=path_text(destination),
            sha256=record.sha256,
            genre=correction.genre,
            previous_genre=correction.previous_genre,
            tags=f"still say {correction.previous_genre}: a file a person moved is left as it is, never retagged",
        )

    def _in_a_genre_folder(self, path: str) -> bool:
        """Below a folder of the library (not directly in it), and not in a folder left out."""
        return (
            path.startswith(self._inside)
            and os.sep in path[len(self._inside) :]
            and not path.startswith(self._left_out_inside)
        )

    def _moved_to(self, record: FileRecord, unclaimed: Unclaimed) -> str | None:
        """Where the file of a record that is gone from its place went, if into a genre folder: the file with the
        inode, size and mtime it had there, else the one with the size, mtime and tags genresort wrote."""
        known = self._seen.get(record.id)
        if known is not None:
            for path in unclaimed.with_inode(known.inode):
                if unclaimed.identity(path) == known:
                    return path
        kept = self._journal.arrival(record.id)
        if kept is None:
            return None
        written = kept[1]
        for path in unclaimed.with_size_and_mtime(written.size, written.mtime_ns):
            try:
                if read_written(Path(path)) == written:
                    return path
            except (CannotRebuild, OSError):
                continue
        return None


class Unclaimed:
    """The files in genre folders that no placed record names, where a moved file turns up. Each is stat'ed only
    when a gone record is looked for among them, and once for as long as it keeps its name and inode (`earlier`:
    what the last check learnt)."""

    def __init__(self, inodes: dict[str, int], earlier: dict[str, Identity]) -> None:
        self._inodes = inodes
        self._by_inode: dict[int, list[str]] = defaultdict(list)
        for path, inode in inodes.items():
            self._by_inode[inode].append(path)
        self.identities = {path: known for path, known in earlier.items() if inodes.get(path) == known.inode}
        self._by_size_and_mtime: dict[tuple[int, int], list[str]] | None = None

    def __bool__(self) -> bool:
        return bool(self._inodes)

    def discard(self, path: str) -> None:
        self._inodes.pop(path, None)

    def identity(self, path: str) -> Identity | None:
        if path not in self.identities:
            try:
                self.identities[path] = Identity.of(path)
            except OSError:
                return None
        return self.identities[path]

    def with_inode(self, inode: int) -> list[str]:
        return [path for path in self._by_inode.get(inode, []) if path in self._inodes]

    def with_size_and_mtime(self, size: int, mtime_ns: int) -> list[str]:
        if self._by_size_and_mtime is None:
            self._by_size_and_mtime = defaultdict(list)
            for path in list(self._inodes):
                if (identity := self.identity(path)) is not None:
                    self._by_size_and_mtime[identity.size, identity.mtime_ns].append(path)
        return [path for path in self._by_size_and_mtime.get((size, mtime_ns), []) if path in self._inodes]
