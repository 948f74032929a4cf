"""A real `genresort watch` as the tests and `bench/` see it: a process with its folders, what it says, and ways
to wait for it and to stop it. Nothing here is mocked.

The daemon runs in a session of its own (so that SIGKILL of its process group takes its analysis workers down
too, as systemd does when a service crashes), is configured only through GENRESORT_* variables (with an empty
configuration file, so the project's own config/genresort.toml cannot leak in), and optionally as an unprivileged
user who owns its folders. Its JSON lines are read from stdout and its sd_notify datagrams from a socket bound in
its folder; waits have deadlines.

This module needs nothing of pytest: a failed wait raises DaemonFailure, an AssertionError, so the benchmark can
use it as it is.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genresort.analysis.audio import AUDIO_EXTENSIONS
from genresort.digest import sha256_file
from genresort.library.tags import TagError, audio_payload_sha256
from genresort.service.startup import FOLDER_KEYS

DAEMON_COMMAND = [sys.executable, "-m", "genresort.cli", "watch"]
#: Synthetic tones stand in for songs in most daemon tests: every sound counts as music there (see Folders.env).
STAND_IN_MUSIC_THRESHOLD = 0.0
OUTCOME_EVENTS = frozenset({"file.sorted", "file.unsure", "file.not_music", "file.duplicate", "file.quarantined"})
STAGING = ".genresort-staging"
REASON_SUFFIX = ".reason.json"
# Variables of the test runner's own environment that would change what the daemon does.
FOREIGN_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID")

STARTUP_SECONDS = 120.0  # the model loads in each analysis process: a few seconds, much more on a busy machine
FILE_SECONDS = 60.0  # from dropping a file to its outcome line


class DaemonFailure(AssertionError):
    """The daemon did not do what was waited for; the message ends with what it said last."""


# --- who runs it -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class User:
    """An unprivileged account to run a daemon or a function as: root ignores permission bits."""

    name: str
    uid: int
    gid: int

    def own(self, *paths: Path) -> None:
        for path in paths:
            os.chown(path, self.uid, self.gid)

    def popen_options(self) -> dict[str, Any]:
        """subprocess arguments that start a process as this user, with no supplementary groups."""
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def call(self, function: Callable[[], object]) -> None:
        """Run `function` in a forked child that has become this user; a failure there (an assertion too) fails
        here, with the child's traceback."""
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns into the caller's code
            os.close(read_end)
            code = 0
            try:
                os.setgroups([])
                os.setgid(self.gid)
                os.setuid(self.uid)
                function()
            except BaseException:
                os.write(write_end, traceback.format_exc().encode())
                code = 1
            os._exit(code)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as pipe:
            report = pipe.read().decode(errors="replace")
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise AssertionError(f"as user {self.name} (uid {self.uid}):\n{report}")


# --- its folders -------------------------------------------------------------------------------------------------


@dataclass
class Folders:
    """The daemon's folders under one root; the inbox exists from the start, the rest the daemon creates.
    With an `owner`, the root and the inbox belong to that user, and daemons on these folders run as that user."""

    root: Path
    owner: User | None = None

    def __post_init__(self) -> None:
        self.root = self.root.resolve()  # the daemon logs absolute paths; compare like with like
        self.inbox.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text("# empty: every setting comes from GENRESORT_* variables\n")
        if self.owner is not None:
            self.owner.own(self.root, self.inbox)

    def folder(self, key: str) -> Path:
        """The folder of one of the daemon's folder settings (startup.FOLDER_KEYS), always below root, so that a
        folder setting added later can never fall back to a real default folder."""
        return self.root / ("state" if key == "state_dir" else key)

    inbox = property(lambda self: self.folder("inbox"))
    library = property(lambda self: self.folder("library"))
    quarantine = property(lambda self: self.folder("quarantine"))
    unsure = property(lambda self: self.folder("unsure"))
    not_music = property(lambda self: self.folder("not_music"))
    state = property(lambda self: self.folder("state_dir"))
    config_file = property(lambda self: self.root / "genresort.toml")

    @property
    def destinations(self) -> tuple[Path, Path, Path, Path]:
        return self.library, self.unsure, self.not_music, self.quarantine

    def env(self, **settings: object) -> dict[str, str]:
        """The test runner's environment without GENRESORT_* and systemd variables, plus these folders and
        `settings` as GENRESORT_<KEY> (a setting given as None is left to the model card).

        The tests drop synthetic tones as stand-ins for songs, which the music detector rightly calls not music:
        `music_threshold` is 0 (everything is music) unless a test asks for the model's own, with
        music_threshold=None (tests/test_not_music.py). One analysis worker unless a test asks for more (the default,
        `workers = "auto"`, starts one per core: memory and start-up time a test rarely needs)."""
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("GENRESORT_") and key not in FOREIGN_VARIABLES
        }
        env.update({f"GENRESORT_{key.upper()}": str(self.folder(key)) for key in FOLDER_KEYS})
        settings = {"music_threshold": STAND_IN_MUSIC_THRESHOLD, "workers": 1} | settings
        env.update({f"GENRESORT_{key.upper()}": str(value) for key, value in settings.items() if value is not None})
        return env


