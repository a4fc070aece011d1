"""The play command every box of an alert with the same languages gets, built once.

A fan-out to thousands of boxes sends one command that differs from box to box only in its
command id, its ``to`` and its signature. :class:`ProgrammeCache` builds it (audio published,
command, description, reported content) once per alert, set of languages and expiry, keeps
it as a :class:`~drivers.speaker.codec.CommandTemplate`, and hands the same programme to every
send while it is fresh: its ``issued_at`` stays within ``fresh_s`` of the moment it is sent.
Sends that ask while it is being built wait for that one build; a build that fails is
forgotten, so the next send tries again.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from broadcaster.channel import OutgoingDelivery
from drivers.speaker.codec import CommandTemplate
from drivers.speaker.messages import Command

Built = tuple[Command, str, dict[str, Any], tuple[str, ...]]
"""A command, its description for the log, the content reported and the warnings."""


@dataclass(frozen=True, slots=True)
class Programme:
    """One built command and what the channel reports with each send of it."""

    template: CommandTemplate
    what: str
    content: dict[str, Any]
    warnings: tuple[str, ...]
    made_at: float


class ProgrammeCache:
    """Programmes by (alert, languages, expiry); see the module docstring."""

    def __init__(
        self,
        build: Callable[[OutgoingDelivery], Awaitable[Built]],
        *,
        fresh_s: float = 1.0,
        kept: int = 256,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._build = build
        self._fresh_s = fresh_s
        self._kept = kept
        self._clock = clock
        self._entries: OrderedDict[tuple[Any, ...], asyncio.Future[Programme]] = OrderedDict()

    async def get(self, delivery: OutgoingDelivery) -> Programme:
        """The programme for ``delivery``; raises what building it raised."""
        key = (delivery.message.id, tuple(delivery.target.languages), delivery.expires_at)
        entry = self._entries.get(key)
        if entry is not None:
            if not entry.done():
                return await asyncio.shield(entry)
            if entry.exception() is None:
                programme = entry.result()
                if self._clock() - programme.made_at < self._fresh_s:
                    return programme
        future: asyncio.Future[Programme] = asyncio.get_running_loop().create_future()
        self._entries[key] = future
        self._entries.move_to_end(key)
        while len(self._entries) > self._kept:
            self._entries.popitem(last=False)
        try:
            command, what, content, warnings = await self._build(delivery)
            programme = Programme(CommandTemplate(command), what, content, warnings, self._clock())
        except BaseException as error:
            if self._entries.get(key) is future:
                del self._entries[key]
            future.set_exception(error)
            future.exception()  # retrieved: the waiters get it, there may be none
            raise
        future.set_result(programme)
        return programme
