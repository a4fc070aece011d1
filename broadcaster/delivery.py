"""Delivery states, the allowed transitions between them, and the records channels see.

A delivery is one (alert, channel, target, part). Its life::

    queued ──> sending ──> accepted ──> confirmed
       ^          │            │
       └──────────┴────────────┘  (retryable failure or no confirmation in time: back to queued)
    any non-final state ──> failed | expired | cancelled

``confirmed``, ``failed``, ``expired`` and ``cancelled`` are final. ``accepted`` is final only for
channels that cannot confirm (their metadata says so); for the others it waits for a
confirmation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple


class DeliveryState(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    ACCEPTED = "accepted"
    CONFIRMED = "confirmed"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


FINAL_STATES = frozenset(
    {
        DeliveryState.CONFIRMED,
        DeliveryState.FAILED,
        DeliveryState.EXPIRED,
        DeliveryState.CANCELLED,
    }
)

ALLOWED_FROM: Mapping[DeliveryState, frozenset[DeliveryState]] = {
    DeliveryState.QUEUED: frozenset({DeliveryState.SENDING, DeliveryState.ACCEPTED}),
    DeliveryState.SENDING: frozenset({DeliveryState.QUEUED}),
    DeliveryState.ACCEPTED: frozenset({DeliveryState.SENDING}),
    DeliveryState.CONFIRMED: frozenset(
        {DeliveryState.QUEUED, DeliveryState.SENDING, DeliveryState.ACCEPTED}
    ),
    DeliveryState.FAILED: frozenset(
        {DeliveryState.QUEUED, DeliveryState.SENDING, DeliveryState.ACCEPTED}
    ),
    DeliveryState.EXPIRED: frozenset(
        {DeliveryState.QUEUED, DeliveryState.SENDING, DeliveryState.ACCEPTED}
    ),
    DeliveryState.CANCELLED: frozenset({DeliveryState.QUEUED, DeliveryState.SENDING}),
}
"""For each state, the states a delivery may enter it from."""


@dataclass(frozen=True, slots=True)
class Target:
    """One addressable receiver of a channel: a box, a modem group, a transmitter, a URL."""

    id: str
    channel: str
    name: str
    address: str = ""
    division: str | None = None
    lat: float | None = None
    lon: float | None = None
    languages: tuple[str, ...] = ("zh-CN",)
    params: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "channel": self.channel,
            "name": self.name,
            "address": self.address,
            "division": self.division,
            "lat": self.lat,
            "lon": self.lon,
            "languages": list(self.languages),
            "params": dict(self.params),
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Target:
        return cls(
            id=str(doc["id"]),
            channel=str(doc["channel"]),
            name=str(doc.get("name") or doc["id"]),
            address=str(doc.get("address") or ""),
            division=doc.get("division"),
            lat=doc.get("lat"),
            lon=doc.get("lon"),
            languages=tuple(doc.get("languages") or ("zh-CN",)),
            params=dict(doc.get("params") or {}),
        )


class Transition(NamedTuple):
    """A requested state change; applied only if the delivery is in an allowed state.

    ``progress`` marks a step reported by a device (for example "playback started"): it is
    logged and restarts the confirmation timer, but does not change the state. ``for_node``
    (with ``queued``) keeps the delivery for that node, the one holding its device, for a
    lease period: other nodes do not claim it meanwhile.

    A named tuple, not a dataclass: a fan-out makes several per delivery on the event loop,
    and a tuple is built in a third of the time of a frozen dataclass.
    """

    delivery_id: int
    to_state: DeliveryState
    detail: str = ""
    last_error: str | None = None
    provider_ref: str | None = None
    next_attempt_at: float | None = None
    progress: bool = False
    content: Mapping[str, Any] | None = None
    """What the channel sent (``SendResult.content``), kept with the delivery."""
    warning: str | None = None
    for_node: str | None = None
