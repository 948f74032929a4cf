"""The shipped unit must keep its sandbox tight, speak the notify protocol the daemon implements, wait for the file
in flight when stopped, and its sandbox must not break genresort: the run-time path runs here under the same
MemoryDenyWriteExecute and without the @resources system calls."""

from __future__ import annotations

import ctypes
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import unavailable, write_mp3
from genresort.config import Settings
from genresort.service.startup import FOLDER_KEYS
from genresort.service.supervisor import stall_limit

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "genresort.service"
#: `systemd-analyze security` rates the unit as shipped 0.2 (0.3 before MemoryDenyWriteExecute and ~@resources).
SHIPPED_EXPOSURE = 0.2
REVIEW_PAGE_DROP_IN = UNIT.parent / "genresort.service.d" / "review-page.conf"
#: With the review page's drop-in (loopback only): 0.9.
REVIEW_PAGE_EXPOSURE = 0.9
#: The largest file a stop should let finish without SIGKILL: an hour of 320 kbit/s MP3 is 144 MB.
LARGE_FILE_BYTES = 150 * 1024 * 1024
PR_SET_MDWE = 65
PR_MDWE_REFUSE_EXEC_GAIN = 1


def service_settings(unit: Path = UNIT) -> dict[str, list[str]]:
    """Every key of [Service] with all its values, since systemd allows a key to repeat."""
    settings: dict[str, list[str]] = {}
    section = None
    for line in unit.read_text().splitlines():
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
    path = shutil.which("systemd-analyze")
    if path is None:
        unavailable("systemd-analyze is not installed (apt-get install -y systemd)")
    return path


def kernel_has_mdwe() -> bool:
    """Whether prctl(PR_SET_MDWE) exists (Linux 6.3+), asked in a child so this process stays unrestricted."""
    code = f"import ctypes; print(ctypes.CDLL(None).prctl({PR_SET_MDWE}, {PR_MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0))"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "0"


def test_unit_uses_notify_and_the_watchdog() -> None:
    settings = service_settings()

    assert settings["Type"] == ["notify"]
    assert settings["NotifyAccess"] == ["main"]
    assert int(settings["WatchdogSec"][0]) > 0
    assert settings["ExecStart"][0].split()[1:] == ["watch", "--config", "/etc/genresort/genresort.toml"]


