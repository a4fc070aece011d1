"""The running system: store, registry, channels, intake and dispatcher, started and stopped as one.

The web API, the CLI and the tests all drive a :class:`BroadcasterService`; nothing else wires
the parts together.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from broadcaster.auth.tokens import ApiTokenStore
from broadcaster.cancel import cancel_of
from broadcaster.cap import Alert
from broadcaster.cap.problems import IntakePolicy
from broadcaster.cap.serialize import from_json
from broadcaster.channel import Channel, ChannelContext, ChannelHealth, ChannelPreview
from broadcaster.client_limits import TurnedAway
from broadcaster.config import Config
from broadcaster.delivery import Target
from broadcaster.dispatcher import ChannelSlot, Dispatcher
from broadcaster.divisions import DivisionTree
from broadcaster.errors import ApprovalError, ChannelError, StoreError
from broadcaster.faults import ChannelFaults, describe
from broadcaster.federation.fallback import relay_target
from broadcaster.federation.reporter import UpwardReporter
from broadcaster.housekeeping import Housekeeping
from broadcaster.intake import Intake, IntakeResult
from broadcaster.node import check_within
from broadcaster.plugins import PluginFailure, build_channels
from broadcaster.publisher import AudioPublisher
from broadcaster.scheduler.context import SchedulerContext
from broadcaster.scheduler.scheduler import ScheduledOperations
from broadcaster.signatures import SignaturePolicy
from broadcaster.store.alerts import AlertTable
from broadcaster.store.db import open_database
from broadcaster.store.interface import Store
from broadcaster.store.outbox import Outbox
from broadcaster.store.records import ChangeWatcher, ChannelRecords, DeviceLeases
from broadcaster.store.sqlite import SQLiteStore
from broadcaster.store.targets import TargetTable, load_targets_file
from broadcaster.uploads import UploadStore
from broadcaster.upstream.pusher import NeighbourPushers
from broadcaster.upstream.sources import UpstreamSources

log = logging.getLogger(__name__)

DATABASE_NAME = "broadcaster.db"
STOP_TIMEOUT_S = 10.0
"""How long a channel's ``stop`` may take before the server goes on without it."""


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    channels: list[str]
    failures: list[PluginFailure]
    targets: dict[str, int]


class ChannelTargets:
    """The :class:`~broadcaster.channel.TargetDirectory` of one channel: its own rows only."""

    def __init__(self, service: BroadcasterService, channel: str) -> None:
        self.service = service
        self.channel = channel
        self.source = f"channel:{channel}"

    async def register(self, target: Target) -> None:
        if target.channel != self.channel:
            raise StoreError(f"channel {self.channel} cannot register a {target.channel} target")
        await self.service.store.targets.upsert(target, self.source)

    async def unregister(self, target_id: str) -> bool:
        return await self.service.store.targets.remove(target_id, self.source)

    async def get(self, target_id: str) -> Target | None:
        target = await self.service.store.targets.get(target_id)
        return target if target is not None and target.channel == self.channel else None

    async def all(self) -> list[Target]:
        return await self.service.store.targets.for_channel(self.channel)


class ChannelDispatch:
    """The :class:`~broadcaster.channel.DispatchHooks` of one channel."""

    def __init__(self, service: BroadcasterService, channel: str) -> None:
        self.service = service
        self.channel = channel

    async def targets_available(
        self, target_ids: Sequence[str], *, reconnected: bool = True
    ) -> int:
        return await self.service.dispatcher.targets_available(
            self.channel, target_ids, reconnected=reconnected
        )

    async def deliver_directly(self, delivery_id: int, reason: str) -> dict[str, int]:
        return await self.service.deliver_directly(delivery_id, reason)

    async def forward(self, delivery_id: int, channel: str, reason: str) -> int:
        return await self.service.dispatcher.forward(self.channel, delivery_id, channel, reason)


class ChannelAlerts:
    """The :class:`~broadcaster.channel.AlertHooks` of one channel."""

    def __init__(self, service: BroadcasterService, channel: str) -> None:
        self.service = service
        self.channel = channel

    async def submit(
        self, alert: Alert, *, origin: str, hold: bool, channels: Sequence[str]
    ) -> str:
        wanted = list(channels) or [c for c in self.service.channels if c != self.channel]
        result = await self.service.submit(
            alert,
            origin=origin,
            channels=wanted,
            requested_by=f"channel:{self.channel}" if hold else None,
        )
        return result.alert_id

    async def summary(self, alert_id: str) -> dict[str, dict[str, int]]:
        return await self.service.store.deliveries.summary(alert_id)

    async def rejected(self, alert_id: str) -> bool:
        approval = await self.service.store.alerts.approval(alert_id)
        return approval is not None and approval["state"] == "rejected"

    async def status(self, alert_id: str) -> str | None:
        return await self.service.store.alerts.status(alert_id)


