"""Builders for core tests: alerts, registries, configurations, a running service, test channels.

The test channels are real channel plugins loaded by import path (``tests.core.support:...``),
exactly as an integrator's unpackaged channel would be.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

from aiohttp import web

from broadcaster.cap import (
    Alert,
    Area,
    Category,
    Certainty,
    Circle,
    Info,
    MsgType,
    NamedValue,
    Polygon,
    Scope,
    Severity,
    Status,
    Urgency,
)
from broadcaster.channel import (
    Channel,
    ChannelCapabilities,
    Confirmation,
    ConfirmationOutcome,
    OutgoingDelivery,
    SendOutcome,
    SendResult,
)
from broadcaster.config import Config, parse_config
from broadcaster.delivery import Target
from broadcaster.errors import PermanentError, RetryableError
from broadcaster.service import BroadcasterService
from broadcaster.store.db import Connection, Database
from tests.conftest import REPO

COUNTY = "150921000000"  # 卓资县
OTHER_COUNTY = "150922000000"  # 化德县
COUNTY_SEAT = (40.894, 112.577)


def now_utc() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def make_alert(
    identifier: str = "test-1",
    *,
    status: Status = Status.ACTUAL,
    msg_type: MsgType = MsgType.ALERT,
    geocodes: Sequence[str] = (COUNTY,),
    polygon: Sequence[tuple[float, float]] | None = None,
    circle: Circle | None = None,
    expires_in: float | None = 3600,
    effective_in: float | None = None,
    headline: str = "卓资县暴雪橙色预警",
    severity: Severity = Severity.SEVERE,
    references: Sequence[Alert] = (),
    sender: str = "test@example.cn",
    sent: datetime | None = None,
) -> Alert:
    sent = sent or now_utc()
    area = Area(
        area_desc="卓资县",
        geocodes=[NamedValue("CPEAS Geographic Code", code) for code in geocodes],
        polygons=[Polygon(tuple(polygon))] if polygon else [],
        circles=[circle] if circle else [],
    )
    info = Info(
        language="zh-CN",
        categories=[Category.MET],
        event="暴雪",
        urgency=Urgency.IMMEDIATE,
        severity=severity,
        certainty=Certainty.LIKELY,
        effective=sent + timedelta(seconds=effective_in) if effective_in is not None else None,
        expires=sent + timedelta(seconds=expires_in) if expires_in is not None else None,
        sender_name="乌兰察布市气象台",
        headline=headline,
        description="预计未来12小时内降雪量将达10毫米以上。",
        instruction="请减少外出，注意防寒保暖。",
        areas=[area],
    )
    return Alert(
        identifier=identifier,
        sender=sender,
        sent=sent,
        status=status,
        msg_type=msg_type,
        scope=Scope.PUBLIC,
        references=[r.reference for r in references],
        infos=[info],
    )


def insert_bare_alert(conn: Connection) -> None:
    """Alert ``a``, active until far in the future, with no document: for outbox tests that
    write their deliveries themselves (on either engine)."""
    conn.execute(
        "INSERT INTO alerts (id, sender, identifier, sent, status, msg_type, scope,"
        " effective_at, expires_at, state, priority, channels, origin, cap_version,"
        " raw_xml, document, received_at) VALUES ('a', 's', 'i', 't', 'Actual',"
        " 'Alert', 'Public', 0, 9e9, 'active', 0, '[]', 'test', '1.2', ?, '{}', 0)",
        (b"",),
    )


def insert_deliveries(conn: Connection, channel: str, states: Sequence[str]) -> None:
    """Deliveries 1..N of alert ``a`` on ``channel`` in ``states``, due now: target ``tN``."""
    conn.executemany(
        "INSERT INTO deliveries (id, alert_id, channel, target_id, target, state, priority,"
        " next_attempt_at, expires_at, idempotency_key, updated_at)"
        " VALUES (?, 'a', ?, ?, ?, ?, 0, 0, 9e9, ?, 0)",
        [
            (n, channel, f"t{n}", json.dumps({"id": f"t{n}", "channel": channel}), state, f"k{n}")
            for n, state in enumerate(states, start=1)
        ],
    )


def seed_outbox(database: Database, channel: str, states: Sequence[str]) -> None:
    """Alert ``a`` and its deliveries 1..N on ``channel`` in ``states`` (as
    :func:`insert_bare_alert` and :func:`insert_deliveries`), in one transaction."""

    def seed() -> None:
        with database.transaction() as conn:
            insert_bare_alert(conn)
            insert_deliveries(conn, channel, states)

    database.call(seed)


def village_targets(channel: str, count: int, county: str = COUNTY) -> list[dict[str, Any]]:
    """``count`` targets in villages of ``county``, spread on a small grid near its seat."""
    lat0, lon0 = COUNTY_SEAT
    targets = []
    for n in range(count):
        township, village = divmod(n, 100)
        targets.append(
            {
                "id": f"{channel}-{county[:6]}-{n:05d}",
                "channel": channel,
                "name": f"村{n}",
                "division": f"{county[:6]}{township + 1:03d}{village + 1:03d}",
                "lat": lat0 + (n % 100) * 0.001 + (0 if county == COUNTY else 0.5),
                "lon": lon0 + (n // 100) * 0.001,
                "address": f"box-{n}",
            }
        )
    return targets


def make_config(
    tmp_path: Path,
    channels: dict[str, dict[str, Any]],
    targets: Sequence[dict[str, Any]],
    **dispatcher: Any,
) -> Config:
    registry = tmp_path / "targets.json"
    registry.write_text(json.dumps(list(targets), ensure_ascii=False), encoding="utf-8")
    data = {
        "server": {"data_dir": str(tmp_path / "data"), "sender": "city@example.cn"},
        "registry": {"targets": str(registry)},
        "dispatcher": {
            "idle_poll_seconds": 0.05,
            "retry_base_seconds": 0.05,
            "retry_max_seconds": 0.2,
        }
        | dispatcher,
        "channels": channels,
    }
    return parse_config(data, base_dir=tmp_path, source=None)


FEED_TOKEN = {"name": "feed", "token": "feed-token-123", "requires_approval": True}
"""An API client whose alerts wait for an officer's approval."""
DUTY_TOKEN = {"name": "duty", "token": "duty-token-456"}
"""A trusted API client."""


