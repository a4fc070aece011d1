"""A small sound channel and, beside it, one channel per contract rule that breaks just that rule.

``SinkChannel`` appends each delivery's idempotency key to ``sink.jsonl`` in its data directory
and confirms it; a target without an address is refused for good and the address ``down``
stands for a device that is not there now. Each subclass below breaks one rule; the contract
suite must fail it naming that rule (``tests/contract/test_contract_catches.py``).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from broadcaster.channel import (
    AlertMessage,
    Channel,
    ChannelCapabilities,
    ChannelContext,
    ChannelHealth,
    ChannelPreview,
    OutgoingDelivery,
    PlannedDelivery,
    ProbeResult,
    SendOutcome,
    SendResult,
)
from broadcaster.config import ChannelConfig, SecretValue
from broadcaster.delivery import Target
from broadcaster.errors import (
    DeviceUnavailableError,
    PermanentError,
    RetryableError,
    TargetRejectedError,
)

SINK = "sink.jsonl"


class SinkChannelConfig(ChannelConfig):
    password: SecretValue | None = None


class SinkChannel(Channel):
    capabilities: ClassVar[ChannelCapabilities] = ChannelCapabilities(
        description="appends deliveries to a file (contract reference)"
    )
    config_model: ClassVar[type[ChannelConfig]] = SinkChannelConfig

    def sink(self) -> Path:
        return self.context.data_dir / SINK

    def check_target(self, target: Target) -> None:
        if not target.address:
            raise TargetRejectedError(f"target {target.id} has no address")
        if target.address == "down":
            raise DeviceUnavailableError(f"target {target.id}: device not answering")

    async def send(self, delivery: OutgoingDelivery) -> SendResult:
        self.check_target(delivery.target)
        await asyncio.sleep(0.01)
        self.write(delivery)
        return SendResult(SendOutcome.CONFIRMED)

    def write(self, delivery: OutgoingDelivery) -> None:
        with self.sink().open("a", encoding="utf-8") as fh:
            fh.write(json.dumps({"key": delivery.idempotency_key}) + "\n")


class ConfirmsWithoutEffect(SinkChannel):
    async def send(self, delivery: OutgoingDelivery) -> SendResult:
        self.check_target(delivery.target)
        return SendResult(SendOutcome.CONFIRMED)


class PlansTwice(SinkChannel):
    async def plan(
        self, message: AlertMessage, candidates: Sequence[Target]
    ) -> Sequence[PlannedDelivery]:
        return [PlannedDelivery(target=t) for t in candidates for _ in range(2)]


class PlansStrangers(SinkChannel):
    async def plan(
        self, message: AlertMessage, candidates: Sequence[Target]
    ) -> Sequence[PlannedDelivery]:
        stranger = Target(id="stranger", channel=self.name, name="not asked for")
        return [PlannedDelivery(target=t) for t in [*candidates, stranger]]


class RaisesFromProbe(SinkChannel):
    async def probe(self, target: Target) -> ProbeResult:
        raise ValueError("probe broke")


class RaisesFromPreview(SinkChannel):
    async def preview(self, message: AlertMessage, targets: Sequence[Target]) -> ChannelPreview:
        raise KeyError("title")


class SendsOtherThanPreviewed(SinkChannel):
    """Reports content that its preview (``content``) never shows."""

    async def send(self, delivery: OutgoingDelivery) -> SendResult:
        await super().send(delivery)
        return SendResult(SendOutcome.CONFIRMED, content={"text": "not what was previewed"})


class RaisesFromHealth(SinkChannel):
    async def health(self) -> ChannelHealth:
        raise RuntimeError("health broke")


class RaisesFromCancel(SinkChannel):
    async def cancel(self, delivery: OutgoingDelivery) -> None:
        raise ValueError("cancel broke")


class PermanentAsRetryable(SinkChannel):
    """The missing address is called a passing condition."""

    def check_target(self, target: Target) -> None:
        if not target.address or target.address == "down":
            raise RetryableError(f"target {target.id}: try again")


class RetryableAsPermanent(SinkChannel):
    """A device that is down for now is given up for good."""

    def check_target(self, target: Target) -> None:
        if not target.address or target.address == "down":
            raise PermanentError(f"target {target.id}: unreachable")


class SwallowsCancellation(SinkChannel):
    """Cancelled by the dispatcher's timeout, it reports success anyway."""

    async def send(self, delivery: OutgoingDelivery) -> SendResult:
        self.check_target(delivery.target)
        try:
            await asyncio.sleep(0.2)
        except asyncio.CancelledError:
            return SendResult(SendOutcome.CONFIRMED, detail="pretended")
        self.write(delivery)
        return SendResult(SendOutcome.CONFIRMED)


class AcceptsWithoutConfirming(SinkChannel):
    """Says it confirms deliveries and answers ACCEPTED, but no confirmation ever follows."""

    capabilities: ClassVar[ChannelCapabilities] = ChannelCapabilities(confirms=True)

    async def send(self, delivery: OutgoingDelivery) -> SendResult:
        await super().send(delivery)
        return SendResult(SendOutcome.ACCEPTED)


class LeaksTask(SinkChannel):
    async def start(self) -> None:
        self.ticker = asyncio.ensure_future(self.tick())

    async def tick(self) -> None:
        while True:
            await asyncio.sleep(0.05)


class LeaksThread(SinkChannel):
    def __init__(self, name: str, config: ChannelConfig, context: ChannelContext) -> None:
        super().__init__(name, config, context)
        self.stopping = threading.Event()

    async def start(self) -> None:
        threading.Thread(target=self.stopping.wait, args=(30,), daemon=True).start()


class PlainSecretConfig(ChannelConfig):
    api_key: str = ""


class ShowsItsSecret(SinkChannel):
    config_model: ClassVar[type[ChannelConfig]] = PlainSecretConfig


class Unregistered(SinkChannel):
    """No entry point names it."""


class Unresolvable(SinkChannel):
    """Its entry point names a module that does not exist."""