class BroadcasterService:
    """Owns every long-lived part of the system for one data directory."""

    def __init__(
        self,
        config: Config,
        *,
        data_dir: Path | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.data_dir = (data_dir or config.server.data_dir).resolve()
        self.clock = clock
        self._listeners: list[Callable[[], None]] = []
        self.signatures = SignaturePolicy(config.cap)
        uploads = UploadStore(self.data_dir / "uploads", self.public_url)
        self.audio = AudioPublisher(self.data_dir / "audio", config.audio, uploads)
        self.divisions = (
            DivisionTree.load(config.registry.divisions) if config.registry.divisions else None
        )
        # Channels are built (not started) here, so their web endpoints can be mounted
        # before the server starts; failures to load are kept and shown, never raised.
        self.built, self.failures = build_channels(config, self._context_for)
        self.channels: dict[str, Channel] = {}
        self.faults = ChannelFaults(clock)
        self.turned_away = TurnedAway()
        """Connections the listener turned away, one address having too many open."""

    def web_apps(self) -> dict[str, web.Application]:
        """The endpoints of every built channel that has some, by channel name.

        A channel whose ``web_app()`` raises is not started: it becomes a plugin failure.
        """
        apps = {}
        for name, channel in list(self.built.items()):
            try:
                sub_app = channel.web_app()
            except Exception as exc:
                log.error("channel %s: web_app() raised", name, exc_info=exc)
                del self.built[name]
                error = f"failed to make its web endpoints: {describe(exc)}"
                self.failures.append(PluginFailure(name, self._type_of(name), error))
                continue
            if sub_app is not None:
                apps[name] = sub_app
        return apps

    def _type_of(self, name: str) -> str:
        return str(self.config.channels.get(name, {}).get("type", ""))

    async def _failed(self, name: str, channel: Channel, error: str) -> None:
        """Record that ``channel`` could not start, and close what it may have opened."""
        self.failures.append(PluginFailure(name, self._type_of(name), error))
        try:
            async with asyncio.timeout(STOP_TIMEOUT_S):
                await channel.stop()
        except Exception:
            log.exception("channel %s failed to stop after a failed start", name)

    async def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        store = self.config.store
        self.database = open_database(
            self.data_dir / DATABASE_NAME,
            store.url.reveal() if store.url else None,
            store.node,
            store.lease_seconds,
            store.limits(),
        )
        self.alerts = AlertTable(self.database)
        self.outbox = Outbox(self.database)
        self.targets = TargetTable(self.database)
        self.store: Store = SQLiteStore(
            self.database,
            alerts=self.alerts,
            outbox=self.outbox,
            targets=self.targets,
            clock=self.clock,
        )
        if self.config.registry.targets is not None:
            registry = load_targets_file(self.config.registry.targets)
            count = await self.store.targets.replace_all(registry)
            log.info("target registry: %d targets from %s", count, self.config.registry.targets)
        for name, channel in self.built.items():
            limit = self.config.channel_base(name).start_timeout_seconds
            try:
                async with asyncio.timeout(limit):
                    await channel.start()
            except TimeoutError:
                log.error("channel %s did not start within %g s", name, limit)
                await self._failed(name, channel, f"did not start within {limit:g} s")
                continue
            except ChannelError as exc:
                log.error("channel %s failed to start: %s", name, exc)
                await self._failed(name, channel, str(exc))
                continue
            except Exception as exc:
                log.error("channel %s failed to start", name, exc_info=exc)
                await self._failed(name, channel, f"failed to start: {describe(exc)}")
                continue
            self.channels[name] = channel
        slots = []
        for name, channel in self.channels.items():
            base = self.config.channel_base(name)
            slots.append(
                ChannelSlot(
                    name=name,
                    channel=channel,
                    concurrency=base.concurrency,
                    rate_per_second=base.rate_per_second,
                    confirm_timeout=base.confirm_timeout_seconds,
                )
            )
        self.intake = Intake(
            self.database,
            self.channels,
            self.config.dispatcher,
            sender_name=self.config.server.sender_name,
            clock=self.clock,
            signatures=self.signatures,
            faults=self.faults,
        )
        self.dispatcher = Dispatcher(
            self.database,
            slots,
            self.config.dispatcher,
            sender_name=self.config.server.sender_name,
            clock=self.clock,
            on_change=self._notify,
            faults=self.faults,
        )
        await self.dispatcher.start()
        self.operations = ScheduledOperations(
            SchedulerContext(
                config=self.config,
                store=self.store,
                channels=self.channels,
                failures=self.failures,
                faults=self.faults,
                divisions=self.divisions,
                submit=self.submit,
                subscribe=self.subscribe,
                clock=self.clock,
            )
        )
        await self.operations.start()
        self.housekeeping = Housekeeping(self.audio, self.channels, faults=self.faults)
        await self.housekeeping.start()
        self.upstream = UpstreamSources(
            self.config,
            database=self.database,
            divisions=self.divisions,
            submit=self.submit,
            clock=self.clock,
        )
        await self.upstream.start()
        self.neighbours = NeighbourPushers(
            self.config.neighbour,
            store=self.store,
            database=self.database,
            divisions=self.divisions,
            clock=self.clock,
        )
        await self.neighbours.start()
        self.subscribe(self.neighbours.wake)
        self.reporter = UpwardReporter(
            self.config.node, self.database, self._confirming, clock=self.clock
        )
        self.subscribe(self.reporter.changed)
        await self.reporter.start()
        self.changes = ChangeWatcher(self.database, self._notify) if self.database.shared else None
        if self.changes is not None:
            await self.changes.start()

    async def stop(self) -> None:
        if self.changes is not None:
            await self.changes.stop()
        await self.reporter.stop()
        await self.upstream.stop()
        await self.neighbours.stop()
        await self.housekeeping.stop()
        await self.operations.stop()
        await self.dispatcher.stop()
        for name, channel in self.channels.items():
            try:
                async with asyncio.timeout(STOP_TIMEOUT_S):
                    await channel.stop()
            except Exception:
                log.exception("channel %s failed to stop cleanly", name)
        await self.dispatcher.close()
        self.database.close()

    def _confirming(self) -> list[str]:
        """The running channels whose accepted deliveries wait for a confirmation."""
        return [name for name, c in self.channels.items() if c.capabilities.confirms]

    def _context_for(self, name: str) -> ChannelContext:
        """The context of channel ``name``; its directory is usable once the service runs."""
        return ChannelContext(
            data_dir=self.data_dir,
            sender_name=self.config.server.sender_name,
            public_url=self.public_url,
            targets=ChannelTargets(self, name),
            divisions=self.divisions,
            audio=self.audio,
            dispatch=ChannelDispatch(self, name),
            alerts=ChannelAlerts(self, name),
            signer=self.signatures.signer,
            records=ChannelRecords(lambda: self.database, name, self.clock),
            # One process owns a SQLite store (the data directory is locked): no leases then,
            # so a restart after a crash opens its devices at once.
            leases=(
                DeviceLeases(lambda: self.database, name, self.clock)
                if self.config.store.url is not None
                else None
            ),
        )

    @property
    def public_url(self) -> str:
        server = self.config.server
        return server.public_url or f"http://{server.host}:{server.port}"

    def subscribe(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener`` whenever delivery state may have changed; returns an unsubscribe."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _notify(self) -> None:
        for listener in list(self._listeners):
            listener()

    async def submit(
        self,
        data: bytes | Mapping[str, Any] | Alert,
        *,
        origin: str,
        channels: Sequence[str] | None = None,
        requested_by: str | None = None,
        policy: IntakePolicy | None = None,
        allow_empty: bool = False,
        notes: Sequence[tuple[str, str]] = (),
        within_division: bool = False,
    ) -> IntakeResult:
        """Accept an alert (raises CapError if invalid) and start dispatching it.

        With ``requested_by`` it waits for a second officer's approval instead. ``policy``
        overrides ``[cap] intake``; ``allow_empty`` accepts an alert that reaches no one.
        ``notes`` (event, detail) go to the new alert's record, never into its document.
        ``within_division``: an alert reaching beyond ``[node] division`` raises
        OutsideDivisionError (what this node's officers and API clients send).
        """
        result = await self.intake.submit(
            data,
            origin=origin,
            channels=channels,
            requested_by=requested_by,
            policy=policy,
            allow_empty=allow_empty,
            notes=notes,
            area_check=self._check_area if within_division else None,
        )
        if result.created:
            await self._started(result)
        return result

    async def deliver_directly(self, delivery_id: int, reason: str) -> dict[str, int]:
        """Deliver a relay delivery's alert on this node's own devices in the county it was
        for (:mod:`broadcaster.federation.fallback`), audited with ``reason``."""
        found = await self.database.run(relay_target, self.database, delivery_id)
        division = found[1].division if found is not None else None
        if found is None or division is None:
            return {}
        alert_id, node = found
        planned = await self.intake.plan_direct(alert_id, division)
        detail = {"node": node.name, "reason": reason, "planned": planned}
        await self.store.audit.append("system", "relay.fallback", alert_id, detail)
        self.dispatcher.wake()
        self._notify()
        return planned

    def _check_area(self, alert: Alert) -> None:
        check_within(alert, self.config.node, self.divisions)

    async def preview(
        self,
        data: bytes | Mapping[str, Any] | Alert,
        *,
        channels: Sequence[str] | None = None,
        policy: IntakePolicy | None = None,
    ) -> dict[str, ChannelPreview]:
        """What each channel would send for the alert (raises CapError if invalid); nothing
        is stored. ``policy`` overrides ``[cap] intake`` as for :meth:`submit`."""
        return await self.intake.preview(data, channels=channels, policy=policy)

    async def _started(self, result: IntakeResult) -> None:
        if result.stopped_alerts:
            await self.dispatcher.stop_alerts(result.in_flight, result.stopped_alerts)
        self.dispatcher.wake()
        self._notify()

    async def approve(self, alert_id: str, *, by: str, reason: str = "") -> IntakeResult:
        """Approve a pending alert (raises ApprovalError if not allowed) and dispatch it.

        The officer who asked for it may approve it only for the severities configured in
        ``[approval] single_officer_severities``, and only with a reason.
        """
        record = await self.store.alerts.get(alert_id)
        severity = record["severity"] if record else None
        allow_self = severity in self.config.approval.single_officer_severities
        await self._refuse_own_token_request(alert_id, by)
        result = await self.intake.approve(alert_id, by=by, reason=reason, allow_self=allow_self)
        await self._started(result)
        return result

    async def reject(self, alert_id: str, *, by: str, reason: str) -> None:
        """Reject a pending alert; it is never sent."""
        await self._refuse_own_token_request(alert_id, by)
        await self.intake.reject(alert_id, by=by, reason=reason)
        self._notify()

    async def _refuse_own_token_request(self, alert_id: str, by: str) -> None:
        """ApprovalError if ``by`` is the officer who issued the API token that asked for the
        alert: through the token, the officer would be their own second party."""
        approval = await self.store.alerts.approval(alert_id)
        requested_by = str(approval["requested_by"]) if approval else ""
        if not requested_by.startswith("api:token:") or requested_by == by:
            return
        tokens = ApiTokenStore(self.database, self.clock)
        if await tokens.officer_behind(requested_by) == by:
            raise ApprovalError(
                "this alert came through an API token you issued; a second officer must decide it"
            )

    async def cancel(
        self,
        alert_id: str,
        *,
        reason: str,
        origin: str,
        public_note: str = "",
        requested_by: str | None = None,
    ) -> IntakeResult:
        """Issue a CAP Cancel for a stored alert (raises StoreError if there is no such alert).

        Its public text names the warning it lifts, with ``public_note`` for residents
        (:mod:`broadcaster.cancel`); ``reason`` is internal, kept on the Cancel's record only.
        With ``requested_by`` the Cancel waits for a second party's approval, like an alert.
        """
        document = await self.store.alerts.document(alert_id)
        record = await self.store.alerts.get(alert_id)
        if document is None or record is None:
            raise StoreError(f"no alert {alert_id}")
        server = self.config.server
        cancel = cancel_of(
            from_json(document),
            sender=server.sender,
            now=datetime.fromtimestamp(self.clock(), UTC).replace(microsecond=0),
            zone=server.zone,
            public_note=public_note,
        )
        return await self.submit(
            cancel,
            origin=origin,
            channels=list(record["channels"]),
            requested_by=requested_by,
            notes=[("reason", reason)],
        )

    async def health(self) -> dict[str, ChannelHealth]:
        result = {}
        for name, channel in self.channels.items():
            try:
                health = await channel.health()
                if not isinstance(health, ChannelHealth):
                    raise TypeError(f"health() returned {type(health).__name__}, not ChannelHealth")
                result[name] = health
            except ChannelError as exc:
                result[name] = ChannelHealth(ok=False, detail=f"health check failed: {exc}")
            except Exception as exc:
                error = self.faults.record(name, "health", exc)
                result[name] = ChannelHealth(ok=False, detail=f"health check failed: {error}")
        return result
