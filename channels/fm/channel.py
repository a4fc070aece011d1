"""The ``fm`` channel: raise an alarm on FM transmitters through their RDS encoders and play
the spoken warning into them.

One registry target per transmitter; its ``address`` names the encoder (a key of
``channels.fm.encoders`` or an encoder URL) and its division and languages come from the
registry. For each delivery the channel

1. works out PS and RT (:mod:`channels.fm.onair`) and renders the FM audio (−23 LUFS, 48 kHz
   WAV, optionally framed by an EAS SAME header): one programme of the target's languages in
   its order under one attention signal; a language nothing can voice is left out and the
   delivery carries a warning naming it (only a transmitter with no language voiced fails);
2. raises TP+TA with PTY 31 (30 for Test and Exercise) and shows PS and RT, each step
   acknowledged by the encoder (EBU SPB 490 over :mod:`drivers.rds`);
3. returns ``accepted`` as soon as the alert is on air. Playback takes as long as the audio
   (about 40 s per language), longer than the core's ``send_timeout_seconds`` allows for
   several languages, so it goes on in the background;
4. plays the audio with the player command, drops TA and restores the station's normal
   state, then confirms the delivery (``progress`` confirmations mark the steps on the way).

Errors before the alert is on air are raised from ``send``: an unreachable or silent encoder
is retryable (the core retries until the alert expires), an unknown transmitter, a refused
command or a text RDS cannot carry is permanent. After it is on air, a failed playback or
restore is a ``failed`` confirmation naming the step.

A Cancel or an Update (``cancel``) kills the player and drops TA at once; the delivery is
then ``confirmed`` with the detail "stopped (Cancel or Update of alert ...)", since the
transmitter did what was asked. One that arrives before the alert is on air keeps it off
the air, and the core records the delivery ``cancelled``. Alerts are serialised per encoder
and a higher-priority alert preempts a lower one (:mod:`channels.fm.transmitter`). Encoders
that a crash or a shutdown left with an alert possibly up are restored when the channel
starts again (:mod:`channels.fm.restore`), and the alerts cut off that way air again
(``resume``). ``simulate = true`` (demos) serves transmitters
without an encoder by in-process simulators and writes the audio in real time to
``<data dir>/fm-<channel>/played/``. The preview renders each transmitter's programme as
``send`` does and hands it to the console (``ChannelPreview.audio``); nothing goes on air.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from pydantic import ValidationError

from audio import FM_PROFILE, AudioError, ExportFormat, Render
from broadcaster.channel import (
    AlertMessage,
    Channel,
    ChannelCapabilities,
    ChannelContext,
    ChannelHealth,
    ChannelPreview,
    Confirmation,
    ConfirmationOutcome,
    OutgoingDelivery,
    PreviewAudio,
    ProbeResult,
    SendOutcome,
    SendResult,
)
from broadcaster.config import ChannelConfig
from broadcaster.delivery import Target
from broadcaster.devicelease import LeasedDevice
from broadcaster.errors import (
    ChannelError,
    RetryableError,
    TargetRejectedError,
    UnsupportedError,
)
from broadcaster.publisher import preview_audio, unspoken_warnings
from channels.fm.config import FmChannelConfig, TransmitterConfig
from channels.fm.onair import on_air_text, priority, same_header
from channels.fm.player import AudioPlayer
from channels.fm.restore import OnAirJournal
from channels.fm.transmitter import LinkSettings, TransmitterLink
from drivers.rds import (
    EncoderState,
    RdsEncoderConfig,
    RdsEncoderSimulator,
    RdsError,
    make_encoder_client,
)
from drivers.rds.charset import RT_MAX_LENGTH

log = logging.getLogger(__name__)

#: Time allowed beyond the audio for raising, showing and restoring, in the "busy" estimate.
_SEQUENCE_OVERHEAD_S = 5.0
#: The player of ``simulate = true`` without a player: a real-time copy into a file.
_FILE_PLAYER = ("ffmpeg", "-nostdin", "-v", "error", "-re", "-i", "{file}", "-c", "copy", "-y")
#: Deliveries remembered as cancelled, so one still rendering is never put on air.
_CANCELLED_KEPT = 4096


async def _nothing() -> None:
    """An encoder's link opens when an alert first needs it."""


