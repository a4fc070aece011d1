"""The ``loudspeaker`` channel: village loudspeaker boxes commanded over the box protocol
(docs/protocols/speaker.md) through a ``SpeakerHub`` the channel owns.

- ``start`` registers the boxes (the channel's targets in the server's registry, keys from
  ``key_file`` or ``master_secret``: :mod:`channels.loudspeaker.boxes`) and opens the hub's
  TCP listener, serial lines and MQTT session; targets met later are registered when first
  used.
- ``plan`` makes one delivery per box.
- ``send`` renders the alert's programme once per set of languages
  (:mod:`channels.loudspeaker.media`): the attention signal, then each language the box serves
  that the alert has, in the box's order. A language nothing can voice (no recording in the
  alert, no voice, no clips) is left out and the delivery carries a warning naming it; only a
  box for which no language can be voiced fails, saying what to supply. It sends the box a
  signed ``play_url`` with the URL under ``/channels/<name>/audio/``, its SHA-256, the
  priority of the alert's broadcast class, volume, repeats, expiry and the stored fallback
  clip for the hazard (:mod:`channels.loudspeaker.commands`). When no audio can be rendered
  and a clip is configured, it sends ``play_clip``. The command id derives from the
  delivery's idempotency key, so a retry never plays twice. ``accepted`` when the box's
  transport took it; an offline box or a link failure is retryable (the core retries until
  the alert expires; for an offline box after about ``offline_retry_seconds``, and at once
  when the box reconnects, through the context's dispatch hooks), an unknown or misconfigured
  box is rejected for good.
- Box acknowledgements become confirmations: ``accepted``/``started`` are progress,
  ``finished`` confirms, ``failed`` fails with the box's reason (``preempted`` when a
  higher-priority alert cut it off). Those that overtake ``send`` wait for it to return.
  After a restart, ``resume`` tracks the deliveries still awaiting their box, and the acks
  boxes repeat on reconnecting confirm them.
- ``cancel`` sends ``stop`` for the alert; the box's ``failed``/``stopped`` then confirms the
  delivery as stopped on request.
- ``health`` lists every box: online, transport, last heartbeat, state; ``probe`` checks one
  box's link and heartbeat without a sound.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from aiohttp import web

from audio import AudioError
from broadcaster.channel import (
    AlertMessage,
    Channel,
    ChannelCapabilities,
    ChannelContext,
    ChannelHealth,
    ChannelPreview,
    Confirmation,
    ConfirmationOutcome,
    DispatchHooks,
    OutgoingDelivery,
    PlannedDelivery,
    ProbeResult,
    SendOutcome,
    SendResult,
)
from broadcaster.config import ChannelConfig
from broadcaster.delivery import Target
from broadcaster.errors import (
    ChannelError,
    DeviceTimeoutError,
    DeviceUnavailableError,
    RetryableError,
    TargetRejectedError,
    UnsupportedError,
)
from broadcaster.publisher import hazard_of
from channels.loudspeaker import boxes, commands
from channels.loudspeaker.config import LoudspeakerChannelConfig
from channels.loudspeaker.media import AudioLibrary
from channels.loudspeaker.programmes import ProgrammeCache
from drivers.speaker import (
    AckStage,
    BoxAck,
    BoxOfflineError,
    BoxPresence,
    BoxRegistration,
    BoxStatus,
    Command,
    HubEvent,
    PlayClip,
    PlayUrl,
    SpeakerError,
    SpeakerFleetSimulator,
    SpeakerHub,
    SpeakerTimeoutError,
    UnknownBoxError,
)
from drivers.speaker.codec import box_target

log = logging.getLogger(__name__)

_AUDIO_KEEP_S = 30 * 86400.0
"""How long published audio is kept when the server renders none itself."""

#: Commands awaiting their box's final ack that are remembered (the oldest are forgotten).
_PENDING_KEPT = 200_000


@dataclass(slots=True)
class _Pending:
    """A command sent for a delivery; confirmations wait in ``held`` until ``send`` returns."""

    delivery_id: int
    box_id: str
    sent: bool = False
    stopping: bool = False
    held: list[Confirmation] = field(default_factory=list)


@dataclass(slots=True)
class _BoxView:
    """What the channel knows of a box from the hub's events."""

    online: bool = False
    transport: str = ""
    last_heard: datetime | None = None
    status: BoxStatus | None = None


