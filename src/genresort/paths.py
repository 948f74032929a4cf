"""Where genresort's own files are, in a checkout and in an installed copy.

In a checkout (or an editable install) everything sits beside the sources: `models/`, `config/genresort.toml` and
the default working folders (`inbox/`, `library/`, ...). An installed copy (`pip install .`) has no project folder:
its model travels inside the package (`src/genresort/models` is a link to `models/`, which the wheel stores as a
copy), its configuration file is `$XDG_CONFIG_HOME/genresort/genresort.toml` and its default working folders are in
`$XDG_DATA_HOME/genresort` (`~/.config/...` and `~/.local/share/...` by default): the same folders whatever directory
it is started from, and never a mess of new folders in that directory.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
CHECKOUT_DIR = PACKAGE_DIR.parents[1]
IS_CHECKOUT = PACKAGE_DIR.parent.name == "src" and (CHECKOUT_DIR / "pyproject.toml").is_file()


def xdg_folder(variable: str, fallback: str, environ: Mapping[str, str] = os.environ) -> Path:
    """An XDG base folder: the variable if it holds an absolute path (the specification ignores the rest)."""
    value = environ.get(variable, "")
    return Path(value) if os.path.isabs(value) else Path.home() / fallback


DEFAULT_MODEL_DIR = (PACKAGE_DIR / "models").resolve()
CARD_JSON = "model_card.json"  # in a model folder: the model card, naming (and hashing) every file of the model
if IS_CHECKOUT:
    DEFAULT_DATA_DIR = CHECKOUT_DIR
    DEFAULT_CONFIG_FILE = CHECKOUT_DIR / "config" / "genresort.toml"
else:
    DEFAULT_DATA_DIR = xdg_folder("XDG_DATA_HOME", ".local/share") / "genresort"
    DEFAULT_CONFIG_FILE = xdg_folder("XDG_CONFIG_HOME", ".config") / "genresort" / "genresort.toml"
