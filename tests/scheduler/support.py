"""Builders for scheduler tests: a controllable clock, probing channels, a running service.

The channels are real plugins loaded by import path (``tests.scheduler.support:...``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from broadcaster.channel import (
    Channel,
    ChannelCapabilities,
    OutgoingDelivery,
    ProbeResult,
    SendOutcome,
    SendResult,
)
from broadcaster.config import Config, parse_config
from broadcaster.delivery import Target
from broadcaster.errors import PermanentError
from broadcaster.service import BroadcasterService
from tests.core.support import _is_project_task, village_targets

SHANGHAI = ZoneInfo("Asia/Shanghai")


class OffsetClock:
    """The service's clock: runs at the machine's pace from a chosen instant; can be moved."""

    def __init__(self, start: datetime) -> None:
        self.offset = 0.0
        self.set(start)

    def set(self, moment: datetime) -> None:
        self.offset = moment.timestamp() - time.time()

    def __call__(self) -> float:
        return time.time() + self.offset


def at(text: str) -> datetime:
    """A Shanghai wall-clock time: ``at("2026-06-01 09:59:59.500")``."""
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


class BoxChannel(Channel):
    """Loudspeaker-like: confirms sends; probes read a heartbeat age from the target's params.

    ``params.dead`` targets (and ids in ``dead``) fail probes, ids in ``hanging`` never answer,
    ids in ``broken`` raise; ``params.permanent`` targets refuse commands.
    Every send and probe is recorded; ``probed`` is set on each probe.
    """

    capabilities: ClassVar[ChannelCapabilities] = ChannelCapabilities(confirms=True)
    sent: ClassVar[list[OutgoingDelivery]] = []
    probes: ClassVar[list[str]] = []
    dead: ClassVar[set[str]] = set()
    hanging: ClassVar[set[str]] = set()
    broken: ClassVar[set[str]] = set()
    probed: ClassVar[asyncio.Event | None] = None

    async def send(self, delivery: OutgoingDelivery) -> SendResult:
        type(self).sent.append(delivery)
        if delivery.target.params.get("permanent"):
            raise PermanentError("box refused the command")
        return SendResult(SendOutcome.CONFIRMED, provider_ref=f"box-{delivery.id}")

    async def probe(self, target: Target) -> ProbeResult:
        type(self).probes.append(target.id)
        if type(self).probed is not None:
            type(self).probed.set()
        if target.id in type(self).hanging:
            await asyncio.sleep(3600)
        if target.id in type(self).broken:
            raise RuntimeError("driver bug")
        if target.params.get("dead") or target.id in type(self).dead:
            return ProbeResult(ok=False, detail="no heartbeat for 900 s")
        return ProbeResult(ok=True, detail="heartbeat 5 s ago")

    @classmethod
    def reset(cls) -> None:
        cls.sent = []
        cls.probes = []
        cls.dead = set()
        cls.hanging = set()
        cls.broken = set()
        cls.probed = None


class OfficerChannel(Channel):
    """Where notices go: records each one (an SMS group or a duty-system webhook in real life)."""

    notices: ClassVar[list[OutgoingDelivery]] = []
    arrived: ClassVar[asyncio.Event | None] = None

    async def send(self, delivery: OutgoingDelivery) -> SendResult:
        type(self).notices.append(delivery)
        if type(self).arrived is not None:
            type(self).arrived.set()
        return SendResult(SendOutcome.ACCEPTED)

    @classmethod
    def texts(cls) -> list[str]:
        return [d.message.rendition.texts[0].title for d in cls.notices]


CHANNELS = {
    "boxes": {"type": "tests.scheduler.support:BoxChannel"},
    "officers": {"type": "tests.scheduler.support:OfficerChannel"},
}
OFFICERS = {
    "channel": "officers",
    "officers": [
        {"name": "值班员甲", "address": "+8613800000001"},
        {"name": "值班员乙", "address": "+8613800000002"},
    ],
}


def box_targets(count: int, **params_by_index: dict[str, Any]) -> list[dict[str, Any]]:
    targets = village_targets("boxes", count)
    for index, params in params_by_index.items():
        targets[int(index.removeprefix("t"))]["params"] = params
    return targets


def scheduler_config(
    tmp_path: Path,
    schedules: Sequence[dict[str, Any]] = (),
    targets: Sequence[dict[str, Any]] | None = None,
    **scheduler: Any,
) -> Config:
    registry = tmp_path / "targets.json"
    registry.write_text(
        json.dumps(list(targets if targets is not None else box_targets(3)), ensure_ascii=False),
        encoding="utf-8",
    )
    data = {
        "server": {"data_dir": str(tmp_path / "data"), "sender": "city@example.cn"},
        "registry": {"targets": str(registry)},
        "dispatcher": {
            "idle_poll_seconds": 0.05,
            "retry_base_seconds": 0.05,
            "retry_max_seconds": 0.2,
        },
        "channels": CHANNELS,
        "scheduler": {
            "timezone": "Asia/Shanghai",
            "schedules": list(schedules),
            "notify": OFFICERS,
        }
        | scheduler,
    }
    return parse_config(data, base_dir=tmp_path, source=None)


@asynccontextmanager
async def serving(config: Config, clock: OffsetClock) -> AsyncIterator[BroadcasterService]:
    """A started service on ``clock``; on exit it is stopped and must leave no task behind."""
    service = BroadcasterService(config, clock=clock)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()
        pending = [t for t in asyncio.all_tasks() if not t.done() and _is_project_task(t)]
        assert not pending, f"service left tasks running: {[t.get_name() for t in pending]}"


async def finished_runs(
    service: BroadcasterService, count: int = 1, timeout: float = 10.0
) -> list[dict[str, Any]]:
    """Wait until ``count`` runs have ended (whenever they started); returns them, oldest first."""
    ended = asyncio.Event()
    unsubscribe = service.operations.scheduler.subscribe(lambda *_: ended.set())
    store = service.store.schedules
    try:
        async with asyncio.timeout(timeout):
            while True:
                ended.clear()
                runs = await store.runs(None, 1000)
                done = [r for r in reversed(runs) if r["state"] != "running"]
                if len(done) >= count:
                    return done
                await ended.wait()
    finally:
        unsubscribe()
