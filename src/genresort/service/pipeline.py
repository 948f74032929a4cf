"""One path for every file: open it, stage a copy (hashing it as it is copied), claim it in the journal, analyse
the staged copy, decide, tag the copy, place it durably, and release the original only if it is still the file
that was read.

The file is opened once (never following a link, never blocking on a FIFO) and everything after works from that
open file or from the staged copy, so a name swapped or rewritten meanwhile cannot make us place one content
and release another. Each step is written to the journal before the next begins, so that recovery can finish or
roll back whatever a crash interrupted: the inbox original is removed only once its copy is durable in its final
place, and a file is never placed twice.
"""

from __future__ import annotations

import copy
import errno
import hashlib
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO

from genresort.analysis.decision import (
    AlbumVerdict,
    Decision,
    DecisionKind,
    Prediction,
    Thresholds,
    decide,
    decision_fields,
    with_album,
)
from genresort.analysis.errors import NOT_AUDIO, AudioError
from genresort.analysis.naming import named
from genresort.library.arrival import Arrival, CannotRebuild, read_arrival, read_written
from genresort.library.formats import AUDIO_EXTENSIONS, detect_format, head_of
from genresort.library.journal import FileRecord, Journal, Step
from genresort.library.layout import DEFAULT_TEMPLATE, read_track_tags, render_path
from genresort.library.placement import (
    DuplicateFile,
    discard_staged,
    place_file,
    release_original,
    restage,
    stage_copy,
    staging_folder,
    write_reason,
)
from genresort.library.tags import ExistingGenrePolicy, GenreTags, TagError, write_genre_tags
from genresort.logs import path_text
from genresort.service.albums import Albums, album_root, prune_emptied
from genresort.service.workers import AnalysisCrashed, AnalysisFailed, AnalysisTimeout, opened_file_path

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
#: Why an inbox original cannot be removed although its copy is placed: it stays, and is not sorted again.
UNREMOVABLE_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})
#: A file whose analysis timed out, crashed or failed this many times is quarantined.
ANALYSIS_ATTEMPTS = 2
#: unknown_files' default: a file that is no audio stays in the inbox (said once per run).
KEEP_UNKNOWN = "keep"

Analyse = Callable[[Path], Prediction]


class Outcome(StrEnum):
    SORTED = "sorted"
    UNSURE = "unsure"
    NOT_MUSIC = "not_music"
    DUPLICATE = "duplicate"
    QUARANTINED = "quarantined"
    RETRY = "retry"
    CHANGED = "changed"  # written to or replaced while being sorted: nothing placed; back to the stability gate
    SKIPPED = "skipped"


#: Outcomes after which the file has left the inbox (unless its original could not be removed): its album folder
#: may be empty now.
PLACED_OR_SET_ASIDE = frozenset(
    {Outcome.SORTED, Outcome.UNSURE, Outcome.NOT_MUSIC, Outcome.DUPLICATE, Outcome.QUARANTINED}
)


@dataclass(frozen=True)
class SortOutcome:
    outcome: Outcome
    source: Path
    destination: Path | None = None
    reason: str | None = None
    seconds: float = 0.0
    sha256: str | None = None
    decision: Decision | None = None
    attempts: int = 0


@dataclass(frozen=True)
class SortPolicy:
    """Everything the pipeline needs to know of the configuration and the model, and nothing else."""

    library: Path
    unsure: Path
    not_music: Path
    quarantine: Path
    existing_genre: ExistingGenrePolicy
    thresholds: Thresholds
    max_file_bytes: int
    model_id: str
    instance: str  # names this instance's staging folders, so recovery clears its own only
    analysis_attempts: int = ANALYSIS_ATTEMPTS
    genre_names: Mapping[str, str] = field(default_factory=dict)  # {model genre: folder and tag name}
    unknown_files: str = KEEP_UNKNOWN  # or "quarantine": a file that is no audio goes the way of unreadable audio
    path_template: str = DEFAULT_TEMPLATE  # where a sorted file goes below the library
    inbox: Path | None = None  # set: the files of one inbox subfolder are an album, decided together

    def decision(self, prediction: Prediction) -> Decision:
        """Decided in the model's own genres, which its thresholds were calibrated on, then named as configured."""
        return named(decide(prediction, self.thresholds), self.genre_names)


