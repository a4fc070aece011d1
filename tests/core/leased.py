"""Channels for the routing tests. :class:`LeasedFileChannel` has one device under a device
lease: a file ``sent.jsonl`` in the node's data directory, opened by the node that holds the
lease, where each send appends the delivery's idempotency key, the node and the time.
:class:`ElsewhereChannel` says, as the test sets it, which other node sends its deliveries."""

from __future__ import annotations

import json
import time
from typing import IO, ClassVar

from broadcaster.channel import (
    Channel,
    ChannelCapabilities,
    ChannelContext,
    OutgoingDelivery,
    SendOutcome,
    SendResult,
)
from broadcaster.config import ChannelConfig
from broadcaster.devicelease import LeasedDevice


class LeasedFileChannel(Channel):
    """Writes each delivery to its one device, which only the lease holder opens."""

    capabilities: ClassVar[ChannelCapabilities] = ChannelCapabilities(confirms=True)

    def __init__(self, name: str, config: ChannelConfig, context: ChannelContext) -> None:
        super().__init__(name, config, context)
        self._out: IO[str] | None = None
        self.device = LeasedDevice(
            context.leases,
            "line",
            open_device=self._open,
            close_device=self._close,
            what=f"the line of channel {name}",
        )

    async def start(self) -> None:
        await self.device.start()

    async def stop(self) -> None:
        await self.device.stop()

    async def _open(self) -> None:
        self._out = (self.context.data_dir / "sent.jsonl").open("a", encoding="utf-8")

    async def _close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None

    async def send(self, delivery: OutgoingDelivery) -> SendResult:
        await self.device.check()
        assert self._out is not None
        node = self.context.leases.node if self.context.leases else ""
        line = {"key": delivery.idempotency_key, "node": node, "at": time.time()}
        self._out.write(json.dumps(line) + "\n")
        self._out.flush()
        return SendResult(SendOutcome.CONFIRMED)


class ElsewhereChannel(Channel):
    """Sends at once, unless :attr:`holder` names another node holding its one device."""

    capabilities: ClassVar[ChannelCapabilities] = ChannelCapabilities(confirms=True)
    holder: ClassVar[str | None] = None
    sent: ClassVar[list[str]] = []

    def sends_elsewhere(self) -> str | None:
        return type(self).holder

    async def send(self, delivery: OutgoingDelivery) -> SendResult:
        type(self).sent.append(delivery.idempotency_key)
        return SendResult(SendOutcome.CONFIRMED)


class WholeLineChannel(LeasedFileChannel):
    """:class:`LeasedFileChannel` that tells the core which other node holds its line, so
    that this node claims none of its deliveries meanwhile."""

    def sends_elsewhere(self) -> str | None:
        return self.device.elsewhere