class LoudspeakerChannel(Channel[LoudspeakerChannelConfig]):
    """Village loudspeaker boxes; see the module docstring."""

    capabilities = ChannelCapabilities(
        confirms=True,
        can_stop=True,
        audio_formats=("mp3", "opus"),
        description="village loudspeaker boxes: signed play/stop commands over TCP, serial"
        " lines or MQTT; played, preempted and stopped as the boxes report",
    )
    config_model: ClassVar[type[ChannelConfig]] = LoudspeakerChannelConfig
    target_unit: ClassVar[str] = "boxes"

    def __init__(
        self, name: str, config: LoudspeakerChannelConfig, context: ChannelContext
    ) -> None:
        super().__init__(name, config, context)
        self.directory = context.data_dir / f"loudspeaker-{name}"
        base_url = f"{context.public_url.rstrip('/')}/channels/{name}"
        self.library = AudioLibrary(self.directory / "audio", base_url, self.config.audio_format)
        self.hub: SpeakerHub | None = None
        self.fleet: SpeakerFleetSimulator | None = None
        self._keyring = boxes.BoxKeyring({}, None)
        self._registered: dict[str, BoxRegistration] = {}
        self._targets: dict[str, tuple[Target, BoxRegistration]] = {}
        self._targets_of_box: dict[str, set[str]] = {}
        self._views: dict[str, _BoxView] = {}
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        # Acks for commands this run did not send, between ``start`` and ``resume`` (a restart).
        self._unclaimed: OrderedDict[str, BoxAck] | None = OrderedDict()
        self._pump: asyncio.Task[None] | None = None
        self._returning: set[str] = set()
        self._box_came_back = asyncio.Event()
        self._retrier: asyncio.Task[None] | None = None
        self._presence_changed = asyncio.Condition()
        self._programmes = ProgrammeCache(self._command)

    # -- lifecycle ---------------------------------------------------------------------

    @classmethod
    def preflight(cls, name: str, config: ChannelConfig, data_dir: Path) -> list[str]:
        """The box keys of ``key_file``, read as ``start`` reads them."""
        assert isinstance(config, LoudspeakerChannelConfig)
        if config.key_file is None:
            return []
        try:
            boxes.read_key_file(boxes.resolve(config.key_file, data_dir))
        except boxes.BoxRegistryError as exc:
            return [str(exc)]
        return []

    async def start(self) -> None:
        settings = self.config
        try:
            self._keyring = await asyncio.to_thread(
                boxes.load_keyring, settings, self.context.data_dir
            )
            hub = SpeakerHub(settings.hub_config())
        except (boxes.BoxRegistryError, SpeakerError) as exc:
            raise ChannelError(f"channel {self.name}: {exc}") from exc
        directory = self.context.targets
        registry = await directory.all() if directory is not None else []
        for target in registry:
            try:
                self._register(hub, target)
            except boxes.BoxRegistryError as exc:
                log.warning("channel %s: box of target %s skipped: %s", self.name, target.id, exc)
        try:
            await hub.start()
        except (SpeakerError, OSError) as exc:
            raise ChannelError(f"channel {self.name}: the box hub cannot start: {exc}") from exc
        self.hub = hub
        loop = asyncio.get_running_loop()
        self._pump = loop.create_task(self._consume(hub))
        if self.context.dispatch is not None:
            self._retrier = loop.create_task(self._retry_returning(self.context.dispatch))
        if settings.simulate:
            await self._simulate(hub)

    async def _simulate(self, hub: SpeakerHub) -> None:
        settings = self.config
        assert settings.master_secret is not None
        simulated = [b for b in self._registered.values() if b.transport == "tcp"]
        simulated = simulated[: settings.simulated_boxes_max]
        if simulated:
            self.fleet = await boxes.start_fleet(
                simulated,
                hub.tcp_port,
                settings.master_secret.reveal().encode(),
                self.directory / "simulated",
                settings.simulated_play_seconds,
            )

    async def stop(self) -> None:
        if self.fleet is not None:
            await self.fleet.stop()
            self.fleet = None
        if self._pump is not None:
            self._pump.cancel()
            await asyncio.gather(self._pump, return_exceptions=True)
            self._pump = None
        if self._retrier is not None:
            self._retrier.cancel()
            await asyncio.gather(self._retrier, return_exceptions=True)
            self._retrier = None
        if self.hub is not None:
            await self.hub.stop()
            self.hub = None

    def web_app(self) -> web.Application:
        return self.library.web_app()

    # -- boxes -------------------------------------------------------------------------

    def _register(self, hub: SpeakerHub, target: Target) -> BoxRegistration:
        known = self._targets.get(target.id)
        if known is not None and known[0] == target:
            return known[1]
        box = boxes.registration(target, self.config, self._keyring)
        self._targets[target.id] = (target, box)
        self._targets_of_box.setdefault(box.box_id, set()).add(target.id)
        if self._registered.get(box.box_id) != box:
            try:
                hub.register(box)
            except SpeakerError as exc:
                raise boxes.BoxRegistryError(str(exc)) from exc
            self._registered[box.box_id] = box
            self._views.setdefault(box.box_id, _BoxView(transport=box.transport))
        return box

    async def wait_online(
        self, box_ids: Sequence[str], within_s: float, *, online: bool = True
    ) -> None:
        """Wait until every box of ``box_ids`` is online (or, ``online=False``, offline);
        raises TimeoutError."""

        def reached() -> bool:
            views = [self._views.get(b) for b in box_ids]
            return all(v is not None and v.online == online for v in views)

        async with asyncio.timeout(within_s), self._presence_changed:
            await self._presence_changed.wait_for(reached)

    def online_count(self) -> int:
        """How many of the channel's boxes are online now."""
        return sum(1 for view in self._views.values() if view.online)

    def _running(self) -> SpeakerHub:
        if self.hub is None:
            raise DeviceUnavailableError(f"channel {self.name} is not running")
        return self.hub

    # -- sending -----------------------------------------------------------------------

    async def plan(
        self, message: AlertMessage, candidates: Sequence[Target]
    ) -> Sequence[PlannedDelivery]:
        """One delivery per box: its programme holds every language it serves."""
        return [PlannedDelivery(target=target) for target in candidates]

    async def send(self, delivery: OutgoingDelivery) -> SendResult:
        hub = self._running()
        try:
            box = self._register(hub, delivery.target)
        except boxes.BoxRegistryError as exc:
            raise TargetRejectedError(f"target {delivery.target.id}: {exc}") from exc
        await self._announce(hub, box.box_id, delivery)
        programme = await self._programmes.get(delivery)
        cmd_id = commands.command_id("play", delivery)
        entry = _Pending(delivery.id, box.box_id)
        self._pending[cmd_id] = entry
        self._pending.move_to_end(cmd_id)
        while len(self._pending) > _PENDING_KEPT:
            # A box that never answers: the core re-sends after its confirmation timeout.
            self._pending.popitem(last=False)
        try:
            signed = programme.template.sign(cmd_id, box_target(box.box_id), box.key)
            await hub.send_signed(box.box_id, signed)
        except BaseException as exc:
            self._pending.pop(cmd_id, None)
            if isinstance(exc, BoxOfflineError):
                raise DeviceUnavailableError(
                    f"box {box.box_id} is offline", retry_after=self._offline_retry()
                ) from exc
            if isinstance(exc, SpeakerError):
                raise _channel_error(box.box_id, exc) from exc
            raise
        entry.sent = True
        for confirmation in entry.held:
            self.confirm(confirmation)
        entry.held.clear()
        return SendResult(
            SendOutcome.ACCEPTED,
            provider_ref=cmd_id,
            detail=f"sent to box {box.box_id} over {box.transport}: {programme.what}",
            content=dict(programme.content),
            warnings=programme.warnings,
        )

    async def _announce(self, hub: SpeakerHub, box_id: str, delivery: OutgoingDelivery) -> None:
        """Start the stored attention clip on the box now, while the warning renders; its acks
        settle nothing (the ``play_url`` that follows carries the delivery)."""
        early = commands.attention(delivery, self.config)
        if early is None or self.context.audio is None:
            return
        try:
            await hub.send_command(box_id, early)
        except SpeakerError as exc:
            log.info("channel %s: attention clip not sent to %s: %s", self.name, box_id, exc)

    def _offline_retry(self) -> float | None:
        """When to retry for an offline box: soon, with jitter so reconnects do not stampede."""
        seconds = self.config.offline_retry_seconds
        return None if seconds is None else seconds * random.uniform(0.5, 1.0)

    async def _command(
        self, delivery: OutgoingDelivery, publish: bool = True
    ) -> tuple[Command, str, dict[str, Any], tuple[str, ...]]:
        """The box's command for ``delivery``, a description for the log, the content the
        channel reports (:meth:`content`) and what the programme lacks (languages no voice,
        clip or recording could speak); the audio is published only when ``publish``."""
        message, target = delivery.message, delivery.target
        texts = message.rendition.for_languages(target.languages)
        if not texts:
            raise UnsupportedError(f"alert has no text for {target.id}")
        clip = self.config.clip_for(hazard_of(texts[0].event))
        audio = self.context.audio
        chosen = commands.broadcast_class(message.alert)
        try:
            if audio is None:
                raise UnsupportedError("this server renders no audio")
            library, languages = self.library, tuple(target.languages)
            if publish:
                published = await library.publish(audio, message, languages)
            else:
                published = (await library.prepare(audio, message, languages)).audio
        except (AudioError, UnsupportedError) as error:
            if clip is not None:
                log.warning("channel %s: %s; playing stored clip %s", self.name, error, clip.id)
                command = commands.play_clip(delivery, self.config, clip)
                what = f"stored clip {clip.id} ({chosen}, priority {command.priority})"
                warnings = (f"the warning itself could not be played: {error}",)
                return command, what, _content(texts[0].language, command, None), warnings
            if isinstance(error, UnsupportedError | ValueError):
                raise UnsupportedError(f"no audio for {target.id}: {error}") from error
            raise RetryableError(f"audio for {target.id} could not be rendered: {error}") from error
        play = commands.play_url(
            delivery, self.config, published.url, published.sha256, clip, published.speech_start_ms
        )
        spoken = "+".join(published.languages)
        what = (
            f"{spoken} audio, {published.duration_s:.0f} s × {play.repeat}"
            f" ({chosen}, priority {play.priority})"
        )
        content = _content(spoken, play, published.duration_s)
        return play, what, content, published.warnings

    async def content(self, message: AlertMessage, target: Target, part: int) -> dict[str, Any]:
        """The audio the box is told to play: language, audio id (its SHA-256), duration,
        priority, volume and repeats, from the command ``send`` would make (its audio rendered,
        not published)."""
        stand_in = OutgoingDelivery(
            id=0,
            message=message,
            target=target,
            part=part,
            attempt=0,
            idempotency_key=f"preview:{target.id}:{part}",
            expires_at=message.expires_at,
        )
        return (await self._command(stand_in, publish=False))[2]

    async def cancel(self, delivery: OutgoingDelivery) -> None:
        """Stop the delivery's alert on its box (playing or queued)."""
        hub = self.hub
        if hub is None:
            return
        box_id = boxes.box_id_of(delivery.target)
        entry = self._pending.get(commands.command_id("play", delivery))
        if entry is not None:
            entry.stopping = True
        try:
            await hub.send_command(box_id, commands.stop(delivery))
        except SpeakerError as exc:
            log.warning("channel %s: cannot stop box %s: %s", self.name, box_id, exc)

    # -- box events --------------------------------------------------------------------

    async def _consume(self, hub: SpeakerHub) -> None:
        async for event in hub.events():
            try:
                self._on_event(event)
            except Exception:
                log.exception("channel %s: box event %r not handled", self.name, event)
            if isinstance(event, BoxPresence):
                async with self._presence_changed:
                    self._presence_changed.notify_all()
                if event.online:
                    # Handled by _retry_returning: acks must not wait behind reconnects.
                    self._returning.add(event.box_id)
                    self._box_came_back.set()

    async def _retry_returning(self, dispatch: DispatchHooks) -> None:
        """Boxes that came (back) online: what waits for them is retried now, not after its
        backoff; the boxes of a burst of reconnects are reported together."""
        while True:
            await self._box_came_back.wait()
            self._box_came_back.clear()
            returning, self._returning = self._returning, set()
            targets = sorted(t for box in returning for t in self._targets_of_box.get(box, ()))
            try:
                await dispatch.targets_available(targets)
            except Exception as exc:
                log.error("channel %s: retries of returned boxes not forwarded: %s", self.name, exc)

    def _on_event(self, event: HubEvent) -> None:
        view = self._views.setdefault(event.box_id, _BoxView())
        if isinstance(event, BoxPresence):
            view.online = event.online
            view.transport = event.transport
            return
        view.last_heard = datetime.now(UTC)
        if isinstance(event, BoxStatus):
            view.status = event
            return
        self._on_ack(event)

    def _on_ack(self, ack: BoxAck) -> None:
        entry = self._pending.get(ack.cmd_id)
        if entry is None:
            unclaimed = self._unclaimed
            if unclaimed is not None:
                unclaimed[ack.cmd_id] = ack
                unclaimed.move_to_end(ack.cmd_id)
                while len(unclaimed) > _PENDING_KEPT:
                    unclaimed.popitem(last=False)
            return
        if entry.box_id != ack.box_id:
            return
        confirmation, final = _confirmation(entry, ack)
        if final:
            del self._pending[ack.cmd_id]
        if entry.sent:
            self.confirm(confirmation)
        else:
            entry.held.append(confirmation)

    async def resume(self, deliveries: Sequence[OutgoingDelivery]) -> None:
        """Track the play commands sent before a restart again. The boxes repeat their latest
        ack when they reconnect (often before this runs): such acks confirm at once."""
        unclaimed: dict[str, BoxAck] = dict(self._unclaimed or {})
        self._unclaimed = None
        for delivery in deliveries:
            cmd_id = commands.command_id("play", delivery)
            self._pending[cmd_id] = _Pending(
                delivery.id, boxes.box_id_of(delivery.target), sent=True
            )
            ack = unclaimed.pop(cmd_id, None)
            if ack is not None:
                self._on_ack(ack)

    async def housekeeping(self) -> None:
        """Delete published audio not used for the core's audio keep time."""
        audio = self.context.audio
        removed = await self.library.prune(audio.keep_s if audio else _AUDIO_KEEP_S)
        if removed:
            log.info("channel %s: %d old audio files deleted", self.name, removed)

    # -- checks and preview ------------------------------------------------------------

    async def health(self) -> ChannelHealth:
        if self.hub is None:
            return ChannelHealth(ok=False, detail="not running")
        devices = {box_id: _describe(view) for box_id, view in sorted(self._views.items())}
        offline = [box_id for box_id, view in devices.items() if not view["online"]]
        online = len(devices) - len(offline)
        detail = f"{online} of {len(devices)} boxes online"
        if offline:
            detail += f"; offline: {', '.join(offline[:10])}{' …' if len(offline) > 10 else ''}"
        return ChannelHealth(ok=online > 0 or not devices, detail=detail, devices=devices)

    async def probe(self, target: Target) -> ProbeResult:
        box_id = boxes.box_id_of(target)
        view = self._views.get(box_id)
        if self.hub is None:
            return ProbeResult(ok=False, detail="channel not running")
        if view is None or not view.online:
            heard = view.last_heard.isoformat() if view and view.last_heard else "never"
            return ProbeResult(ok=False, detail=f"box {box_id} offline (last heard {heard})")
        state = view.status.state if view.status else "unknown"
        return ProbeResult(ok=True, detail=f"box {box_id} online over {view.transport}, {state}")

    async def preview(self, message: AlertMessage, targets: Sequence[Target]) -> ChannelPreview:
        base = await super().preview(message, targets)
        chosen = commands.broadcast_class(message.alert)
        note = f"plays as {chosen} at priority {self.config.priorities[chosen]}"
        audio = await self.library.preview(self.context.audio, message, targets)
        return replace(
            base, counts={"repeat": self.config.repeat}, notes=(*base.notes, note), audio=audio
        )


