"""The ``loudspeaker`` channel: village loudspeaker boxes commanded over the box protocol
(docs/protocols/speaker.md) through a ``SpeakerHub`` the channel owns.

- ``start`` registers the boxes (the channel's targets in the server's registry, keys from
  ``key_file`` or ``master_secret``: :mod:`channels.loudspeaker.boxes`, kept per target by
  :mod:`channels.loudspeaker.roster`) and opens the hub's TCP listener, serial lines and MQTT
  session; targets met later are registered when first used. The hub hands box events
  straight to the channel. It warns when the process may open fewer files than an alert to
  every box needs (a download each, a connection each over TCP).
- ``plan`` makes one delivery per box and notes, per area, the MQTT boxes the alert selected
  (:mod:`channels.loudspeaker.groups`).
- ``send_many`` takes a claimed batch (:mod:`channels.loudspeaker.sending`): per programme
  (:mod:`channels.loudspeaker.programmes`: the alert rendered once per set of languages,
  the attention signal first, a language nothing can voice left out with a warning) it sends
  at once, while the audio renders, a signed ``play_url`` of the audio's reserved URL, which
  the boxes download sealed (the stored attention clip, when one is configured, plays
  meanwhile), or a ``play_clip`` when this server renders no audio and a clip is configured,
  with the priority of the alert's broadcast class, volume, repeats, expiry and the hazard's
  fallback clip. The audio library holds a box's download until the render ends and seals
  it with the key of the command's target (:meth:`.BoxRoster.command_key`); with an MQTT
  link the audio is also retained on the broker, once, with a seal per target, until the
  alert is over (:mod:`channels.loudspeaker.retained_audio`). Boxes holding their area's key
  share one group command; others get their own. Command ids are stable, so a retry never
  plays twice. ``accepted`` when the box's transport took it; an offline box or a link
  failure is retryable (soon, ``offline_retry_seconds``, and at once when the box reconnects:
  :mod:`channels.loudspeaker.returning`), an unknown or misconfigured box is rejected for
  good.
- Box acknowledgements become confirmations (:mod:`channels.loudspeaker.tracking`):
  ``accepted``/``started`` are progress, ``finished`` confirms, ``failed`` fails with the
  box's reason. After a restart, ``resume`` tracks the deliveries still awaiting their box,
  and the acks boxes repeat on reconnecting confirm them.
- ``cancel`` sends ``stop`` for the alert; the box's ``failed``/``stopped`` then confirms the
  delivery as stopped on request.
- The channel's ``stop`` ends what it runs (the renders still under way included) and then the
  hub; a box that comes online meanwhile starts nothing more.
- ``health`` lists every box, ``probe`` checks one box's link and heartbeat without a sound
  (:mod:`channels.loudspeaker.views`).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from dataclasses import replace
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
    OutgoingDelivery,
    PlannedDelivery,
    ProbeResult,
    SendResult,
    send_through_batch,
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
from channels.loudspeaker.media import HOLD_SPARE, AudioLibrary
from channels.loudspeaker.programmes import ProgrammeCache
from channels.loudspeaker.retained_audio import RetainedAudio
from channels.loudspeaker.returning import ReturningBoxes
from channels.loudspeaker.roster import BoxRoster
from channels.loudspeaker.sending import BatchSender, Member
from channels.loudspeaker.stops import UnsentStops
from channels.loudspeaker.tracking import AckTracker
from channels.loudspeaker.views import BoxViews
from drivers.speaker import (
    BoxAck,
    BoxPresence,
    HubEvent,
    SpeakerError,
    SpeakerFleetSimulator,
    SpeakerHub,
    Stop,
)

log = logging.getLogger(__name__)

_AUDIO_KEEP_S = 30 * 86400.0
"""How long published audio is kept when the server renders none itself."""
SIMULATED_ONLINE_WITHIN_S = 5.0
"""How long ``simulate`` waits, once its boxes are connected, for the hub to count them online."""


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
        self.views = BoxViews(lambda box_id: self.hub.last_heard(box_id) if self.hub else None)
        self._planned = PlannedAreas()
        self.roster = BoxRoster(config, self.views, self._planned)
        self.library = AudioLibrary(
            self.directory / "audio",
            base_url,
            self.config.audio_format,
            self.roster.command_key,
            lambda: 2 * len(self.roster) + HOLD_SPARE,
        )
        self.retained = RetainedAudio(
            self.directory / "audio", self.config.audio_format, self.roster.command_key
        )
        self.hub: SpeakerHub | None = None
        self.fleet: SpeakerFleetSimulator | None = None
        self._tracker = AckTracker(self.confirm)
        self.returning = ReturningBoxes(name, self.roster.targets_of)
        self._retrier: asyncio.Task[None] | None = None
        self._unsent_stops = UnsentStops()
        self._stopping: set[asyncio.Task[None]] = set()
        self._programmes = ProgrammeCache(self._build)
        self._sender = BatchSender(
            name,
            self._programmes,
            self._tracker,
            self._planned,
            self._offline_retry,
            self.retained.note,
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
            keyring = await asyncio.to_thread(boxes.load_keyring, settings, self.context.data_dir)
            self.roster.reset(keyring)
            hub = SpeakerHub(settings.hub_config(self.directory))
        except (boxes.BoxRegistryError, SpeakerError) as exc:
            raise ChannelError(f"channel {self.name}: {exc}") from exc
        directory = self.context.targets
        registry = await directory.all() if directory is not None else []
        for target in registry:
            try:
                self.roster.register(hub, target)
            except boxes.BoxRegistryError as exc:
                log.warning("channel %s: box of target %s skipped: %s", self.name, target.id, exc)
        try:
            await hub.start()
        except (SpeakerError, OSError) as exc:
            raise ChannelError(f"channel {self.name}: the box hub cannot start: {exc}") from exc
        self.hub = hub
        self.retained.start(hub, settings.audio_over_mqtt)
        self.roster.check_open_files(self.name)
        loop = asyncio.get_running_loop()
        hub.listen(self._event)
        if self.context.dispatch is not None:
            self._retrier = loop.create_task(self.returning.forward(self.context.dispatch))
        if settings.simulate:
            await self._simulate(hub)

    async def _simulate(self, hub: SpeakerHub) -> None:
        settings = self.config
        assert settings.master_secret is not None
        simulated = [b for b in self.roster.registrations() if b.transport == "tcp"]
        simulated = simulated[: settings.simulated_boxes_max]
        if simulated:
            self.fleet = await boxes.start_fleet(
                simulated,
                hub.tcp_port,
                settings.master_secret.reveal().encode(),
                self.directory / "simulated",
                settings.simulated_play_seconds,
            )
            # A box is online once the hub has written its hello down, a moment after the box
            # sent it (drivers.speaker.hello_replay): the channel starts with its boxes online.
            try:
                await self.wait_online([b.box_id for b in simulated], SIMULATED_ONLINE_WITHIN_S)
            except TimeoutError:
                log.warning(
                    "channel %s: not all simulated boxes online within %.0f s",
                    self.name,
                    SIMULATED_ONLINE_WITHIN_S,
                )

    async def stop(self) -> None:
        # Not running from here on: a box that comes online meanwhile starts no more sends.
        hub, self.hub = self.hub, None
        try:
            if self.fleet is not None:
                await self.fleet.stop()
                self.fleet = None
            if self._retrier is not None:
                self._retrier.cancel()
                await asyncio.gather(self._retrier, return_exceptions=True)
                self._retrier = None
            for task in self._stopping:
                task.cancel()
            await asyncio.gather(*self._stopping, return_exceptions=True)
            await self._programmes.close()
            await self.retained.stop()
        finally:
            if hub is not None:
                await hub.stop()

    def web_app(self) -> web.Application:
        return self.library.web_app()

    # -- boxes -------------------------------------------------------------------------

    async def wait_online(
        self, box_ids: Sequence[str], within_s: float, *, online: bool = True
    ) -> None:
        """Wait until every box of ``box_ids`` is online (or, ``online=False``, offline);
        raises TimeoutError."""
        await self.views.wait_online(box_ids, within_s, online=online)

    def online_count(self) -> int:
        """How many of the channel's boxes are online now."""
        return self.views.online_count()

    def _running(self) -> SpeakerHub:
        if self.hub is None:
            raise DeviceUnavailableError(f"channel {self.name} is not running")
        return self.hub

    # -- sending -----------------------------------------------------------------------

    async def plan(
        self, message: AlertMessage, candidates: Sequence[Target]
    ) -> Sequence[PlannedDelivery]:
        """One delivery per box: its programme holds every language it serves. The boxes
        planned that take group commands are noted, for sending them at once."""
        planned = [PlannedDelivery(target=target) for target in candidates]
        if self.hub is not None:
            grouped = [t for t in candidates if t.params.get("group_areas")]
            self._planned.record(message.id, map(self.roster.group_member, grouped))
        return planned

    sends_in_batches = True

    async def send(self, delivery: OutgoingDelivery) -> SendResult:
        return await send_through_batch(self, delivery)

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
                box, areas = self.roster.register(hub, delivery.target)
            except boxes.BoxRegistryError as exc:
                error = f"target {delivery.target.id}: {exc}"
                results[index] = TargetRejectedError(error)
                continue
            key = self.roster.area_key(areas[0]) if areas else None
            members.append(Member(index, delivery, box, areas, key))
        await self._sender.send(hub, members, results)
        return results

    def _offline_retry(self) -> float | None:
        """When to retry for an offline box: soon, with jitter so reconnects do not stampede."""
        seconds = self.config.offline_retry_seconds
        return None if seconds is None else seconds * random.uniform(0.5, 1.0)

    async def _build(self, delivery: OutgoingDelivery) -> programmes.Built:
        audio = self.context.audio
        return await programmes.build(delivery, self.config, self.library, audio, self.retained)

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
        audio = self.context.audio
        return (await programmes.preview(stand_in, self.config, self.library, audio)).content

    async def cancel(self, delivery: OutgoingDelivery) -> None:
        """Stop the delivery's alert on its box and on the area topics its commands went to."""
        hub = self.hub
        if hub is None:
            return
        box_id = boxes.box_id_of(delivery.target)
        self.retained.end(delivery.message.id)
        self._tracker.stopping(delivery.id)
        await self._sender.stop_areas(hub, delivery)
        await self._send_stops(hub, box_id, [commands.stop(delivery)])

    async def _send_stops(self, hub: SpeakerHub, box_id: str, stops: list[Stop]) -> None:
        """Send ``stops`` to ``box_id``; one that cannot reach it now is sent when it is back
        (:mod:`channels.loudspeaker.stops`)."""
        for stop in stops:
            try:
                await hub.send_command(box_id, stop)
            except SpeakerError as exc:
                log.warning(
                    "channel %s: cannot stop box %s now, will when it is back: %s",
                    self.name,
                    box_id,
                    exc,
                )
                self._unsent_stops.keep(box_id, stop)

    # -- box events --------------------------------------------------------------------

    def _event(self, event: HubEvent) -> None:
        """A box event, as the hub receives it (no queue between them)."""
        try:
            self._on_event(event)
        except Exception:
            log.exception("channel %s: box event %r not handled", self.name, event)
        if isinstance(event, BoxPresence) and event.online:
            self.returning.returned(event.box_id, replayed=event.replayed)
            hub = self.hub
            if hub is not None and (stops := self._unsent_stops.take(event.box_id)):
                task = asyncio.create_task(self._send_stops(hub, event.box_id, stops))
                self._stopping.add(task)
                task.add_done_callback(self._stopping.discard)

    def _on_event(self, event: HubEvent) -> None:
        if isinstance(event, BoxAck):
            self._tracker.on_ack(event)
        else:
            self.views.on_event(event)

    async def resume(self, deliveries: Sequence[OutgoingDelivery]) -> None:
        """Track the play commands sent before a restart again, under the box's own command
        id and the group one of its first area. The boxes repeat their latest ack when they
        reconnect (often before this runs): such acks confirm at once."""
        for delivery in deliveries:
            box_id = boxes.box_id_of(delivery.target)
            try:
                areas = self.roster.group_areas(delivery.target)
            except boxes.BoxRegistryError:
                areas = ()
            cmd_id = commands.command_id("play", delivery)
            if areas:
                cmd_id = group_command_id("play", self.name, delivery, areas[0])
            self._tracker.track(cmd_id, box_id, delivery.id, sent=True)

    async def housekeeping(self) -> None:
        """Clear audio retained on MQTT for alerts now over (also those a server before left)
        and delete published audio not used for the core's audio keep time."""
        await self.retained.sweep()
        audio = self.context.audio
        removed = await self.library.prune(audio.keep_s if audio else _AUDIO_KEEP_S)
        if removed:
            log.info("channel %s: %d old audio files deleted", self.name, removed)

    # -- checks and preview ------------------------------------------------------------

    async def health(self) -> ChannelHealth:
        if self.hub is None:
            return ChannelHealth(ok=False, detail="not running")
        return self.views.health()

    async def probe(self, target: Target) -> ProbeResult:
        if self.hub is None:
            return ProbeResult(ok=False, detail="channel not running")
        return self.views.probe(boxes.box_id_of(target))

    async def preview(self, message: AlertMessage, targets: Sequence[Target]) -> ChannelPreview:
        base = await super().preview(message, targets)
        chosen = commands.broadcast_class(message.alert)
        note = f"plays as {chosen} at priority {self.config.priorities[chosen]}"
        audio = await self.library.preview(self.context.audio, message, targets)
        return replace(
            base, counts={"repeat": self.config.repeat}, notes=(*base.notes, note), audio=audio
        )