def exposure(unit: Path) -> float:
    """`systemd-analyze security`'s overall exposure level of a unit file."""
    result = subprocess.run(
        [systemd_analyze(), "security", "--offline=yes", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        errors="replace",
        env={**os.environ, "SYSTEMD_COLORS": "0"},
        timeout=120,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", result.stdout)
    assert match is not None, f"no exposure in the output:\n{result.stdout}\n{result.stderr}"
    return float(match.group(1))


def test_security_exposure_is_low(tmp_path: Path) -> None:
    alone = shutil.copy(UNIT, tmp_path)  # without the drop-in folder beside it, which systemd-analyze reads too
    assert exposure(Path(alone)) <= SHIPPED_EXPOSURE


def test_the_review_page_drop_in_opens_loopback_only_and_keeps_the_exposure_low(tmp_path: Path) -> None:
    assert exposure(UNIT) <= REVIEW_PAGE_EXPOSURE  # the unit with genresort.service.d/ beside it, as installed
    combined = tmp_path / UNIT.name  # systemd reads a drop-in as if appended to the unit
    combined.write_text(UNIT.read_text() + "\n" + REVIEW_PAGE_DROP_IN.read_text())
    with_page = service_settings(combined)
    assert with_page["PrivateNetwork"][-1] == "no" and with_page["IPAddressDeny"] == ["any"]
    assert with_page["IPAddressAllow"] == ["localhost"]


def test_a_stop_waits_for_the_file_in_flight() -> None:
    """`systemctl stop` lets the file in flight finish: systemd must wait at least as long as the daemon itself
    gives a worker on a large file (the analysis time limit, a margin, time to copy) before it sends SIGKILL."""
    (stop,) = service_settings()["TimeoutStopSec"]
    file_timeout = Settings.model_fields["file_timeout_seconds"].default
    assert stop.isdigit(), f"TimeoutStopSec={stop}: write it in plain seconds"
    assert int(stop) >= stall_limit(file_timeout, LARGE_FILE_BYTES)


def test_the_unit_denies_writable_executable_memory_and_the_resources_calls() -> None:
    settings = service_settings()
    assert settings["MemoryDenyWriteExecute"] == ["yes"]
    assert "@resources" in " ".join(settings["SystemCallFilter"][1:]).split()


#: `python -c SANDBOXED CALLS COMMAND...`: genresort's COMMAND as the unit runs it, with the comma-separated system
#: CALLS denied. The restrictions are checked before it starts, so the test cannot pass for want of them.
SANDBOXED = """
import ctypes, errno, mmap, os, sys
from genresort.cli import main
assert ctypes.CDLL(None).prctl(65, 1, 0, 0, 0) == 0  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, as systemd does
seccomp = ctypes.CDLL("libseccomp.so.2")
seccomp.seccomp_init.restype = ctypes.c_void_p
seccomp.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint]
seccomp.seccomp_load.argtypes = [ctypes.c_void_p]
context = seccomp.seccomp_init(0x7FFF0000)  # SCMP_ACT_ALLOW for the rest
for number in (seccomp.seccomp_syscall_resolve_name(name.encode()) for name in sys.argv[1].split(",")):
    if number >= 0:  # SCMP_ACT_ERRNO(EPERM), as SystemCallErrorNumber=EPERM
        assert seccomp.seccomp_rule_add(context, 0x00050000 | errno.EPERM, number, 0) == 0
assert seccomp.seccomp_load(context) == 0
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    sys.exit("writable executable memory was allowed")
except PermissionError:
    pass
try:
    os.sched_setaffinity(0, {0})
    sys.exit("sched_setaffinity was allowed")
except PermissionError:
    pass
sys.exit(main(sys.argv[2:]))
"""


def system_calls(group: str) -> list[str]:
    """The system calls of a systemd group such as @resources, as this systemd defines it."""
    listed = subprocess.run([systemd_analyze(), "syscall-filter", group], capture_output=True, text=True, check=True)
    names = [line.strip() for line in listed.stdout.splitlines()[1:]]
    return [name for name in names if name and not name.startswith("#")]


def test_genresort_works_without_writable_executable_memory_and_the_resources_calls(tmp_path: Path) -> None:
    """The kernel's PR_SET_MDWE (what MemoryDenyWriteExecute=yes sets) and a seccomp filter denying @resources with
    EPERM, inherited by the analysis workers: `classify` runs onnxruntime in-process, `sort` in a worker."""
    denied = ",".join(system_calls("@resources"))
    if not kernel_has_mdwe():
        unavailable("this kernel has no prctl(PR_SET_MDWE) (Linux 6.3+)")
    try:
        ctypes.CDLL("libseccomp.so.2")
    except OSError:
        unavailable("libseccomp.so.2 is not installed (apt-get install -y libseccomp2)")
    song = write_mp3(tmp_path / "inbox" / "song.mp3", seconds=8)
    config = tmp_path / "genresort.toml"
    config.write_text(
        "\n".join(f'{key} = "{key}"' for key in FOLDER_KEYS)  # every folder here, none of them real
    )
    environment = {key: value for key, value in os.environ.items() if not key.startswith("GENRESORT_")}

    def sandboxed(*arguments: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-c", SANDBOXED, denied, *arguments]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, env=environment, cwd=tmp_path)

    classified = sandboxed("classify", "--json", str(song))
    assert classified.returncode == 0, classified.stderr
    assert json.loads(classified.stdout)["path"] == str(song)
    os.utime(song, (0, 0))  # long stable
    sorted_once = sandboxed("sort", "--config", str(config))
    assert sorted_once.returncode == 0, sorted_once.stdout + sorted_once.stderr
    (line,) = [json.loads(line) for line in sorted_once.stdout.splitlines() if '"file.' in line]
    assert line["event"] in ("file.sorted", "file.unsure", "file.not_music"), line  # tones may well be "not music"
