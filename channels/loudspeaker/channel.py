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
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from aiohttp import web

from broadcaster.channel import (
    AlertMessage,
    Channel,
    ChannelCapabilities,
    ChannelContext,
    ChannelHealth,
    ChannelPreview,
    DispatchHooks,
    OutgoingDelivery,
    PlannedDelivery,
    ProbeResult,
    SendResult,
)
from broadcaster.config import ChannelConfig
from broadcaster.delivery import Target
from broadcaster.errors import (
    ChannelError,
    DeviceUnavailableError,
    TargetRejectedError,
    UnsupportedError,
)
from channels.loudspeaker import boxes, commands, programmes
from channels.loudspeaker.config import LoudspeakerChannelConfig
from channels.loudspeaker.groups import PlannedAreas, group_command_id
from channels.loudspeaker.media import AudioLibrary
from channels.loudspeaker.programmes import ProgrammeCache
from channels.loudspeaker.sending import BatchSender, Member
from channels.loudspeaker.tracking import AckTracker
from drivers.speaker import (
    BoxPresence,
    BoxRegistration,
    BoxStatus,
    Command,
    HubEvent,
    SpeakerError,
    SpeakerFleetSimulator,
    SpeakerHub,
)
from drivers.speaker.codec import CommandTemplate

log = logging.getLogger(__name__)

_AUDIO_KEEP_S = 30 * 86400.0
"""How long published audio is kept when the server renders none itself."""


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
        self._tracker = AckTracker(self.confirm)
        self._planned = PlannedAreas()
        self._pump: asyncio.Task[None] | None = None
        self._returning: set[str] = set()
        self._box_came_back = asyncio.Event()
        self._retrier: asyncio.Task[None] | None = None
        self._presence_changed = asyncio.Condition()
        self._programmes = ProgrammeCache(self._build)
        self._sender = BatchSender(
            name,
            self._programmes,
            self._tracker,
            self._planned,
            self._attention,
            self._offline_retry,
        )

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
            if box.transport == "mqtt":
                self._planned.member(box.box_id, self._group_areas(target))
        return box

    def _group_areas(self, target: Target) -> tuple[str, ...]:
        """The box's group areas when the server holds their keys, else none."""
        areas = boxes.group_areas(target)
        try:
            for area in areas:
                self._keyring.area_key(area)
        except boxes.BoxRegistryError:
            return ()
        return areas

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
        """One delivery per box: its programme holds every language it serves. The MQTT boxes
        planned are noted per area, for group commands to area topics."""
        planned = [PlannedDelivery(target=target) for target in candidates]
        if self.hub is not None:
            self._planned.record(
                message.id,
                (
                    (boxes.box_id_of(t), self._group_areas(t), tuple(t.languages))
                    for t in candidates
                    if t.params.get("transport", self.config.default_transport) == "mqtt"
                    and t.params.get("group_areas")
                ),
            )
        return planned

    sends_in_batches = True

    async def send(self, delivery: OutgoingDelivery) -> SendResult:
        (result,) = await self.send_many([delivery])
        if isinstance(result, Exception):
            raise result
        return result

    async def send_many(
        self, deliveries: Sequence[OutgoingDelivery]
    ) -> Sequence[SendResult | Exception]:
        """Send a claimed batch: one command per group of boxes (:mod:`channels.loudspeaker
        .sending`); each result says whether the box's transport took it."""
        hub = self._running()
        results: list[SendResult | Exception] = [UnsupportedError("not sent")] * len(deliveries)
        members: list[Member] = []
        for index, delivery in enumerate(deliveries):
            try:
                box = self._register(hub, delivery.target)
                areas = self._group_areas(delivery.target)
            except boxes.BoxRegistryError as exc:
                error = f"target {delivery.target.id}: {exc}"
                results[index] = TargetRejectedError(error)
                continue
            key = self._keyring.area_key(areas[0]) if areas else None
            members.append(Member(index, delivery, box, areas, key))
        await self._sender.send(hub, members, results)
        return results

    def _attention(self, delivery: OutgoingDelivery) -> CommandTemplate | None:
        """The attention clip of ``delivery``'s alert, to sign per group or box."""
        early = commands.attention(delivery, self.config)
        if early is None or self.context.audio is None:
            return None
        return CommandTemplate(early)

    def _offline_retry(self) -> float | None:
        """When to retry for an offline box: soon, with jitter so reconnects do not stampede."""
        seconds = self.config.offline_retry_seconds
        return None if seconds is None else seconds * random.uniform(0.5, 1.0)

    async def _build(
        self, delivery: OutgoingDelivery
    ) -> tuple[Command, str, dict[str, Any], tuple[str, ...]]:
        return await programmes.build(delivery, self.config, self.library, self.context.audio)

    async def content(self, message: AlertMessage, target: Target, part: int) -> dict[str, Any]:
        """The audio the box is told to play: language, audio id (its SHA-256), duration,
        priority, volume and repeats, from the command ``send`` would make."""
        stand_in = OutgoingDelivery(
            id=0,
            message=message,
            target=target,
            part=part,
            attempt=0,
            idempotency_key=f"preview:{target.id}:{part}",
            expires_at=message.expires_at,
        )
        return (await self._build(stand_in))[2]

    async def cancel(self, delivery: OutgoingDelivery) -> None:
        """Stop the delivery's alert on its box (playing or queued)."""
        hub = self.hub
        if hub is None:
            return
        box_id = boxes.box_id_of(delivery.target)
        self._tracker.stopping(delivery.id)
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
        if not event.cmd_id.startswith("attention-"):
            self._tracker.on_ack(event)

    async def resume(self, deliveries: Sequence[OutgoingDelivery]) -> None:
        """Track the play commands sent before a restart again, under the box's own command
        id and the group one of its first area. The boxes repeat their latest ack when they
        reconnect (often before this runs): such acks confirm at once."""
        for delivery in deliveries:
            box_id = boxes.box_id_of(delivery.target)
            try:
                areas = self._group_areas(delivery.target)
            except boxes.BoxRegistryError:
                areas = ()
            cmd_id = commands.command_id("play", delivery)
            if areas:
                cmd_id = group_command_id("play", self.name, delivery, areas[0])
            self._tracker.track(cmd_id, box_id, delivery.id, sent=True)

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
        return replace(base, counts={"repeat": self.config.repeat}, notes=(*base.notes, note))


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
