"""The pieces of the channel contract suite that are not tests: the sink protocol through which a
channel's effect is observed, task and thread snapshots, the secret finder and the entry-point
lookup. Every failure is a :class:`ContractViolation` naming the rule it breaks."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel

from broadcaster.channel import Channel, OutgoingDelivery
from broadcaster.config import ChannelConfig, Secret
from broadcaster.errors import PluginError
from broadcaster.plugins import ENTRY_POINT_GROUP, load_plugin

SECRET_WORDS = frozenset(
    {"secret", "token", "password", "passwd", "key", "apikey", "credential", "credentials"}
)
"""Parts of a field name (split at ``_``) that mark it as holding a secret."""


class ContractViolation(AssertionError):
    """A channel breaks a rule of the contract; the message starts with the rule's name."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(f"contract rule {rule!r} broken: {message}")
        self.rule = rule


def check(condition: object, rule: str, message: str) -> None:
    if not condition:
        raise ContractViolation(rule, message)


class DeliverySink(Protocol):
    """Where the contract suite looks for the effect of a delivery outside the channel: the
    request a receiver got, the SMS a simulated modem sent, the line a file gained.

    The integrator provides one as the ``delivery_sink`` fixture, next to the channel it
    observes (a stand-in server, a simulator, a directory)."""

    async def received(self, delivery: OutgoingDelivery) -> bool:
        """Whether ``delivery`` (its id or idempotency key) can be seen there now."""
        ...


class JsonLinesSink:
    """A file of JSON lines (a log, a stand-in's record): a delivery is seen once a line's
    ``key`` field holds its idempotency key."""

    def __init__(self, path: Path, key: str = "idempotency_key") -> None:
        self.path = path
        self.key = key

    async def received(self, delivery: OutgoingDelivery) -> bool:
        if not self.path.exists():
            return False
        lines = self.path.read_text(encoding="utf-8").splitlines()
        return any(json.loads(line).get(self.key) == delivery.idempotency_key for line in lines)


async def observed(sink: DeliverySink, delivery: OutgoingDelivery, within: float) -> bool:
    """Poll ``sink`` until it has seen ``delivery`` or ``within`` seconds have passed."""
    deadline = time.monotonic() + within
    while True:
        if await sink.received(delivery):
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.05)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The tasks and threads alive at one moment."""

    tasks: frozenset[asyncio.Task[Any]]
    threads: frozenset[threading.Thread]

    @classmethod
    def take(cls) -> Snapshot:
        return cls(frozenset(asyncio.all_tasks()), frozenset(threading.enumerate()))


def _pooled(thread: threading.Thread) -> bool:
    """A worker of the event loop's default executor: it lives as long as the loop, by design."""
    return thread.name.startswith("asyncio_")


def _serving(task: asyncio.Task[Any]) -> bool:
    """A connection handler of an aiohttp server: the stand-ins of a test (a push service, a
    county node) keep these until their keep-alive ends; a channel is a client."""
    return getattr(task.get_coro(), "__qualname__", "").startswith("RequestHandler.")


async def leftovers(before: Snapshot, grace: float = 2.0) -> list[str]:
    """Tasks and threads started since ``before`` that are still alive after ``grace`` s."""
    current = asyncio.current_task()
    deadline = time.monotonic() + grace
    while True:
        tasks = [
            t
            for t in asyncio.all_tasks() - before.tasks
            if t is not current and not t.done() and not _serving(t)
        ]
        threads = [
            t
            for t in set(threading.enumerate()) - before.threads
            if t.is_alive() and not _pooled(t)
        ]
        if (not tasks and not threads) or time.monotonic() >= deadline:
            break
        await asyncio.sleep(0.05)
    return [f"task {t.get_name()} ({t.get_coro()!r})" for t in tasks] + [
        f"thread {t.name}" for t in threads
    ]


def _walk(value: object, path: str) -> Iterator[tuple[str, object]]:
    yield path, value
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _walk(getattr(value, name), f"{path}.{name}" if path else name)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, f"{path}[{key!r}]")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _walk(item, f"{path}[{index}]")


def _looks_secret(path: str) -> bool:
    last = path.rsplit(".", 1)[-1].split("[", 1)[0].lower()
    return any(part in SECRET_WORDS for part in last.split("_"))


def secret_problems(config: ChannelConfig) -> list[str]:
    """Where a channel configuration shows a secret: a secret-looking field kept as plain text,
    or a :class:`~broadcaster.config.Secret` whose value appears in the dump or the repr."""
    problems = []
    revealed = []
    for path, value in _walk(config, ""):
        if isinstance(value, Secret):
            revealed.append((path, value.reveal()))
        elif isinstance(value, str) and value and _looks_secret(path):
            problems.append(
                f"{path} holds a secret as plain text; type it broadcaster.config.Secret"
            )
    shown = json.dumps(config.model_dump(mode="json"), ensure_ascii=False) + repr(config)
    problems += [
        f"{path}'s value appears in the configuration's dump or repr"
        for path, secret in revealed
        if secret in shown
    ]
    return problems


def entry_point_problem(channel: Channel, name: str | None) -> str | None:
    """Why the channel's class cannot be found through the entry-point group, or None.

    With ``name``, that entry point must load the class; without, some entry point of the
    group naming a class of that name must load it."""
    cls = type(channel)
    if name is None:
        named = [
            ep.name
            for ep in entry_points(group=ENTRY_POINT_GROUP)
            if ep.value.rpartition(":")[2] == cls.__qualname__
        ]
        found = [n for n in named if _loads(n) is cls]
        if not found:
            return (
                f"no entry point of the group {ENTRY_POINT_GROUP!r} loads"
                f" {cls.__module__}:{cls.__qualname__}; add it under"
                f' [project.entry-points."{ENTRY_POINT_GROUP}"] and install the package'
            )
        return None
    try:
        loaded = load_plugin(name)
    except PluginError as exc:
        return str(exc)
    if loaded is not cls:
        return f"entry point {name!r} loads {loaded.__module__}:{loaded.__qualname__}, not {cls}"
    return None


def _loads(name: str) -> type[Channel] | None:
    try:
        return load_plugin(name)
    except PluginError:
        return None
