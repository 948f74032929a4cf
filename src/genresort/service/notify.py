"""The systemd notify protocol over a plain datagram socket, so the daemon needs no libsystemd binding.

Every function is a no-op returning False outside systemd, so the same code runs from a terminal.
"""

from __future__ import annotations

import os
import socket


def notify(message: str) -> bool:
    """Send one message to systemd; False when not under systemd or nobody listens, as that must not stop sorting."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as connection:
            connection.connect(address)
            connection.sendall(message.encode())
    except OSError:
        return False
    return True


def ready() -> bool:
    return notify("READY=1")


def stopping() -> bool:
    return notify("STOPPING=1")


def watchdog_ping() -> bool:
    return notify("WATCHDOG=1")


def status(text: str) -> bool:
    """Show one line in `systemctl status`; a newline would start a new protocol assignment, so it is flattened."""
    return notify("STATUS=" + " ".join(text.splitlines()))


def watchdog_interval() -> float | None:
    """Seconds between watchdog pings (half the systemd timeout, as sd_watchdog_enabled advises), or None when off."""
    try:
        timeout_microseconds = int(os.environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    watchdog_pid = os.environ.get("WATCHDOG_PID")
    if watchdog_pid and watchdog_pid != str(os.getpid()):
        return None
    if timeout_microseconds <= 0:
        return None
    return timeout_microseconds / 2 / 1_000_000
