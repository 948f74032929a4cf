"""All configuration in one place. Each value comes from the first of: arguments to `Settings(...)`,
`GENRESORT_<KEY>` environment variables, the configuration file (`config/genresort.toml` or `--config FILE`,
read by `load_settings`), the defaults here.

Relative paths in a configuration file are taken relative to that file's folder, so a config file and the
folders it names can move together. A key or variable that names no setting, a value out of range or not a finite
number stops the start with a message naming it: a typo must never leave the daemon sorting the wrong folder.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import os
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from genresort import paths
from genresort.machine import auto_workers, memory_limit, usable_cores
from genresort.paths import DEFAULT_CONFIG_FILE, DEFAULT_MODEL_DIR

ENV_PREFIX = "GENRESORT_"
PATH_KEYS = (
    "inbox",
    "library",
    "quarantine",
    "unsure",
    "not_music",
    "state_dir",
    "model_dir",
    "log_file",
    "undo_folder",
)
#: Where `genresort web` serves the review page when web_listen is not set.
DEFAULT_WEB_LISTEN = "127.0.0.1:8765"
HOUR = 3600.0
DAY = 24 * HOUR
#: The most analysis workers (processes of their own, each with the model): also what `workers = "auto"` gives at most.
MAX_WORKERS = 64
#: The decisions that are not a genre (decision.UNSURE, decision.NOT_MUSIC): a genre named so would read as one.
RESERVED_NAMES = ("unsure", "not-music")


def data_folder(name: str) -> Path:
    """A default working folder, looked up when settings are made (not when this module is imported), so that a
    test can move every default away from the real folders."""
    return paths.DEFAULT_DATA_DIR / name


class ConfigError(Exception):
    """The configuration is refused; the message names the key and the problem."""


class Settings(BaseSettings):
    # allow_inf_nan=False: `inf` seconds overflow every timer (or mean "never"), and NaN compares false to all.
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", validate_default=True, allow_inf_nan=False)

    inbox: Path = Field(
        default_factory=lambda: data_folder("inbox"), description="folder watched for new music (and its subfolders)"
    )
    library: Path = Field(
        default_factory=lambda: data_folder("library"), description="sorted files go to <library>/<Genre>/"
    )
    quarantine: Path = Field(
        default_factory=lambda: data_folder("quarantine"), description="files that are not usable audio"
    )
    unsure: Path = Field(
        default_factory=lambda: data_folder("unsure"), description="files below the confidence threshold"
    )
    not_music: Path = Field(
        default_factory=lambda: data_folder("not-music"),
        description="speech, noise and other sounds that are not music",
    )
    state_dir: Path = Field(
        default_factory=lambda: data_folder("state"), description="the journal; the folder itself is locked"
    )
    model_dir: Path = Field(DEFAULT_MODEL_DIR, description="the trained model and its card")
    confidence_threshold: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="set: the top genre's probability alone decides, below this a file goes to `unsure`; unset: the "
        "model's placement check (or its card's confidence threshold)",
    )
    music_threshold: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="below this music probability a file is not music, and at or above it music for sure; "
        "unset: the model card's two values (between them: unsure)",
    )
    existing_genre: Literal["keep", "overwrite", "add", "untouched"] = Field(
        "overwrite", description="a genre tag the file already has: keep, overwrite or add"
    )
    # The upper bounds catch a slip of the finger (an extra zero) that would look like a daemon sorting nothing.
    stability_seconds: float = Field(
        5.0, gt=0, le=HOUR, description="size and mtime unchanged this long before a file is taken"
    )
    rescan_seconds: float = Field(300.0, gt=0, le=DAY, description="full rescan of the inbox every so often")
    workers: int = Field(
        "auto",
        ge=1,
        le=MAX_WORKERS,
        description='files analysed in parallel, one process each: "auto" (one per CPU core this process may use) or'
        " a number",
    )
    polling: Literal["auto", "on", "off"] = Field(
        "auto", description="poll the inbox instead of inotify; auto: poll on nfs, cifs/smb and fuse"
    )
    max_file_mb: float = Field(2048.0, gt=0, description="larger files are quarantined unread")
    path_template: str = Field(
        "{genre}/{filename}",
        description="where a sorted file goes in the library, from its tags: {genre} first, then any of {albumartist}"
        " {artist} {album} {title} {track} {disc} {year} {filename} {stem} {ext}, ending in {ext} or {filename}",
    )
    unknown_files: Literal["keep", "quarantine"] = Field(
        "keep",
        description="a file in the inbox whose content is no audio format genresort reads (and whose name claims "
        "none): kept in the inbox, or moved to the quarantine; either way logged once as file.skipped or "
        "file.quarantined",
    )
    # An hour is a thousand times a normal analysis; beyond it a hung decoder only holds a worker, and a stop
    # (which lets the file in flight finish: see TimeoutStopSec in the systemd unit) waits as long.
    file_timeout_seconds: float = Field(120.0, gt=0, le=HOUR, description="analysis of one file is stopped after this")
    retry_max_seconds: float = Field(
        900.0, gt=0, le=DAY, description="longest wait between retries of a transient error"
    )
    log_file: Path | None = Field(None, description="also write the JSON lines log here")
    # NoDecode: GENRESORT_GENRE_NAMES reaches _json_object as text, so bad JSON is refused with the key named
    # (pydantic-settings' own decoding raises an error that names neither the variable nor the problem well).
    genre_names: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict, description="rename or merge the model's genres: {model genre: folder and tag name}"
    )

    undo_folder: Path | None = Field(
        None,
        description="where `undo` and the review page give files back; unset: the inbox (a running daemon sorts them"
        " again)",
    )
    web_listen: str | None = Field(
        None,
        description=f"address:port the daemon also serves the review page on (unset: it does not; `genresort web` "
        f"then uses {DEFAULT_WEB_LISTEN}); not loopback: needs web_token",
    )
    web_token: str | None = Field(None, min_length=1, description="the review page's token, required on every request")
    cluster: str | None = Field(
        None,
        min_length=1,
        description="`genresort sort` sends the analysis to this Dask scheduler (tcp://host:8786); the daemon does not."
        " Needs the cluster extra, and the inbox and library on storage every Dask worker sees at the same paths",
    )

    @property
    def review_page_address(self) -> str:
        return DEFAULT_WEB_LISTEN if self.web_listen is None else self.web_listen

    @field_validator("workers", mode="before")
    @classmethod
    def _cores_when_auto(cls, value: object) -> object:
        """`auto` is one worker per CPU core this process may run on (its affinity, which systemd's CPUAffinity= and
        a cgroup's cpuset narrow, not every core of the machine), as many as its memory limit (systemd's MemoryMax=)
        holds; the rest of the code sees the number used."""
        if value == "auto":
            return auto_workers(usable_cores(), memory_limit(), MAX_WORKERS)
        if isinstance(value, str) and not value.strip().isdigit():
            raise ValueError(f'{value!r} is neither "auto" nor a number from 1 to {MAX_WORKERS}')
        return value

    @field_validator("web_listen")
    @classmethod
    def _address_and_port(cls, value: str | None) -> str | None:
        if value is not None:
            listen_address(value)
        return value

    @model_validator(mode="after")
    def _token_off_loopback(self) -> Settings:
        """The review page moves files: on an address other hosts can reach, only a person with the token may use it."""
        host, _ = listen_address(self.review_page_address)
        if not is_loopback(host) and self.web_token is None:
            raise ValueError(
                f"web_listen {self.web_listen} can be reached from other machines: set web_token (a long random secret"
                " such as `openssl rand -hex 32` gives) or listen on 127.0.0.1"
            )
        return self

    @field_validator("genre_names", mode="before")
    @classmethod
    def _json_object(cls, value: object) -> object:
        """A variable gives the mapping as JSON text: '{"Hip-Hop": "Rap"}'."""
        if not isinstance(value, str):
            return value
        expected = 'not a JSON object such as {"Hip-Hop": "Rap"}'
        try:
            names = json.loads(value)
        except ValueError as error:
            raise ValueError(f"{expected} ({error})") from error
        if not isinstance(names, dict):
            raise ValueError(expected)
        return names

    @field_validator("genre_names")
    @classmethod
    def _folder_names(cls, names: dict[str, str]) -> dict[str, str]:
        """Each name becomes a folder under the library and a tag: it must be one plain folder name, and not a
        decision that is not a genre."""
        problems = [f"{genre!r} = {name!r}: {problem}" for genre, name in names.items() if (problem := bad_name(name))]
        if problems:
            raise ValueError("; ".join(problems))
        return names

    @model_validator(mode="after")
    def _inbox_apart(self) -> Settings:
        """A destination inside the inbox would be scanned again and sorted forever; the reverse likewise."""
        placed = ("library", "quarantine", "unsure", "not_music")
        apart = [("inbox", name) for name in placed]
        if self.undo_folder is not None:  # given back into a genre folder, a file would look sorted
            apart += [("undo_folder", name) for name in placed]
        for first, second in apart:
            one, other = getattr(self, first).resolve(), getattr(self, second).resolve()
            if one.is_relative_to(other) or other.is_relative_to(one):
                raise ValueError(f"{first} ({one}) and {second} ({other}) must not contain each other")
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
        """Arguments outrank the environment, so `Settings(library=tmp)` is never redirected by GENRESORT_LIBRARY;
        the configuration file ranks below both (load_settings merges it under the environment)."""
        return init_settings, env_settings


def bad_name(name: str) -> str | None:
    """What keeps `name` from being a genre's folder and tag name, if anything."""
    if not name.strip():
        return "a name cannot be empty or only spaces"
    if name != name.strip():
        return "a name cannot begin or end with spaces"
    if any(character in name for character in "/\\\0"):
        return "a name cannot hold '/', '\\' or NUL: it is one folder"
    if name in (".", ".."):
        return f"{name!r} is not a folder name"
    if name.casefold() in RESERVED_NAMES:
        return f"{name!r} is what genresort calls a file that is not sorted into a genre"
    return None


