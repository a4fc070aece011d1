"""A plain MQTT subscriber of the loudspeaker audio topics (docs/protocols/speaker.md section
5.1, "Sealed audio on MQTT"), for tests: what the broker hands a box that subscribes."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from types import TracebackType
from typing import Self

from drivers.mqtt import MqttClient

PREFIX = "broadcaster/speaker"


class AudioWatch:
    """Subscribed to ``filter`` (every audio topic by default) while open; keeps each message
    it receives as (topic, payload, retained)."""

    def __init__(self, host: str, port: int, topic_filter: str = f"{PREFIX}/audio/#") -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self._filter = topic_filter
        self._arrived = asyncio.Event()
        self._client = MqttClient(host, port, f"watch-{secrets.token_hex(4)}", on_message=self._on)

    def _on(self, topic: str, payload: bytes, retain: bool) -> None:
        self.messages.append((topic, payload, retain))
        self._arrived.set()

    async def __aenter__(self) -> Self:
        await self._client.connect()
        await self._client.subscribe([(self._filter, 1)])
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._client.disconnect()

    def latest(self) -> dict[str, bytes]:
        """The last payload of each topic; a topic whose last message was empty is left out."""
        found: dict[str, bytes] = {}
        for topic, payload, _ in self.messages:
            found[topic] = payload
        return {topic: payload for topic, payload in found.items() if payload}

    def count(self, topic: str) -> int:
        """How many non-empty messages came on ``topic``."""
        return sum(1 for t, payload, _ in self.messages if t == topic and payload)

    async def wait_for(self, done: Callable[[dict[str, bytes]], bool], within_s: float) -> None:
        """Wait until ``done(self.latest())``; raises TimeoutError."""
        async with asyncio.timeout(within_s):
            while not done(self.latest()):
                self._arrived.clear()
                await self._arrived.wait()

    async def quiet(self, for_s: float = 0.5) -> None:
        """Wait until no message has come for ``for_s``."""
        while True:
            self._arrived.clear()
            try:
                async with asyncio.timeout(for_s):
                    await self._arrived.wait()
            except TimeoutError:
                return


async def retained_now(host: str, port: int) -> dict[str, bytes]:
    """What the broker retains under the audio topics now: what a box subscribing gets."""
    async with AudioWatch(host, port) as watch:
        await watch.quiet()
        return {topic: payload for topic, payload, retained in watch.messages if retained}


async def wait_cleared(host: str, port: int, within_s: float) -> None:
    """Wait until the broker retains nothing under the audio topics; raises TimeoutError."""
    async with asyncio.timeout(within_s):
        while await retained_now(host, port):
            await asyncio.sleep(0.2)
