"""A person's commands on placed files: `genresort undo` gives them back as they arrived, byte for byte, every tag
as it was and nothing of genresort's left (library/arrival.py keeps what that takes when a file is sorted);
`genresort assign` gives them the person's genre.

The same crash safety as sorting: the new copy's name is journaled, then the copy (the rebuilt original, proven by
the sha256 of the file that arrived; or the retagged file) is staged on the target's file system and linked into
place, and only then is the placed file removed. A crash at any moment leaves the file in exactly one place once
settle_move has run (at the next undo or assign, or the daemon's next start).

Moves run beside a running daemon: it sorts inbox files, they move placed ones. The moves lock keeps them one at a
time and away from the daemon's recovery, and their staging folders are their own, which the daemon never clears.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from structlog.typing import FilteringBoundLogger

from genresort.analysis.decision import NOT_MUSIC, UNSURE
from genresort.config import Settings, bad_name
from genresort.library.arrival import CannotRebuild, read_written, rebuild
from genresort.library.journal import ExampleOrigin, FileRecord, Journal, Step
from genresort.library.layout import DEFAULT_TEMPLATE, genre_folder, read_track_tags, render_path
from genresort.library.lock import MovesBusy, MovesLock
from genresort.library.placement import (
    copy_to_staged,
    discard_staged,
    place_file,
    release_original,
    staging_folder,
    staging_name,
)
from genresort.library.tags import ExistingGenrePolicy, GenreTags, TagError, read_fields, write_genre_tags
from genresort.logs import path_text
from genresort.service.pipeline import linked_copy
from genresort.service.startup import instance_of, open_journal_unlocked
from genresort.service.supervisor import EXIT_FAILED, EXIT_OK, EXIT_REFUSED

UNDONE = "undone"
ASSIGNED = "assigned"
PERSON = "person"  # GENRESORT_DECISION (and model) of a genre a person assigned
#: The label a file placed outside the genre folders had (the journal's outcome -> the decision's name).
LABELS = {"unsure": UNSURE, "not_music": NOT_MUSIC}
#: How long a move waits for another one (a long `undo --since`, a click on the review page) to finish.
MOVES_WAIT_SECONDS = 30.0


@dataclass(frozen=True)
class MoveOutcome:
    record: FileRecord
    destination: Path | None  # where the file is now (or would be, in a dry run)
    refused: str | None = None  # why it was not moved; nothing was changed


def refusal(journal: Journal, record: FileRecord) -> str | None:
    """Why this placed file cannot be moved by a person's command, or None if it can."""
    placed = record.destination
    if placed is None or not placed.is_file():
        return f"it is no longer at {placed}: moved or removed since genresort placed it"
    kept = journal.arrival(record.id)
    if kept is None:
        return (
            "nothing was kept to rebuild it (sorted before genresort kept arrivals, or a WAV, Ogg Vorbis, Opus or"
            " fragmented M4A file, whose tag writing rewrites the container around the audio)"
        )
    try:
        now = read_written(placed)
    except CannotRebuild as error:
        return f"it cannot be read as it was written: {error}"
    if now != kept[1]:
        return "it was changed since genresort wrote it (its tags, size or time differ); change it by hand"
    return None


def moves_instance(settings: Settings) -> str:
    """The name of the moves' staging folders: apart from the daemon's, which its recovery clears at start, perhaps
    while a move is running beside it."""
    return f"{instance_of(settings)}-moves"


def begin(journal: Journal, record: FileRecord, root: Path, instance: str, folder: Path, outcome: str) -> FileRecord:
    """Journal the move with the name its new copy will have under `root`, before the copy exists: a crash from here
    on leaves nothing that settle_move does not finish or remove."""
    staging = staging_folder(root, instance)
    staging.mkdir(parents=True, exist_ok=True)
    suffix = record.source.suffix if outcome == UNDONE else record.destination.suffix
    return journal.begin_move(record.id, staging_name(staging, suffix), folder, outcome)


def place_moved(
    journal: Journal,
    record: FileRecord,
    folder: Path,
    name: str,
    outcome: str,
    origin: ExampleOrigin = ExampleOrigin.ASSIGN,
) -> MoveOutcome:
    """Link the staged copy into `folder`, then remove the placed file."""
    final = place_file(record.staged_path, folder, name, keep_duplicates=True)
    return MoveOutcome(finish_move(journal, record, final, outcome, origin), final)


def undo(journal: Journal, record: FileRecord, folder: Path, instance: str, dry_run: bool = False) -> MoveOutcome:
    """Give one placed file back into `folder` under its arrival name (numbered if that name is taken), as it
    arrived: the rebuilt file must have the sha256 of the file that arrived."""
    refused = refusal(journal, record)
    if refused is not None:
        return MoveOutcome(record, None, refused)
    if dry_run:
        return MoveOutcome(record, folder / record.source.name)
    arrival, _ = journal.arrival(record.id)
    record = begin(journal, record, folder, instance, folder, UNDONE)
    with open(record.staged_path, "xb") as copy:
        rebuild(record.destination, arrival, copy)
        copy.flush()
        os.fsync(copy.fileno())
    with open(record.staged_path, "rb") as copy:
        rebuilt = hashlib.file_digest(copy, "sha256").hexdigest()
    if rebuilt != record.sha256:
        settle_move(journal, record)
        return MoveOutcome(record, None, "the rebuilt file is not the one that arrived (its sha256 differs)")
    return place_moved(journal, record, folder, record.source.name, UNDONE)


