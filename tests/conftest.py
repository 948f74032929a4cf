"""Shared fixtures: the real GTZAN clips beside the checkout, MP3s written by the tests, a small tmpfs, an
unprivileged user, real daemons (tests/daemon_harness.py), and a fence that keeps every test away from real folders.

What a test needs and this machine lacks (the shared data, a tmpfs, a user to switch to) skips the test on a
developer's machine, with the reason, but fails it in CI (CI is set there), which must provide it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import soundfile

import genresort.config
import genresort.paths
from daemon_harness import Daemon, Folders, User

#: The shared data sits beside the checkout (../shared/data); CI has it too.
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
#: The unprivileged account the permission tests run as; `.ci/run` creates it.
TEST_USER = "genresort-test"
#: Settings loaded without --config come from this, written in a temporary folder of each test's own.
TEST_CONFIG = """# the tests' own configuration: every folder beside this file, none of them real
inbox = "inbox"
library = "library"
quarantine = "quarantine"
unsure = "unsure"
not_music = "not-music"
state_dir = "state"
"""


def unavailable(message: str) -> None:
    """Skip the test for want of `message`'s resource, or fail it in CI, which must have the resource."""
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI is set, so it is required")
    pytest.skip(message)


@pytest.fixture(autouse=True)
def away_from_real_folders(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No test can touch a real folder: the runner's GENRESORT_* variables are gone for every test (which would
    outrank the configuration file), settings loaded without --config come from a file whose folders
    are all in a temporary folder, never the project's config/genresort.toml or its inbox and library, and
    `Settings()` made without folders gets temporary ones too."""
    for key in list(os.environ):
        if key.startswith("GENRESORT_"):
            monkeypatch.delenv(key)
    config_file = tmp_path_factory.mktemp("settings") / "genresort.toml"
    config_file.write_text(TEST_CONFIG)
    monkeypatch.setattr(genresort.config, "DEFAULT_CONFIG_FILE", config_file)
    monkeypatch.setattr(genresort.paths, "DEFAULT_DATA_DIR", config_file.parent)  # Settings() without folders


# --- music -------------------------------------------------------------------------------------------------------


def require_shared_data() -> Path:
    """The shared data folder; skips where it is absent (a user's clone) but fails in CI, which must have it."""
    if not (SHARED_DATA / "MANIFEST.tsv").is_file():
        unavailable(f"the shared GTZAN data is not at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    folder = tmp_path / "inbox"
    folder.mkdir()
    return folder


def shared_clip(genre: str, number: int = 0) -> Path:
    """A real 30 s GTZAN clip, e.g. shared_clip("jazz", 3) -> .../gtzan/jazz/jazz.00003.mp3 (or the n-th there)."""
    folder = require_shared_data() / "gtzan" / genre
    return sorted(folder.glob("*.mp3"))[number]


def write_mp3(path: Path, seconds: float, sample_rate: int = 44100, channels: int = 2, seed: int = 0) -> Path:
    """A real MP3 of a few tones and some noise, written with libsndfile."""
    generator = np.random.default_rng(seed)
    time = np.arange(int(seconds * sample_rate)) / sample_rate
    tones = sum(0.1 * np.sin(2 * np.pi * frequency * time) for frequency in generator.uniform(100, 2000, size=4))
    signal = tones + 0.02 * generator.standard_normal(len(time))
    samples = np.repeat(signal[:, np.newaxis], channels, axis=1).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, samples, sample_rate, format="MP3")
    return path


def tagged_like_a_download(path: Path, cover_bytes: int = 200_000) -> Path:
    """A real MP3 as people's files are: an ID3v2.4 tag with a cover, an APEv2 tag and an ID3v1 tag."""
    from mutagen.apev2 import APEv2
    from mutagen.id3 import APIC, ID3, TCON, TIT2

    write_mp3(path, seconds=6)
    tags = ID3()
    tags.add(TIT2(encoding=3, text=["Night Train"]))
    tags.add(TCON(encoding=3, text=["Swing"]))
    tags.add(APIC(encoding=3, mime="image/jpeg", type=3, desc="cover", data=os.urandom(cover_bytes)))
    tags.save(path, v1=2, v2_version=4)
    ape = APEv2()
    ape["Title"] = "Night Train"
    ape.save(path)
    return path


def make_mp3(path: Path, seed: int, seconds: float = 3.0) -> Path:
    """A distinct short MP3 (tones and noise from `seed`), mono 22.05 kHz to be quick to write."""
    return write_mp3(path, seconds, sample_rate=22050, channels=1, seed=seed)


# --- what the machine must provide ----------------------------------------------------------------------------


@contextmanager
def small_tmpfs(folder: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` (e.g. "64k") mounted at `folder`, to run out of space for real; needs root (or
    CAP_SYS_ADMIN): skips with the reason where it cannot be mounted, fails in CI."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(folder)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        unavailable(
            f"cannot mount a small tmpfs to simulate a full disk: {mounted.stderr.strip() or mounted.returncode}"
        )
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def unprivileged_account() -> User:
    """The unprivileged account TEST_USER, which `.ci/run` creates (run its user set-up as root to have it here).
    Without root no process can become another user. Either lack skips the test, or fails it in CI."""
    if os.geteuid() != 0:
        unavailable(f"switching to the unprivileged user {TEST_USER} needs root")
    try:
        entry = pwd.getpwnam(TEST_USER)
    except KeyError:
        unavailable(f"the user {TEST_USER} does not exist (.ci/run creates it)")
    return User(entry.pw_name, entry.pw_uid, entry.pw_gid)


@pytest.fixture(scope="session")
def unprivileged_user() -> User:
    """An unprivileged user to run a daemon or a function as, since root ignores permission bits; checked to be
    able to run genresort from this checkout."""
    user = unprivileged_account()
    probe = run_as(user, sys.executable, "-c", "import genresort.cli")
    if probe.returncode != 0:
        unavailable(
            f"{user.name} cannot run genresort from this checkout (.ci/run lets it through the folders above): "
            + (probe.stderr.strip().splitlines() or ["no message"])[-1]
        )
    return user


@pytest.fixture
def user_folder(unprivileged_user: User) -> Iterator[Path]:
    """An empty folder owned by the unprivileged user, where that user can reach it (the tests' tmp_path is under a
    folder only root may enter); removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="genresort-as-user-")).resolve()
    try:
        unprivileged_user.own(folder)
        if run_as(unprivileged_user, "test", "-w", str(folder)).returncode != 0:
            pytest.fail(f"{unprivileged_user.name} cannot reach {folder}: a folder above it is closed to others")
        yield folder
    finally:
        shutil.rmtree(folder)


def run_as(user: User, *command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, cwd="/", **user.popen_options())


# --- real daemons --------------------------------------------------------------------------------------------


@pytest.fixture
def start_daemon() -> Iterator[Callable[..., Daemon]]:
    """start_daemon(folders, name, extra_env, **settings) -> a running Daemon, configured by GENRESORT_<SETTING>
    variables (and `extra_env`); whatever a test leaves running is killed after it."""
    started: list[Daemon] = []

    def start(
        folders: Folders, name: str = "daemon", extra_env: dict[str, str] | None = None, **settings: object
    ) -> Daemon:
        daemon = Daemon(folders, folders.env(**settings) | (extra_env or {}), name)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.close()


class Snapshot:
    """A folder tree made once for a module (a real `genresort sort` takes seconds: its worker loads the model) and
    put back for each test at the same path, so that the absolute paths its journal holds stay true; the files keep
    their times, which an undo checks."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.kept = work.with_name(f"{work.name}-snapshot")
        shutil.copytree(work, self.kept, symlinks=True)

    def restore(self) -> Path:
        shutil.rmtree(self.work, ignore_errors=True)
        shutil.copytree(self.kept, self.work, symlinks=True)
        return self.work
