"""A gateway on a loopback port whose every answer the test writes, for PDUs the simulator
never sends: each frame the client sends is read with the production framing and codec,
recorded, and handed to the test's ``answer``, which returns the frames to send back."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Generic, TypeVar

from drivers.smsgw.bind import read_frame

P = TypeVar("P")


class ScriptedGateway(Generic[P]):
    """``answer(pdu)`` gives the frames to send after ``pdu`` arrives (each frame written
    alone, so a test can put requests of its own between them)."""

    def __init__(
        self,
        header_length: int,
        decode: Callable[[bytes], P],
        answer: Callable[[P], list[bytes]],
    ) -> None:
        self.header_length = header_length
        self.decode = decode
        self.answer = answer
        self.received: list[P] = []
        self.connections = 0
        self._arrived = asyncio.Condition()
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()

    async def wait_for(self, found: Callable[[list[P]], bool], within: float = 5.0) -> None:
        """Wait until ``found(received)`` holds; TimeoutError after ``within`` seconds."""
        async with asyncio.timeout(within), self._arrived:
            await self._arrived.wait_for(lambda: found(self.received))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                message = self.decode(await read_frame(reader, self.header_length))
                async with self._arrived:
                    self.received.append(message)
                    self._arrived.notify_all()
                for frame in self.answer(message):
                    writer.write(frame)
                    await writer.drain()
        writer.close()
