"""systemd's service notification protocol (sd_notify(3)), spoken directly over a unix socket.

systemd passes ``NOTIFY_SOCKET`` (a filesystem path, or ``@name`` for an abstract socket) to a
``Type=notify`` service. The service sends datagrams of newline-separated ``KEY=VALUE`` lines:
``READY=1`` once it serves, ``STATUS=...`` free text for ``systemctl status``, ``STOPPING=1`` when
it begins to stop, and ``WATCHDOG=1`` keep-alives. With ``WatchdogSec=``, systemd sets
``WATCHDOG_USEC`` (and ``WATCHDOG_PID``) and restarts the service when no keep-alive arrives
within that time; sending every half of it is the documented practice.

Outside systemd (no ``NOTIFY_SOCKET``) every call does nothing. A send that fails is logged once
and never stops the server.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Mapping

log = logging.getLogger(__name__)

LivenessCheck = Callable[[], Awaitable[bool]]


class SystemdNotifier:
    """Sends state changes and watchdog keep-alives to the service manager."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.address = self._address(env.get("NOTIFY_SOCKET", ""))
        self.watchdog_interval = self._watchdog_interval(env)
        self._socket: socket.socket | None = None
        self._warned = False

    @staticmethod
    def _address(value: str) -> str | bytes | None:
        if not value:
            return None
        if value.startswith("@"):
            return b"\0" + value[1:].encode()  # abstract namespace
        if value.startswith("/"):
            return value
        return None  # vsock and other transports are not used here

    @staticmethod
    def _watchdog_interval(env: Mapping[str, str]) -> float | None:
        """Seconds between keep-alives (half of ``WATCHDOG_USEC``), or None without a watchdog."""
        try:
            usec = int(env.get("WATCHDOG_USEC", ""))
        except ValueError:
            return None
        pid = env.get("WATCHDOG_PID")
        if usec <= 0 or (pid and pid != str(os.getpid())):
            return None
        return usec / 2_000_000

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, **fields: str) -> bool:
        """Send one message, e.g. ``notify(READY="1", STATUS="serving")``; True if sent."""
        if self.address is None:
            return False
        message = "\n".join(f"{key}={value}" for key, value in fields.items()).encode()
        try:
            if self._socket is None:
                self._socket = socket.socket(
                    socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
                )
            self._socket.sendto(message, self.address)
        except OSError as exc:
            if not self._warned:
                log.warning("cannot notify the service manager at %r: %s", self.address, exc)
                self._warned = True
            return False
        return True

    def ready(self, status: str) -> bool:
        return self.notify(READY="1", STATUS=status)

    def stopping(self, status: str = "stopping") -> bool:
        return self.notify(STOPPING="1", STATUS=status)

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    async def keep_alive(self, alive: LivenessCheck) -> None:
        """Send ``WATCHDOG=1`` every half watchdog period while ``alive()`` says so.

        A check that fails or hangs beyond the interval skips the keep-alive, so systemd
        restarts a server whose loop or database is stuck. Returns at once without a watchdog.
        """
        interval = self.watchdog_interval
        if interval is None or self.address is None:
            return
        while True:
            try:
                async with asyncio.timeout(interval):
                    healthy = await alive()
            except TimeoutError:
                healthy = False
            except Exception:
                log.exception("liveness check failed")
                healthy = False
            if healthy:
                self.notify(WATCHDOG="1")
            else:
                log.error("liveness check failed: no watchdog keep-alive sent")
            await asyncio.sleep(interval)
