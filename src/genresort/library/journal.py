"""Per-file state machine in SQLite, so that a crash at any step can be resumed without loss or repetition.

Every step is committed (WAL, ``synchronous=FULL``) before the pipeline acts on it, so after a crash
the journal says exactly how far each file got. Paths are stored as the bytes the file system uses,
because music file names are not always valid UTF-8.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import TracebackType

from genresort.library.arrival import Arrival, Written

SCHEMA_VERSION = 2
#: Journals this genresort opens: version 1 lacks only the arrivals table, which opening creates. The examples table
#: came later without a new version: opening creates it too, and an older genresort reads such a journal unharmed
#: (it never looks at the table).
READABLE_VERSIONS = frozenset({1, SCHEMA_VERSION})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source BLOB NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    step TEXT NOT NULL,
    staged_path BLOB,
    destination BLOB,
    outcome TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS files_by_source_and_sha256 ON files (source, sha256);
CREATE INDEX IF NOT EXISTS files_by_sha256 ON files (sha256);
CREATE TABLE IF NOT EXISTS moves (
    record_id INTEGER PRIMARY KEY REFERENCES files (id),
    folder BLOB NOT NULL,
    outcome TEXT NOT NULL,
    previous BLOB NOT NULL,
    moved_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS arrivals (
    record_id INTEGER PRIMARY KEY REFERENCES files (id),
    head BLOB NOT NULL,
    tail BLOB NOT NULL,
    written_size INTEGER NOT NULL,
    written_mtime_ns INTEGER NOT NULL,
    written_tags_sha256 TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS examples (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sha256 TEXT NOT NULL UNIQUE,
    path BLOB NOT NULL,
    genre TEXT NOT NULL,
    origin TEXT NOT NULL,
    noted_at REAL NOT NULL
);
"""


class Step(StrEnum):
    CLAIMED = "claimed"
    STAGED = "staged"
    PLACING = "placing"
    PLACED = "placed"
    DONE = "done"
    QUARANTINED = "quarantined"
    DUPLICATE = "duplicate"
    ORIGINAL_KEPT = "original-kept"  # placed or set aside, but the inbox original could not be removed
    MOVING = "moving"  # being moved by a person's command: given back (`undo`) or to another genre (`assign`)
    UNDONE = "undone"  # given back: its original is in the inbox (or the folder undo was given)


FINAL_STEPS = frozenset({Step.DONE, Step.QUARANTINED, Step.DUPLICATE, Step.ORIGINAL_KEPT, Step.UNDONE})

# Going back to STAGED lets recovery re-stage a copy that was lost before it was linked.
# Once PLACED, the file is in the library: the only way on is removing the inbox original.
ALLOWED_TRANSITIONS: dict[Step, frozenset[Step]] = {
    Step.CLAIMED: frozenset({Step.STAGED, Step.QUARANTINED, Step.DUPLICATE}),
    Step.STAGED: frozenset({Step.STAGED, Step.PLACING, Step.QUARANTINED, Step.DUPLICATE}),
    Step.PLACING: frozenset({Step.STAGED, Step.PLACED, Step.QUARANTINED, Step.DUPLICATE, Step.ORIGINAL_KEPT}),
    Step.PLACED: frozenset({Step.DONE, Step.ORIGINAL_KEPT}),
    # A move that stopped before its copy was placed goes back to DONE: the file is still where it was; an
    # assignment ends DONE too, in its new folder.
    Step.DONE: frozenset({Step.MOVING}),
    Step.MOVING: frozenset({Step.UNDONE, Step.DONE}),
    Step.UNDONE: frozenset(),
    Step.QUARANTINED: frozenset(),
    Step.DUPLICATE: frozenset(),
    Step.ORIGINAL_KEPT: frozenset(),
}

_STEPS_NEEDING_DESTINATION = frozenset({Step.PLACING, Step.PLACED, Step.QUARANTINED, Step.DUPLICATE})


@dataclass(frozen=True)
class FileRecord:
    id: int
    source: Path
    sha256: str
    size: int
    mtime_ns: int
    step: Step
    staged_path: Path | None
    destination: Path | None
    outcome: str | None
    attempts: int
    last_error: str | None
    updated_at: float

    @property
    def finished(self) -> bool:
        return self.step in FINAL_STEPS


def _encode_path(path: Path | None) -> bytes | None:
    return None if path is None else os.fsencode(path)