class FmChannel(Channel[FmChannelConfig]):
    """FM transmitters with RDS encoders; see the module docstring."""

    capabilities = ChannelCapabilities(
        confirms=True,
        can_stop=True,
        max_text_chars=RT_MAX_LENGTH,
        audio_formats=("wav",),
        description="FM transmitters: RDS alarm (TA/TP, PTY 31/30, PS, RT) and spoken warning",
    )
    config_model: ClassVar[type[ChannelConfig]] = FmChannelConfig
    target_unit: ClassVar[str] = "transmitters"

    def __init__(self, name: str, config: FmChannelConfig, context: ChannelContext) -> None:
        super().__init__(name, config, context)
        self._links: dict[str, TransmitterLink] = {}
        self._leased: dict[str, LeasedDevice] = {}
        self._simulators: dict[str, RdsEncoderSimulator] = {}
        directory = context.data_dir / f"fm-{name}"
        # Simulated encoders live only as long as the process: nothing to restore later.
        self._journal = None if self.config.simulate else OnAirJournal(directory / "on-air")
        self._cancelled: deque[int] = deque(maxlen=_CANCELLED_KEPT)
        self._played_dir = _played_dir(self.config, directory)
        self.player = AudioPlayer(
            _player(self.config, self._played_dir),
            timeout_extra_s=self.config.player_timeout_seconds,
        )

    @classmethod
    def preflight(cls, name: str, config: ChannelConfig, data_dir: Path) -> list[str]:
        """The player program, looked up as ``start`` looks it up."""
        assert isinstance(config, FmChannelConfig)
        played = _played_dir(config, data_dir / f"fm-{name}")
        try:
            AudioPlayer(_player(config, played)).check()
        except ChannelError as exc:
            return [f"player: {exc}"]
        return []

    async def start(self) -> None:
        if self.context.audio is None:
            raise ChannelError("the FM channel needs the audio publisher to render warnings")
        self.player.check()
        if self._played_dir is not None:
            await asyncio.to_thread(self._played_dir.mkdir, parents=True, exist_ok=True)
        await self._recover()

    async def stop(self) -> None:
        leased, self._leased = list(self._leased.values()), {}
        await asyncio.gather(*(device.stop() for device in leased))
        links = list(self._links.values())
        await asyncio.gather(*(link.close() for link in links))
        simulators, self._simulators = list(self._simulators.values()), {}
        for simulator in simulators:
            await simulator.stop()

    # -- transmitters ------------------------------------------------------------------

    async def _link(self, target: Target) -> TransmitterLink:
        key = target.address or target.id
        try:
            transmitter = self.config.transmitter(key)
        except ValidationError as error:
            problem = error.errors()[0]["msg"]
            raise TargetRejectedError(f"target {target.id}: {problem}") from None
        if transmitter is None and self.config.simulate:
            transmitter = await self._simulated(key)
        if transmitter is None:
            raise TargetRejectedError(
                f"target {target.id}: transmitter {key!r} has no encoder; add it to"
                f" channels.{self.name}.encoders or give an encoder URL as its address"
            )
        try:
            return self._link_for(key, transmitter.url, transmitter.state())
        except RdsError as error:
            raise TargetRejectedError(f"target {target.id}: {error}") from error

    def _link_for(self, key: str, url: str, normal: EncoderState) -> TransmitterLink:
        """The one link to the encoder at ``url``, the URL as configured (query included),
        which the on-air journal records too: a restart restores through the same link."""
        link = self._links.get(url)
        if link is None:
            config = RdsEncoderConfig.from_url(url, normal_state=normal)
            settings = LinkSettings(
                reconnect_attempts=self.config.reconnect_attempts,
                reconnect_delay=self.config.reconnect_delay_seconds,
                restore_retry=self.config.restore_retry_seconds,
                busy_retry=self.config.busy_retry_seconds,
                preempt=self.config.preempt,
            )
            client = make_encoder_client(config)
            link = TransmitterLink(key, url, client, settings, self.confirm, self._journal)
            self._links[url] = link
        return link

    async def _simulated(self, key: str) -> TransmitterConfig:
        """An in-process encoder simulator for transmitter ``key`` (``simulate = true``)."""
        simulator = self._simulators.get(key)
        if simulator is None:
            simulator = self._simulators[key] = RdsEncoderSimulator()
        url = await simulator.start_tcp()
        return TransmitterConfig.model_validate(self.config.station.model_dump() | {"url": url})

    def simulators(self) -> dict[str, RdsEncoderSimulator]:
        """The in-process encoders of a ``simulate = true`` instance, by transmitter."""
        return dict(self._simulators)

    async def _recover(self) -> None:
        """Restore encoders an earlier run left with an alert possibly up."""
        if self._journal is None:
            return
        for entry in await self._journal.entries():
            try:
                link = self._link_for(entry.transmitter, entry.url, entry.normal)
            except RdsError as error:
                log.error("FM on-air entry for %s unusable: %s", entry.url, error)
                continue
            log.warning(
                "transmitter %s may still carry alert %s from an earlier run: restoring",
                entry.transmitter,
                entry.alert,
            )
            link.recover(entry.normal)

    # -- sending -----------------------------------------------------------------------

    async def _hold(self, link: TransmitterLink) -> None:
        """Use the encoder only under its lease: one node at a time keeps a link to it."""
        url = link.client.config.url
        device = self._leased.get(url)
        if device is None:
            device = self._leased[url] = LeasedDevice(
                self.context.leases,
                f"encoder:{url}",
                open_device=_nothing,
                close_device=link.close,
                what=f"transmitter {link.name}'s encoder",
            )
            await device.start()
        await device.check()

    async def send(self, delivery: OutgoingDelivery) -> SendResult:
        link = await self._link(delivery.target)
        await self._hold(link)
        text = on_air_text(delivery.message, delivery.target, self.config)
        render = await self._render(delivery.message, delivery.target)
        if delivery.id in self._cancelled:
            raise RetryableError(f"delivery {delivery.id} was stopped by a Cancel before airing")
        expected = render.duration_s + _SEQUENCE_OVERHEAD_S

        async def play() -> None:
            await self.player.play(
                render.files[ExportFormat.WAV],
                render.duration_s,
                transmitter=delivery.target.id,
                delivery=delivery.id,
            )

        started = await link.air(
            delivery,
            text.content,
            play,
            priority=priority(delivery.message),
            expected_s=expected,
            wanted=lambda: delivery.id not in self._cancelled,
        )
        content = text.content
        detail = (
            f"on air on {link.name}: PTY {content.pty}, PS {content.ps!r}, RT {content.rt!r}"
            f" from the {text.source}; {'+'.join(render.languages)} audio,"
            f" {render.duration_s:.0f} s"
        )
        if not started:
            detail = f"already on air on {link.name}"
        return SendResult(
            SendOutcome.ACCEPTED,
            provider_ref=link.client.config.url,
            detail=detail,
            content=text.to_json(),
            warnings=(*text.warnings, *unspoken_warnings(render)),
        )

    async def _render(self, message: AlertMessage, target: Target) -> Render:
        """The target's programme: every language it serves under one attention signal (and
        one SAME frame); a language nothing can voice is left out with a warning."""
        audio = self.context.audio
        if audio is None:
            raise UnsupportedError("the FM channel has no audio publisher")
        header = same_header(message, target, self.config)
        try:
            render = await audio.render_programme(message, FM_PROFILE, target.languages, header)
        except AudioError as error:
            if isinstance(error, ValueError):
                raise UnsupportedError(f"FM audio for {target.id}: {error}") from error
            message_text = f"FM audio for {target.id} could not be rendered: {error}"
            raise RetryableError(message_text) from error
        if ExportFormat.WAV not in render.files:
            raise UnsupportedError(f"FM audio for {target.id}: no WAV file was rendered")
        return render

    async def cancel(self, delivery: OutgoingDelivery) -> None:
        """Stop the alert of ``delivery``: player killed, TA dropped, normal state back."""
        self._cancelled.append(delivery.id)
        reason = f"Cancel or Update of alert {delivery.message.alert.identifier}"
        for link in list(self._links.values()):
            if await link.stop(delivery.id, reason, as_asked=True):
                return

    async def resume(self, deliveries: Sequence[OutgoingDelivery]) -> None:
        """Alerts that were on air when the server stopped were cut off (the encoders are put
        back to normal at start): each is queued to air again, until it expires."""
        for delivery in deliveries:
            self.confirm(
                Confirmation(
                    delivery.id,
                    ConfirmationOutcome.RETRY,
                    "cut off on air by a server restart; it airs again",
                    retry_after=0.0,
                )
            )

    # -- checks and preview ------------------------------------------------------------

    async def health(self) -> ChannelHealth:
        devices = {link.name: link.status() for link in self._links.values()}
        failing = [name for name, status in devices.items() if status["last_error"]]
        detail = f"{len(failing)} transmitter(s) failing: {', '.join(failing)}" if failing else "ok"
        return ChannelHealth(ok=not failing, detail=detail, devices=devices)

    async def probe(self, target: Target) -> ProbeResult:
        try:
            detail = await (await self._link(target)).probe()
        except ChannelError as error:
            return ProbeResult(ok=False, detail=str(error))
        return ProbeResult(ok=True, detail=detail)

    async def content(self, message: AlertMessage, target: Target, part: int) -> dict[str, Any]:
        """PS, RT and PTY on ``target``'s transmitter (what ``send`` puts on air)."""
        return on_air_text(message, target, self.config).to_json()

    async def preview(self, message: AlertMessage, targets: Sequence[Target]) -> ChannelPreview:
        base = await super().preview(message, targets)
        languages = tuple(t.language for t in message.rendition.texts)
        samples = list(targets) or [
            Target(id="preview", channel=self.name, name="preview", languages=languages)
        ]
        texts = [on_air_text(message, t, self.config) for t in samples]
        notes = {n for text in texts for n in (*text.warnings, *text.notes)}
        audio = await self._preview_audio(message, samples, counted=bool(targets))
        return replace(base, notes=(*base.notes, *sorted(notes)), audio=audio)

    async def _preview_audio(
        self, message: AlertMessage, samples: Sequence[Target], *, counted: bool
    ) -> tuple[PreviewAudio, ...]:
        """Each programme the transmitters of ``samples`` would air, rendered as ``send``
        renders it (nothing is played); one that cannot be rendered is left out."""
        found: dict[str, PreviewAudio] = {}
        for target in samples:
            try:
                render = await self._render(message, target)
            except ChannelError:
                continue
            sha256 = render.sha256[ExportFormat.WAV]
            known = found.get(sha256)
            total = (known.targets if known else 0) + int(counted)
            found[sha256] = preview_audio(render, ExportFormat.WAV, total)
        return tuple(found.values())


def _played_dir(settings: FmChannelConfig, directory: Path) -> Path | None:
    """Where ``simulate = true`` without a player writes the audio; None: it is played."""
    if settings.simulate and "player" not in settings.model_fields_set:
        return directory / "played"
    return None


def _player(settings: FmChannelConfig, played_dir: Path | None) -> list[str]:
    if played_dir is None:
        return list(settings.player)
    return [*_FILE_PLAYER, str(played_dir / "{delivery}-{transmitter}.wav")]
