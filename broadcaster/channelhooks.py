"""The core's side of the channel contract: the hooks a channel is given in its
:class:`~broadcaster.channel.ChannelContext` to reach the target registry, the dispatcher, the
intake and the shared record store. Re-exported by :mod:`broadcaster.channel`, where channels
import them (``docs/writing-a-channel.md``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from broadcaster.cap import Alert
from broadcaster.delivery import Target


class TargetDirectory(Protocol):
    """The channel's view of the target registry. It may list every target of the channel
    and change the receivers it enrols itself (web push subscriptions, boxes that register);
    registry-file targets are not touched."""

    async def register(self, target: Target) -> None: ...

    async def unregister(self, target_id: str) -> bool: ...

    async def get(self, target_id: str) -> Target | None: ...

    async def all(self) -> list[Target]:
        """Every enabled target of the channel, from the registry file and enrolled, by id."""
        ...


class DispatchHooks(Protocol):
    """What a channel may tell the dispatcher."""

    async def targets_available(
        self, target_ids: Sequence[str], *, reconnected: bool = True
    ) -> int:
        """The targets' devices are reachable again: retry their queued deliveries now
        (however long their backoff had left), and, when they ``reconnected``, send again
        those sent to them and not confirmed yet (they may have been lost with the old
        connection); returns how many deliveries that was. Report many at once where
        possible (a hub whose devices all reconnect)."""
        ...

    async def deliver_directly(self, delivery_id: int, reason: str) -> dict[str, int]:
        """The node that relay delivery ``delivery_id`` is for cannot be reached: deliver its
        alert on this node's own channels to their targets in that node's division, recorded
        with ``reason`` in the audit log. Returns how many deliveries that planned, by channel
        (none where this node has no target there). For relaying channels."""
        ...

    async def forward(self, delivery_id: int, channel: str, reason: str) -> int:
        """Queue the same target and part of the alert of this channel's delivery
        ``delivery_id`` for the instance ``channel`` (a fallback path: SMS through modems when
        the operator's gateway cannot deliver), with ``reason`` in its history; returns the
        new delivery's id (the existing one's if it was forwarded before). ChannelError if
        ``channel`` is not running or the alert no longer sends."""
        ...


class AlertHooks(Protocol):
    """What a channel that receives warnings from upstream (a platform link) may ask of the core."""

    async def submit(
        self, alert: Alert, *, origin: str, hold: bool, channels: Sequence[str]
    ) -> str:
        """Take ``alert`` through the normal intake, to be delivered on ``channels`` (all but
        this one when empty) at once, or, with ``hold``, after an officer approves it; its id.
        Raises :class:`~broadcaster.errors.CapError` when it is refused (nothing stored)."""
        ...

    async def summary(self, alert_id: str) -> dict[str, dict[str, int]]:
        """The alert's deliveries counted by channel and state (empty while it is held)."""
        ...

    async def rejected(self, alert_id: str) -> bool:
        """Whether an officer rejected the alert: held for approval, it will never be sent."""
        ...

    async def status(self, alert_id: str) -> str | None:
        """The CAP status of a stored alert (``Actual``, ``Exercise``, ``Test`` ...), None
        when there is none: a Cancel must have the status of the alert it lifts."""
        ...


class RecordStore(Protocol):
    """The channel's own key/value records (JSON values) in the store every node shares."""

    async def get(self, key: str) -> Any | None: ...

    async def put(self, key: str, value: Any) -> None: ...

    async def add(self, key: str, value: Any) -> bool:
        """Write ``value`` only if ``key`` has none; True if it was written."""
        ...

    async def increment(self, key: str) -> int:
        """Add one to the integer record ``key`` (from 0) and return the new value, atomically:
        nodes sharing the store never get the same value."""
        ...

    async def delete(self, key: str) -> bool: ...

    async def items(self, prefix: str = "") -> list[tuple[str, Any]]:
        """The records whose key starts with ``prefix``, by key."""
        ...

    async def write_many(self, changes: Mapping[str, Any | None]) -> None:
        """Store each value of ``changes`` under its key and delete each key whose value is
        None, all in one transaction (thousands of records in one commit)."""
        ...
