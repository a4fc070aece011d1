"""Sending a delivery from the node that holds its device, when several nodes share the store.

A device that takes one user at a time (a modem pool, an encoder link) is open on the node
holding its lease only (:mod:`broadcaster.devicelease`). Two ways keep the other nodes from
claiming work they cannot do:

- per delivery: a send refused with :class:`~broadcaster.errors.DeviceElsewhereError` is
  queued again due now and kept for the node it names for one lease period
  (:attr:`~broadcaster.delivery.Transition.for_node`; ``Outbox.claim_due`` skips it on other
  nodes meanwhile). The holder claims it at its next look, within ``idle_poll_seconds``;
  if the holder died, the first node to claim it once the keep has run out learns the new
  holder, or retries it as any unavailable device;
- per channel: while ``Channel.sends_elsewhere`` names another node (the one device every
  delivery of the channel needs is there), the worker claims nothing for the channel.

Without a shared store there is no other node: both stay off.
"""

from __future__ import annotations

import logging

from broadcaster.channel import Channel
from broadcaster.delivery import DeliveryState, Transition
from broadcaster.errors import DeviceElsewhereError
from broadcaster.faults import ChannelFaults
from broadcaster.store.db import Database
from broadcaster.store.outbox import ClaimedDelivery

log = logging.getLogger(__name__)


class DeviceRouting:
    """The dispatcher's side of routing deliveries to the node holding their device."""

    def __init__(self, database: Database, faults: ChannelFaults) -> None:
        self.database = database
        self.faults = faults
        self._elsewhere: dict[str, str | None] = {}

    def hand_over(self, row: ClaimedDelivery, exc: Exception, now: float) -> Transition | None:
        """The transition handing ``row`` to the node ``exc`` names, or None when ``exc`` is
        not a device held by another node of a shared store (the error decides as ever)."""
        if not (
            isinstance(exc, DeviceElsewhereError)
            and self.database.shared
            and exc.node != self.database.node
        ):
            return None
        error = str(exc)
        if now >= row.expires_at:
            return Transition(row.id, DeliveryState.EXPIRED, last_error=error, detail=error)
        return Transition(
            row.id,
            DeliveryState.QUEUED,
            last_error=error,
            next_attempt_at=now,
            detail=f"{error}; handed to node {exc.node}",
            for_node=exc.node,
        )

    def elsewhere(self, name: str, channel: Channel) -> str | None:
        """The other node that sends every delivery of channel ``name`` now, or None; a
        change is logged, and an error of the channel's answer is its fault (None)."""
        node = None
        if self.database.shared:
            try:
                node = channel.sends_elsewhere()
            except Exception as exc:
                self.faults.record(name, "sends_elsewhere", exc)
        if node != self._elsewhere.get(name):
            self._elsewhere[name] = node
            if node is not None:
                log.info("channel %s: node %s holds its device; claiming nothing here", name, node)
            else:
                log.info("channel %s: claiming its deliveries here again", name)
        return node
