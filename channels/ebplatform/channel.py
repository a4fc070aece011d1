"""The ``ebplatform`` channel: EBMs to China's emergency-broadcast platforms (应急广播平台).

Targets are (peer platform, division) pairs: each ``[[channels.NAME.peers]]`` entry names a
lower platform, its EBRID, its URL and the divisions it covers, and the channel enrols one
target per division (``NAME:peer:division``); registry targets whose ``address`` names a peer
work the same. One delivery is one EBM (``channels.ebplatform.mapping``), signed and POSTed
(``drivers.ebd``); a positive EBDResponse makes it ``accepted``, and the platform's
EBMStateResponse, pushed to our inbound endpoint (``channels.ebplatform.inbound``) or answered
to our EBMStateRequest polls, confirms or fails it (``channels.ebplatform.states``). A Cancel
of the CAP alert goes out as an EBM of MsgType 2 naming the EBM it cancels. Result codes →
delivery states: see the README.

The state polls and the state reports to the upper platform run on one node at a time: the
node holding the channel's ``state-loops`` lease (:class:`~broadcaster.devicelease.LeasedDevice`),
so that several nodes sharing the store neither ask a platform nor report up the same thing
twice; when that node stops or dies, another takes the lease and the loops over.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Hashable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import aiohttp
from aiohttp import web

from audio import LOUDSPEAKER_PROFILE, AudioError, ExportFormat
from broadcaster.cap import MsgType
from broadcaster.channel import (
    AlertMessage,
    Channel,
    ChannelCapabilities,
    ChannelContext,
    ChannelHealth,
    OutgoingDelivery,
    PlannedDelivery,
    SendOutcome,
    SendResult,
    TargetDirectory,
)
from broadcaster.config import ChannelConfig
from broadcaster.delivery import Target
from broadcaster.devicelease import LeasedDevice
from broadcaster.divisions import normalize_code
from broadcaster.errors import (
    ChannelError,
    DeviceTimeoutError,
    DeviceUnavailableError,
    RetryableError,
    TargetRejectedError,
    UnsupportedError,
)
from channels.ebplatform.config import EbPeer, EbPlatformChannelConfig
from channels.ebplatform.inbound import heartbeats, inbound_app, report_states
from channels.ebplatform.ledger import Ledger, SentEbm
from channels.ebplatform.mapping import EbmChoices, build_ebm, ebm_fields
from channels.ebplatform.states import poll_states
from drivers.ebd import (
    Auxiliary,
    AuxiliaryType,
    BrdStateCode,
    Ebd,
    EbdConfigError,
    EbdFormatError,
    EbdLinkError,
    EbdRefusedError,
    EbdSignatureError,
    EbdSigningConfig,
    EbdTimeoutError,
    Incoming,
    Package,
    PostTimeouts,
    SignatureForm,
    Signer,
    Verifier,
    build_package,
    make_ebdid,
    make_ebmid,
    post_package,
    result_of,
)
from drivers.ebd.xmlsafe import beijing_now

log = logging.getLogger(__name__)

EBM_AUDIO = LOUDSPEAKER_PROFILE.with_formats(ExportFormat.MP3)
"""Platforms play the attached MP3 on loudspeakers: the loudspeaker loudness, MP3 only."""


class EbPlatformChannel(Channel[EbPlatformChannelConfig]):
    capabilities = ChannelCapabilities(
        confirms=True,
        enrols_targets=True,
        description="EBM packages to emergency-broadcast platforms (GD/J 083-2018)",
    )
    target_unit: ClassVar[str] = "platforms"
    config_model: ClassVar[type[ChannelConfig]] = EbPlatformChannelConfig

    def __init__(self, name: str, config: EbPlatformChannelConfig, context: ChannelContext) -> None:
        super().__init__(name, config, context)
        self.peers = {peer.name: peer for peer in config.peers}
        self.choices = EbmChoices(
            sender_name=config.sender_name or context.sender_name,
            sender_code=config.local_ebrid,
            default_event_type=config.default_event_type,
            exercise_msg_type=config.exercise_msg_type,
            test_msg_type=config.test_msg_type,
        )
        self.local_url = config.local_url or f"{context.public_url}/channels/{name}/ebd"
        self.timeouts = PostTimeouts(config.connect_timeout_seconds, config.timeout_seconds)
        self.form = SignatureForm(config.signature_form)
        self.ready = False
        self._last_error: dict[str, str] = {}
        self.upper_error = ""
        self._tasks: set[asyncio.Task[None]] = set()
        self._loops: set[asyncio.Task[None]] = set()
        self.state_loops = LeasedDevice(
            context.leases,
            "state-loops",
            open_device=self._start_state_loops,
            close_device=self._stop_state_loops,
            what=f"the state polls and reports of channel {name}",
        )

    def signing(self) -> EbdSigningConfig:
        """The driver's signing settings from this channel's configuration."""
        config = self.config
        return EbdSigningConfig(
            key_file=self.context.data_dir / config.signing_key_file,
            cert_id=config.cert_id,
            trust=tuple(self.context.data_dir / path for path in config.trust),
            user_id=config.user_id,
            counter_signed=config.counter_signed,
            form=self.form,
            verify_heartbeat=config.verify_heartbeat,
        )

    @classmethod
    def preflight(cls, name: str, config: ChannelConfig, data_dir: Path) -> list[str]:
        assert isinstance(config, EbPlatformChannelConfig)
        channel = cls(
            name, config, ChannelContext(data_dir=data_dir, sender_name="", public_url="")
        )
        try:
            signing = channel.signing()
            signing.signer()
            signing.verifier()
        except EbdConfigError as error:
            return [f"signing_key_file/trust: {error}"]
        return []

    def _warn_unbound(self) -> None:
        """Say which senders' packages will be refused for want of their ``cert_id``."""
        unbound = [s.ebrid for s in self.config.senders() if s.cert_id is None]
        if self.trusted > 1 and unbound:
            log.error(
                "ebplatform %s: packages from %s will be refused: give each its cert_id, the"
                " trust list has %d certificates and any could sign as it",
                self.name,
                ", ".join(unbound),
                self.trusted,
            )

    def _warn_no_upper_url(self) -> None:
        """Say that nothing is pushed to an upper platform without ``url``: the ``SRC/URL`` of
        its packages is never used, so it gets state only by asking (EBMStateRequest)."""
        upper = self.config.upper
        if upper is not None and not upper.url:
            log.warning(
                "ebplatform %s: upper.url is not set: no state reports or heartbeats are sent"
                " to the upper platform %s; it gets the state of its EBMs only by asking"
                " (EBMStateRequest, answered in the reply)",
                self.name,
                upper.ebrid,
            )

    async def start(self) -> None:
        try:
            signing = self.signing()
            self.signer: Signer = await asyncio.to_thread(signing.signer)
            verifier = await asyncio.to_thread(signing.verifier)
        except EbdConfigError as error:
            raise ChannelError(str(error)) from error
        self.verifier: Verifier = verifier
        self.trusted = verifier.trusted
        self._warn_unbound()
        self._warn_no_upper_url()
        if self.context.records is None:
            raise ChannelError(f"channel {self.name} needs the store's channel records")
        self.ledger = Ledger(self.context.records)
        earlier = self.context.data_dir / f"ebplatform-{self.name}" / "ledger.db"
        try:
            await self.ledger.adopt(earlier)
        except (sqlite3.Error, OSError) as error:
            raise ChannelError(f"the earlier ledger {earlier} cannot be taken: {error}") from error
        self.session = aiohttp.ClientSession()
        if self.context.targets is not None:
            await self._enrol(self.context.targets)
        await self.state_loops.start()
        upper = self.config.upper
        if upper is not None and upper.url and upper.heartbeat_seconds > 0:
            self.spawn(heartbeats(self, upper.url, upper.heartbeat_seconds))
        self.ready = True

    async def stop(self) -> None:
        self.ready = False
        await self.state_loops.stop()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if hasattr(self, "session"):
            await self.session.close()

    async def _start_state_loops(self) -> None:
        """Poll the platforms for state and report state up (on the lease's node only)."""
        if self.config.state_poll_seconds > 0:
            self.spawn(poll_states(self), self._loops)
        upper = self.config.upper
        if upper is not None and upper.url and self.context.alerts is not None:
            self.spawn(report_states(self, upper.url), self._loops)

    async def _stop_state_loops(self) -> None:
        loops = list(self._loops)
        for task in loops:
            task.cancel()
        await asyncio.gather(*loops, return_exceptions=True)

    def spawn(self, coroutine: Any, tasks: set[asyncio.Task[None]] | None = None) -> None:
        """Run ``coroutine`` until ``stop`` (kept in ``tasks``, by default the channel's)."""
        kept = self._tasks if tasks is None else tasks
        task = asyncio.get_running_loop().create_task(coroutine)
        kept.add(task)
        task.add_done_callback(kept.discard)

    def enrolled_targets(self) -> list[Target]:
        """One target per configured peer and division."""
        return [
            Target(
                id=f"{self.name}:{peer.name}:{area}",
                channel=self.name,
                name=f"{peer.name} {area}",
                address=peer.name,
                division=normalize_code(area),
            )
            for peer in self.config.peers
            for area in peer.areas
        ]

    async def _enrol(self, directory: TargetDirectory) -> None:
        """Register the configured (peer, division) targets; drop those no longer configured."""
        wanted = self.enrolled_targets()
        for target in wanted:
            await directory.register(target)
        keep = {target.id for target in wanted}
        for target in await directory.all():
            if target.id.startswith(f"{self.name}:") and target.id not in keep:
                await directory.unregister(target.id)

    def web_app(self) -> web.Application:
        return inbound_app(self)

    # --- sending -------------------------------------------------------------------------

    def peer_of(self, target: Target) -> EbPeer:
        peer = self.peers.get(target.address)
        if peer is None:
            raise TargetRejectedError(
                f"target {target.id}: {target.address!r} is no configured peer"
            )
        if not target.division:
            raise TargetRejectedError(f"target {target.id} has no division code")
        return peer

    async def content(self, message: AlertMessage, target: Target, part: int) -> dict[str, Any]:
        peer = self.peer_of(target)
        ebm = build_ebm(message, target, self.choices, ebmid="", send_time=beijing_now())
        audio = "mp3" if self.config.audio else None
        return {"peer": peer.name, "ebrid": peer.ebrid, "ebm": ebm_fields(ebm), "audio": audio}

    async def _audio(self, message: AlertMessage, target: Target) -> dict[str, bytes]:
        """The spoken warning as one ``EBDR_<digest>.mp3`` resource (none unless ``audio``)."""
        if not self.config.audio:
            return {}
        if self.context.audio is None:
            raise UnsupportedError("audio is configured but there is no audio publisher")
        try:
            render = await self.context.audio.render_programme(message, EBM_AUDIO, target.languages)
        except AudioError as error:
            if isinstance(error, ValueError):
                raise UnsupportedError(f"audio for {target.id}: {error}") from error
            raise RetryableError(f"audio for {target.id} could not be rendered: {error}") from error
        data = await asyncio.to_thread(render.files[ExportFormat.MP3].read_bytes)
        return {f"EBDR_{render.sha256[ExportFormat.MP3][:16]}.mp3": data}

    def count_targets(self, planned: Sequence[PlannedDelivery]) -> int:
        """Platforms reached: a peer with several divisions counts once."""
        return len({p.target.address for p in planned})

    def variant(self, target: Target, part: int) -> Hashable:
        """Each platform and division gets its own EBM (peer, AreaCode)."""
        return (target.address, target.division, target.languages)

    async def next_ebdid(self) -> str:
        day = beijing_now().strftime("%Y%m%d")
        count = await self.ledger.next_value(f"ebdid:{day}")
        return make_ebdid(self.config.local_ebrid, int(f"{day}{count:08d}"))

    async def _next_ebmid(self) -> str:
        day = beijing_now().strftime("%Y%m%d")
        count = await self.ledger.next_value(f"ebmid:{day}")
        return make_ebmid(self.config.local_ebrid, day, count, self.config.ebmid_width)

    async def _related(self, message: AlertMessage, target: Target) -> str | None:
        for reference in message.alert.references:
            sent = await self.ledger.sent_for_alert(str(reference), target.id)
            if sent is not None:
                return sent.ebmid
        return None

    async def send(self, delivery: OutgoingDelivery) -> SendResult:
        message, target = delivery.message, delivery.target
        peer = self.peer_of(target)
        content = await self.content(message, target, delivery.part)
        related = await self._related(message, target)
        is_cancel = message.alert.msg_type is MsgType.CANCEL
        if is_cancel and related is None:
            detail = "no EBM went to this platform for the cancelled alert: nothing to cancel"
            return SendResult(SendOutcome.CONFIRMED, detail=detail, content=content)
        existing = await self.ledger.sent_for_key(delivery.idempotency_key)
        ebmid = existing.ebmid if existing else await self._next_ebmid()
        alert_key = str(message.alert.reference)
        state = existing.state if existing else None
        sent = SentEbm(
            delivery.idempotency_key,
            ebmid,
            delivery.id,
            alert_key,
            target.id,
            peer.name,
            state,
            delivery.expires_at,
        )
        await self.ledger.record_sent(sent)
        now = beijing_now()
        ebm = build_ebm(
            message, target, self.choices, ebmid=ebmid, send_time=now, related_ebmid=related
        )
        resources = await self._audio(message, target)
        auxiliaries = [Auxiliary(AuxiliaryType.MP3, n, len(d)) for n, d in resources.items()]
        ebm = replace(ebm, auxiliaries=tuple(auxiliaries))
        ebdid = await self.next_ebdid()
        await self.ledger.record_package(ebdid, ebmid)
        ebd = Ebd(ebdid, self.config.local_ebrid, now, ebm, peer.ebrid, self.local_url)
        package = await asyncio.to_thread(build_package, ebd, self.signer, resources, self.form)
        reply = await self.post(peer, package)
        try:
            result_of(reply.ebd, ebdid)
        except EbdRefusedError as error:
            self._last_error[peer.name] = str(error)
            if error.retryable:  # 0 "received, not processed", 5 "other error"
                raise RetryableError(f"{peer.name} did not take EBM {ebmid}: {error}") from error
            raise TargetRejectedError(f"{peer.name} refused EBM {ebmid}: {error}") from error
        except EbdFormatError as error:
            raise RetryableError(f"{peer.name} answered with something else: {error}") from error
        self._last_error.pop(peer.name, None)
        if is_cancel:
            await self.ledger.set_state(ebmid, int(BrdStateCode.SUCCEEDED))
            return SendResult(SendOutcome.CONFIRMED, ebmid, f"cancels EBM {related}", content)
        return SendResult(
            SendOutcome.ACCEPTED, ebmid, f"EBM {ebmid} accepted by {peer.name}", content
        )

    async def post_url(self, url: str, package: Package) -> None:
        """POST a package we push on our own (a state report); ``EbdError`` unless taken."""
        reply = await post_package(self.session, url, package, self.verifier, self.timeouts)
        result_of(reply.ebd, package.ebdid)

    async def post(self, peer: EbPeer, package: Package) -> Incoming:
        """POST a package to ``peer``; link trouble is retryable, a refused URL permanent."""
        try:
            return await post_package(self.session, peer.url, package, self.verifier, self.timeouts)
        except EbdTimeoutError as error:
            self._last_error[peer.name] = str(error)
            raise DeviceTimeoutError(str(error)) from error
        except EbdLinkError as error:
            self._last_error[peer.name] = str(error)
            raise DeviceUnavailableError(str(error)) from error
        except EbdConfigError as error:
            self._last_error[peer.name] = str(error)
            raise TargetRejectedError(str(error)) from error
        except (EbdSignatureError, EbdFormatError) as error:
            self._last_error[peer.name] = f"unusable reply: {error}"
            raise RetryableError(f"{peer.name}: unusable reply: {error}") from error

    async def resume(self, deliveries: Sequence[OutgoingDelivery]) -> None:
        """Accepted deliveries from before a restart: their EBMs are in the ledger; only the
        delivery ids may have to be refreshed."""
        for delivery in deliveries:
            sent = await self.ledger.sent_for_key(delivery.idempotency_key)
            if sent is not None and sent.delivery_id != delivery.id:
                await self.ledger.record_sent(replace(sent, delivery_id=delivery.id))

    async def health(self) -> ChannelHealth:
        """Started with its keys; each peer's and the upper platform's last exchange is shown
        in ``devices`` (a peer's failures are also on its deliveries)."""
        if not self.ready:
            return ChannelHealth(ok=False, detail="not started")
        devices: dict[str, Any] = {
            name: {"ok": name not in self._last_error, "detail": self._last_error.get(name, "")}
            for name in self.peers
        }
        failing = sorted(self._last_error)
        if self.config.upper is not None:
            devices["upper"] = {"ok": not self.upper_error, "detail": self.upper_error}
            if self.upper_error:
                failing.append("upper")
        detail = f"{len(self.peers)} peers"
        if failing:
            detail += f"; last exchange failed: {', '.join(failing)}"
        return ChannelHealth(ok=True, detail=detail, devices=devices)
