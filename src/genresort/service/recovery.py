"""After a crash: finish each record whose copy was placed, roll back the others, one record at a time.

A record that cannot be settled (a genre folder renamed while we were stopped, a disk that fails) is logged and
left for the next start; it never stops the others, nor the start itself.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from genresort.library.journal import FileRecord, Step
from genresort.library.lock import MovesLock
from genresort.library.placement import discard_staged, staging_folder
from genresort.logs import path_text
from genresort.service.moves import settle_move
from genresort.service.pipeline import (
    NotARegularFile,
    Outcome,
    Sorter,
    SortOutcome,
    SourceGone,
    finish,
    open_source,
    settle,
)


def recover(sorter: Sorter, moves: MovesLock) -> None:
    """Settle what a crash left; a person's move only with the moves lock, as one may be running beside us (it
    settles its own)."""
    try:
        settling_moves = moves.try_acquire()
    except OSError as error:  # a damaged state folder must not stop the start: the moves wait, the rest is settled
        sorter.log.error(
            "recovery.failed",
            step="moving",
            error=f"the moves lock {path_text(moves.path)} cannot be taken: {error.strerror or error}",
            hint="an undo or assign cut short stays as it is until the lock can be taken; nothing was removed",
        )
        settling_moves = False
    try:
        settle_unfinished(sorter, settling_moves)
    finally:
        moves.release()
    clear_staging(sorter)


def settle_unfinished(sorter: Sorter, settling_moves: bool) -> None:
    for record in sorter.journal.unfinished():
        try:
            if record.step is Step.MOVING:  # an undo or assignment that was stopped: finished or rolled back
                if settling_moves:
                    settle_move(sorter.journal, record)
                continue
            settled = settle(sorter.journal, record, sorter.policy.model_id)
            if settled is not None:
                kept = finish(sorter.journal, settled, _still_ours(settled))
                reason = "finished after an interruption" + (f"; {kept}" if kept else "")
                outcome = Outcome(settled.outcome or Outcome.SORTED)
                sorter.log_outcome(
                    SortOutcome(outcome, settled.source, settled.destination, reason, sha256=settled.sha256)
                )
        except Exception as error:
            sorter.log.error(
                "recovery.failed",
                source=path_text(record.source),
                step=record.step.value,
                error=f"{type(error).__name__}: {error}",
                hint="left as it is and tried again at the next start; nothing was removed",
            )


def _still_ours(record: FileRecord) -> bool:
    """Release only the file we sorted: one dropped under the same name while we were stopped stays."""
    try:
        with open_source(record.source) as source:  # never follows a link, never blocks on a FIFO
            if source.status.st_size != record.size:
                return False
            return hashlib.file_digest(source.stream, "sha256").hexdigest() == record.sha256
    except (SourceGone, NotARegularFile):
        return False


def clear_staging(sorter: Sorter) -> None:
    """Remove this instance's staged copies that no unfinished record refers to: leftovers of interrupted steps."""
    wanted = {record.staged_path for record in sorter.journal.unfinished()}
    policy = sorter.policy
    for root in (policy.library, policy.unsure, policy.quarantine):
        try:
            entries = list(os.scandir(staging_folder(root, policy.instance)))
        except FileNotFoundError:
            continue
        for entry in entries:
            path = Path(entry.path)
            if path not in wanted and entry.is_file(follow_symlinks=False):
                discard_staged(path)