def with_api_tokens(config: Config, *tokens: dict[str, Any]) -> Config:
    """``config`` with these ``[[api.tokens]]``."""
    return config.model_copy(update={"api": config.api.model_validate({"tokens": list(tokens)})})


class SteppedClock:
    """The wall clock plus an offset a test moves forward, to reach a time without waiting."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@asynccontextmanager
async def running(
    config: Config, data_dir: Path | None = None, clock: Callable[[], float] = time.time
) -> AsyncIterator[BroadcasterService]:
    """A started service; on exit it is stopped and no task of it may be left running."""
    service = BroadcasterService(config, data_dir=data_dir, clock=clock)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()
        pending = [t for t in asyncio.all_tasks() if not t.done() and _is_project_task(t)]
        assert not pending, f"service left tasks running: {[t.get_name() for t in pending]}"


_PROJECT_DIRS = tuple(
    f"{REPO / package}{os.sep}" for package in ("broadcaster", "channels", "drivers", "audio")
)


def _is_project_task(task: asyncio.Task[Any]) -> bool:
    """A task running code of the project's packages (not of the test or of aiohttp).

    Judged by the folder under the checkout, not by a folder name anywhere in the path: a
    checkout cloned into ``broadcaster/`` has that name in every path, tests included.
    """
    code = getattr(task.get_coro(), "cr_code", None)
    filename = code.co_filename if code is not None else ""
    return filename.startswith(_PROJECT_DIRS)


async def wait_until_complete(
    service: BroadcasterService, alert_id: str, timeout: float = 10.0
) -> dict[str, dict[str, int]]:
    """Wait until no delivery of the alert is queued, sending or awaiting confirmation."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    changed = asyncio.Event()
    unsubscribe = service.subscribe(changed.set)
    try:
        while True:
            summary = await service.database.run(service.outbox.summary, alert_id)
            open_states = {"queued", "sending", "accepted"}
            if not any(s in open_states for states in summary.values() for s in states):
                return summary
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"alert {alert_id} not complete: {summary}")
            changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(remaining, 0.2)):
                    await changed.wait()
    finally:
        unsubscribe()


