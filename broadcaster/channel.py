"""The channel contract: what every channel plugin implements and what it is given.

A channel is a class registered in the entry-point group ``broadcaster.channels``. The core makes
one instance per ``[channels.<name>]`` table of the configuration and calls a few coroutines:

- ``start()`` / ``stop()``: open and close devices and connections (confirmations reported
  while ``stop()`` runs are recorded);
- ``plan(message, candidates)``: from the registry targets inside the alert's area, choose the
  deliveries (a channel may drop targets it cannot serve or split one into parts);
- ``send(delivery)``: hand one delivery to the device or service. Return a :class:`SendResult`
  (``accepted``: the device took it, a confirmation will follow; ``confirmed``: done). On failure
  raise :class:`~broadcaster.errors.RetryableError` or :class:`~broadcaster.errors.PermanentError`
  (or a subclass); any other exception is treated as retryable and logged as a channel bug.
  When another node of a cluster holds the delivery's device (its lease), raise
  :class:`~broadcaster.errors.DeviceElsewhereError` naming that node (``LeasedDevice.check``
  does): the core hands the delivery to that node at once;
- ``sends_elsewhere()``: the node that sends all of the channel's deliveries while this node
  cannot (it holds the lease of the channel's one device, a modem pool), or None; while it
  names a node, this node claims nothing for the channel (by default None);
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
- ``content(message, target, part)``: what ``send`` transmits for one delivery, as JSON values
  (SMS text, segments and encoding; PS, RT and PTY; audio id, duration and priority; push title
  and body; by default the texts). ``send`` returns the same dict in
  :attr:`SendResult.content`, and the core stores it with the delivery;
- ``preview(message, targets)``: what the channel would send to ``targets``, before an alert
  goes out (a :class:`ChannelPreview`): the distinct ``content`` of its planned deliveries and
  the targets counted in the channel's own ``target_unit`` (recipients, boxes, transmitters…);
  a channel that plays sound adds each sound its deliveries will play (:class:`PreviewAudio`).
  A preview changes nothing a device or receiver can see;
- ``resume(deliveries)``: after a restart, the accepted deliveries still awaiting their
  confirmation, to track again (by default nothing);
- ``housekeeping()``: daily upkeep of the channel's files (by default nothing);
- ``preflight(name, config, data_dir)``: a class method, run by ``check-config`` and before
  ``serve`` binds its port: the problems with the files the validated ``config`` of instance
  ``name`` names (keys, subscriber lists), read but never created or changed, each as
  ``key: message`` (by default none).

The :class:`ChannelContext` gives a channel its data directory, the server's public URL, the
administrative division tree of the deployment, a :class:`TargetDirectory` to list the
channel's targets and enrol receivers that enrol themselves, the
:class:`~broadcaster.publisher.AudioPublisher` that renders an alert's audio once per language
and channel profile, :class:`DispatchHooks` to say a device is back, and :class:`AlertHooks`
through which a channel that receives warnings from upstream submits them to the intake.

Retry, expiry and state live in the core, never in a channel. Class metadata
(:class:`ChannelCapabilities`) says what the channel can carry. Methods added to this contract
later get defaults here, so existing third-party channels keep working.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import AsyncIterator, Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic

from aiohttp import web
from typing_extensions import TypeVar

from broadcaster.cap import Alert, AlertSigner
from broadcaster.channelhooks import AlertHooks as AlertHooks
from broadcaster.channelhooks import DispatchHooks as DispatchHooks
from broadcaster.channelhooks import RecordStore as RecordStore
from broadcaster.channelhooks import TargetDirectory as TargetDirectory
from broadcaster.config import ChannelConfig
from broadcaster.delivery import Target
from broadcaster.devicelease import DeviceLeaseHolder
from broadcaster.divisions import DivisionTree
from broadcaster.errors import ChannelError
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
    content: dict[str, Any] | None = None
    """What was sent, as :meth:`Channel.content` gives it (None: not reported)."""
    warnings: tuple[str, ...] = ()
    """What the delivery lacks though it went out (a language it could not speak): recorded
    on the delivery, shown on the console board and counted in ``/metrics``."""


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
    enrols_targets: bool = False
    """Targets come from the channel itself (subscribers), not from the target registry."""
    relays: bool = False
    """Its targets are other nodes (county nodes): each reports the state of what it was sent
    through ``POST /api/v1/alerts/{id}/reports``, which confirms the delivery."""


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
class SpokenPart:
    """Where one language is spoken in a sound, in seconds from its start."""

    language: str
    start_s: float
    end_s: float


@dataclass(frozen=True, slots=True)
class PreviewAudio:
    """A sound a channel's deliveries will play, for the officer to hear before sending: the
    very file the channel would send (kept where no device fetches it), its SHA-256 as the
    deliveries' content names it, the languages spoken in it and where, how many targets get
    it, the rung of the speech chain that spoke it, whether it speaks the test or exercise
    marker, and the languages nothing could voice."""

    path: Path
    content_type: str
    sha256: str
    duration_s: float
    spoken: tuple[SpokenPart, ...]
    targets: int = 0
    engine: str = ""
    has_marker: bool = False
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ChannelPreview:
    """What a channel would send for an alert, shown to the officer before it goes out.

    ``contents`` are the distinct :meth:`Channel.content` of the planned deliveries, exactly
    as ``send`` reports them; ``targets`` counts the selected targets in ``unit`` (the
    channel's ``target_unit``); ``counts`` are further figures (SMS segments, characters);
    ``notes`` are warnings (text cut, language missing); ``audio`` the sounds its deliveries
    will play, each once (for the console to play; not part of the JSON form).
    """

    title: str
    unit: str = "targets"
    targets: int = 0
    contents: tuple[dict[str, Any], ...] = ()
    counts: dict[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    audio: tuple[PreviewAudio, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "unit": self.unit,
            "targets": self.targets,
            "contents": list(self.contents),
            "counts": dict(self.counts),
            "notes": list(self.notes),
        }


def texts_content(message: AlertMessage, target: Target) -> dict[str, Any]:
    """The alert's texts in ``target``'s languages, as the log and webhook channels send them."""
    texts = message.rendition.for_languages(target.languages)
    return {"texts": [t.to_json() for t in texts]}


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
    alerts: AlertHooks | None = None
    signer: AlertSigner | None = None
    """Signs CAP documents with the server's key (``[cap] signing_key``), when configured."""
    records: RecordStore | None = None
    leases: DeviceLeaseHolder | None = None


PUBLIC_MODULES = (
    "broadcaster.channel",
    "broadcaster.errors",
    "broadcaster.config",
    "broadcaster.delivery",
    "broadcaster.cap",
    "broadcaster.rendition",
    "broadcaster.divisions",
    "broadcaster.publisher",
    "broadcaster.testing",
    "broadcaster.jsonbody",
    "broadcaster.web.bodies",
    "broadcaster.destinations",
    "broadcaster.intake",
    "broadcaster.client_limits",
    "broadcaster.scheduler.runs",
    "broadcaster.devicelease",
    "broadcaster.federation.reports",
)
"""The modules of the core a channel may import (``docs/writing-a-channel.md``): kept stable for
third-party channels. Three hold one name each that shipped channels use (``priority_of``,
``RateLimiter``, ``VOLUME_PARAMETER``); ``LeasedDevice`` wraps a device in its lease; the last
says what a county node's delivery report makes of a relaying channel's delivery."""

ConfigT = TypeVar("ConfigT", bound=ChannelConfig, default=ChannelConfig)
"""The channel's configuration model: ``class MailChannel(Channel[MailChannelConfig])`` types
``self.config`` as a ``MailChannelConfig``."""


class Channel(abc.ABC, Generic[ConfigT]):
    """Base class of every channel plugin, generic in its configuration model.

    ``capabilities`` is a class attribute; an instance whose configuration changes what it can
    do (status reports switched off, a transmitter without audio) assigns its own in
    ``__init__``: the core reads ``channel.capabilities`` of each instance.
    """

    capabilities: ChannelCapabilities = ChannelCapabilities()
    config_model: ClassVar[type[ChannelConfig]] = ChannelConfig
    target_unit: ClassVar[str] = "targets"
    """What :meth:`count_targets` counts, named for the officer."""

    def __init__(self, name: str, config: ConfigT, context: ChannelContext) -> None:
        self.name = name
        self.config = config
        self.context = context
        self._confirmations: asyncio.Queue[Confirmation] = asyncio.Queue()
        self._confirmation_sink: Callable[[Confirmation], None] | None = None

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
        sink = self._confirmation_sink
        if sink is None:
            self._confirmations.put_nowait(confirmation)
        else:
            sink(confirmation)

    def confirm_into(self, sink: Callable[[Confirmation], None] | None) -> None:
        """Hand every confirmation to ``sink`` as it is reported, those waiting first, in
        place of :meth:`confirmations` (for the core, when a channel keeps that default);
        None: back to :meth:`confirmations`."""
        while sink is not None and not self._confirmations.empty():
            sink(self._confirmations.get_nowait())
        self._confirmation_sink = sink

    async def confirmations(self) -> AsyncIterator[Confirmation]:
        """Confirmations for accepted deliveries, as they arrive."""
        while True:
            yield await self._confirmations.get()

    async def health(self) -> ChannelHealth:
        return ChannelHealth(ok=True)

    def progress(self) -> dict[str, Any] | None:
        """Figures of the channel's sending since start (counts, per-second rates) for a
        channel whose sends run long (a city-wide SMS), shown beside its counts on the console
        board and in the deliveries API; JSON values, cheap to compute. None: no figures."""
        return None

    async def content(self, message: AlertMessage, target: Target, part: int) -> dict[str, Any]:
        """What ``send`` transmits for the delivery (``target``, ``part``) of ``message``, as
        JSON values; raise ChannelError when it cannot be made. ``send`` should build what it
        sends from the same code and return this dict in :attr:`SendResult.content`. By
        default the texts in the target's languages."""
        return texts_content(message, target)

    def variant(self, target: Target, part: int) -> Hashable:
        """Deliveries of one variant have the same :meth:`content` (the preview renders each
        variant once): by default those for targets of the same languages and the same part."""
        return (target.languages, part)

    def count_targets(self, planned: Sequence[PlannedDelivery]) -> int:
        """The planned deliveries' receivers in :attr:`target_unit`: by default the targets."""
        return len({p.target.id for p in planned})

    async def preview(self, message: AlertMessage, targets: Sequence[Target]) -> ChannelPreview:
        """What this channel would send for ``message`` to ``targets`` (those the alert's area
        selects): the distinct contents of the planned deliveries, made by :meth:`content`,
        and the targets counted in :attr:`target_unit`. With no targets, the contents for a
        target that reads every language of the alert."""
        planned = list(await self.plan(message, targets)) if targets else []
        samples = planned
        if not samples:
            languages = tuple(t.language for t in message.rendition.texts) or ("zh-CN",)
            sample = Target(id="preview", channel=self.name, name="preview", languages=languages)
            samples = list(await self.plan(message, [sample]))
        seen: set[Hashable] = set()
        contents: list[dict[str, Any]] = []
        notes: list[str] = []
        for delivery in samples:
            key = self.variant(delivery.target, delivery.part)
            if key in seen:
                continue
            seen.add(key)
            try:
                content = await self.content(message, delivery.target, delivery.part)
            except ChannelError as error:
                notes.append(str(error))
                continue
            if content not in contents:
                contents.append(content)
        texts = message.rendition.texts
        return ChannelPreview(
            title=texts[0].title if texts else "",
            unit=self.target_unit,
            targets=self.count_targets(planned),
            contents=tuple(contents),
            notes=tuple(notes),
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

    @classmethod
    def preflight(cls, name: str, config: ChannelConfig, data_dir: Path) -> list[str]:
        """The problems ``start`` would meet with the files ``config`` names, found before the
        server starts: each ``key: message`` (the core adds ``channels.<name>.``). Relative
        paths are relative to ``data_dir``, which may not exist yet. Read only, never create
        or change a file; raise nothing. The default finds none."""
        return []

    def web_app(self) -> web.Application | None:
        """HTTP endpoints of the channel (device acks, audio files, subscription pages).

        Called once, before ``start()``. Mounted by the core at ``/channels/<name>/`` without
        the API's bearer check: the channel authenticates its own callers (HMAC, subscription
        secrets). The endpoints stay mounted if ``start()`` fails, so handlers should answer
        503 while the channel is not running. None: no endpoints.
        """
        return None

    def sends_elsewhere(self) -> str | None:
        """The node that sends every delivery of this channel while this node cannot (it
        holds the lease of the channel's one device: ``LeasedDevice.elsewhere``), or None.
        While it names a node, the dispatcher claims nothing for the channel here and asks
        again at each poll; called before every claim, so it must be cheap (no I/O).
        By default None: the channel's devices are per target, or all on this node."""
        return None

    sends_in_batches: ClassVar[bool] = False
    """The dispatcher hands this channel each claimed batch in one :meth:`send_many` call
    (under one send timeout) instead of one :meth:`send` per delivery: for channels whose
    sends are cheap and finish together (one file write, one request, a gateway's window).
    A batch is at most half the channel's ``concurrency``, so one is claimed while another
    finishes."""

    async def send_many(
        self, deliveries: Sequence[OutgoingDelivery]
    ) -> Sequence[SendResult | Exception]:
        """Hand several deliveries at once: one result, or the error ``send`` would have
        raised, per delivery and in their order; raise for an error of them all. By default
        :meth:`send` for each, concurrently."""
        results = await asyncio.gather(*(self.send(d) for d in deliveries), return_exceptions=True)
        outcomes: list[SendResult | Exception] = []
        for result in results:
            if isinstance(result, Exception) or not isinstance(result, BaseException):
                outcomes.append(result)
            else:  # cancelled: not an outcome of the delivery
                raise result
        return outcomes


async def send_through_batch(channel: Channel[Any], delivery: OutgoingDelivery) -> SendResult:
    """``send`` of a channel that sends in batches: ``delivery`` as a batch of one."""
    (result,) = await channel.send_many([delivery])
    if isinstance(result, Exception):
        raise result
    return result


def channel_progress(
    channels: Mapping[str, Channel[Any]], names: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """The :meth:`Channel.progress` of the running channels among ``names`` that give one."""
    found: dict[str, dict[str, Any]] = {}
    for name in names:
        channel = channels.get(name)
        figures = channel.progress() if channel is not None else None
        if figures is not None:
            found[name] = figures
    return found