# --- processes -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Said:
    """One thing the daemon said: a log line ("log"), a notify datagram ("notify"), a line that is not JSON
    ("junk"), or a mark the test put in the stream ("mark")."""

    kind: str
    text: str
    record: dict[str, Any] = field(default_factory=dict)
    children: tuple[str, ...] = ()  # for "READY=1": the command lines of the daemon's child processes then


def process_table() -> list[tuple[int, str, int, int]]:
    """(pid, state, parent pid, process group) of every process, from /proc."""
    table = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat_line = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat_line[stat_line.rindex(")") + 2 :].split()  # the command name may hold spaces and ")"
        table.append((int(entry), fields[0], int(fields[1]), int(fields[2])))
    return table


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def live_group_members(group: int) -> list[int]:
    """Processes of the group that are still running (zombies waiting to be reaped are dead enough)."""
    return [pid for pid, state, _, pgrp in process_table() if pgrp == group and state != "Z"]


def short_socket_path(folder: Path, name: str) -> Path:
    """A path for an AF_UNIX socket in `folder`, or in a short temporary folder when `folder` is too deep
    (the kernel takes at most 107 bytes)."""
    path = folder / name
    if len(os.fsencode(path)) < 100:
        return path
    return Path(tempfile.mkdtemp(prefix="gs-notify-")) / name


def logged_names(path: Path) -> tuple[str, str]:
    """The ways a log line may name `path`: as Python's text of it, or with bytes that are not UTF-8 (old drives,
    SMB shares) shown as \\xNN escapes. The two differ only for such names."""
    return str(path), os.fsencode(path).decode("utf-8", "backslashreplace")


