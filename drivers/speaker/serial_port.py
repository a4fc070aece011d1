"""An asyncio face for a pyserial port: a reader thread delivers bytes to the event loop.

Used by both ends of a serial line (docs/protocols/speaker.md, section 4.2). The port is opened
from a pyserial URL or device path (``/dev/ttyUSB0``, a pty path, ``rfc2217://host:port``).
Reads and writes never block the event loop: the reader runs in its own thread and writes go
through the default executor. A read timeout with bytes of a half frame pending is the
line's silent gap, reported through ``on_gap``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

import serial

from drivers.speaker.errors import SpeakerConnectionError

log = logging.getLogger(__name__)

READ_TIMEOUT_S = 0.02


class SerialPortStream:
    """An open serial port with a background reader thread."""

    def __init__(
        self,
        url: str,
        baudrate: int,
        on_bytes: Callable[[bytes], None],
        on_gap: Callable[[], None],
    ) -> None:
        self._url = url
        self._baudrate = baudrate
        self._on_bytes = on_bytes
        self._on_gap = on_gap
        self._port: serial.SerialBase | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._write_lock = asyncio.Lock()
        self.failed = asyncio.Event()
        """Set when the port fails under the reader (unplugged adapter, I/O error)."""

    async def open(self) -> None:
        """Open the port and start reading; raises SpeakerConnectionError on failure."""
        self._loop = asyncio.get_running_loop()
        self._stopping.clear()
        self.failed.clear()
        try:
            self._port = await asyncio.to_thread(
                serial.serial_for_url, self._url, baudrate=self._baudrate, timeout=READ_TIMEOUT_S
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise SpeakerConnectionError(f"cannot open serial port {self._url}: {exc}") from exc
        self._thread = threading.Thread(
            target=self._read_forever, name=f"serial-reader {self._url}", daemon=True
        )
        self._thread.start()

    def _read_forever(self) -> None:
        port, loop = self._port, self._loop
        assert port is not None and loop is not None
        while not self._stopping.is_set():
            try:
                data = port.read(max(1, port.in_waiting))
            except (serial.SerialException, OSError, TypeError) as exc:
                if not self._stopping.is_set():
                    log.error("serial port %s failed: %s", self._url, exc)
                    loop.call_soon_threadsafe(self.failed.set)
                return
            callback: Callable[..., None] = self._on_bytes if data else self._on_gap
            try:
                loop.call_soon_threadsafe(callback, *((data,) if data else ()))
            except RuntimeError:
                return

    async def write(self, data: bytes) -> None:
        """Write ``data``; raises SpeakerConnectionError when the port is gone."""
        port = self._port
        if port is None:
            raise SpeakerConnectionError(f"serial port {self._url} is not open")
        try:
            async with self._write_lock:
                await asyncio.to_thread(port.write, data)
        except (serial.SerialException, OSError) as exc:
            raise SpeakerConnectionError(f"write to {self._url} failed: {exc}") from exc

    async def close(self) -> None:
        """Stop the reader thread and close the port, once: a close cancelled while the port
        closes (its line stopped meanwhile) still closes it, and a close after it finds
        nothing left to close (a second ``close`` of the descriptor could close another file
        opened meanwhile under the same number)."""
        self._stopping.set()
        thread, self._thread = self._thread, None
        port, self._port = self._port, None
        if thread is not None or port is not None:
            await asyncio.to_thread(_stop_and_close, thread, port)


def _stop_and_close(thread: threading.Thread | None, port: serial.SerialBase | None) -> None:
    """Wait for the reader ``thread`` to end, then close ``port`` (in a worker thread, which
    runs to its end whether or not its caller is cancelled)."""
    if thread is not None:
        thread.join()
    if port is not None:
        port.close()
