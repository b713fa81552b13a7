"""systemd notification (Type=notify units): READY=1 once models are loaded, WATCHDOG=1 keep-alives.

A plain datagram to $NOTIFY_SOCKET, no dependency; a no-op when not run by systemd.
"""

from __future__ import annotations

import asyncio
import os
import socket


def notify(message: str) -> bool:
    """Send one notification; False when there is no $NOTIFY_SOCKET or it cannot be reached."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return False
    if addr.startswith("@"):
        addr = "\0" + addr[1:]  # abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(addr)
            sock.sendall(message.encode("utf-8"))
        return True
    except OSError:
        return False


def watchdog_interval() -> float | None:
    """Half of $WATCHDOG_USEC in seconds, when the watchdog is meant for this process."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or not usec.isdigit() or int(usec) <= 0:
        return None
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None
    return int(usec) / 2 / 1e6


async def watchdog_loop(interval: float) -> None:
    """WATCHDOG=1 every ``interval`` s while the event loop is alive (a stuck loop stops it)."""
    while True:
        notify("WATCHDOG=1")
        await asyncio.sleep(interval)