class SourceGone(Exception):
    """The file vanished before it could be opened: someone else took it; nothing to report."""


class NotARegularFile(Exception):
    """A symbolic link, FIFO, socket or device under a music file's name: never read, never moved."""


class SourceChanged(Exception):
    """The file was written to, replaced or renamed while it was being sorted: tried again once it is stable."""


@dataclass(frozen=True)
class SourceFile:
    """The inbox file, opened once; `status` is what it was when opened."""

    path: Path
    stream: BinaryIO
    status: os.stat_result

    def unchanged(self) -> bool:
        """Still the file we read under its name: the same inode, size and mtime. A file appended to, rewritten
        or replaced by another under the same name is not, and must not be released."""
        try:
            now = os.stat(self.path, follow_symlinks=False)
        except FileNotFoundError:
            return False
        return _identity(now) == _identity(self.status)

    def read_whole(self) -> bool:
        """The open file has not grown or been rewritten since it was opened."""
        return _identity(os.fstat(self.stream.fileno())) == _identity(self.status)


def _identity(status: os.stat_result) -> tuple[int, int, int, int]:
    return status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns


@contextmanager
def open_source(path: Path) -> Iterator[SourceFile]:
    """Open an inbox file without following a link and without blocking on a FIFO, and check that what was
    opened is a regular file."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError as error:
        raise SourceGone(str(path)) from error
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.ENXIO):  # a symbolic link; a socket
            raise NotARegularFile("a symbolic link or socket, not a regular file: it is left alone") from error
        raise
    with os.fdopen(descriptor, "rb") as stream:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise NotARegularFile(f"not a regular file ({stat.filemode(status.st_mode)}): it is left alone")
        yield SourceFile(path, stream, status)


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


def sibling_by_inode(folder: Path, inode: int) -> Path | None:
    """The name under which `inode` was linked into `folder`, if it was."""
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_file(follow_symlinks=False) and entry.inode() == inode:
                    return Path(entry.path)
    except FileNotFoundError:
        pass
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

    def __init__(self, policy: SortPolicy, analyse: Analyse, journal: Journal, log) -> None:
        self.policy = policy
        self.analyse = analyse
        self.journal = journal
        self.log = log
        self._content_locks = KeyedLocks()
        self._left_in_place: set[tuple[Path, int, int]] = set()  # oversize files that could not be moved aside
        self.albums = albums_for(policy, analyse, journal)

    def with_model(self, policy: SortPolicy, analyse: Analyse) -> Sorter:
        """This sorter for another model: the same journal, log and content locks (two files of one content are
        never sorted at once, across the change of model too), its albums heard anew by the new model."""
        sorter = copy.copy(self)
        sorter.policy, sorter.analyse, sorter.albums = policy, analyse, albums_for(policy, analyse, self.journal)
        return sorter

    # -- the one path -------------------------------------------------------------------------------------

    def sort_file(self, path: Path) -> SortOutcome:
        started = time.monotonic()
        try:
            with open_source(path) as source:
                outcome = self._sort(source)
        except SourceGone:
            outcome = SortOutcome(Outcome.SKIPPED, path)
        except NotARegularFile as error:
            outcome = SortOutcome(Outcome.SKIPPED, path, reason=str(error))
        except SourceChanged as error:
            outcome = SortOutcome(Outcome.CHANGED, path, reason=str(error))
        except OSError as error:  # not the file's fault: a full disk, a permission, a folder that moved
            outcome = SortOutcome(Outcome.RETRY, path, reason=f"{type(error).__name__}: {error}")
        outcome = replace(outcome, seconds=time.monotonic() - started)
        self.log_outcome(outcome)
        if self.albums is not None and outcome.outcome in PLACED_OR_SET_ASIDE:
            root = album_root(self.albums.inbox, path)
            if root is not None:
                prune_emptied(path.parent, root)
        return outcome

    def _sort(self, source: SourceFile) -> SortOutcome:
        size, mtime_ns = source.status.st_size, source.status.st_mtime_ns
        if self.journal.find_kept_original(source.path, size, mtime_ns) is not None:
            return SortOutcome(Outcome.SKIPPED, source.path)  # sorted before; its original could not be removed
        if size > self.policy.max_file_bytes:
            return self._refuse_oversize(source)
        if self.policy.unknown_files == KEEP_UNKNOWN and (reason := unknown_content(source)) is not None:
            return self._leave_in_place(source, f'{reason}; it stays in the inbox (unknown_files = "{KEEP_UNKNOWN}")')
        staged = self._stage(source, self.policy.library)
        try:
            record = self.journal.claim(source.path, staged.sha256, size, mtime_ns)
        except BaseException:
            discard_staged(staged.path)
            raise
        # Files with the same content one at a time: two workers could otherwise both pass the duplicate check
        # before either has finished, and place the same content twice under different names.
        with self._content_locks.hold(record.sha256):
            try:
                return self._sort_claimed(source, record, staged.path)
            except BaseException:
                if settle(self.journal, self.journal.get(record.id), self.policy.model_id) is None:
                    discard_staged(staged.path)
                raise

    def _stage(self, source: SourceFile, root: Path):
        """A durable copy of the whole file as it was opened; SourceChanged if it changed while being copied."""
        staged = stage_copy(source.stream, staging_folder(root, self.policy.instance), source.path.suffix)
        if staged.size != source.status.st_size or not source.read_whole():
            discard_staged(staged.path)
            raise SourceChanged("the file changed while it was read; it is sorted once it is stable")
        return staged

    def _sort_claimed(self, source: SourceFile, record: FileRecord, staged: Path) -> SortOutcome:
        if record.step in (Step.PLACING, Step.PLACED):  # an earlier try stopped after its copy may have been placed
            settled = settle(self.journal, record, self.policy.model_id)
            if settled is not None:
                discard_staged(staged)
                return self._finish(source, settled, Outcome(settled.outcome), None, None)
        record = self.journal.advance(record.id, Step.STAGED, staged_path=staged)
        earlier = self.journal.find_finished_by_sha256(record.sha256)
        if earlier is not None and earlier.destination is not None and earlier.destination.exists():
            return self._duplicate(source, record, staged, earlier.destination)
        try:
            prediction, album = self._hear(source, staged)
        except AudioError as error:
            return self._set_aside(source, record, staged, Step.QUARANTINED, error.reason, analysed=True)
        except (AnalysisTimeout, AnalysisCrashed, AnalysisFailed) as error:
            record = self.journal.record_failure(record.id, str(error))
            if record.attempts >= self.policy.analysis_attempts:
                return self._set_aside(
                    source, record, staged, Step.QUARANTINED, f"{error} ({record.attempts} attempts)"
                )
            discard_staged(staged)
            return SortOutcome(Outcome.RETRY, source.path, reason=str(error), sha256=record.sha256)
        return self._place(source, record, staged, self._decide(prediction, album))

    def _decide(self, prediction: Prediction, album: AlbumVerdict | None) -> Decision:
        decision = self.policy.decision(prediction)
        return decision if album is None else with_album(decision, album)

    def _hear(self, source: SourceFile, staged: Path) -> tuple[Prediction, AlbumVerdict | None]:
        """The file's prediction, and its album's verdict for a track of an album (its folder heard as a whole, the
        first time one of its tracks comes: this track's prediction is then already made)."""
        root = None if self.albums is None else album_root(self.albums.inbox, source.path)
        if root is None:
            return self.analyse(staged), None
        track = (source.path, source.status.st_size, source.status.st_mtime_ns)
        prediction, verdict = self.albums.hear(root, track)
        return prediction or self.analyse(staged), verdict

    def _place(self, source: SourceFile, record: FileRecord, staged: Path, decision: Decision) -> SortOutcome:
        root, folder, outcome = self._destination(decision)
        # Only a file sorted into a genre gets the genre field a player shows; the others keep theirs as it was.
        tag_policy = self.policy.existing_genre if outcome is Outcome.SORTED else ExistingGenrePolicy.UNTOUCHED
        staged = self._restage(record, staged, root)
        folder, name = self._place_at(decision, folder, staged, source.path)
        arrival = arrival_of(staged)
        reason = None
        try:
            write_genre_tags(staged, self._genre_tags(decision), tag_policy)
        except TagError as error:  # the sound is fine; place an untouched copy rather than hold the file back
            if (cause := _transient_cause(error)) is not None:  # e.g. the tag did not fit on a full disk: retry
                raise OSError(cause.errno, cause.strerror, str(staged)) from error
            staged = self._fresh_copy(source, record, staged, root)
            reason = f"placed without genre tags: {error}"
        if not source.unchanged():
            raise SourceChanged("the file changed while it was sorted; it is sorted again once it is stable")
        if arrival is not None:  # placed by a link, the staged inode is the placed file: same size, mtime, tags
            self.journal.keep_arrival(record.id, arrival, read_written(staged))
        self.journal.advance(record.id, Step.PLACING, destination=folder, outcome=outcome.value)
        try:
            final = place_file(staged, folder, name)
        except DuplicateFile as duplicate:  # the same content already sits under that name
            staged = self._fresh_copy(source, record, staged, self.policy.quarantine)
            return self._duplicate(source, record, staged, duplicate.existing)
        record = self.journal.advance(record.id, Step.PLACED, destination=final)
        return self._finish(source, record, outcome, decision, reason)

    def _restage(self, record: FileRecord, staged: Path, root: Path) -> Path:
        """The staged copy on `root`'s file system (where it can be linked into place), journaled."""
        moved = restage(staged, root, self.policy.instance)
        if moved != staged:
            self.journal.advance(record.id, Step.STAGED, staged_path=moved)
        return moved

    def _fresh_copy(self, source: SourceFile, record: FileRecord, staged: Path, root: Path) -> Path:
        """An untouched copy in place of a staged copy that was (partly) tagged."""
        discard_staged(staged)
        fresh = self._stage(source, root)
        if fresh.sha256 != record.sha256:
            discard_staged(fresh.path)
            raise SourceChanged("the file changed while it was sorted; it is sorted again once it is stable")
        self.journal.advance(record.id, Step.STAGED, staged_path=fresh.path)
        return fresh.path

    def _destination(self, decision: Decision) -> tuple[Path, Path, Outcome]:
        """(root of the staging folder, folder to place in, outcome) for a decision."""
        if decision.kind is DecisionKind.GENRE:
            return self.policy.library, self.policy.library / decision.label, Outcome.SORTED
        if decision.kind is DecisionKind.NOT_MUSIC:
            return self.policy.not_music, self.policy.not_music, Outcome.NOT_MUSIC
        return self.policy.unsure, self.policy.unsure, Outcome.UNSURE  # a person decides, helped by our top 3

    def _place_at(self, decision: Decision, folder: Path, staged: Path, source: Path) -> tuple[Path, str]:
        """The folder and name to place under: the file's own name in the decision's folder, below the folders it
        arrived in for a track of an album; for a genre with a path_template of the person's, the path it gives
        from the file's tags as they arrived."""
        if decision.kind is not DecisionKind.GENRE or self.policy.path_template == DEFAULT_TEMPLATE:
            inbox = self.policy.inbox
            if inbox is None or album_root(inbox, source) is None:
                return folder, source.name
            return folder / source.parent.relative_to(inbox), source.name
        wanted = render_path(self.policy.path_template, decision.label, read_track_tags(staged), source.name)
        return self.policy.library / wanted.parent, wanted.name

    def _genre_tags(self, decision: Decision) -> GenreTags:
        prediction = decision.prediction
        return GenreTags(
            genre=decision.label if decision.kind is DecisionKind.GENRE else prediction.genre,
            confidence=prediction.confidence,
            top=prediction.top,
            model_id=prediction.model_id,
            decision=decision.label,
            music_probability=prediction.music_probability,
        )

    def _finish(
        self, source: SourceFile, record: FileRecord, outcome: Outcome, decision: Decision | None, reason: str | None
    ) -> SortOutcome:
        """The copy is durable in place: release the original if it is still the file we read, close the record."""
        kept = finish(self.journal, record, source.unchanged())
        return SortOutcome(
            outcome,
            source.path,
            record.destination,
            _join(reason, kept),
            sha256=record.sha256,
            decision=decision,
            attempts=record.attempts,
        )

    # -- set aside: quarantine and duplicates --------------------------------------------------------------

    def _duplicate(self, source: SourceFile, record: FileRecord, staged: Path, existing: Path) -> SortOutcome:
        reason = f"same content (sha256) as {path_text(existing)}"
        return self._set_aside(source, record, staged, Step.DUPLICATE, reason)

    def _set_aside(
        self, source: SourceFile, record: FileRecord, staged: Path, final: Step, reason: str, analysed: bool = False
    ) -> SortOutcome:
        """Move the untouched copy into quarantine (or its duplicates folder) with a `<name>.reason.json`;
        `analysed`: this reason is an analysis's verdict, counted among the file's attempts."""
        folder = self.policy.quarantine / DUPLICATES_FOLDER if final == Step.DUPLICATE else self.policy.quarantine
        record = self.journal.record_failure(record.id, reason, count_attempt=analysed)
        staged = self._restage(record, staged, self.policy.quarantine)
        record = self.journal.advance(record.id, Step.PLACING, destination=folder, outcome=final.value)
        placed = place_file(staged, folder, source.path.name, keep_duplicates=True)
        write_set_aside_reason(record, placed, self.policy.model_id)
        kept = finish(self.journal, replace(record, destination=placed), source.unchanged())
        outcome = Outcome.QUARANTINED if final == Step.QUARANTINED else Outcome.DUPLICATE
        return SortOutcome(outcome, source.path, placed, _join(reason, kept), sha256=record.sha256)

    def _refuse_oversize(self, source: SourceFile) -> SortOutcome:
        """Too large to read: moved into quarantine by a link and an unlink (no byte is read or copied), or left
        where it is when the quarantine is on another file system."""
        reason = self._oversize(source.status.st_size) + "; it was not read"
        folder = self.policy.quarantine
        placed = sibling_by_inode(folder, source.status.st_ino)  # moved there before a crash?
        if placed is None:
            try:
                placed = place_file(source.path, folder, source.path.name, keep_duplicates=True)
            except OSError as error:
                if error.errno != errno.EXDEV:
                    raise
                return self._leave_in_place(
                    source, f"{reason}; it stays in the inbox (the quarantine is on another disk)"
                )
            if os.stat(placed, follow_symlinks=False).st_ino != source.status.st_ino:  # swapped under us
                release_original(placed)
                raise SourceChanged("the file was replaced while it was moved aside; tried again later")
        write_reason(placed, {"source": path_text(source.path), "error": reason, "time": _now(), "sha256": None})
        if source.unchanged():
            try:
                release_original(source.path)
            except OSError as error:
                if error.errno not in UNREMOVABLE_ERRNOS:
                    raise
                return self._leave_in_place(source, f"{reason}; {_unremovable(error)}")
        return SortOutcome(Outcome.QUARANTINED, source.path, placed, reason)

    def _oversize(self, size: int) -> str:
        return f"the file is {size / 2**20:.0f} MB, above the limit of {self.policy.max_file_bytes / 2**20:.0f} MB"

    def _leave_in_place(self, source: SourceFile, reason: str) -> SortOutcome:
        """Said once per run: the same file found again by a rescan is passed over quietly."""
        key = (source.path, source.status.st_size, source.status.st_mtime_ns)
        if key in self._left_in_place:
            return SortOutcome(Outcome.SKIPPED, source.path)
        self._left_in_place.add(key)
        return SortOutcome(Outcome.SKIPPED, source.path, reason=reason)

    # -- without touching anything ----------------------------------------------------------------------

    def plan(self, path: Path) -> SortOutcome:
        """What `sort_file` would do, for --dry-run: reads and analyses the file, writes nothing."""
        try:
            with open_source(path) as source:
                return self._plan(source)
        except SourceGone:
            return SortOutcome(Outcome.SKIPPED, path, reason="the file is gone")
        except NotARegularFile as error:
            return SortOutcome(Outcome.SKIPPED, path, reason=str(error))

    def _plan(self, source: SourceFile) -> SortOutcome:
        size, mtime_ns = source.status.st_size, source.status.st_mtime_ns
        if self.journal.find_kept_original(source.path, size, mtime_ns) is not None:
            return SortOutcome(Outcome.SKIPPED, source.path, reason="sorted before; its original could not be removed")
        if size > self.policy.max_file_bytes:
            return SortOutcome(Outcome.QUARANTINED, source.path, self.policy.quarantine, self._oversize(size))
        sha256 = hashlib.file_digest(source.stream, "sha256").hexdigest()
        earlier = self.journal.find_finished_by_sha256(sha256)
        if earlier is not None and earlier.destination is not None and earlier.destination.exists():
            reason = f"same content (sha256) as {path_text(earlier.destination)}"
            folder = self.policy.quarantine / DUPLICATES_FOLDER
            return SortOutcome(Outcome.DUPLICATE, source.path, folder, reason, sha256=sha256)
        opened = opened_file_path(source.stream.fileno())  # the very file we opened, whatever its name
        try:
            decision = self._decide(*self._hear(source, opened))
        except AudioError as error:
            return SortOutcome(Outcome.QUARANTINED, source.path, self.policy.quarantine, error.reason, sha256=sha256)
        except (AnalysisTimeout, AnalysisCrashed, AnalysisFailed) as error:
            return SortOutcome(Outcome.RETRY, source.path, reason=str(error), sha256=sha256)
        _, folder, outcome = self._destination(decision)
        folder, _ = self._place_at(decision, folder, opened, source.path)
        return SortOutcome(outcome, source.path, folder, sha256=sha256, decision=decision)

    # -- the sorting log --------------------------------------------------------------------------------

    def outcome_fields(self, outcome: SortOutcome) -> dict[str, object]:
        """One outcome as JSON fields: the sorting log's line, and what `sort --dry-run` prints."""
        fields: dict[str, object] = {
            "source": path_text(outcome.source),
            "destination": path_text(outcome.destination) if outcome.destination else None,
            "sha256": outcome.sha256,
            "seconds": round(outcome.seconds, 3),
            "model": self.policy.model_id,
        }
        if outcome.decision is not None:
            fields.update(decision_fields(outcome.decision))
        if outcome.reason:
            fields["reason"] = outcome.reason
        if outcome.attempts:
            fields["attempts"] = outcome.attempts
        return fields

    def log_outcome(self, outcome: SortOutcome) -> None:
        """One line per outcome; a file that vanished, or is passed over again, says nothing."""
        if outcome.outcome == Outcome.SKIPPED and not outcome.reason:
            return
        warnings = (Outcome.QUARANTINED, Outcome.RETRY, Outcome.CHANGED, Outcome.SKIPPED)
        level = "warning" if outcome.outcome in warnings else "info"
        getattr(self.log, level)(f"file.{outcome.outcome.value}", **self.outcome_fields(outcome))


def albums_for(policy: SortPolicy, analyse: Analyse, journal: Journal) -> Albums | None:
    """The albums of the policy's inbox (None: no inbox, no albums: `sort` on files named one by one elsewhere)."""
    if policy.inbox is None:
        return None
    return Albums(policy.inbox, policy.library, analyse, policy.decision, journal)


def unknown_content(source: SourceFile) -> str | None:
    """Why a file is not taken for audio: its content is none of the formats genresort reads, and its name claims
    none either (a file named like audio that cannot be read is quarantined with the decoder's reason instead)."""
    if source.path.suffix.lower() in AUDIO_EXTENSIONS or detect_format(head_of(source.stream)) is not None:
        return None
    return NOT_AUDIO


def arrival_of(staged: Path) -> Arrival | None:
    """What to keep of the untouched staged copy for an undo; None for a file it cannot be rebuilt from (an undo
    then says why)."""
    try:
        return read_arrival(staged)
    except CannotRebuild:
        return None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _join(*reasons: str | None) -> str | None:
    return "; ".join(reason for reason in reasons if reason) or None


def _unremovable(error: OSError) -> str:
    return (
        f"the inbox original could not be removed ({error.strerror}): it stays there and is not sorted again; "
        "give genresort write access to its folder, or remove it yourself"
    )


def write_set_aside_reason(record: FileRecord, placed: Path, model_id: str) -> None:
    write_reason(
        placed,
        {
            "source": path_text(record.source),
            "error": record.last_error,
            "sha256": record.sha256,
            "time": _now(),
            "attempts": record.attempts,
            "model": model_id,
        },
    )


SET_ASIDE = frozenset({Step.QUARANTINED.value, Step.DUPLICATE.value})


def settle(journal: Journal, record: FileRecord, model_id: str) -> FileRecord | None:
    """Where a record that was interrupted stands. When its copy is in place, it is returned ready for `finish`:
    moved on to PLACED, or, for a set-aside copy, with its reason written. When not, its staged copy is removed
    and None is returned: the file is still in the inbox and is sorted again."""
    if record.step == Step.PLACING and record.staged_path is not None and record.destination is not None:
        placed = linked_copy(record.staged_path, record.destination)
        if placed is not None:
            if record.outcome in SET_ASIDE:
                write_set_aside_reason(record, placed, model_id)
                return replace(record, destination=placed)
            return journal.advance(record.id, Step.PLACED, destination=placed)
    if record.step == Step.PLACED:
        return record
    if record.staged_path is not None:
        discard_staged(record.staged_path)
    return None


def finish(journal: Journal, record: FileRecord, original_is_ours: bool) -> str | None:
    """Drop the staged name, release the inbox original if it is still the file we placed, and close the record;
    a reason when the original had to stay."""
    final = Step(record.outcome) if record.outcome in SET_ASIDE else Step.DONE
    if record.staged_path is not None:
        discard_staged(record.staged_path)
    if original_is_ours:
        try:
            release_original(record.source)
        except OSError as error:
            if error.errno not in UNREMOVABLE_ERRNOS:
                raise
            journal.advance(record.id, Step.ORIGINAL_KEPT, destination=record.destination)
            return _unremovable(error)
    journal.advance(record.id, final, destination=record.destination)
    return None


def linked_copy(staged: Path, folder: Path) -> Path | None:
    """Where the staged copy was linked into `folder`, found by its inode, if it was."""
    try:
        status = os.stat(staged)
    except FileNotFoundError:
        return None
    if status.st_nlink < 2:
        return None
    return sibling_by_inode(folder, status.st_ino)
