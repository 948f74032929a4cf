"""One path for every file: claim, analyse, decide, tag a staged copy, place it durably, release the original.

Each step is written to the journal before the next begins, so `recover()` can finish or roll back whatever
a crash interrupted: the inbox original is removed only once its copy is durable in its final place, and a
file is never placed twice.
"""

from __future__ import annotations

import errno
import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from genresort.analysis.audio import AudioError
from genresort.analysis.model import UNSURE, Prediction, decide
from genresort.config import Settings
from genresort.library.journal import FileRecord, Journal, Step
from genresort.library.placement import (
    STAGING_DIR,
    DuplicateFile,
    discard_staged,
    place_file,
    release_original,
    sha256_file,
    stage_copy,
    write_reason,
)
from genresort.library.tags import ExistingGenrePolicy, GenreTags, TagError, write_genre_tags
from genresort.service.workers import AnalyserPool, AnalysisCrashed, AnalysisTimeout

DUPLICATES_FOLDER = "duplicates"
#: Errors that say "not now" rather than "this file is bad": retried with backoff, never quarantined.
TRANSIENT_ERRNOS = frozenset(
    {
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EACCES,
        errno.EPERM,
        errno.EBUSY,
        errno.EAGAIN,
        errno.EROFS,
        errno.ETXTBSY,
        errno.EMFILE,
        errno.ENFILE,
        errno.ENOMEM,
        errno.EIO,
        errno.ESTALE,
    }
)
#: A file whose analysis timed out or crashed this many times is quarantined.
ANALYSIS_ATTEMPTS = 2


class Outcome(StrEnum):
    SORTED = "sorted"
    UNSURE = "unsure"
    DUPLICATE = "duplicate"
    QUARANTINED = "quarantined"
    RETRY = "retry"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class SortOutcome:
    outcome: Outcome
    source: Path
    destination: Path | None = None
    reason: str | None = None
    seconds: float = 0.0
    sha256: str | None = None
    prediction: Prediction | None = None
    decision: str | None = None


def is_transient(error: OSError) -> bool:
    return error.errno in TRANSIENT_ERRNOS


