"""The shipped unit must keep its sandbox tight and speak the notify protocol the daemon implements."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "genresort.service"
HIGHEST_ACCEPTED_EXPOSURE = 2.0


def service_settings() -> dict[str, list[str]]:
    """Every key of [Service] with all its values, since systemd allows a key to repeat."""
    settings: dict[str, list[str]] = {}
    section = None
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]":
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def systemd_analyze() -> str:
    """The tool's path; CI must have it, so only a developer's machine may skip."""
    path = shutil.which("systemd-analyze")
    if path is None:
        reason = "systemd-analyze is not installed (apt-get install -y systemd)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return path


def test_unit_uses_notify_and_the_watchdog() -> None:
    settings = service_settings()

    assert settings["Type"] == ["notify"]
    assert settings["NotifyAccess"] == ["main"]
    assert int(settings["WatchdogSec"][0]) > 0
    assert settings["ExecStart"][0].split()[1:] == ["watch", "--config", "/etc/genresort/genresort.toml"]


def test_security_exposure_is_low() -> None:
    result = subprocess.run(
        [systemd_analyze(), "security", "--offline=yes", "--no-pager", str(UNIT)],
        capture_output=True,
        text=True,
        errors="replace",
        env={**os.environ, "SYSTEMD_COLORS": "0"},
        timeout=120,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", result.stdout)

    assert match is not None, f"no exposure in the output:\n{result.stdout}\n{result.stderr}"
    assert float(match.group(1)) <= HIGHEST_ACCEPTED_EXPOSURE, result.stdout
