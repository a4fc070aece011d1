"""Byte transports to an encoder, opened from a URL: TCP sockets and serial/pty devices.

``socket://host:port`` opens an asyncio TCP connection. Anything else is handed to
pyserial's ``serial_for_url`` (a device path such as ``/dev/ttyUSB0`` or a pty path), which
is driven from one reader thread per port so blocking reads never run on the event loop;
writes go through ``asyncio.to_thread``. OS and pyserial errors become
:class:`~drivers.rds.errors.RdsLinkError` at this boundary.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import threading

import serial

from drivers.rds.errors import RdsLinkError

_READ_CHUNK = 4096
_SERIAL_POLL_SECONDS = 0.05


class RdsTransport(abc.ABC):
    """A bidirectional byte stream to one encoder."""

    @abc.abstractmethod
    async def read(self) -> bytes:
        """Wait for the next bytes; raise RdsLinkError when the link is gone."""

    @abc.abstractmethod
    async def write(self, data: bytes) -> None:
        """Send ``data``; raise RdsLinkError when the link is gone."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release the link; safe to call twice."""


class TcpTransport(RdsTransport):
    """An asyncio TCP connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self) -> bytes:
        try:
            data = await self._reader.read(_READ_CHUNK)
        except OSError as error:
            raise RdsLinkError(f"TCP read failed: {error}") from error
        if not data:
            raise RdsLinkError("the encoder closed the TCP connection")
        return data

    async def write(self, data: bytes) -> None:
        if self._writer.is_closing():
            raise RdsLinkError("the TCP connection is closed")
        try:
            self._writer.write(data)
            await self._writer.drain()
        except OSError as error:
            raise RdsLinkError(f"TCP write failed: {error}") from error

    async def close(self) -> None:
        if self._writer.is_closing():
            return
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()


class SerialTransport(RdsTransport):
    """A pyserial port read by a dedicated thread that hands bytes to the event loop."""

    def __init__(self, port: serial.Serial, loop: asyncio.AbstractEventLoop) -> None:
        self._port = port
        self._loop = loop
        self._incoming: asyncio.Queue[bytes | RdsLinkError] = asyncio.Queue()
        self._stopping = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._pump, name=f"rds-serial {port.port}")
        self._thread.start()

    def _pump(self) -> None:
        while not self._stopping.is_set():
            try:
                data = self._port.read(self._port.in_waiting or 1)
            except (serial.SerialException, OSError, TypeError) as error:
                self._hand_over(RdsLinkError(f"serial read failed: {error}"))
                return
            if data and not self._hand_over(data):
                return

    def _hand_over(self, item: bytes | RdsLinkError) -> bool:
        """Queue ``item`` on the loop's side; False once the loop is gone."""
        try:
            self._loop.call_soon_threadsafe(self._incoming.put_nowait, item)
        except RuntimeError:
            return False
        return True

    async def read(self) -> bytes:
        if self._closed:
            raise RdsLinkError("the serial port is closed")
        item = await self._incoming.get()
        if isinstance(item, RdsLinkError):
            raise item
        return item

    async def write(self, data: bytes) -> None:
        if self._closed:
            raise RdsLinkError("the serial port is closed")
        try:
            await asyncio.to_thread(self._port.write, data)
        except (serial.SerialException, OSError) as error:
            raise RdsLinkError(f"serial write failed: {error}") from error

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stopping.set()
        try:
            await asyncio.to_thread(self._stop_and_close)  # runs to its end even if cancelled
        finally:
            self._incoming.put_nowait(RdsLinkError("the serial port is closed"))

    def _stop_and_close(self) -> None:
        self._thread.join()
        self._port.close()


async def open_transport(url: str, *, baudrate: int, connect_timeout: float) -> RdsTransport:
    """Open ``url``; raise RdsLinkError when the encoder cannot be reached in time."""
    if url.startswith("socket://"):
        rest = url.removeprefix("socket://").rstrip("/")
        host, _, port = rest.rpartition(":")
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host.strip("[]"), int(port)), connect_timeout
            )
        except (OSError, TimeoutError, ValueError) as error:
            raise RdsLinkError(
                f"cannot connect to encoder at {url}: {error or 'timed out'}"
            ) from error
        return TcpTransport(reader, writer)
    try:
        port_handle = await asyncio.wait_for(
            asyncio.to_thread(
                serial.serial_for_url, url, baudrate=baudrate, timeout=_SERIAL_POLL_SECONDS
            ),
            connect_timeout,
        )
    except (serial.SerialException, OSError, TimeoutError, ValueError) as error:
        raise RdsLinkError(f"cannot open encoder port {url}: {error or 'timed out'}") from error
    return SerialTransport(port_handle, asyncio.get_running_loop())