async def wait_for_deliveries(
    service: BroadcasterService,
    alert_id: str,
    predicate: Callable[[list[dict[str, Any]]], bool],
    timeout: float = 20.0,
) -> list[dict[str, Any]]:
    """The alert's deliveries once ``predicate`` holds on them (checked on every change)."""
    changed = asyncio.Event()
    unsubscribe = service.subscribe(changed.set)
    rows: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(timeout):
            while True:
                changed.clear()
                rows = await service.database.run(service.outbox.deliveries, alert_id)
                if predicate(rows):
                    return rows
                await changed.wait()
    except TimeoutError:
        raise AssertionError(f"deliveries of {alert_id} never matched: {rows}") from None
    finally:
        unsubscribe()


class RecordingChannel(Channel):
    """Confirms every delivery at once and records what it was given, in order."""

    capabilities: ClassVar[ChannelCapabilities] = ChannelCapabilities(confirms=True)
    sent: ClassVar[list[OutgoingDelivery]] = []

    async def send(self, delivery: OutgoingDelivery) -> SendResult:
        type(self).sent.append(delivery)
        return SendResult(SendOutcome.CONFIRMED, provider_ref=f"rec-{delivery.id}")


class TidyChannel(RecordingChannel):
    """Counts the daily housekeeping calls it gets; ``tidied`` is set at each."""

    housekeeping_calls: ClassVar[int] = 0
    tidied: ClassVar[asyncio.Event | None] = None

    async def housekeeping(self) -> None:
        type(self).housekeeping_calls += 1
        if type(self).tidied is not None:
            type(self).tidied.set()


class FlakyChannel(Channel):
    """Fails each target's first ``params.fail`` attempts (retryable), or for good if permanent."""

    capabilities: ClassVar[ChannelCapabilities] = ChannelCapabilities(confirms=True)
    attempts: ClassVar[dict[str, int]] = {}

    async def send(self, delivery: OutgoingDelivery) -> SendResult:
        key = delivery.idempotency_key
        type(self).attempts[key] = type(self).attempts.get(key, 0) + 1
        if delivery.target.params.get("permanent"):
            raise PermanentError("number does not exist")
        if type(self).attempts[key] <= int(delivery.target.params.get("fail", 0)):
            raise RetryableError("network busy")
        return SendResult(SendOutcome.CONFIRMED)


class SlowChannel(Channel):
    """Takes ``SlowChannel.delay`` seconds per send; records the start of each send."""

    capabilities: ClassVar[ChannelCapabilities] = ChannelCapabilities(confirms=True)
    delay: ClassVar[float] = 0.2
    started: ClassVar[list[str]] = []

    async def send(self, delivery: OutgoingDelivery) -> SendResult:
        type(self).started.append(f"{delivery.message.alert.identifier}/{delivery.target.id}")
        await asyncio.sleep(type(self).delay)
        return SendResult(SendOutcome.CONFIRMED)


class EnrollingChannel(RecordingChannel):
    """Receivers enrol themselves over HTTP (``POST enrol`` with a JSON target)."""

    def web_app(self) -> web.Application:
        app = web.Application()

        async def enrol(request: web.Request) -> web.Response:
            assert self.context.targets is not None
            body = await request.json()
            await self.context.targets.register(Target.from_json(body | {"channel": self.name}))
            return web.json_response({"ok": True}, status=201)

        app.router.add_post("/enrol", enrol)
        return app