def assign(
    journal: Journal,
    record: FileRecord,
    genre: str,
    library: Path,
    instance: str,
    path_template: str = DEFAULT_TEMPLATE,
    origin: ExampleOrigin = ExampleOrigin.ASSIGN,
) -> MoveOutcome:
    """A person's genre for a placed file (unsure, not music, or a correction): tagged as a sort would tag it, with
    GENRESORT_DECISION=person and the label it had in GENRESORT_PREVIOUS_GENRE, placed in <library>/<genre>/ (where
    path_template puts it), and kept as a labelled example (`origin`: the command, or the review page) once it is
    there."""
    refused = refusal(journal, record)
    if refused is not None:
        return MoveOutcome(record, None, refused)
    if record.destination.is_relative_to(library) and genre_folder(record.destination, library) == genre:
        return MoveOutcome(record, None, f"it is in {genre} already")
    folder, name = assigned_place(record, genre, library, path_template)
    record = begin(journal, record, library, instance, folder, ASSIGNED)
    with open(record.destination, "rb") as placed:
        copy_to_staged(placed, record.staged_path)
    previous = LABELS.get(record.outcome, genre_folder(record.destination, library))
    tags = GenreTags(genre, 1.0, ((genre, 1.0),), PERSON, decision=PERSON, previous_genre=previous)
    try:
        write_genre_tags(record.staged_path, tags, ExistingGenrePolicy.OVERWRITE)
    except TagError as error:
        settle_move(journal, record)
        return MoveOutcome(record, None, f"it cannot be tagged: {error}")
    return place_moved(journal, record, folder, name, ASSIGNED, origin)


def assigned_place(record: FileRecord, genre: str, library: Path, path_template: str) -> tuple[Path, str]:
    """The folder and name an assigned file goes to: <library>/<genre>/ under the name it has, or where a person's
    path_template puts it, from its tags."""
    if path_template == DEFAULT_TEMPLATE:
        return library / genre, record.destination.name
    wanted = render_path(path_template, genre, read_track_tags(record.destination), record.source.name)
    return library / wanted.parent, wanted.name


def act_safely(journal: Journal, record: FileRecord, act: Callable[[Journal, FileRecord], MoveOutcome]) -> MoveOutcome:
    """`act`, and after an error of the disk (full, read-only, gone) the move rolled back, or left for the next
    undo, assign or daemon start to settle: either way the file is in exactly one place."""
    try:
        return act(journal, record)
    except OSError as error:
        current = journal.get(record.id)
        if current.step is Step.MOVING:
            try:
                settle_move(journal, current)
            except OSError:
                pass  # still MOVING: settled by whoever next holds the moves lock
        return MoveOutcome(record, None, f"it could not be moved: {error}")


def finish_move(
    journal: Journal, record: FileRecord, final: Path, outcome: str, origin: ExampleOrigin = ExampleOrigin.ASSIGN
) -> FileRecord:
    """The new copy is in place: keep an assignment as a labelled example (the content as it arrived, in the genre
    it was tagged with), remove the old copy, drop the staged name, close the record.

    The example comes first: from here on a crash leaves a move that settle_move finishes (calling this again), so
    an assignment is never closed without its example. settle_move cannot tell the command from the review page: it
    keeps the example as the command's."""
    if outcome == ASSIGNED:
        journal.keep_example(record.sha256, final, assigned_genre(final), origin)
    release_original(record.destination)
    discard_staged(record.staged_path)
    if outcome == UNDONE:
        return journal.advance(record.id, Step.UNDONE, destination=final)
    journal.rewrite_written(record.id, read_written(final))  # what an undo will expect to find
    return journal.advance(record.id, Step.DONE, destination=final, outcome=outcome)


def assigned_genre(path: Path) -> str:
    """The genre `assign` tagged a file with (GENRESORT_GENRE, written in every format and verified)."""
    return read_fields(path)["GENRESORT_GENRE"][0]


def settle_move(journal: Journal, record: FileRecord) -> FileRecord:
    """After a crash in a move, with the file in exactly one place: finished where its new copy was placed (or
    where the staged copy is the only one left), rolled back where the old one is still there. A record moving with
    no move journaled was being relocated by the corrections check (corrections.relocate): nothing was moved, it is
    put back as it was."""
    move = journal.move_of(record.id)
    if move is None:
        return journal.advance(record.id, Step.DONE)
    folder, outcome = move
    staged, old = record.staged_path, record.destination
    placed = linked_copy(staged, folder)
    if placed is None and staged.exists() and not old.exists():  # never leave the only copy hidden
        name = old.name if outcome == ASSIGNED else record.source.name
        placed = place_file(staged, folder, name, keep_duplicates=True)
    if placed is not None:
        return finish_move(journal, record, placed, outcome)
    if old.exists():
        discard_staged(staged)
        return journal.advance(record.id, Step.DONE)
    # placed, and its staged name dropped, just before the crash: only the record was left to close
    if outcome == UNDONE:
        return journal.advance(record.id, Step.UNDONE, destination=folder)
    return journal.advance(record.id, Step.DONE, destination=folder, outcome=outcome)


