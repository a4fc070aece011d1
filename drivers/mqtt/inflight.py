"""Packet identifiers for requests awaiting their acknowledgement, OASIS MQTT 3.1.1 section 2.3.1.

A QoS 1 PUBLISH, a SUBSCRIBE and an UNSUBSCRIBE each carry a non-zero 16-bit packet
identifier that is free again once its PUBACK, SUBACK or UNSUBACK arrives (2.3.1, 4.3.2).
``PacketIdPool`` hands out identifiers round-robin, never two alike in flight, and makes a caller
wait when all 65,535 are taken. An identifier whose caller gave up (cancelled) stays taken until
its acknowledgement arrives, so a late acknowledgement never completes a newer request.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

MAX_PACKET_ID = 65535


class PacketIdPool:
    """Identifiers 1..65535, each tied to the future its acknowledgement completes."""

    __slots__ = ("_last", "_limit", "_pending", "_waiters")

    def __init__(self, limit: int = MAX_PACKET_ID) -> None:
        self._limit = min(limit, MAX_PACKET_ID)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._last = 0

    def __len__(self) -> int:
        return len(self._pending)

    async def reserve(self) -> tuple[int, asyncio.Future[Any]]:
        """A free identifier and the future its acknowledgement will complete.

        Waits while ``limit`` identifiers are in flight; raises what ``fail_all`` was given if
        the connection ends meanwhile.
        """
        pending = self._pending
        loop = asyncio.get_running_loop()
        while len(pending) >= self._limit:
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            await waiter
        packet_id = self._last
        while True:
            packet_id = packet_id % MAX_PACKET_ID + 1
            if packet_id not in pending:
                break
        self._last = packet_id
        future: asyncio.Future[Any] = loop.create_future()
        pending[packet_id] = future
        return packet_id, future

    def complete(self, packet_id: int, result: object) -> bool:
        """Free ``packet_id`` and hand ``result`` to its caller; False if it was not in flight."""
        future = self._pending.pop(packet_id, None)
        if future is None:
            return False
        if not future.done():
            future.set_result(result)
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break
        return True

    def fail_all(self, error: BaseException) -> None:
        """The connection ended: every request in flight and every waiting caller gets ``error``."""
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(error)
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(error)
