"""What both entry points need before the first file: working folders, the state folder's lock, the model."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from structlog.typing import FilteringBoundLogger

from genresort.analysis.model import ModelError
from genresort.config import ConfigError, Settings
from genresort.library.lock import AlreadyRunning, InstanceLock
from genresort.service.pipeline import Sorter, open_sorter

FOLDER_KEYS = ("inbox", "library", "quarantine", "unsure", "state_dir")


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


def lock_state_folder(settings: Settings, log: FilteringBoundLogger) -> InstanceLock | None:
    """Checked folders and the state folder's lock, or None after logging why not (exit code EXIT_REFUSED)."""
    try:
        prepare_folders(settings)
        lock = InstanceLock(settings.state_dir)
        lock.acquire()
    except (FolderError, AlreadyRunning) as error:
        log.error("daemon.refused", reason=str(error))
        return None
    return lock


def start_sorter(settings: Settings, log: FilteringBoundLogger) -> Sorter | None:
    """The loaded sorter, or None after logging why the model or configuration was refused."""
    try:
        return open_sorter(settings, log)
    except (ModelError, ConfigError) as error:
        log.error("daemon.refused", reason=str(error))
        return None