def _transient_cause(error: BaseException) -> OSError | None:
    """The transient OSError (disk full, I/O error, ...) behind `error`, if any: mutagen wraps OSErrors in its
    own exception type, which tags.py wraps again in TagError."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and is_transient(current):
            return current
        current = current.__cause__ or current.__context__
    return None


def _sibling_by_inode(folder: Path, inode: int) -> Path | None:
    """The name under which a staged copy was linked into `folder`, if it was."""
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_file(follow_symlinks=False) and entry.inode() == inode:
                return Path(entry.path)
    return None


class KeyedLocks:
    """One lock per key, created while someone holds or waits for it (so the dict does not grow forever)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}  # key -> (lock, holders and waiters)

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        with self._guard:
            lock, users = self._locks.get(key, (None, 0))
            lock = lock or threading.Lock()
            self._locks[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                users = self._locks[key][1] - 1
                if users:
                    self._locks[key] = (lock, users)
                else:
                    del self._locks[key]


class Sorter:
    """Sorts single files; the daemon, `genresort sort` and recovery all go through here."""

    def __init__(self, settings: Settings, analyser: AnalyserPool, journal: Journal, log) -> None:
        self.settings = settings
        self.analyser = analyser
        self.journal = journal
        self.log = log
        self.model_id = analyser.summary.model_id
        self._content_locks = KeyedLocks()
        self.threshold = (
            settings.confidence_threshold if settings.confidence_threshold is not None else analyser.summary.threshold
        )

    # -- the one path -------------------------------------------------------------------------------------

    def sort_file(self, path: Path) -> SortOutcome:
        started = time.monotonic()
        record: FileRecord | None = None
        try:
            status = path.stat()
            sha256 = sha256_file(path)
            record = self.journal.claim(path, sha256, status.st_size, status.st_mtime_ns)
            outcome = self._sort(path, record, status.st_size)
        except FileNotFoundError:
            outcome = SortOutcome(Outcome.SKIPPED, path, reason="the file is gone")
        except OSError as error:
            if record is not None and not is_transient(error):
                outcome = self._quarantine(path, record, f"cannot read or place the file: {error}")
            else:
                if record is not None:
                    record = self.journal.record_failure(record.id, str(error))
                outcome = SortOutcome(Outcome.RETRY, path, reason=str(error))
        outcome = replace(outcome, seconds=time.monotonic() - started)
        self._log(outcome, record)
        return outcome

    def _sort(self, path: Path, record: FileRecord, size: int) -> SortOutcome:
        if record.step == Step.PLACED:  # placed before a crash: only the release is left
            return self._finish_placed(record)
        # Files with the same content one at a time: two workers could otherwise both pass the duplicate check
        # before either has finished, and place the same content twice under different names.
        with self._content_locks.hold(record.sha256):
            return self._sort_content(path, record, size)

    def _sort_content(self, path: Path, record: FileRecord, size: int) -> SortOutcome:
        earlier = self.journal.find_finished_by_sha256(record.sha256)
        if earlier is not None and earlier.destination is not None and earlier.destination.exists():
            return self._duplicate(path, record, earlier.destination)
        if size > self.settings.max_file_mb * 1024 * 1024:
            return self._quarantine(
                path,
                record,
                f"the file is {size / 2**20:.0f} MB, above the limit of {self.settings.max_file_mb:.0f} MB",
            )
        try:
            prediction = self.analyser.analyse(path)
        except AudioError as error:
            return self._quarantine(path, record, error.reason)
        except (AnalysisTimeout, AnalysisCrashed) as error:
            record = self.journal.record_failure(record.id, str(error))
            if record.attempts >= ANALYSIS_ATTEMPTS:
                return self._quarantine(path, record, f"{error} ({record.attempts} attempts)")
            return SortOutcome(Outcome.RETRY, path, reason=str(error), sha256=record.sha256)
        return self._place_sorted(path, record, prediction)

    def _place_sorted(self, path: Path, record: FileRecord, prediction: Prediction) -> SortOutcome:
        decision = decide(prediction, self.threshold)
        if decision == UNSURE:  # a person decides: no genre a player would show, only our top 3
            root = folder = self.settings.unsure
            outcome, policy = Outcome.UNSURE, ExistingGenrePolicy.UNTOUCHED
        else:
            root, folder = self.settings.library, self.settings.library / decision
            outcome, policy = Outcome.SORTED, ExistingGenrePolicy(self.settings.existing_genre)
        staged = stage_copy(path, root)
        record = self.journal.advance(record.id, Step.STAGED, staged_path=staged)
        reason = None
        try:
            write_genre_tags(staged, self._genre_tags(prediction), policy)
        except TagError as error:  # the sound is fine; place an untouched copy rather than hold the file back
            discard_staged(staged)
            if (cause := _transient_cause(error)) is not None:  # e.g. the tag did not fit on a full disk: retry
                raise OSError(cause.errno, cause.strerror, str(staged)) from error
            staged = stage_copy(path, root)
            record = self.journal.advance(record.id, Step.STAGED, staged_path=staged)
            reason = f"placed without genre tags: {error}"
        self.journal.advance(record.id, Step.PLACING, destination=folder, outcome=outcome.value)
        try:
            final = place_file(staged, folder, path.name)
        except DuplicateFile as duplicate:
            discard_staged(staged)
            return self._duplicate(path, record, duplicate.existing)
        record = self.journal.advance(record.id, Step.PLACED, destination=final)
        self._release(record)
        return SortOutcome(outcome, path, final, reason, sha256=record.sha256, prediction=prediction, decision=decision)

    def _genre_tags(self, prediction: Prediction) -> GenreTags:
        return GenreTags(
            genre=prediction.genre,
            confidence=prediction.confidence,
            top=prediction.top,
            model_id=self.model_id,
        )

    def _release(self, record: FileRecord) -> None:
        """The copy is durable in place: drop the staged name and the inbox original, then close the record."""
        if record.staged_path is not None:
            discard_staged(record.staged_path)
        if _same_content(record.source, record.sha256):
            release_original(record.source)
        self.journal.advance(record.id, Step.DONE)

    def _finish_placed(self, record: FileRecord) -> SortOutcome:
        self._release(record)
        return _recovered(record)

    # -- set aside: quarantine and duplicates --------------------------------------------------------------

    def _quarantine(self, path: Path, record: FileRecord, reason: str) -> SortOutcome:
        return self._set_aside(path, record, self.settings.quarantine, Step.QUARANTINED, reason)

    def _duplicate(self, path: Path, record: FileRecord, existing: Path) -> SortOutcome:
        reason = f"same content (sha256) as {existing}"
        return self._set_aside(path, record, self.settings.quarantine / DUPLICATES_FOLDER, Step.DUPLICATE, reason)

    def _set_aside(self, path: Path, record: FileRecord, folder: Path, final: Step, reason: str) -> SortOutcome:
        """Move the file, untouched, into `folder` with a `<name>.reason.json`; nothing is ever deleted."""
        record = self.journal.record_failure(record.id, reason)
        staged = stage_copy(path, self.settings.quarantine)
        record = self.journal.advance(record.id, Step.STAGED, staged_path=staged)
        record = self.journal.advance(record.id, Step.PLACING, destination=folder, outcome=final.value)
        placed = place_file(staged, folder, path.name, keep_duplicates=True)
        self._finish_set_aside(record, placed, final)
        outcome = Outcome.QUARANTINED if final == Step.QUARANTINED else Outcome.DUPLICATE
        return SortOutcome(outcome, path, placed, reason, sha256=record.sha256)

    def _finish_set_aside(self, record: FileRecord, placed: Path, final: Step) -> None:
        write_reason(
            placed,
            {
                "source": str(record.source),
                "error": record.last_error,
                "sha256": record.sha256,
                "time": datetime.now(UTC).isoformat(timespec="seconds"),
                "attempts": record.attempts,
                "model": self.model_id,
            },
        )
        if record.staged_path is not None:
            discard_staged(record.staged_path)
        if _same_content(record.source, record.sha256):
            release_original(record.source)
        self.journal.advance(record.id, final, destination=placed)

    # -- after a crash -----------------------------------------------------------------------------------

    def recover(self) -> None:
        """Finish what a crash interrupted once the copy was placed; roll back what was not yet placed."""
        for record in self.journal.unfinished():
            staged = record.staged_path
            if record.step == Step.PLACED:
                self._log(self._finish_placed(record), record)
            elif record.step == Step.PLACING and staged is not None and staged.exists():
                linked = staged.stat().st_nlink > 1 and record.destination is not None
                placed = _sibling_by_inode(record.destination, staged.stat().st_ino) if linked else None
                if placed is None:
                    discard_staged(staged)
                elif record.outcome in (Step.QUARANTINED.value, Step.DUPLICATE.value):
                    self._finish_set_aside(record, placed, Step(record.outcome))
                    self._log(_recovered(record, placed), record)
                else:
                    self._log(
                        self._finish_placed(self.journal.advance(record.id, Step.PLACED, destination=placed)), record
                    )
            elif staged is not None:
                discard_staged(staged)
        for root in (self.settings.library, self.settings.unsure, self.settings.quarantine):
            shutil.rmtree(root / STAGING_DIR, ignore_errors=True)

    # -- without touching anything ----------------------------------------------------------------------

    def plan(self, path: Path) -> SortOutcome:
        """What `sort_file` would do, for --dry-run: analyses the file and moves nothing."""
        try:
            prediction = self.analyser.analyse(path)
        except (AudioError, AnalysisTimeout, AnalysisCrashed) as error:
            reason = error.reason if isinstance(error, AudioError) else str(error)
            return SortOutcome(Outcome.QUARANTINED, path, self.settings.quarantine, reason)
        decision = decide(prediction, self.threshold)
        if decision == UNSURE:
            return SortOutcome(Outcome.UNSURE, path, self.settings.unsure, prediction=prediction, decision=decision)
        destination = self.settings.library / decision
        return SortOutcome(Outcome.SORTED, path, destination, prediction=prediction, decision=decision)

    # -- the sorting log --------------------------------------------------------------------------------

    def _log(self, outcome: SortOutcome, record: FileRecord | None) -> None:
        if outcome.outcome == Outcome.SKIPPED:
            return
        fields: dict = {
            "source": str(outcome.source),
            "destination": str(outcome.destination) if outcome.destination else None,
            "sha256": outcome.sha256 or (record.sha256 if record else None),
            "seconds": round(outcome.seconds, 3),
            "model": self.model_id,
        }
        if outcome.prediction is not None:
            fields.update(
                genre=outcome.prediction.genre,
                confidence=round(outcome.prediction.confidence, 4),
                top=[[genre, round(probability, 4)] for genre, probability in outcome.prediction.top],
                decision=outcome.decision,
            )
        if outcome.reason:
            fields["reason"] = outcome.reason
        if record is not None and record.attempts:
            fields["attempts"] = record.attempts
        level = "warning" if outcome.outcome in (Outcome.QUARANTINED, Outcome.RETRY) else "info"
        getattr(self.log, level)(f"file.{outcome.outcome.value}", **fields)

    def close(self) -> None:
        self.analyser.close()
        self.journal.close()


def _same_content(path: Path, sha256: str) -> bool:
    """Release only the file we sorted: a new file dropped under the same name since then stays."""
    try:
        return sha256_file(path) == sha256
    except FileNotFoundError:
        return False


def _recovered(record: FileRecord, placed: Path | None = None) -> SortOutcome:
    """The outcome of a file whose last steps were finished after an interruption."""
    return SortOutcome(
        Outcome(record.outcome or Outcome.SORTED),
        record.source,
        placed or record.destination,
        "finished after an interruption",
        sha256=record.sha256,
    )


def open_sorter(settings: Settings, log) -> Sorter:
    """Load the model in the analysis workers and open the journal."""
    journal = Journal(settings.state_dir / "journal.sqlite3")
    try:
        analyser = AnalyserPool(settings.model_dir, settings.workers, settings.file_timeout_seconds)
    except BaseException:
        journal.close()
        raise
    return Sorter(settings, analyser, journal, log)