def _decode_path(value: bytes | None) -> Path | None:
    return None if value is None else Path(os.fsdecode(value))


def _record_from_row(row: sqlite3.Row) -> FileRecord:
    return FileRecord(
        id=row["id"],
        source=Path(os.fsdecode(row["source"])),
        sha256=row["sha256"],
        size=row["size"],
        mtime_ns=row["mtime_ns"],
        step=Step(row["step"]),
        staged_path=_decode_path(row["staged_path"]),
        destination=_decode_path(row["destination"]),
        outcome=row["outcome"],
        attempts=row["attempts"],
        last_error=row["last_error"],
        updated_at=row["updated_at"],
    )


def _example_from_row(row: sqlite3.Row) -> Example:
    return Example(
        id=row["id"],
        sha256=row["sha256"],
        path=Path(os.fsdecode(row["path"])),
        genre=row["genre"],
        origin=ExampleOrigin(row["origin"]),
        noted_at=row["noted_at"],
    )


_FINAL_STEPS_SQL = ", ".join(f"'{step.value}'" for step in sorted(FINAL_STEPS))


@dataclass(frozen=True)
class HistoryEntry:
    """A finished record, for the sorting report; if the last move a person's command began on it was an
    assignment, where the file was before it (the label it had)."""

    record: FileRecord
    assigned_from: Path | None


class ExampleOrigin(StrEnum):
    """How a person told genresort a file's genre."""

    ASSIGN = "assign"  # `genresort assign`
    REVIEW_PAGE = "review-page"  # a genre button of the review page
    MOVED = "moved"  # the person moved the file from one genre folder to another, and the daemon noticed


@dataclass(frozen=True)
class Example:
    """A file a person gave a genre: a labelled example `genresort retrain` learns from. `sha256` is the content the
    decision was about (as it arrived), `path` where the file was then."""

    id: int
    sha256: str
    path: Path
    genre: str
    origin: ExampleOrigin
    noted_at: float


class JournalError(RuntimeError):
    """The journal cannot be used; the message names the file and says what to do."""


class JournalDamaged(JournalError):
    """The journal file is not an intact SQLite database; see move_aside."""


def _unusable(path: Path, error: sqlite3.Error) -> JournalError:
    """The error people can act on, from SQLite's result code."""
    code = error.sqlite_errorname or ""
    if code.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return JournalDamaged(f"the journal {path} is damaged: {error}")
    if code.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_AUTH")):
        return JournalError(
            f"the journal {path} cannot be written ({error}): let the user genresort runs as write to it and to its"
            f" folder (e.g. chown -R genresort: {path.parent} and chmod -R u+rwX {path.parent}; chattr -i {path} if it"
            " is immutable) and check that this file system is mounted read-write"
        )
    return JournalError(f"the journal {path} cannot be used ({error}): check the disk and the state folder")


def move_aside(path: Path) -> Path:
    """Rename a damaged journal and its -wal and -shm to ``<name>.damaged-<UTC time>`` (kept for a person to
    inspect or delete), so that a fresh journal can start at `path`; returns the new name.

    The database goes first: a crash between the renames leaves a -wal beside no database, which SQLite discards
    when it creates the fresh one, never a damaged database opened without its -wal. No fsync: if a crash undoes
    the renames, the next start finds the same damage and moves it aside again.
    """
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside = path.with_name(f"{path.name}.damaged-{stamp}")
    number = 1
    while aside.exists():
        number += 1
        aside = path.with_name(f"{path.name}.damaged-{stamp}-{number}")
    for suffix in ("", "-wal", "-shm"):
        try:
            os.rename(f"{path}{suffix}", f"{aside}{suffix}")
        except FileNotFoundError:
            pass
    return aside


