"""Every configured upstream source, started and stopped with the service, and their health.

Push sources are known by their token (client name ``upstream:<name>``); poll sources each get
a loop that polls, then waits what the poller says. Health (last success, last error, failures
in a row, lag since the last success) is kept per source for ``/healthz``, ``/metrics`` and the
console.

:func:`upstream_problems` is the start-up check of ``[[upstream]]`` and ``[[neighbour]]`` (run
by :func:`broadcaster.preflight.preflight`, so ``check-config`` reports them and ``serve``
refuses to start with them): names given twice; a token that two sources, neighbours or API
clients share (the token is what tells them apart); a source that requires signatures but
trusts no certificate, or names one that cannot be read; channels that are not configured;
division codes that are malformed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import aiohttp

from broadcaster.config import CapConfig, Config, Secret
from broadcaster.divisions import DivisionTree, normalize_code
from broadcaster.errors import ConfigError
from broadcaster.signatures import SignaturePolicy
from broadcaster.store.db import Database
from broadcaster.tasks import TaskSet
from broadcaster.upstream.gate import SourceHealth, Submit, UpstreamGate
from broadcaster.upstream.poller import SourcePoller
from broadcaster.upstream.rules import AreaFilter

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


def _twice(names: Iterable[str]) -> set[str]:
    seen: set[str] = set()
    repeated = set()
    for name in names:
        if name in seen:
            repeated.add(name)
        seen.add(name)
    return repeated


def _code_problems(key: str, codes: Iterable[str]) -> list[str]:
    problems = []
    for code in codes:
        try:
            normalize_code(code)
        except ValueError as exc:
            problems.append(f"{key}.areas: {exc}")
    return problems


def upstream_problems(config: Config) -> list[str]:
    """Every problem of the federation sections (none when they are absent)."""
    problems = [
        f"upstream: the name {name!r} is given twice"
        for name in _twice(s.name for s in config.upstream)
    ]
    problems += [
        f"neighbour: the name {name!r} is given twice"
        for name in _twice(n.name for n in config.neighbour)
    ]
    tokens = [(f"upstream.{s.name}.token", s.token) for s in config.upstream if s.mode == "push"]
    tokens += [(f"neighbour.{n.name}.token", n.token) for n in config.neighbour]
    tokens += [(f"api.tokens.{t.name}.token", t.token) for t in config.api.tokens]
    shared = _twice(token.reveal() for _key, token in tokens if token is not None)
    problems += [
        f"{key}: the same token is given to another source, neighbour or API client"
        for key, token in tokens
        if token is not None and token.reveal() in shared and not key.startswith("api.")
    ]
    base = config.source.resolve().parent if config.source else None
    for source in config.upstream:
        key = f"upstream.{source.name}"
        problems += _code_problems(key, source.areas)
        unknown = [c for c in source.channels or [] if c not in config.channels]
        if unknown:
            problems.append(f"{key}.channels: not configured: {', '.join(unknown)}")
        if source.require_signature and not source.trusted_certificates:
            problems.append(f"{key}: require_signature needs trusted_certificates")
        certificates = [
            p if p.is_absolute() or base is None else base / p for p in source.trusted_certificates
        ]
        try:
            SignaturePolicy(CapConfig(trusted_certificates=certificates))
        except ConfigError as exc:
            problems.append(f"{key}.trusted_certificates: {str(exc).split(': ', 1)[1]}")
    for neighbour in config.neighbour:
        problems += _code_problems(f"neighbour.{neighbour.name}", neighbour.areas)
    return problems
