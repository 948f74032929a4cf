"""Which model genresort uses, and how a retrained one is put in place.

The shipped model lives inside the installed package, which is read-only under systemd, so `genresort retrain` keeps
its models in the state folder: each in a folder of its own, `<state_dir>/models/<model id>/`, written whole and
fsynced before a symbolic link `<state_dir>/model` is renamed over to point at it. A reader therefore finds the
previous model or the new one, never a mix, and a crash at any moment leaves one of them in place.

The model used is the retrained one, `<state_dir>/model`, when it exists and was retrained from the model
`model_dir` names (the shipped one unless the person set another) as that model is now (its card, which names every
file of it by sha256, is unchanged); otherwise the model in `model_dir`. So a model retrained from the shipped one
gives way to a new shipped model after an upgrade (`genresort retrain` learns the person's examples again, from the
new one), and a person who set `model_dir` to a model of their own gets that one retrained.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from genresort.digest import sha256_file
from genresort.library.placement import fsync_file, fsync_folder
from genresort.paths import CARD_JSON

if TYPE_CHECKING:
    from genresort.config import Settings

#: In the state folder: the link to the retrained model in use, and the folder of retrained models.
CURRENT_MODEL = "model"
RETRAINED_MODELS = "models"


def card_sha256(model_dir: Path) -> str | None:
    """The sha256 of a model folder's card, which names every file of the model by its sha256: the model's identity.
    None if there is no card to read."""
    try:
        return sha256_file(model_dir / CARD_JSON)
    except OSError:
        return None


def base_card_sha256(model_dir: Path) -> str | None:
    """The card sha256 of the model a retrained model was retrained from; None if it is not a retrained model (or
    its card cannot be read)."""
    try:
        return str(json.loads((model_dir / CARD_JSON).read_text())["base_model"]["card_sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def effective_model_dir(settings: Settings) -> Path:
    """The folder of the model to load: `<state_dir>/model` resolved (so that one load reads one model's files, and
    a newly installed model is a new path) when it was retrained from the model in `model_dir` as that model is now,
    else `model_dir`."""
    current = settings.state_dir / CURRENT_MODEL
    base = base_card_sha256(current)
    if base is not None and base == card_sha256(settings.model_dir):
        return current.resolve()
    return settings.model_dir


def fsync_tree(folder: Path) -> None:
    """fsync every file and folder below `folder`, and `folder` itself, deepest first."""
    for parent, folders, files in os.walk(folder, topdown=False):
        for name in files:
            fsync_file(Path(parent) / name)
        for name in folders:
            fsync_folder(Path(parent) / name)
    fsync_folder(folder)


def new_model_folder(state_dir: Path, model_id: str) -> Path:
    """A new empty folder for a retrained model, `<state_dir>/models/<model_id>` (or `<model_id>-2`, ... if that is
    taken: its name is the model's id), readable by all and writable by its owner alone (GenreModel refuses a model
    others could change)."""
    models = state_dir / RETRAINED_MODELS
    models.mkdir(parents=True, exist_ok=True)
    models.chmod(0o755)
    number = 1
    while True:
        folder = models / (model_id if number == 1 else f"{model_id}-{number}")
        try:
            folder.mkdir()
        except FileExistsError:
            number += 1
            continue
        folder.chmod(0o755)  # whatever the umask
        return folder


def install_model(folder: Path, state_dir: Path) -> Path | None:
    """Make the model written in `folder` (a folder of `<state_dir>/models`) the one in use: fsync it, rename a new
    link over `<state_dir>/model`, fsync the state folder; then remove the retrained models older than the one it
    replaces (kept, to go back to by hand). Returns the folder of the model it replaced, if any. OSError if the
    state folder cannot take the link (`<state_dir>/model` a real folder, say)."""
    fsync_tree(folder)
    fsync_folder(folder.parent)
    link = state_dir / CURRENT_MODEL
    previous = link.resolve() if link.is_symlink() else None
    temporary = state_dir / f".{CURRENT_MODEL}.{os.getpid()}"
    temporary.unlink(missing_ok=True)
    os.symlink(os.path.relpath(folder, state_dir), temporary)
    try:
        os.replace(temporary, link)
    except OSError:
        temporary.unlink()
        raise
    fsync_folder(state_dir)
    for other in folder.parent.iterdir():
        if other not in (folder, previous) and other.is_dir() and not other.is_symlink():
            shutil.rmtree(other, ignore_errors=True)
    return previous
