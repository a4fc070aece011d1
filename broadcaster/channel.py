"""The channel contract: what every channel plugin implements and what it is given.

A channel is a class registered in the entry-point group ``broadcaster.channels``. The core makes
one instance per ``[channels.<name>]`` table of the configuration and calls a few coroutines:

- ``start()`` / ``stop()``: open and close devices and connections;
- ``plan(message, candidates)``: from the registry targets inside the alert's area, choose the
  deliveries (a channel may drop targets it cannot serve or split one into parts);
- ``send(delivery)``: hand one delivery to the device or service. Return a :class:`SendResult`
  (``accepted``: the device took it, a confirmation will follow; ``confirmed``: done). On failure
  raise :class:`~broadcaster.errors.RetryableError` or :class:`~broadcaster.errors.PermanentError`
  (or a subclass); any other exception is treated as retryable and logged as a channel bug;
- ``cancel(delivery)``: best effort to stop what was already sent (stop playback, drop TA);
- ``confirmations()``: an async iterator of :class:`Confirmation` for accepted deliveries;
  channels feed it with :meth:`Channel.confirm`;
- ``health()``: a :class:`ChannelHealth` for the console, the health endpoint and link checks.
  ``ok`` is the channel's own state (its service, keys, devices), never one target's failures:
  those show on the delivery, and per destination in ``devices``
  (:class:`~broadcaster.destinations.DestinationStats`), since an outsider may control a target;
- ``probe(target)``: a silent check of one target (modem answers and has signal, encoder
  acknowledges, box heartbeat is recent, push service reachable) that plays, shows or sends
  nothing a resident would notice; a :class:`ProbeResult`. By default ``health()`` answers;
- ``web_app()``: optional HTTP endpoints, mounted at ``/channels/<name>/``;
- ``preview(message)``: what the channel would send, for the console before an alert goes out
  (a :class:`ChannelPreview`; by default the rendered title and body);
- ``resume(deliveries)``: after a restart, the accepted deliveries still awaiting their
  confirmation, to track again (by default nothing);
- ``housekeeping()``: daily upkeep of the channel's files (by default nothing).

The :class:`ChannelContext` gives a channel its data directory, the server's public URL, the
administrative division tree of the deployment, a :class:`TargetDirectory` to list the
channel's targets and enrol receivers that enrol themselves, the
:class:`~broadcaster.publisher.AudioPublisher` that renders an alert's audio once per language
and channel profile, and :class:`DispatchHooks` to say a device is back.

Retry, expiry and state live in the core, never in a channel. Class metadata
(:class:`ChannelCapabilities`) says what the channel can carry. Methods added to this contract
later get defaults here, so existing third-party channels keep working.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from aiohttp import web

from broadcaster.cap import Alert
from broadcaster.config import ChannelConfig
from broadcaster.delivery import Target
from broadcaster.divisions import DivisionTree
from broadcaster.rendition import Rendition

if TYPE_CHECKING:
    from broadcaster.publisher import AudioPublisher


@dataclass(frozen=True, slots=True)
class AlertMessage:
    """An alert as channels see it: the CAP model, its rendered texts and its deadline."""

    id: str
    alert: Alert
    rendition: Rendition
    expires_at: float

    @property
    def is_test(self) -> bool:
        return self.rendition.is_test


@dataclass(frozen=True, slots=True)
class PlannedDelivery:
    """One delivery a channel wants for a target (``part`` > 0 when a target takes several)."""

    target: Target
    part: int = 0


@dataclass(frozen=True, slots=True)
class OutgoingDelivery:
    """One delivery being handed to a channel."""

    id: int
    message: AlertMessage
    target: Target
    part: int
    attempt: int
    idempotency_key: str
    expires_at: float


class SendOutcome(StrEnum):
    ACCEPTED = "accepted"
    CONFIRMED = "confirmed"


@dataclass(frozen=True, slots=True)
class SendResult:
    """What ``send`` achieved; failures are exceptions, never a result."""

    outcome: SendOutcome
    provider_ref: str | None = None
    detail: str = ""


class ConfirmationOutcome(StrEnum):
    CONFIRMED = "confirmed"
    FAILED = "failed"
    PROGRESS = "progress"
    RETRY = "retry"
    """The device could not finish for a passing reason (a higher-priority alert took it
    over): the core sends the delivery again after ``retry_after``, until the alert expires."""


@dataclass(frozen=True, slots=True)
class Confirmation:
    """A device's word on an accepted delivery: done, failed for good, to be sent again, or a
    step on the way. ``retry_after`` (seconds) only for RETRY; None means the core's first
    backoff."""

    delivery_id: int
    outcome: ConfirmationOutcome
    detail: str = ""
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class ChannelCapabilities:
    """What a channel can carry and report."""

    confirms: bool = False
    can_stop: bool = False
    max_text_chars: int | None = None
    audio_formats: tuple[str, ...] = ()
    description: str = ""


@dataclass(frozen=True, slots=True)
class ChannelHealth:
    ok: bool
    detail: str = ""
    devices: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """The outcome of a silent check of one target: reached or not, and why."""

    ok: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ChannelPreview:
    """What a channel would send for an alert, shown to the officer before it goes out.

    ``lines`` are the texts as the receiver gets them; ``counts`` are figures such as SMS
    segments or characters; ``notes`` are warnings (text cut, language missing).
    """

    title: str
    lines: tuple[str, ...] = ()
    counts: dict[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


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

    async def targets_available(self, target_ids: Sequence[str]) -> int:
        """The targets' devices are reachable again: retry their queued deliveries now
        (however long their backoff had left); returns how many deliveries that was.
        Report many at once where possible (a hub whose devices all reconnect)."""
        ...


@dataclass(frozen=True, slots=True)
class ChannelContext:
    """What the core gives every channel instance."""

    data_dir: Path
    sender_name: str
    public_url: str
    targets: TargetDirectory | None = None
    divisions: DivisionTree | None = None
    audio: AudioPublisher | None = None
    dispatch: DispatchHooks | None = None


class Channel(abc.ABC):
    """Base class of every channel plugin."""

    capabilities: ClassVar[ChannelCapabilities] = ChannelCapabilities()
    config_model: ClassVar[type[ChannelConfig]] = ChannelConfig

    def __init__(self, name: str, config: ChannelConfig, context: ChannelContext) -> None:
        self.name = name
        self.config = config
        self.context = context
        self._confirmations: asyncio.Queue[Confirmation] = asyncio.Queue()

    async def start(self) -> None:
        """Open devices and connections. Raise ChannelError if the channel cannot work."""

    async def stop(self) -> None:
        """Close everything ``start`` opened."""

    async def plan(
        self, message: AlertMessage, candidates: Sequence[Target]
    ) -> Sequence[PlannedDelivery]:
        """Choose deliveries among the targets in the alert's area: by default one each."""
        return [PlannedDelivery(target=t) for t in candidates]

    @abc.abstractmethod
    async def send(self, delivery: OutgoingDelivery) -> SendResult:
        """Hand one delivery to the device or service; raise RetryableError/PermanentError."""

    async def cancel(self, delivery: OutgoingDelivery) -> None:
        """Stop what was sent for ``delivery`` if the channel can (see ``can_stop``)."""

    def confirm(self, confirmation: Confirmation) -> None:
        """Report a confirmation; the core records it."""
        self._confirmations.put_nowait(confirmation)

    async def confirmations(self) -> AsyncIterator[Confirmation]:
        """Confirmations for accepted deliveries, as they arrive."""
        while True:
            yield await self._confirmations.get()

    async def health(self) -> ChannelHealth:
        return ChannelHealth(ok=True)

    async def preview(self, message: AlertMessage) -> ChannelPreview:
        """What this channel would send for ``message``: by default each language's title and
        body. Channels override it to show their own form (SMS segments, RDS PS/RT, push)."""
        texts = message.rendition.texts
        limit = self.capabilities.max_text_chars
        lines = tuple(f"[{t.language}] {t.body}" for t in texts)
        notes = tuple(
            f"{t.language}: {len(t.body)} characters, over this channel's limit of {limit}"
            for t in texts
            if limit is not None and len(t.body) > limit
        )
        return ChannelPreview(
            title=texts[0].title if texts else "",
            lines=lines,
            counts={"characters": max((len(t.body) for t in texts), default=0)},
            notes=notes,
        )

    async def probe(self, target: Target) -> ProbeResult:
        """Check ``target`` silently: nothing played, shown or sent to residents.

        Raise nothing: a failure is ``ProbeResult(ok=False, detail=why)``. The default reports
        the channel's ``health()`` for every target; channels that can reach a target on its
        own (a box's heartbeat, an encoder's ping) override it.
        """
        health = await self.health()
        detail = health.detail or ("channel healthy" if health.ok else "channel unhealthy")
        return ProbeResult(ok=health.ok, detail=detail)

    async def resume(self, deliveries: Sequence[OutgoingDelivery]) -> None:
        """After a restart: ``deliveries`` were accepted by this channel's devices before the
        server stopped and are not confirmed yet. A channel that matches confirmations in
        memory tracks them again here (the device may have finished meanwhile). Called once
        after ``start``, with an empty list when there are none; the default does nothing,
        and the core re-sends them after the confirmation timeout."""

    async def housekeeping(self) -> None:
        """Daily upkeep of what the channel keeps on disk (old published files and the like);
        the core calls it once a day while the server runs. Errors are logged, not raised
        further. The default does nothing."""

    def web_app(self) -> web.Application | None:
        """HTTP endpoints of the channel (device acks, audio files, subscription pages).

        Called once, before ``start()``. Mounted by the core at ``/channels/<name>/`` without
        the API's bearer check: the channel authenticates its own callers (HMAC, subscription
        secrets). The endpoints stay mounted if ``start()`` fails, so handlers should answer
        503 while the channel is not running. None: no endpoints.
        """
        return None
