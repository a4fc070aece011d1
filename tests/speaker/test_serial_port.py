"""The serial port's asyncio face (``drivers.speaker.serial_port``) on a real pty pair: a close
cancelled while the port closes still closes it, and the close after it closes nothing twice."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
import serial

from drivers.speaker.serial_port import SerialPortStream
from drivers.speaker.testing import NullModem


async def test_a_close_cancelled_midway_closes_the_port_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    closes: list[serial.SerialBase] = []
    entered = threading.Event()
    real_open = serial.serial_for_url

    def open_slow_to_close(url: str, **options: Any) -> serial.SerialBase:
        port = real_open(url, **options)
        real_close = port.close

        def slow_close() -> None:
            closes.append(port)
            entered.set()
            time.sleep(0.2)
            real_close()

        port.close = slow_close  # type: ignore[method-assign]
        return port

    monkeypatch.setattr(serial, "serial_for_url", open_slow_to_close)
    modem = NullModem()
    try:
        stream = SerialPortStream(modem.path_a, 115200, lambda _data: None, lambda: None)
        await stream.open()
        first = asyncio.get_running_loop().create_task(stream.close())
        assert await asyncio.to_thread(entered.wait, 5)
        first.cancel()  # the line is stopped while its failed port closes
        await stream.close()
        with pytest.raises(asyncio.CancelledError):
            await first
        (port,) = closes
        deadline = time.monotonic() + 5
        while port.is_open and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert not port.is_open
        await asyncio.sleep(0.3)  # a second close would have come by now
        assert closes == [port]
    finally:
        modem.close()