class Journal:
    """The durable record of every file the daemon has touched; shared by the worker threads."""

    def __init__(self, path: Path) -> None:
        """Open or create the journal, proven intact and writable: otherwise JournalDamaged, or JournalError saying
        what to do, at start rather than on the first file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        try:
            # isolation_level=None: no implicit transactions; every commit point is an explicit COMMIT below.
            self._connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as error:
            raise _unusable(path, error) from error
        try:
            self._configure()
            self._check_intact()
            self._create_schema()
        except sqlite3.Error as error:
            self._connection.close()
            raise _unusable(path, error) from error
        except BaseException:
            self._connection.close()
            raise

    def _configure(self) -> None:
        self._connection.row_factory = sqlite3.Row
        self._connection.execute("PRAGMA busy_timeout = 10000")
        mode = self._connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise JournalError(
                f"{self.path}: SQLite refused WAL mode (got {mode!r}); put the state folder on a local disk"
            )
        self._connection.execute("PRAGMA synchronous = FULL")

    def _check_intact(self) -> None:
        """Read every page once (PRAGMA quick_check: 3 ms warm, 80 ms cold for 10,000 files), so that a damaged page
        is found at start, where a fresh journal can replace it, not midway through a file's steps."""
        findings = [row[0] for row in self._connection.execute("PRAGMA quick_check")]
        if findings != ["ok"]:
            raise JournalDamaged(f"the journal {self.path} is damaged: {' '.join(findings[0].split())}")

    def _create_schema(self) -> None:
        with self._transaction() as connection:
            # One statement at a time: executescript() would commit the open transaction first.
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    connection.execute(statement)
            row = connection.execute("SELECT version FROM schema_version").fetchone()
            if row is not None and row["version"] not in READABLE_VERSIONS:
                raise JournalError(
                    f"{self.path}: journal schema version {row['version']}, this genresort understands {SCHEMA_VERSION}"
                )
            # Rewritten at every start: a real write, committed with an fsync (an UPDATE to the same value writes
            # nothing), so a read-only file, folder or file system, or a failing disk, is refused before READY.
            connection.execute("DELETE FROM schema_version")
            connection.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """Serialise threads and write-lock the database up front, so read-then-write steps are atomic."""
        with self._lock:
            self._connection.execute("BEGIN IMMEDIATE")
            try:
                yield self._connection
            except BaseException:
                self._connection.execute("ROLLBACK")
                raise
            self._connection.execute("COMMIT")

    def _select(self, query: str, parameters: tuple[object, ...]) -> list[sqlite3.Row]:
        """Read outside a transaction: one statement always sees a consistent snapshot."""
        with self._lock:
            return self._connection.execute(query, parameters).fetchall()

    def _get(self, connection: sqlite3.Connection, record_id: int) -> FileRecord:
        row = connection.execute("SELECT * FROM files WHERE id = ?", (record_id,)).fetchone()
        if row is None:
            raise KeyError(f"no journal record with id {record_id}")
        return _record_from_row(row)

    def claim(self, source: Path, sha256: str, size: int, mtime_ns: int) -> FileRecord:
        """Start work on a file, or resume the unfinished record a crash left behind for the same content."""
        with self._transaction() as connection:
            row = connection.execute(
                f"SELECT * FROM files WHERE source = ? AND sha256 = ? AND step NOT IN ({_FINAL_STEPS_SQL})"
                " ORDER BY id DESC LIMIT 1",
                (os.fsencode(source), sha256),
            ).fetchone()
            if row is not None:
                return _record_from_row(row)
            cursor = connection.execute(
                "INSERT INTO files (source, sha256, size, mtime_ns, step, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                (os.fsencode(source), sha256, size, mtime_ns, Step.CLAIMED.value, time.time()),
            )
            return self._get(connection, cursor.lastrowid)

    def advance(
        self,
        record_id: int,
        step: Step,
        *,
        staged_path: Path | None = None,
        destination: Path | None = None,
        outcome: str | None = None,
    ) -> FileRecord:
        """Record that a step has been reached; durable on return, so the caller may act on it.

        Arguments left as None keep their stored value. STAGED needs a staged_path; PLACING, PLACED,
        QUARANTINED and DUPLICATE need a destination (given now or earlier).
        """
        with self._transaction() as connection:
            current = self._get(connection, record_id)
            if step not in ALLOWED_TRANSITIONS[current.step]:
                raise ValueError(f"journal record {record_id}: {current.step} -> {step} is not allowed")
            if step is Step.STAGED and staged_path is None:
                raise ValueError(f"journal record {record_id}: {step} needs a staged_path")
            if step in _STEPS_NEEDING_DESTINATION and destination is None and current.destination is None:
                raise ValueError(f"journal record {record_id}: {step} needs a destination")
            connection.execute(
                "UPDATE files SET step = ?, staged_path = COALESCE(?, staged_path),"
                " destination = COALESCE(?, destination), outcome = COALESCE(?, outcome), updated_at = ?"
                " WHERE id = ?",
                (step.value, _encode_path(staged_path), _encode_path(destination), outcome, time.time(), record_id),
            )
            return self._get(connection, record_id)

    def relocate(self, record_id: int, destination: Path) -> FileRecord:
        """A placed file's record follows the file to where a person moved it by hand, in one transaction: its step,
        outcome and time of last change stay (sorting did nothing); ValueError for a record not finished."""
        with self._transaction() as connection:
            current = self._get(connection, record_id)
            if current.step is not Step.DONE:
                raise ValueError(f"journal record {record_id}: only a placed file is followed (it is {current.step})")
            connection.execute("UPDATE files SET destination = ? WHERE id = ?", (_encode_path(destination), record_id))
            return self._get(connection, record_id)

    def record_failure(self, record_id: int, error: str, *, count_attempt: bool = True) -> FileRecord:
        """Keep the reason a file failed or is set aside; an analysis that timed out or crashed is counted, so the
        pipeline can give up on it (a transient error, such as a full disk, is not the file's fault: not counted)."""
        with self._transaction() as connection:
            current = self._get(connection, record_id)
            if current.finished:
                raise ValueError(f"journal record {record_id} is already {current.step}")
            connection.execute(
                "UPDATE files SET attempts = attempts + ?, last_error = ?, updated_at = ? WHERE id = ?",
                (int(count_attempt), error, time.time(), record_id),
            )
            return self._get(connection, record_id)

    def keep_arrival(self, record_id: int, arrival: Arrival, written: Written) -> None:
        """Keep what an undo needs to give the file back as it arrived; a later try of the same record replaces it."""
        with self._transaction() as connection:
            connection.execute(
                "INSERT OR REPLACE INTO arrivals (record_id, head, tail, written_size, written_mtime_ns,"
                " written_tags_sha256) VALUES (?, ?, ?, ?, ?, ?)",
                (record_id, arrival.head, arrival.tail, written.size, written.mtime_ns, written.tags_sha256),
            )

    def arrival(self, record_id: int) -> tuple[Arrival, Written] | None:
        """What was kept of a record's file as it arrived, and as genresort wrote it; None if nothing was."""
        rows = self._select("SELECT * FROM arrivals WHERE record_id = ?", (record_id,))
        if not rows:
            return None
        row = rows[0]
        written = Written(row["written_size"], row["written_mtime_ns"], row["written_tags_sha256"])
        return Arrival(bytes(row["head"]), bytes(row["tail"])), written

    def begin_move(self, record_id: int, staged_path: Path, folder: Path, outcome: str) -> FileRecord:
        """A placed file's new copy is staged for `folder` ("undone" or "assigned"): from here a crash is settled
        by recovery (service.moves.settle_move)."""
        with self._transaction() as connection:
            previous = self._get(connection, record_id).destination
            connection.execute(
                "INSERT OR REPLACE INTO moves (record_id, folder, outcome, previous, moved_at) VALUES (?, ?, ?, ?, ?)",
                (record_id, _encode_path(folder), outcome, _encode_path(previous), time.time()),
            )
        return self.advance(record_id, Step.MOVING, staged_path=staged_path)

    def move_of(self, record_id: int) -> tuple[Path, str] | None:
        """(folder, outcome) of the move a record is in (or was last in: the moves table also keeps, for the
        report, where the file was before and when it was moved)."""
        rows = self._select("SELECT folder, outcome FROM moves WHERE record_id = ?", (record_id,))
        return (_decode_path(rows[0]["folder"]), rows[0]["outcome"]) if rows else None

    def rewrite_written(self, record_id: int, written: Written) -> None:
        """The file as genresort last wrote it, after an assignment retagged it (what arrived stays as it was)."""
        with self._transaction() as connection:
            connection.execute(
                "UPDATE arrivals SET written_size = ?, written_mtime_ns = ?, written_tags_sha256 = ?"
                " WHERE record_id = ?",
                (written.size, written.mtime_ns, written.tags_sha256, record_id),
            )

    def keep_example(self, sha256: str, path: Path, genre: str, origin: ExampleOrigin | str) -> Example:
        """Keep a person's decision on a file's genre as a labelled example; it replaces an earlier example of the same
        content (the person changed their mind). ValueError for an origin that is not an ExampleOrigin."""
        origin = ExampleOrigin(origin)
        with self._transaction() as connection:
            cursor = connection.execute(
                "INSERT OR REPLACE INTO examples (sha256, path, genre, origin, noted_at) VALUES (?, ?, ?, ?, ?)",
                (sha256, os.fsencode(path), genre, origin.value, time.time()),
            )
            row = connection.execute("SELECT * FROM examples WHERE id = ?", (cursor.lastrowid,)).fetchone()
        return _example_from_row(row)

    def examples(self) -> list[Example]:
        """Every labelled example, in the order they were (last) given."""
        return [_example_from_row(row) for row in self._select("SELECT * FROM examples ORDER BY id", ())]

    def placed_records(self, since: float | None = None, last: int | None = None) -> list[FileRecord]:
        """Files genresort placed (in a genre folder, unsure or not-music) and has not given back, newest first."""
        rows = self._select(
            "SELECT * FROM files WHERE step = ? AND outcome IN ('sorted', 'unsure', 'not_music', 'assigned')"
            " AND updated_at >= ?"
            " ORDER BY id DESC LIMIT ?",
            (Step.DONE.value, since if since is not None else 0.0, last if last is not None else -1),
        )
        return [_record_from_row(row) for row in rows]

    def history(self, since: float | None = None) -> list[HistoryEntry]:
        """Finished records last changed at or after `since` (a Unix time), oldest first."""
        rows = self._select(
            "SELECT files.*, CASE WHEN moves.outcome = 'assigned' THEN moves.previous END AS assigned_from"
            f" FROM files LEFT JOIN moves ON moves.record_id = files.id WHERE files.step IN ({_FINAL_STEPS_SQL})"
            " AND files.updated_at >= ? ORDER BY files.updated_at, files.id",
            (since if since is not None else 0.0,),
        )
        return [HistoryEntry(_record_from_row(row), _decode_path(row["assigned_from"])) for row in rows]

    def sorted_from(self, folder: Path, since: float) -> list[Path]:
        """Where the files that arrived directly in `folder` (or a folder below it) and were sorted into a genre, or
        assigned one, since `since` (a Unix time) are now."""
        prefix = os.fsencode(folder) + b"/"
        rows = self._select(
            "SELECT destination FROM files WHERE substr(source, 1, ?) = ? AND step = ?"
            " AND outcome IN ('sorted', 'assigned') AND updated_at >= ?",
            (len(prefix), prefix, Step.DONE.value, since),
        )
        return [_decode_path(row["destination"]) for row in rows]

    def placed_at(self, path: Path) -> FileRecord | None:
        """The record of the file genresort placed at `path`, if it is one and was not given back."""
        rows = self._select(
            "SELECT * FROM files WHERE destination = ? AND step = ? ORDER BY id DESC LIMIT 1",
            (os.fsencode(path), Step.DONE.value),
        )
        return _record_from_row(rows[0]) if rows else None

    def get(self, record_id: int) -> FileRecord:
        """The record as it is now."""
        rows = self._select("SELECT * FROM files WHERE id = ?", (record_id,))
        if not rows:
            raise KeyError(f"no journal record with id {record_id}")
        return _record_from_row(rows[0])

    def unfinished(self) -> list[FileRecord]:
        """Records a previous run left midway, oldest first, for recovery at start."""
        rows = self._select(f"SELECT * FROM files WHERE step NOT IN ({_FINAL_STEPS_SQL}) ORDER BY id", ())
        return [_record_from_row(row) for row in rows]

    def find_finished_by_sha256(self, sha256: str) -> FileRecord | None:
        """The latest file sorted into the library (or unsure) with this content, to recognise a re-dropped
        duplicate."""
        rows = self._select(
            "SELECT * FROM files WHERE sha256 = ? AND step IN (?, ?) AND outcome IN ('sorted', 'unsure', 'assigned')"
            " ORDER BY id DESC LIMIT 1",
            (sha256, Step.DONE.value, Step.ORIGINAL_KEPT.value),
        )
        return _record_from_row(rows[0]) if rows else None

    def find_kept_original(self, source: Path, size: int, mtime_ns: int) -> FileRecord | None:
        """The record of a file already sorted whose inbox original could not be removed, if `source` (by name,
        size and mtime) is that original: it is not sorted again."""
        rows = self._select(
            "SELECT * FROM files WHERE source = ? AND size = ? AND mtime_ns = ? AND step = ? ORDER BY id DESC LIMIT 1",
            (os.fsencode(source), size, mtime_ns, Step.ORIGINAL_KEPT.value),
        )
        return _record_from_row(rows[0]) if rows else None

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self,
        exception_type: type[BaseException] | None,
        exception: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