def chosen_records(journal: Journal, files: list[Path], last: int | None, since: float | None) -> list[FileRecord]:
    """The records to undo, oldest first; a FILE that genresort did not place (or gave back already) is an error."""
    if files:
        records = []
        for path in files:
            record = journal.placed_at(Path(os.path.abspath(path)))
            if record is None:
                raise MoveError(f"{path_text(path)}: genresort has no record of placing this file")
            records.append(record)
        return records
    return list(reversed(journal.placed_records(since=since, last=last)))


class MoveError(Exception):
    """The command cannot start; the message says why."""


def run_moves(
    settings: Settings,
    log: FilteringBoundLogger,
    command: str,
    choose: Callable[[Journal], list[FileRecord]],
    act: Callable[[Journal, FileRecord], MoveOutcome],
    dry_run: bool = False,
) -> int:
    """Run `command` ("undo" or "assign") on the chosen records: one log line per file (`file.undone` or
    `file.assigned`, or `file.<command>_refused` with the reason). Holds the moves lock (a dry run only reads), so a
    running daemon need not be stopped; first settles any move a crash cut short."""
    lock = MovesLock(settings.state_dir)
    if not dry_run:
        try:
            lock.acquire(MOVES_WAIT_SECONDS)
        except (MovesBusy, OSError) as error:
            log.error(f"{command}.refused", reason=str(error))
            return EXIT_REFUSED
    try:
        journal = open_journal_unlocked(settings, log)
        if journal is None:
            return EXIT_REFUSED
        with journal:
            return moves_on(journal, log, command, choose, act, dry_run)
    finally:
        lock.release()


def moves_on(
    journal: Journal,
    log: FilteringBoundLogger,
    command: str,
    choose: Callable[[Journal], list[FileRecord]],
    act: Callable[[Journal, FileRecord], MoveOutcome],
    dry_run: bool,
) -> int:
    if not dry_run:
        try:
            for record in journal.unfinished():
                if record.step is Step.MOVING:
                    settle_move(journal, record)
        except OSError as error:
            log.error(f"{command}.refused", reason=f"a move cut short by a crash cannot be settled: {error}")
            return EXIT_REFUSED
    try:
        records = choose(journal)
    except MoveError as error:
        log.error(f"{command}.refused", reason=str(error))
        return EXIT_REFUSED
    refused = 0
    for record in records:
        outcome = act_safely(journal, record, act)
        fields = {"source": path_text(record.destination), "sha256": record.sha256, "dry_run": dry_run}
        if outcome.refused is None:
            done = UNDONE if command == "undo" else ASSIGNED
            log.info(f"file.{done}", destination=path_text(outcome.destination), **fields)
        else:
            refused += 1
            log.warning(f"file.{command}_refused", reason=outcome.refused, **fields)
    return EXIT_FAILED if refused else EXIT_OK


def undo_folder(settings: Settings) -> Path:
    """Where an undo gives files back unless told otherwise: undo_folder, or the inbox, where a running daemon sorts
    them again (the way to re-sort files after a change of model or settings)."""
    return settings.inbox if settings.undo_folder is None else settings.undo_folder


def run_undo(
    settings: Settings,
    log: FilteringBoundLogger,
    files: list[Path],
    last: int | None,
    since: float | None,
    folder: Path | None,
    dry_run: bool,
) -> int:
    """`genresort undo`: into the inbox, or `folder`."""
    folder = undo_folder(settings) if folder is None else folder
    if not folder.is_dir():
        log.error("undo.refused", reason=f"{path_text(folder)} does not exist or is not a folder")
        return EXIT_REFUSED
    instance = moves_instance(settings)
    return run_moves(
        settings,
        log,
        "undo",
        lambda journal: chosen_records(journal, files, last, since),
        lambda journal, record: undo(journal, record, folder, instance, dry_run),
        dry_run,
    )


def run_assign(settings: Settings, log: FilteringBoundLogger, files: list[Path], genre: str) -> int:
    """`genresort assign FILE... GENRE`: into <library>/<genre>/."""
    problem = bad_name(genre)
    if problem is not None:
        log.error("assign.refused", reason=f"{genre!r} cannot be a genre folder: {problem}")
        return EXIT_REFUSED
    instance = moves_instance(settings)
    return run_moves(
        settings,
        log,
        "assign",
        lambda journal: chosen_records(journal, files, None, None),
        lambda journal, record: assign(journal, record, genre, settings.library, instance, settings.path_template),
    )