def listen_address(value: str) -> tuple[str, int]:
    """(host, port) of "host:port" or "[IPv6]:port"; ValueError naming what is wrong."""
    host, separator, port = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not separator or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r} is not an address and port such as 127.0.0.1:8765")
    return host, int(port)


def is_loopback(host: str) -> bool:
    """Only this machine can reach `host` (a name other than localhost may resolve to anything)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_genre_names(names: Mapping[str, str], genres: Sequence[str]) -> None:
    """Refuse a genre_names key that is not one of the model's `genres` (a misspelt one would rename nothing,
    silently), and names of folders that differ only in case."""
    problems = []
    for key in names:
        if key not in genres:
            closest = difflib.get_close_matches(key, genres, n=1)
            hint = f"did you mean {closest[0]!r}? " if closest else ""
            problems.append(f"{key!r} is not a genre of the model ({hint}its genres: {', '.join(genres)})")
    folders: dict[str, str] = {}
    for name in sorted({names.get(genre, genre) for genre in genres}):
        other = folders.setdefault(name.casefold(), name)
        if other != name:
            problems.append(
                f"{other!r} and {name!r} differ only in case: on a file system that ignores case (FAT, exFAT, SMB, "
                "macOS) they would be one folder; spell them alike"
            )
    if problems:
        raise ConfigError(f"genre_names: {'; '.join(problems)}")


def variable_name(key: str) -> str:
    return ENV_PREFIX + key.upper()


def unknown_keys(keys: Iterable[str], spell: Callable[[str], str] = str) -> list[str]:
    """One problem per key that names no setting, with the closest setting where one is close; `spell` writes a
    key as the person wrote it (a file key, or a variable name)."""
    known = list(Settings.model_fields)
    problems = []
    for key in keys:
        if key not in known:
            closest = difflib.get_close_matches(key, known, n=1)
            hint = f"did you mean {spell(closest[0])}?" if closest else f"known: {', '.join(map(spell, known))}"
            problems.append(f"{spell(key)} is not a setting ({hint})")
    return problems


def environment_values(environ: Mapping[str, str]) -> dict[str, str]:
    """The GENRESORT_<KEY> variables as {key: text} (names in any case, as pydantic-settings reads them); one
    that names no setting (GENRESORT_INBX) is refused, since ignoring it would sort the folder the person meant
    to change."""
    values = {
        name.upper().removeprefix(ENV_PREFIX).lower(): value
        for name, value in environ.items()
        if name.upper().startswith(ENV_PREFIX)
    }
    problems = unknown_keys(values, spell=variable_name)
    if problems:
        raise ConfigError(f"bad environment: {'; '.join(problems)}")
    return values


def read_config_file(path: Path) -> dict:
    """The file's settings, relative paths resolved against its folder; a key that names no setting is refused."""
    try:
        values = tomllib.loads(path.read_text())
    except OSError as error:
        raise ConfigError(f"cannot read configuration file {path}: {error.strerror}") from error
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"configuration file {path} is not valid TOML: {error}") from error
    problems = unknown_keys(values)
    if problems:
        raise ConfigError(f"bad configuration file {path}: {'; '.join(problems)}")
    for key in PATH_KEYS:
        if isinstance(values.get(key), str):
            # absolute, but links not followed: a model_dir that is a link a person swaps must stay the link
            values[key] = Path(os.path.abspath(path.parent / Path(values[key]).expanduser()))
    return values


def load_settings(config_file: Path | None = None) -> Settings:
    """Settings from the environment over `config_file` (default: DEFAULT_CONFIG_FILE, if present) over the
    defaults."""
    if config_file is None and DEFAULT_CONFIG_FILE.is_file():
        config_file = DEFAULT_CONFIG_FILE
    file_values = read_config_file(Path(config_file)) if config_file else {}
    variables = environment_values(os.environ)
    try:
        return Settings(**(file_values | variables))
    except ValidationError as error:
        origin = {key: f" (from {config_file})" for key in file_values}
        origin |= {key: f" (from {variable_name(key)})" for key in variables}
        problems = "; ".join(describe(problem, origin) for problem in error.errors())
        raise ConfigError(f"bad configuration: {problems}") from error


def describe(problem: ErrorDetails, origin: Mapping[str, str]) -> str:
    """`key (from where): what is wrong`; a problem of no single key (folders nested) is the configuration's. A
    problem inside a table (genre_names.Jazz) is said with where the table came from."""
    key = ".".join(str(part) for part in problem["loc"]) or "configuration"
    setting = str(problem["loc"][0]) if problem["loc"] else key
    return f"{key}{origin.get(setting, '')}: {problem['msg']}"
