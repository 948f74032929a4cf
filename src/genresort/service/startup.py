"""What both entry points need before the first file: working folders, the state folder (locked, with a journal
that is intact and writable), the model."""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from structlog.typing import FilteringBoundLogger

from genresort.analysis.errors import ModelError
from genresort.config import ConfigError, Settings, check_genre_names
from genresort.digest import sha256_file
from genresort.library.journal import Journal, JournalDamaged, JournalError, move_aside
from genresort.library.layout import validate_template
from genresort.library.lock import AlreadyRunning, InstanceLock
from genresort.library.model_store import effective_model_dir
from genresort.library.tags import ExistingGenrePolicy
from genresort.logs import path_text
from genresort.paths import CARD_JSON
from genresort.service.pipeline import Sorter, SortPolicy
from genresort.service.workers import AnalyserPool, ModelSummary

if TYPE_CHECKING:
    from genresort.service.cluster import ClusterAnalysers

FOLDER_KEYS = ("inbox", "library", "quarantine", "unsure", "not_music", "state_dir")
JOURNAL_NAME = "journal.sqlite3"
#: What a fresh journal means for the files, said in the `journal.damaged` line.
FRESH_JOURNAL_MEANS = (
    "a fresh journal was started: files still in the inbox are sorted again and none is lost (an inbox original is"
    " removed only once its copy is placed), but the files sorted before are forgotten: one dropped again, or one"
    " whose sort was cut short, may be placed a second time instead of going to quarantine/duplicates"
)


class FolderError(Exception):
    """A configured folder cannot be created or written; the message names the key and the folder."""


def prepare_folders(settings: Settings) -> None:
    """Create the working folders and prove each is writable, so a bad mount fails at start, not on a file."""
    for key in FOLDER_KEYS:
        folder: Path = getattr(settings, key)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            descriptor, probe = tempfile.mkstemp(prefix=".genresort-probe-", dir=folder)
            os.close(descriptor)
            os.unlink(probe)
        except OSError as error:
            raise FolderError(f"{key} folder {folder} cannot be created or written: {error.strerror}") from error


@dataclass(frozen=True)
class State:
    """The state folder while it is ours: its lock, and the journal in it."""

    lock: InstanceLock
    journal: Journal

    def close(self) -> None:
        self.journal.close()
        self.lock.release()


def open_state(settings: Settings, log: FilteringBoundLogger) -> State | None:
    """Checked folders, the state folder's lock and its journal, proven intact and writable before READY; or None
    after logging why not, in words people can act on (exit code EXIT_REFUSED)."""
    try:
        prepare_folders(settings)
        lock = InstanceLock(settings.state_dir)
        lock.acquire()
    except (FolderError, AlreadyRunning) as error:
        log.error("daemon.refused", reason=str(error))
        return None
    except OSError as error:
        log.error("daemon.refused", reason=f"the state folder {settings.state_dir} cannot be locked: {error}")
        return None
    try:
        return State(lock, open_journal(settings.state_dir / JOURNAL_NAME, log))
    except JournalError as error:
        lock.release()
        log.error("daemon.refused", reason=str(error))
        return None
    except BaseException:
        lock.release()
        raise


def open_journal(path: Path, log: FilteringBoundLogger) -> Journal:
    """The journal; a damaged one is moved aside and a fresh one started, because a daemon that cannot start sorts
    nothing, and a fresh journal loses no file (see FRESH_JOURNAL_MEANS). Call only with the state folder locked."""
    try:
        return Journal(path)
    except JournalDamaged as damage:
        try:
            aside = move_aside(path)
        except OSError as error:
            raise JournalError(
                f"{damage}; it cannot be moved aside ({error}): move it away, then start again"
            ) from error
        log.error("journal.damaged", reason=str(damage), moved_to=path_text(aside), meaning=FRESH_JOURNAL_MEANS)
        return Journal(path)


def open_journal_unlocked(settings: Settings, log: FilteringBoundLogger) -> Journal | None:
    """The journal without the instance lock (a dry run, the report, the review page, a person's moves), which
    therefore leaves a damaged journal where it is; or None after logging why not (exit code EXIT_REFUSED)."""
    try:
        return Journal(settings.state_dir / JOURNAL_NAME)
    except JournalDamaged as damage:
        log.error(
            "daemon.refused",
            reason=f"{damage}; `genresort sort` or the daemon will move it aside and start a fresh journal",
        )
    except JournalError as error:
        log.error("daemon.refused", reason=str(error))
    return None


