"""systemd integration without a dependency: readiness and the service watchdog over $NOTIFY_SOCKET.

A unit with ``Type=notify`` and ``WatchdogSec=`` starts waitroom; the process says ``READY=1`` once it runs
then ``WATCHDOG=1`` at half the watchdog interval, but only while its own liveness check passes (the
controller's tick loop ran recently, a node's MQTT and heartbeat threads are alive). A hung process stops
petting the watchdog and systemd restarts it. Outside systemd (no $NOTIFY_SOCKET) everything here is a no-op.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable

log = logging.getLogger(__name__)


def notify(message: str) -> bool:
    """Send one sd_notify message; False when not started by systemd (or the socket is gone)."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
        return True
    except OSError as exc:
        log.warning("systemd notify failed: %s", exc)
        return False


def watchdog_interval() -> float | None:
    """Seconds between watchdog pings (half of WatchdogSec), or None when systemd set no watchdog for us."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 1e6 / 2
    except ValueError:
        return None


class Watchdog:
    """Pets the systemd watchdog while ``alive()`` holds; call ``poll()`` from the main loop."""

    def __init__(self, alive: Callable[[], bool] | None = None, *, clock: Callable[[], float] | None = None):
        import time

        self.alive = alive or (lambda: True)
        self.clock = clock or time.monotonic
        self.interval = watchdog_interval()
        self._last = -1e9
        self.pets = 0

    def ready(self) -> None:
        notify("READY=1")

    def poll(self) -> None:
        if self.interval is None or self.clock() - self._last < self.interval:
            return
        self._last = self.clock()
        if self.alive():
            notify("WATCHDOG=1")
            self.pets += 1
        else:
            log.error("liveness check failed: not petting the systemd watchdog (systemd will restart us)")

    def stopping(self) -> None:
        notify("STOPPING=1")
