"""The contract between the SpeakerHub and its server-side transports (TCP, serial, MQTT).

A link moves signed bytes; it never decodes or verifies them. It reports what it receives and
which boxes come and go to a ``LinkSink`` (the hub), which owns keys, verification and events.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Protocol


class LinkSink(Protocol):
    """What a link calls back into; implemented by SpeakerHub."""

    def authenticate(self, hello: bytes) -> str:
        """Verify a box's hello; return its box id or raise SpeakerProtocolError."""

    def receive(self, box_id: str, data: bytes, transport: str, replayed: bool = False) -> None:
        """A signed message arrived from ``box_id``."""

    def presence(self, box_id: str, online: bool, transport: str) -> None:
        """``box_id`` came online or went offline on this link."""

    def link_lost(self, transport: str) -> None:
        """The link itself is down (the broker session): none of its boxes is reachable."""


class HubLink(ABC):
    """A server-side transport. Methods raise only SpeakerError subclasses."""

    name: str

    @abstractmethod
    async def start(self) -> None:
        """Open the listener, port or broker session; raises SpeakerConnectionError."""

    @abstractmethod
    async def stop(self) -> None:
        """Close everything the link opened; safe to call twice."""

    @abstractmethod
    async def send(self, box_id: str, data: bytes) -> None:
        """Deliver one signed command to ``box_id``.

        Raises BoxOfflineError when the box is not reachable on this link,
        SpeakerTimeoutError when it did not answer, SpeakerConnectionError when the link is down.
        """

    @abstractmethod
    def drop(self, box_id: str) -> None:
        """Forget a box's connection (after a missed heartbeat or unregistering)."""