def instance_of(settings: Settings) -> str:
    """The name of this instance's staging folders: one per state folder, so recovery clears only its own."""
    return hashlib.sha256(os.fsencode(settings.state_dir.resolve())).hexdigest()[:12]


def sort_policy(settings: Settings, model: ModelSummary) -> SortPolicy:
    """The pipeline's policy for this model; ConfigError if genre_names renames a genre the model does not have, or
    path_template would not sort (its problem said in words)."""
    check_genre_names(settings.genre_names, model.genres)
    problem = validate_template(settings.path_template)
    if problem is not None:
        raise ConfigError(f"path_template {settings.path_template!r}: {problem}")
    thresholds = model.thresholds
    if settings.confidence_threshold is not None:  # the person's threshold decides, not the model's check
        thresholds = replace(thresholds, confidence=settings.confidence_threshold, placement=None)
    if settings.music_threshold is not None:
        thresholds = replace(thresholds, music=settings.music_threshold, music_sure=settings.music_threshold)
    return SortPolicy(
        library=settings.library,
        unsure=settings.unsure,
        not_music=settings.not_music,
        quarantine=settings.quarantine,
        existing_genre=ExistingGenrePolicy(settings.existing_genre),
        thresholds=thresholds,
        genre_names=settings.genre_names,
        max_file_bytes=int(settings.max_file_mb * 2**20),
        unknown_files=settings.unknown_files,
        path_template=settings.path_template,
        inbox=settings.inbox.absolute(),
        model_id=model.model_id,
        instance=instance_of(settings),
    )


@dataclass(frozen=True)
class ModelCard:
    """Which model a folder holds now: the folder its path leads to (through a symlink that `genresort retrain`
    swaps) and its card's sha256 (None when the card cannot be read). Workers load `folder`, never the link, so that
    a worker restarted after a timeout loads the model its pool was started with."""

    folder: Path
    sha256: str | None

    @classmethod
    def of(cls, model_dir: Path) -> ModelCard:
        try:
            folder = model_dir.resolve()
        except RuntimeError:  # a symlink loop: no model there
            return cls(model_dir.absolute(), None)
        try:
            return cls(folder, sha256_file(folder / CARD_JSON))
        except OSError:
            return cls(folder, None)


def start_analysers(settings: Settings, card: ModelCard, cluster: str | None) -> AnalyserPool | ClusterAnalysers:
    """The model's analysis workers: processes of ours, or with `cluster` (a Dask scheduler's address) that cluster's
    workers; ConfigError if the cluster cannot be used (the extra missing, unreachable, its workers blind to the
    inbox or library)."""
    if cluster is None:
        return AnalyserPool(card.folder, settings.workers, settings.file_timeout_seconds)
    try:
        from genresort.service.cluster import ClusterAnalysers  # distributed is heavy, and an extra
    except ModuleNotFoundError as error:
        if (error.name or "").partition(".")[0] not in ("distributed", "dask"):
            raise
        raise ConfigError(
            f"--cluster needs the cluster extra ({error.name} is missing): pip install 'genresort[cluster]'"
        ) from error
    return ClusterAnalysers(cluster, card.folder, settings.file_timeout_seconds, (settings.inbox, settings.library))


def load_model(
    settings: Settings, card: ModelCard, cluster: str | None = None
) -> tuple[SortPolicy, AnalyserPool | ClusterAnalysers]:
    """The model's analysis workers (on `cluster`, if given) and the sort policy for it; ModelError if it cannot be
    loaded, ConfigError if the configuration does not fit it (genre_names naming a genre it lacks) or the cluster
    cannot be used."""
    analysers = start_analysers(settings, card, cluster)
    try:
        return sort_policy(settings, analysers.summary), analysers
    except BaseException:
        analysers.close()
        raise


def start_sorter(
    settings: Settings,
    journal: Journal,
    log: FilteringBoundLogger,
    card: ModelCard | None = None,
    cluster: str | None = None,
) -> tuple[Sorter, AnalyserPool | ClusterAnalysers] | None:
    """The sorter and the analysis workers it uses (the caller closes them), with the model loaded (the one `card`
    names, else the one effective_model_dir leads to now), on `cluster` if given; or None after logging why the
    model, the configuration for it or the cluster was refused."""
    try:
        policy, analysers = load_model(settings, card or ModelCard.of(effective_model_dir(settings)), cluster)
    except (ModelError, ConfigError) as error:
        log.error("daemon.refused", reason=str(error))
        return None
    return Sorter(policy, analysers.analyse, journal, log), analysers