class AcceptingChannel(Channel):
    """Accepts and confirms later through the confirmation stream, like a device with acks."""

    capabilities: ClassVar[ChannelCapabilities] = ChannelCapabilities(confirms=True)
    silent: ClassVar[set[str]] = set()

    async def send(self, delivery: OutgoingDelivery) -> SendResult:
        if delivery.target.id not in type(self).silent:
            asyncio.get_running_loop().call_later(
                0.01,
                self.confirm,
                Confirmation(delivery.id, ConfirmationOutcome.CONFIRMED, "device ack"),
            )
        return SendResult(SendOutcome.ACCEPTED, provider_ref=f"acc-{delivery.id}")


class ClosingAckChannel(Channel):
    """Accepts, and hears its devices' acks only as it stops (a hub reading its connections'
    last lines while it closes them); the last delivery it cuts off as it stops."""

    capabilities: ClassVar[ChannelCapabilities] = ChannelCapabilities(confirms=True)

    accepted: ClassVar[list[int]] = []

    async def send(self, delivery: OutgoingDelivery) -> SendResult:
        type(self).accepted.append(delivery.id)
        return SendResult(SendOutcome.ACCEPTED, provider_ref=f"c-{delivery.id}")

    async def stop(self) -> None:
        await asyncio.sleep(0)
        *played, cut = self.accepted
        for delivery_id in played:
            self.confirm(Confirmation(delivery_id, ConfirmationOutcome.CONFIRMED, "late ack"))
        # What the stop itself did to the last one is no word of its device.
        self.confirm(Confirmation(cut, ConfirmationOutcome.FAILED, "stopped (channel stopped)"))
        await asyncio.sleep(0)


class TricklingChannel(Channel):
    """Accepts at once and confirms each delivery ``spacing_s`` after the one before, as boxes
    that finish playing one after another do."""

    capabilities: ClassVar[ChannelCapabilities] = ChannelCapabilities(confirms=True)
    spacing_s: ClassVar[float] = 0.003
    sent: ClassVar[int] = 0

    async def send(self, delivery: OutgoingDelivery) -> SendResult:
        type(self).sent += 1
        asyncio.get_running_loop().call_later(
            0.1 + self.spacing_s * type(self).sent,
            self.confirm,
            Confirmation(delivery.id, ConfirmationOutcome.CONFIRMED, "played"),
        )
        return SendResult(SendOutcome.ACCEPTED, provider_ref=f"t-{delivery.id}")


class EagerAckChannel(Channel):
    """Sends in batches and reports each device's progress and confirmation before
    ``send_many`` returns, as boxes that answer faster than the send completes do."""

    capabilities: ClassVar[ChannelCapabilities] = ChannelCapabilities(confirms=True)
    sends_in_batches = True

    async def send(self, delivery: OutgoingDelivery) -> SendResult:
        return (await self.send_many([delivery]))[0]  # type: ignore[return-value]

    async def send_many(
        self, deliveries: Sequence[OutgoingDelivery]
    ) -> Sequence[SendResult | Exception]:
        await asyncio.sleep(0)
        for d in deliveries:
            self.confirm(Confirmation(d.id, ConfirmationOutcome.PROGRESS, "playing"))
            self.confirm(Confirmation(d.id, ConfirmationOutcome.CONFIRMED, "played"))
        return [SendResult(SendOutcome.ACCEPTED, provider_ref=f"e-{d.id}") for d in deliveries]


class MisreportingChannel(AcceptingChannel):
    """Reports something that is not a Confirmation, then the delivery's real confirmation."""

    async def send(self, delivery: OutgoingDelivery) -> SendResult:
        confirmation = Confirmation(delivery.id, ConfirmationOutcome.CONFIRMED, "device ack")
        loop = asyncio.get_running_loop()
        loop.call_later(0.01, self.confirm, f"ack {delivery.id}")  # type: ignore[arg-type]
        loop.call_later(0.02, self.confirm, confirmation)
        return SendResult(SendOutcome.ACCEPTED, provider_ref=f"m-{delivery.id}")
