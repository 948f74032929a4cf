"""Shared fixtures: the real GTZAN clips beside the checkout, and MP3s written by the tests."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import soundfile

#: The shared data sits beside the checkout (../shared/data); CI has it too.
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def require_shared_data() -> Path:
    """The shared data folder; skips where it is absent (a user's clone) but fails in CI, which must have it."""
    if not (SHARED_DATA / "MANIFEST.tsv").is_file():
        message = f"the shared GTZAN data is not at {SHARED_DATA}"
        if os.environ.get("CI"):
            pytest.fail(message + "; CI is set, so the data set is required")
        pytest.skip(message)
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


@contextmanager
def small_tmpfs(folder: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` (e.g. "64k") mounted at `folder`, to run out of space for real; needs root (or
    CAP_SYS_ADMIN) and skips with the reason where it cannot be mounted."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(folder)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(
            f"cannot mount a small tmpfs to simulate a full disk: {mounted.stderr.strip() or mounted.returncode}"
        )
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)
