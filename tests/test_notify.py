"""The notify messages must reach a real datagram socket, and be harmless when systemd is absent."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from genresort.service import notify


@pytest.fixture
def listener(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    address = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind(str(address))
        receiver.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", str(address))
        yield receiver


def test_messages_arrive_in_order(listener: socket.socket) -> None:
    assert notify.ready()
    assert notify.status("sorting 3 files")
    assert notify.watchdog_ping()
    assert notify.stopping()
    assert notify.notify("EXTEND_TIMEOUT_USEC=1000000")

    received = [listener.recv(4096).decode() for _ in range(5)]

    assert received == ["READY=1", "STATUS=sorting 3 files", "WATCHDOG=1", "STOPPING=1", "EXTEND_TIMEOUT_USEC=1000000"]


def test_status_stays_on_one_line(listener: socket.socket) -> None:
    notify.status("first line\nsecond line")

    assert listener.recv(4096).decode() == "STATUS=first line second line"


def test_abstract_socket_address(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"genresort-test-{uuid.uuid4()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind("\0" + name)
        receiver.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)

        assert notify.ready()
        assert receiver.recv(4096) == b"READY=1"


def test_unset_variable_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)

    assert notify.notify("READY=1") is False
    assert notify.ready() is False


def test_missing_listener_returns_false(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens.sock"))

    assert notify.ready() is False


@pytest.mark.parametrize(
    ("watchdog_microseconds", "watchdog_pid", "expected"),
    [
        ("60000000", None, 30.0),
        ("60000000", "own", 30.0),
        ("5000", None, 0.0025),
        ("60000000", "other", None),
        (None, None, None),
        ("", None, None),
        ("not a number", None, None),
        ("0", None, None),
    ],
)
def test_watchdog_interval(
    monkeypatch: pytest.MonkeyPatch, watchdog_microseconds: str | None, watchdog_pid: str | None, expected: float | None
) -> None:
    if watchdog_microseconds is None:
        monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    else:
        monkeypatch.setenv("WATCHDOG_USEC", watchdog_microseconds)
    if watchdog_pid is None:
        monkeypatch.delenv("WATCHDOG_PID", raising=False)
    else:
        monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() if watchdog_pid == "own" else os.getppid()))

    assert notify.watchdog_interval() == expected
