"""Where the project's own files are: the folder beside the sources (a checkout or an editable install)."""

from __future__ import annotations

from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[2]
DEFAULT_MODEL_DIR = PROJECT_DIR / "models"
DEFAULT_CONFIG_FILE = PROJECT_DIR / "config" / "genresort.toml"
