"""Every configured upstream source, started and stopped with the service, and their health.

Push sources are known by their token (client name ``upstream:<name>``); poll sources each get
a loop that polls, then waits what the poller says. Health (last success, last error, failures
in a row, lag since the last success) is kept per source for ``/healthz``, ``/metrics`` and the
console.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from broadcaster.config import Config, Secret
from broadcaster.divisions import DivisionTree
from broadcaster.store.db import Database
from broadcaster.tasks import TaskSet
from broadcaster.upstream.area import AreaFilter
from broadcaster.upstream.gate import SourceHealth, Submit, UpstreamGate
from broadcaster.upstream.poller import SourcePoller

log = logging.getLogger(__name__)

CLIENT_PREFIX = "upstream:"
"""API client names of push sources: ``upstream:<name>``."""


def push_tokens(config: Config) -> dict[str, Secret]:
    """Client name → token of every push source, for the API's bearer check."""
    return {
        f"{CLIENT_PREFIX}{source.name}": source.token
        for source in config.upstream
        if source.mode == "push" and source.token is not None
    }


class UpstreamSources:
    """The gates of every source and the pollers of the polled ones."""

    def __init__(
        self,
        config: Config,
        *,
        database: Database,
        divisions: DivisionTree | None,
        submit: Submit,
        clock: Callable[[], float],
    ) -> None:
        self.clock = clock
        self.database = database
        base_dir: Path | None = config.source.resolve().parent if config.source else None
        self.gates = {
            source.name: UpstreamGate(
                source,
                cap=config.cap,
                area=AreaFilter.ours(source.areas, divisions),
                database=database,
                submit=submit,
                base_dir=base_dir,
                own_sender=config.server.sender,
            )
            for source in config.upstream
        }
        self._tasks = TaskSet("upstream")
        self._session: aiohttp.ClientSession | None = None
        self.rounds = asyncio.Event()
        """Set after every poll round (tests and the console wait on it)."""

    async def start(self) -> None:
        polled = [g for g in self.gates.values() if g.config.mode == "poll"]
        if not polled:
            return
        self._session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(), trust_env=False)
        for gate in polled:
            poller = SourcePoller(gate, self.database, self._session, self.clock)
            self._tasks.spawn(self._loop(poller), name=f"upstream-{gate.name}")

    async def _loop(self, poller: SourcePoller) -> None:
        config = poller.config
        while True:
            try:
                delay = await poller.poll()
            except Exception as exc:
                # A bug must not end the source's polling: it is a failed round, shown.
                log.exception("upstream %s: poll round failed", config.name)
                poller.gate.health.failed(self.clock(), f"internal error: {type(exc).__name__}")
                delay = config.backoff_max_seconds
            self.rounds.set()
            await asyncio.sleep(delay)

    async def stop(self) -> None:
        await self._tasks.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def pushed_by(self, client: str) -> UpstreamGate | None:
        """The gate of the push source an API client name stands for, if it is one."""
        if not client.startswith(CLIENT_PREFIX):
            return None
        gate = self.gates.get(client[len(CLIENT_PREFIX) :])
        return gate if gate is not None and gate.config.mode == "push" else None

    def health(self) -> dict[str, SourceHealth]:
        return {name: gate.health for name, gate in self.gates.items()}

    def health_json(self, *, details: bool) -> dict[str, Any]:
        """Each source's health: ``ok`` for anyone, the rest for an authenticated client."""
        now = self.clock()
        return {
            name: health.to_json(now) if details else {"ok": health.ok}
            for name, health in self.health().items()
        }
