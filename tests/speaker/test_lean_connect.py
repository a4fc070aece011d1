"""The lean fleet's connecting: a box whose connection fails before it is up tries again, as
a real box does, and an answer that comes after its wait was given up is ignored."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from drivers.speaker.errors import SpeakerConfigError
from drivers.speaker.simulator_lean import LeanFleet, LeanFleetConfig

SECRET = b"lean-fleet-secret-0123456789abcdef"
CONNACK = bytes([0x20, 2, 0, 0])


class Broker:
    """A stand-in broker on loopback that answers each connection with ``answer``."""

    def __init__(self, answer: Any) -> None:
        self._answer = answer
        self._handlers: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> str:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._handlers.append(task)
            await self._answer(reader, writer)
            writer.close()

        self._server = await asyncio.start_server(handle, "127.0.0.1", 0)
        return f"mqtt://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *_: object) -> None:
        async with asyncio.timeout(5):  # the fleet closed its connections: the handlers end
            await asyncio.gather(*self._handlers)
        self._server.close()
        await self._server.wait_closed()


def client_id(connect: bytes) -> bytes:
    """The client id of a CONNECT packet (MQTT 3.1.1 section 3.1.3.1) of under 128 bytes."""
    length = connect[12] << 8 | connect[13]
    return connect[14 : 14 + length]


async def test_a_connection_lost_before_connack_is_tried_again() -> None:
    tries: dict[bytes, int] = {}

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        box = client_id(await reader.read(200))
        tries[box] = tries.get(box, 0) + 1
        if tries[box] == 1:
            return  # the first try of every box: dropped before CONNACK
        writer.write(CONNACK)
        await reader.read()

    async with Broker(answer) as url:
        fleet = LeanFleet(LeanFleetConfig(url, SECRET, boxes=5))
        try:
            async with asyncio.timeout(15):
                await fleet.start()
            assert len(tries) == 5
            assert sorted(tries.values()) == [2] * 5
        finally:
            fleet.close()


async def test_a_connack_after_the_wait_was_given_up_is_ignored() -> None:
    errors: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, context: errors.append(context))
    writers: list[asyncio.StreamWriter] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(200)
        writers.append(writer)  # no CONNACK until the fleet gave up waiting
        await reader.read()

    async with Broker(answer) as url:
        fleet = LeanFleet(LeanFleetConfig(url, SECRET, boxes=3))
        try:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(1):
                    await fleet.start()
            assert len(writers) == 3
            for writer in writers:
                writer.write(CONNACK)
            await asyncio.sleep(0.3)
            assert errors == []
        finally:
            fleet.close()


async def test_a_refusing_broker_is_named_at_once() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(200)
        writer.write(bytes([0x20, 2, 0, 5]))  # CONNACK: not authorised
        await reader.read()

    async with Broker(answer) as url:
        fleet = LeanFleet(LeanFleetConfig(url, SECRET, boxes=1))
        try:
            with pytest.raises(SpeakerConfigError, match=r"refused box .*: CONNACK 5"):
                async with asyncio.timeout(5):
                    await fleet.start()
        finally:
            fleet.close()
