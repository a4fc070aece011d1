"""Pushes to neighbours' APIs: each shared alert sent once to ``push_url`` as CAP XML.

For every ``[[neighbour]]`` with a ``push_url`` and ``push_token``, a round runs whenever the
system's state changes (a new alert, an approval) and at least every
``push_interval_seconds``: each alert the neighbour may see (:mod:`broadcaster.upstream.rules`)
that was not pushed yet is sent, exactly as received (its own signature intact), as
``POST push_url`` with ``Authorization: Bearer <push_token>``. A 200 or 201 is recorded as
pushed and so is a 4xx answer about the document (the neighbour refused it: sending it again
will not help; the answer is in the health); 401, 403, 408, 429, a 5xx, a timeout or a
connection error ends the round and is retried in the next. No redirect is followed. Health
per neighbour (last success,
last error, failures in a row) is in ``/healthz``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import aiohttp

from broadcaster.divisions import DivisionTree
from broadcaster.errors import BroadcasterError
from broadcaster.federationconfig import NeighbourConfig
from broadcaster.store.db import Database
from broadcaster.store.interface import Store
from broadcaster.tasks import TaskSet
from broadcaster.upstream.fetch import origin_of
from broadcaster.upstream.gate import SourceHealth
from broadcaster.upstream.rules import shared_records
from broadcaster.upstream.state import UpstreamTable

log = logging.getLogger(__name__)


class PushFailedError(BroadcasterError):
    """A push that may succeed later (the neighbour down, slow, or failing)."""


class NeighbourPushers:
    """One push loop per neighbour that has a ``push_url``."""

    def __init__(
        self,
        neighbours: list[NeighbourConfig],
        *,
        store: Store,
        database: Database,
        divisions: DivisionTree | None,
        clock: Callable[[], float],
    ) -> None:
        self.neighbours = [n for n in neighbours if n.push_url and n.push_token]
        self.store = store
        self.table = UpstreamTable(database)
        self.database = database
        self.divisions = divisions
        self.clock = clock
        self.health = {n.name: SourceHealth(n.name, "push-out") for n in self.neighbours}
        self._wake = {n.name: asyncio.Event() for n in self.neighbours}
        self._tasks = TaskSet("neighbour-push")
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if not self.neighbours:
            return
        self._session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(), trust_env=False)
        for neighbour in self.neighbours:
            self._tasks.spawn(self._loop(neighbour), name=f"neighbour-push-{neighbour.name}")

    def wake(self) -> None:
        """Something changed: every neighbour's next round starts now."""
        for event in self._wake.values():
            event.set()

    async def stop(self) -> None:
        await self._tasks.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _loop(self, neighbour: NeighbourConfig) -> None:
        health, wake = self.health[neighbour.name], self._wake[neighbour.name]
        while True:
            wake.clear()
            try:
                await self.push_round(neighbour)
            except PushFailedError as exc:
                health.failed(self.clock(), str(exc))
                log.warning("neighbour %s: %s", neighbour.name, exc)
            except Exception as exc:
                log.exception("neighbour %s: push round failed", neighbour.name)
                health.failed(self.clock(), f"internal error: {type(exc).__name__}")
            else:
                health.succeeded(self.clock())
            health.polls += 1
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(neighbour.push_interval_seconds):
                    await wake.wait()

    async def push_round(self, neighbour: NeighbourConfig) -> None:
        """Push every shared alert not pushed yet; PushFailedError on a failure to retry."""
        records = await shared_records(self.store, neighbour, self.divisions, self.clock())
        for record in reversed(records):  # oldest first, so an Update follows its alert
            alert_id = str(record["id"])
            if await self.database.run(self.table.pushed, neighbour.name, alert_id):
                continue
            raw = await self.store.alerts.raw_xml(alert_id)
            if raw is None:
                continue
            outcome = await self._post(neighbour, raw)
            await self.database.run(
                self.table.record_push, neighbour.name, alert_id, outcome, self.clock()
            )

    async def _post(self, neighbour: NeighbourConfig, raw: bytes) -> str:
        assert self._session is not None and neighbour.push_url and neighbour.push_token
        headers = {
            "Authorization": f"Bearer {neighbour.push_token.reveal()}",
            "Content-Type": "application/cap+xml",
        }
        where = origin_of(neighbour.push_url)
        try:
            async with (
                asyncio.timeout(neighbour.timeout_seconds),
                self._session.post(
                    neighbour.push_url, data=raw, headers=headers, allow_redirects=False
                ) as response,
            ):
                status = response.status
        except TimeoutError:
            raise PushFailedError(
                f"{where} did not answer in {neighbour.timeout_seconds:g} s"
            ) from None
        except aiohttp.ClientError as exc:
            raise PushFailedError(f"cannot push to {where}: {type(exc).__name__}") from None
        if status in (200, 201):
            return "pushed"
        if 400 <= status < 500 and status not in (401, 403, 408, 429):
            self.health[neighbour.name].noted(self.clock(), f"{where} refused an alert: {status}")
            return f"refused {status}"
        raise PushFailedError(f"{where} answered HTTP {status}")
