"""`genresort undo`: give sorted files back as they arrived, byte for byte, every tag as it was and nothing of
genresort's left (library/arrival.py keeps what that takes when a file is sorted).

The same crash safety as sorting: the rebuilt original is staged on the target's file system, proven to be the file
that arrived (its sha256), journaled, linked into place, and only then is the sorted file removed. A crash at any
moment leaves the file in exactly one place once recovery has run (settle_undo).
"""

from __future__ import annotations

import hashlib
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from structlog.typing import FilteringBoundLogger

from genresort.config import Settings
from genresort.library.arrival import CannotRebuild, read_written, rebuild
from genresort.library.journal import FileRecord, Journal, Step
from genresort.library.placement import discard_staged, place_file, release_original, staging_folder
from genresort.logs import path_text
from genresort.service.pipeline import linked_copy
from genresort.service.startup import instance_of, open_journal_unlocked, open_state
from genresort.service.supervisor import EXIT_FAILED, EXIT_OK, EXIT_REFUSED


@dataclass(frozen=True)
class UndoOutcome:
    record: FileRecord
    destination: Path | None  # where the original is now (or would be, in a dry run)
    refused: str | None = None  # why it was not given back; nothing was changed


def refusal(journal: Journal, record: FileRecord) -> str | None:
    """Why this file cannot be given back, or None if it can."""
    placed = record.destination
    if placed is None or not placed.is_file():
        return f"it is no longer at {placed}: moved or removed since genresort placed it"
    kept = journal.arrival(record.id)
    if kept is None:
        return "nothing was kept to rebuild it (sorted before genresort kept arrivals, or a WAV or Ogg file)"
    try:
        now = read_written(placed)
    except CannotRebuild as error:
        return f"it cannot be read as it was written: {error}"
    if now != kept[1]:
        return "it was changed since genresort wrote it (its tags, size or time differ); undo it by hand"
    return None


def undo(journal: Journal, record: FileRecord, folder: Path, instance: str, dry_run: bool = False) -> UndoOutcome:
    """Give one placed file back into `folder` under its arrival name (numbered if that name is taken)."""
    refused = refusal(journal, record)
    if refused is not None:
        return UndoOutcome(record, None, refused)
    if dry_run:
        return UndoOutcome(record, folder / record.source.name)
    arrival, _ = journal.arrival(record.id)
    staging = staging_folder(folder, instance)
    staging.mkdir(parents=True, exist_ok=True)
    staged = staging / f".{uuid.uuid4().hex}{record.source.suffix}"
    with open(staged, "xb") as copy:
        rebuild(record.destination, arrival, copy)
        copy.flush()
        os.fsync(copy.fileno())
    with open(staged, "rb") as copy:
        rebuilt = hashlib.file_digest(copy, "sha256").hexdigest()
    if rebuilt != record.sha256:
        discard_staged(staged)
        return UndoOutcome(record, None, "the rebuilt file is not the one that arrived (its sha256 differs)")
    record = journal.begin_undo(record.id, staged, folder)
    final = place_file(staged, folder, record.source.name, keep_duplicates=True)
    return UndoOutcome(finish_undo(journal, record, final), final)


def finish_undo(journal: Journal, record: FileRecord, final: Path) -> FileRecord:
    """The original is in place: remove the sorted file, drop the staged name, close the record."""
    release_original(record.destination)
    discard_staged(record.staged_path)
    return journal.advance(record.id, Step.UNDONE, destination=final)


def settle_undo(journal: Journal, record: FileRecord) -> FileRecord:
    """After a crash in an undo, with the file in exactly one place: finished where its original was placed (or
    where the staged original is the only copy left), rolled back where the sorted file is still there."""
    folder = journal.undo_folder(record.id)
    staged, sorted_file = record.staged_path, record.destination
    placed = linked_copy(staged, folder)
    if placed is None and staged.exists() and not sorted_file.exists():  # never leave the only copy hidden
        placed = place_file(staged, folder, record.source.name, keep_duplicates=True)
    if placed is not None:
        return finish_undo(journal, record, placed)
    if sorted_file.exists():
        discard_staged(staged)
        return journal.advance(record.id, Step.DONE)
    # placed, and its staged name dropped, just before the crash: only the record was left to close
    return journal.advance(record.id, Step.UNDONE, destination=folder)


def chosen_records(journal: Journal, files: list[Path], last: int | None, since: float | None) -> list[FileRecord]:
    """The records to undo, oldest first; a FILE that genresort did not place (or gave back already) is an error."""
    if files:
        records = []
        for path in files:
            record = journal.placed_at(Path(os.path.abspath(path)))
            if record is None:
                raise UndoError(f"{path_text(path)}: genresort has no record of placing this file")
            records.append(record)
        return records
    return list(reversed(journal.placed_records(since=since, last=last)))


class UndoError(Exception):
    """The undo cannot start; the message says why."""


def run_undo(
    settings: Settings,
    log: FilteringBoundLogger,
    files: list[Path],
    last: int | None,
    since: float | None,
    folder: Path | None,
    dry_run: bool,
) -> int:
    """`genresort undo`: one log line per file (`file.undone`, or `file.undo_refused` with the reason). Takes the
    state folder's lock, as `sort` does: with the daemon running, stop it first."""
    folder = settings.inbox if folder is None else folder
    if not folder.is_dir():
        log.error("undo.refused", reason=f"{path_text(folder)} does not exist or is not a folder")
        return EXIT_REFUSED
    opened = open_journal_unlocked(settings, log) if dry_run else open_state(settings, log)
    if opened is None:
        return EXIT_REFUSED
    journal = opened if dry_run else opened.journal
    try:
        if not dry_run:
            for record in journal.unfinished():
                if record.step is Step.UNDOING:
                    settle_undo(journal, record)
        try:
            records = chosen_records(journal, files, last, since)
        except UndoError as error:
            log.error("undo.refused", reason=str(error))
            return EXIT_REFUSED
        refused = 0
        for record in records:
            outcome = undo(journal, record, folder, instance_of(settings), dry_run)
            fields = {"source": path_text(record.destination), "sha256": record.sha256, "dry_run": dry_run}
            if outcome.refused is None:
                log.info("file.undone", destination=path_text(outcome.destination), **fields)
            else:
                refused += 1
                log.warning("file.undo_refused", reason=outcome.refused, **fields)
        return EXIT_FAILED if refused else EXIT_OK
    finally:
        opened.close()