class Daemon:
    """A running `genresort watch` and everything it says.

    One reader thread takes the stdout lines and the notify datagrams into a single list. Before it handles a
    stdout line it drains the notify socket, so a datagram sent before a line was written always comes first in
    the list: "READY=1 came before any outcome" can be read off the list. (The reverse, a line before a
    datagram, cannot: both may be waiting at once.)
    """

    _count = 0

    def __init__(
        self, folders: Folders, env: dict[str, str], name: str = "daemon", command: list[str] = DAEMON_COMMAND
    ) -> None:
        Daemon._count += 1
        self.folders = folders
        self.name = f"{name}-{Daemon._count}"
        self.said: list[Said] = []
        self._lock = threading.Lock()
        self.socket_path = short_socket_path(folders.root, f"{self.name}.notify")
        self._notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self._notify.bind(str(self.socket_path))
        self._notify.setblocking(False)
        as_user: dict[str, Any] = {}
        if folders.owner is not None:  # it must be able to send to the socket
            folders.owner.own(self.socket_path, self.socket_path.parent)
            as_user = folders.owner.popen_options()
        self.stderr_path = folders.root / f"{self.name}.stderr"
        with open(self.stderr_path, "wb") as stderr:  # the decoders chat on stderr; a pipe nobody reads would fill
            self.process = subprocess.Popen(
                [*command, "--config", str(folders.config_file)],
                env=dict(env, NOTIFY_SOCKET=str(self.socket_path)),
                cwd=folders.root,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                start_new_session=True,  # its own process group: the daemon and its analysis workers
                **as_user,
            )
        self.pid = self.process.pid
        self._reader = threading.Thread(target=self._read, name=f"{self.name}-reader", daemon=True)
        self._reader.start()

    # -- reading -----------------------------------------------------------------------------------------------

    def _read(self) -> None:
        descriptor = self.process.stdout.fileno()
        pending = b""
        while True:
            readable, _, _ = select.select([descriptor, self._notify], [], [], 0.5)
            with self._lock:
                self._drain_notify()
                if descriptor not in readable:
                    continue
                chunk = os.read(descriptor, 1 << 16)
                if not chunk:
                    break
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    self._add_line(line)
        with self._lock:
            if pending:
                self._add_line(pending)
            self._drain_notify()

    def _drain_notify(self) -> None:
        while True:
            try:
                message = self._notify.recv(1 << 16).decode(errors="replace")
            except (BlockingIOError, OSError):
                return
            children: tuple[str, ...] = ()
            if message == "READY=1":
                children = tuple(command_line(pid) for pid, _, parent, _ in process_table() if parent == self.pid)
            self.said.append(Said("notify", message, children=children))

    def _add_line(self, line: bytes) -> None:
        text = line.decode(errors="replace")
        if not text.strip():
            return
        try:
            record = json.loads(text)
        except ValueError:
            self.said.append(Said("junk", text))
            return
        if not isinstance(record, dict) or "event" not in record:
            self.said.append(Said("junk", text))
        else:
            self.said.append(Said("log", text, record))

    def mark(self, label: str) -> None:
        """Put `label` into the stream, after every datagram that has arrived so far."""
        with self._lock:
            self._drain_notify()
            self.said.append(Said("mark", label))

    # -- what it said ----------------------------------------------------------------------------------------

    def stream(self) -> list[Said]:
        with self._lock:
            return list(self.said)

    def logs(self, *events: str) -> list[dict[str, Any]]:
        return [
            item.record
            for item in self.stream()
            if item.kind == "log" and (not events or item.record["event"] in events)
        ]

    def about(self, source: Path, *events: str) -> list[dict[str, Any]]:
        """Log lines (of these events, or all) whose `source` is `source`."""
        names = logged_names(source)
        return [record for record in self.logs(*events) if record.get("source") in names]

    def notifications(self) -> list[str]:
        return [item.text for item in self.stream() if item.kind == "notify"]

    def outcomes(self, source: Path | None = None) -> list[dict[str, Any]]:
        """Final outcome lines (sorted, unsure, duplicate, quarantined), for one source file or all."""
        return self.logs(*OUTCOME_EVENTS) if source is None else self.about(source, *OUTCOME_EVENTS)

    def junk(self) -> list[str]:
        return [item.text for item in self.stream() if item.kind == "junk"]

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def describe(self) -> str:
        """The end of what it said, for assertion messages."""
        lines = [item.text if item.kind != "mark" else f"--- {item.text} ---" for item in self.stream()[-40:]]
        errors = self.stderr().splitlines()[-15:]
        return (
            f"\n{self.name} (pid {self.pid}, exit code {self.process.poll()}) said last:\n  "
            + "\n  ".join(lines)
            + "\nstderr (last lines):\n  "
            + "\n  ".join(errors)
        )

    # -- waiting -----------------------------------------------------------------------------------------------

    def wait_for(self, condition: Callable[[], Any], what: str, timeout: float = FILE_SECONDS) -> Any:
        """Poll `condition` until it is true (and return its value); fail after `timeout` seconds, or at once
        when the daemon exits meanwhile."""
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            if self.process.poll() is not None:
                raise DaemonFailure(f"{self.name} exited while the test waited for {what}" + self.describe())
            if time.monotonic() > deadline:
                raise DaemonFailure(f"timed out after {timeout:.0f} s waiting for {what}" + self.describe())
            time.sleep(0.05)

    def wait_ready(self, timeout: float = STARTUP_SECONDS) -> dict[str, Any]:
        return self.wait_for(lambda: self.logs("daemon.ready"), "daemon.ready", timeout)[0]

    def wait_outcome(self, source: Path, timeout: float = FILE_SECONDS) -> dict[str, Any]:
        """The outcome line of `source` (a path in the inbox), once there is one."""
        return self.wait_for(lambda: self.outcomes(source), f"an outcome for {source.name}", timeout)[0]

    # -- stopping ----------------------------------------------------------------------------------------------

    def terminate(self, timeout: float = 120.0) -> int:
        """SIGTERM to the process group, as `systemctl stop` does (the analysis workers ignore it); the exit code."""
        self.mark("SIGTERM sent")
        os.killpg(self.pid, signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise DaemonFailure(
                f"{self.name} did not exit within {timeout:.0f} s of SIGTERM" + self.describe()
            ) from None
        self._finish_reading()
        return code

    def kill(self, whole_group: bool = True) -> None:
        """SIGKILL to the whole process group - a crash of the service - or to the daemon alone, whose analysis
        workers must then exit by themselves when their pipe closes; waits until all of it is gone."""
        self.mark("SIGKILL sent")
        if whole_group:
            os.killpg(self.pid, signal.SIGKILL)
        else:
            os.kill(self.pid, signal.SIGKILL)
        self.process.wait(30)
        deadline = time.monotonic() + 30
        while members := live_group_members(self.pid):
            assert time.monotonic() < deadline, f"processes {members} of {self.name} outlived SIGKILL" + self.describe()
            time.sleep(0.05)
        self._finish_reading()

    def wait_exit(self, timeout: float = STARTUP_SECONDS) -> int:
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise DaemonFailure(f"{self.name} did not exit within {timeout:.0f} s" + self.describe()) from None
        self._finish_reading()
        return code

    def _finish_reading(self) -> None:
        self._reader.join(30)
        assert not self._reader.is_alive(), f"{self.name}: stdout still open after exit (a leftover worker?)"

    def close(self) -> None:
        """Make sure nothing of it is left running (after a failed test); safe to call more than once."""
        if self.process.poll() is None or live_group_members(self.pid):
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(30)
        self._reader.join(30)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._notify.close()
        self.socket_path.unlink(missing_ok=True)
        if self.socket_path.parent != self.folders.root:  # a short_socket_path of its own
            shutil.rmtree(self.socket_path.parent, ignore_errors=True)


def analysis_workers(daemon: Daemon) -> list[int]:
    """The daemon's live analysis processes (multiprocessing's spawned children)."""
    return [
        pid
        for pid, state, parent, _ in process_table()
        if parent == daemon.pid and state != "Z" and "spawn_main" in command_line(pid)
    ]


# --- inputs and inspection ------------------------------------------------------------------------------------


def fingerprint(path: Path) -> str:
    """The audio payload's sha256 (tags aside); the whole file's for a file that is no audio file at all."""
    try:
        return audio_payload_sha256(path)
    except TagError:
        return "bytes:" + sha256_file(path)


def files_under(*roots: Path, staging: bool = False) -> list[Path]:
    """Every regular file below the roots (no links, FIFOs...): outside the staging folders, or (staging=True)
    inside them."""
    found = []
    for root in roots:
        for folder, _subfolders, names in os.walk(root):
            if (STAGING in Path(folder).relative_to(root).parts) == staging:
                found.extend(path for name in names if is_regular(path := Path(folder) / name))
    return sorted(found)


def is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def music_in(folder: Path) -> list[Path]:
    """What the daemon would consider taking from `folder`: audio names, not hidden, not partial downloads."""
    return [
        path
        for path in files_under(folder)
        if path.suffix.lower() in AUDIO_EXTENSIONS
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    ]


def drop(content: Path | bytes, target: Path) -> Path:
    """Put a complete file into the inbox at once, the way a finished download is renamed into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    hidden = target.with_name(f".incoming-{target.name}")
    if isinstance(content, bytes):
        hidden.write_bytes(content)
    else:
        shutil.copyfile(content, hidden)
    os.rename(hidden, target)
    return target
