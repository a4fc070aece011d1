"""A channel plugin that raises an unexpected exception (not of the documented tree) at the points
its configuration names, and otherwise confirms every delivery, recording what it sent.

``fail_at`` names points among ``init``, ``web_app``, ``start``, ``plan``, ``send``, ``cancel``,
``probe``, ``preview``, ``health``, ``housekeeping``, ``resume``, ``confirmations``; ``error``
is the exception class raised (``ValueError``, ``RuntimeError``, ``KeyError``). With ``cancel``
it accepts instead of confirming, so that a Cancel finds its deliveries still in flight.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import AsyncIterator, Sequence
from typing import ClassVar

from aiohttp import web
from pydantic import Field

from broadcaster.channel import (
    AlertMessage,
    Channel,
    ChannelCapabilities,
    ChannelContext,
    ChannelHealth,
    ChannelPreview,
    Confirmation,
    OutgoingDelivery,
    PlannedDelivery,
    ProbeResult,
    SendOutcome,
    SendResult,
)
from broadcaster.config import ChannelConfig
from broadcaster.delivery import Target


class FaultyConfig(ChannelConfig):
    fail_at: list[str] = Field(default_factory=list)
    error: str = "ValueError"


class FaultyChannel(Channel):
    capabilities: ClassVar[ChannelCapabilities] = ChannelCapabilities(confirms=True, can_stop=True)
    config_model: ClassVar[type[ChannelConfig]] = FaultyConfig
    sent: ClassVar[dict[str, list[str]]] = {}
    attempts: ClassVar[dict[str, int]] = {}

    def __init__(self, name: str, config: ChannelConfig, context: ChannelContext) -> None:
        super().__init__(name, config, context)
        self.fail("init")

    def fail(self, point: str) -> None:
        assert isinstance(self.config, FaultyConfig)
        if point in self.config.fail_at:
            error: type[Exception] = getattr(builtins, self.config.error)
            raise error(f"{self.name} broke in {point}")

    def web_app(self) -> web.Application | None:
        self.fail("web_app")
        return None

    async def start(self) -> None:
        self.fail("start")
        assert isinstance(self.config, FaultyConfig)
        if "hang-start" in self.config.fail_at:
            await asyncio.Event().wait()

    async def plan(
        self, message: AlertMessage, candidates: Sequence[Target]
    ) -> Sequence[PlannedDelivery]:
        self.fail("plan")
        return await super().plan(message, candidates)

    async def send(self, delivery: OutgoingDelivery) -> SendResult:
        type(self).attempts[self.name] = type(self).attempts.get(self.name, 0) + 1
        self.fail("send")
        type(self).sent.setdefault(self.name, []).append(delivery.target.id)
        assert isinstance(self.config, FaultyConfig)
        if "cancel" in self.config.fail_at:
            return SendResult(SendOutcome.ACCEPTED)
        return SendResult(SendOutcome.CONFIRMED)

    async def cancel(self, delivery: OutgoingDelivery) -> None:
        self.fail("cancel")

    async def probe(self, target: Target) -> ProbeResult:
        self.fail("probe")
        return ProbeResult(ok=True)

    async def preview(self, message: AlertMessage, targets: Sequence[Target]) -> ChannelPreview:
        self.fail("preview")
        return await super().preview(message, targets)

    async def health(self) -> ChannelHealth:
        self.fail("health")
        return ChannelHealth(ok=True)

    async def housekeeping(self) -> None:
        self.fail("housekeeping")

    async def resume(self, deliveries: Sequence[OutgoingDelivery]) -> None:
        self.fail("resume")

    async def confirmations(self) -> AsyncIterator[Confirmation]:
        self.fail("confirmations")
        async for confirmation in super().confirmations():
            yield confirmation