def _content(
    language: str, command: PlayUrl | PlayClip, duration_s: float | None
) -> dict[str, Any]:
    """What a play command tells the box, as the channel reports it."""
    audio = command.sha256 if isinstance(command, PlayUrl) else f"clip:{command.clip_id}"
    return {
        "language": language,
        "audio": audio,
        "duration_s": None if duration_s is None else round(duration_s, 1),
        "priority": command.priority,
        "volume": command.volume,
        "repeat": command.repeat,
    }


def _confirmation(entry: _Pending, ack: BoxAck) -> tuple[Confirmation, bool]:
    """The confirmation for a box's ack, and whether it settles the delivery."""
    box, source = ack.box_id, ack.source or "url"
    note = f", {ack.reason}" if ack.reason else ""
    if ack.stage is AckStage.ACCEPTED:
        detail = f"box {box} accepted"
        if ack.reason == "preempted":
            detail = f"box {box}: cut off by a more urgent alert, plays again after it"
        return Confirmation(entry.delivery_id, ConfirmationOutcome.PROGRESS, detail), False
    if ack.stage is AckStage.STARTED:
        detail = f"playing on box {box} ({source}{note})"
        return Confirmation(entry.delivery_id, ConfirmationOutcome.PROGRESS, detail), False
    if ack.stage is AckStage.FINISHED:
        detail = f"played on box {box} ({source})"
        return Confirmation(entry.delivery_id, ConfirmationOutcome.CONFIRMED, detail), True
    if ack.reason == "stopped" and entry.stopping:
        detail = f"stopped on box {box} (Cancel or Update of the alert)"
        return Confirmation(entry.delivery_id, ConfirmationOutcome.CONFIRMED, detail), True
    detail = f"box {box} failed: {ack.reason or 'no reason given'}"
    return Confirmation(entry.delivery_id, ConfirmationOutcome.FAILED, detail), True


def _describe(view: _BoxView) -> dict[str, object]:
    status = view.status
    return {
        "online": view.online,
        "transport": view.transport,
        "last_heartbeat": status.at.isoformat() if status else None,
        "state": str(status.state) if status else None,
        "volume": status.volume if status else None,
        "playing": status.playing_alert_id if status else None,
    }


def _channel_error(box_id: str, error: SpeakerError) -> ChannelError:
    """The core's error for a driver error."""
    if isinstance(error, SpeakerTimeoutError):
        return DeviceTimeoutError(f"box {box_id} did not answer: {error}")
    if isinstance(error, UnknownBoxError):
        return TargetRejectedError(f"box {box_id} is not registered: {error}")
    return DeviceUnavailableError(f"box {box_id}: {error}")
