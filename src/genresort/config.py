"""All configuration in one place: defaults here, `config/genresort.toml` (or `--config FILE`) over them,
`GENRESORT_*` environment variables over both.

Relative paths in a configuration file are taken relative to that file's folder, so a config file and the
folders it names can move together.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from genresort.paths import DEFAULT_CONFIG_FILE, DEFAULT_MODEL_DIR, PROJECT_DIR

PATH_KEYS = ("inbox", "library", "quarantine", "unsure", "state_dir", "model_dir", "log_file")


class ConfigError(Exception):
    """The configuration is refused; the message names the key and the problem."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GENRESORT_", extra="forbid", validate_default=True)

    inbox: Path = Field(PROJECT_DIR / "inbox", description="folder watched for new music (and its subfolders)")
    library: Path = Field(PROJECT_DIR / "library", description="sorted files go to <library>/<Genre>/")
    quarantine: Path = Field(PROJECT_DIR / "quarantine", description="files that are not usable audio")
    unsure: Path = Field(PROJECT_DIR / "unsure", description="files below the confidence threshold")
    state_dir: Path = Field(PROJECT_DIR / "state", description="journal and lock file")
    model_dir: Path = Field(DEFAULT_MODEL_DIR, description="the trained model and its card")
    confidence_threshold: float | None = Field(
        None, ge=0.0, le=1.0, description="below this a file goes to `unsure`; unset: the model card's value"
    )
    existing_genre: Literal["keep", "overwrite", "add", "untouched"] = Field(
        "overwrite", description="a genre tag the file already has: keep, overwrite or add"
    )
    stability_seconds: float = Field(5.0, gt=0, description="size and mtime unchanged this long before a file is taken")
    rescan_seconds: float = Field(300.0, gt=0, description="full rescan of the inbox every so often")
    workers: int = Field(1, ge=1, le=64, description="files analysed in parallel (one process each)")
    polling: Literal["auto", "on", "off"] = Field(
        "auto", description="poll the inbox instead of inotify; auto: poll on nfs, cifs/smb and fuse"
    )
    max_file_mb: float = Field(2048.0, gt=0, description="larger files are quarantined unread")
    file_timeout_seconds: float = Field(120.0, gt=0, description="analysis of one file is stopped after this")
    retry_max_seconds: float = Field(900.0, gt=0, description="longest wait between retries of a transient error")
    log_file: Path | None = Field(None, description="also write the JSON lines log here")

    @model_validator(mode="after")
    def _inbox_apart(self) -> Settings:
        """A destination inside the inbox would be scanned again and sorted forever; the reverse likewise."""
        inbox = self.inbox.resolve()
        for name in ("library", "quarantine", "unsure"):
            folder = getattr(self, name).resolve()
            if folder.is_relative_to(inbox) or inbox.is_relative_to(folder):
                raise ValueError(f"inbox ({inbox}) and {name} ({folder}) must not contain each other")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The environment outranks the file's values, which arrive as init arguments."""
        return env_settings, init_settings


def read_config_file(path: Path) -> dict:
    try:
        values = tomllib.loads(path.read_text())
    except OSError as error:
        raise ConfigError(f"cannot read configuration file {path}: {error.strerror}") from error
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"configuration file {path} is not valid TOML: {error}") from error
    for key in PATH_KEYS:
        if isinstance(values.get(key), str):
            values[key] = (path.parent / Path(values[key]).expanduser()).resolve()
    return values


def load_settings(config_file: Path | None = None) -> Settings:
    """Settings from `config_file` (default: the project's config/genresort.toml, if present) and the environment."""
    if config_file is None:
        config_file = DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.exists() else None
    values = read_config_file(Path(config_file)) if config_file else {}
    try:
        return Settings(**values)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc']) or 'configuration'}: {problem['msg']}"
            for problem in error.errors()
        )
        source = f" (from {config_file} and GENRESORT_* variables)" if config_file else ""
        raise ConfigError(f"bad configuration{source}: {problems}") from error
