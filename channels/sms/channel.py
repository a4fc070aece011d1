"""The ``sms`` channel: warnings as SMS to subscriber groups through a pool of GSM modems.

- ``plan``: one delivery per (group, number, language): each of the group's languages the
  alert has gets its own SMS (a group of Chinese and Mongolian speakers gets both; an alert in
  none of them, its first language). ``part`` is the number's place in the group's ``address``
  plus ``LANGUAGE_STRIDE`` times the language's place in the group's languages the alert has.
  A number already planned in an earlier group of the same alert, in the same language, is not
  planned twice. An empty group still gets one delivery, which fails with a clear error, so it
  shows on the delivery board instead of vanishing. Planning, group resolution and rendering
  are ``channels.smstext``, shared with the ``gateway-sms`` channel.
- ``send``: renders the SMS in the delivery's language and hands it to
  ``drivers.gsm.GsmModemPool``: the least-loaded ready modem takes it, a dead modem's message
  moves to the others, transient errors are retried there. Driver errors are mapped onto the
  core's tree: invalid number → TargetRejectedError, too long → UnsupportedError, other
  permanent → PermanentError, timeout → DeviceTimeoutError, no modem or port gone →
  DeviceUnavailableError, other transient → RetryableError (the core retries with backoff).
- With ``status_reports`` on, each segment's report is tracked (``channels.sms.tracking``) and
  the delivery is confirmed when every segment is delivered. Off, acceptance by the network is
  the final state and this instance's ``capabilities.confirms`` is False.
- Each segment the network accepts is recorded in the channel's records in the store
  (``channels.sms.submissions``) before the next is sent, and each report before the modem
  deletes it. A delivery sent again after a restart is answered from that record and not
  transmitted twice; a message cut between two segments is completed; reports arriving after a
  restart still confirm, and outcomes the core missed are settled at start (``resume``); one
  without a final report when the core's confirmation timeout passes is sent afresh
  (``channels.sms.sending``). A record that cannot be opened fails ``start``.
- ``simulate = true`` starts in-process AT-modem simulators on ptys (demo and bench only).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Hashable, Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

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
)
from broadcaster.config import ChannelConfig
from broadcaster.delivery import Target
from broadcaster.devicelease import LeasedDevice
from broadcaster.errors import (
    ChannelError,
    DeviceTimeoutError,
    DeviceUnavailableError,
    PermanentError,
    RetryableError,
    TargetRejectedError,
    UnsupportedError,
)
from broadcaster.intake import priority_of
from channels.sms.config import SmsChannelConfig
from channels.sms.groups import SmsImportError, import_groups, read_ledger, write_ledger
from channels.sms.sending import NO_REPORTS_NOTE, SmsSender
from channels.sms.submissions import SubmissionStore
from channels.smstext import (
    LANGUAGE_STRIDE,
    GroupEntry,
    SmsRenderer,
    SmsText,
    count_numbers,
    plan_numbers,
    probe_group,
    recipient,
)
from drivers.gsm import (
    GsmError,
    GsmInvalidNumberError,
    GsmMessageTooLongError,
    GsmModemPool,
    GsmNoModemError,
    GsmPermanentError,
    GsmPortError,
    GsmTimeoutError,
    ModemState,
)
from drivers.gsm.simulator import AtModemSimulator, ModemSimulatorConfig
from drivers.gsm.simulator_network import SimulatedNetwork

log = logging.getLogger(__name__)

MIN_VALIDITY = timedelta(minutes=5)


def channel_error(exc: GsmError, number: str) -> ChannelError:
    """The core's error for a driver error (see the module docstring)."""
    message = f"SMS to {number}: {exc}"
    if isinstance(exc, GsmInvalidNumberError):
        return TargetRejectedError(message)
    if isinstance(exc, GsmMessageTooLongError):
        return UnsupportedError(message)
    if isinstance(exc, GsmPermanentError):
        return PermanentError(message)
    if isinstance(exc, GsmTimeoutError):
        return DeviceTimeoutError(message)
    if isinstance(exc, GsmNoModemError | GsmPortError):
        return DeviceUnavailableError(message)
    return RetryableError(message)


class SmsChannel(Channel[SmsChannelConfig]):
    capabilities = ChannelCapabilities(
        confirms=True,
        description="SMS through a pool of GSM modems, confirmed per segment by status reports",
    )
    config_model: ClassVar[type[ChannelConfig]] = SmsChannelConfig
    target_unit: ClassVar[str] = "recipients"

    def __init__(self, name: str, config: SmsChannelConfig, context: ChannelContext) -> None:
        super().__init__(name, config, context)
        if not self.config.status_reports:
            # Without status reports this instance cannot confirm: its own capabilities.
            self.capabilities = ChannelCapabilities(
                confirms=False, description=f"SMS through GSM modems; {NO_REPORTS_NOTE}"
            )
        self._pool: GsmModemPool | None = None
        self._started = False
        self._device = LeasedDevice(
            context.leases,
            "modem-pool",
            open_device=self._start_pool,
            close_device=self._stop_pool,
            what=f"the modem pool of channel {name}",
        )
        self._simulators: list[AtModemSimulator] = []
        self._network: SimulatedNetwork | None = None
        store = SubmissionStore(context.records, name)
        self.sender = SmsSender(store, self.confirm, reporting=self.config.status_reports)
        self._import_notes: tuple[str, ...] = ()
        self.renderer = SmsRenderer(self.config, lambda: self.context.sender_name)

    def sends_elsewhere(self) -> str | None:
        """The node holding the modem pool, when another node does: it sends every SMS."""
        return self._device.elsewhere

    @property
    def simulators(self) -> Sequence[AtModemSimulator]:
        """The in-process simulated modems of a ``simulate = true`` instance."""
        return tuple(self._simulators)

    def signature(self, language: str) -> str:
        """The sender signature for ``language``: configured, else 【server name】."""
        return self.renderer.signature(language)

    async def start(self) -> None:
        if self.config.groups_csv is not None:
            await self._register_groups(self.config.groups_csv)
        store = self.sender.store
        await store.open()
        try:
            await self._device.start()
        except BaseException:
            await store.close()
            raise
        self._started = True

    async def _start_pool(self) -> None:
        pruned = await self.sender.store.prune(time.time())
        ports: dict[str, str] = {}
        if self.config.simulate:
            ports = await asyncio.to_thread(self._start_simulators)
        pool_config = self.config.pool_config(ports)
        if self.config.concurrency > 4 * len(pool_config.modems):
            log.warning(
                "channel %s: concurrency %d for %d modems: sends wait in the pool's queue and"
                " may reach the dispatcher's send timeout; 2-3 per modem is enough",
                self.name,
                self.config.concurrency,
                len(pool_config.modems),
            )
        pool = GsmModemPool(pool_config)
        try:
            if self.config.status_reports:
                pool.add_report_listener(self.sender.on_report)
            restored = await self.sender.restore(pool)
            await pool.start()
        except BaseException:
            await pool.stop()
            await asyncio.to_thread(self._stop_simulators)
            raise
        self._pool = pool
        if restored or pruned:
            log.info(
                "channel %s: %d SMS of an earlier run await status reports; %d old records pruned",
                self.name,
                restored,
                pruned,
            )

    async def _stop_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.stop()
        await asyncio.to_thread(self._stop_simulators)

    async def stop(self) -> None:
        await self._device.stop()
        await self.sender.store.close()

    async def housekeeping(self) -> None:
        """Prune old submission records (``channels.sms.submissions.SubmissionStore.prune``)."""
        if self._pool is not None:
            await self.sender.store.prune(time.time())

    def _start_simulators(self) -> dict[str, str]:
        self._network = SimulatedNetwork(report_delay=self.config.simulated_report_delay_seconds)
        try:
            for number in range(self.config.simulated_modems):
                simulator = AtModemSimulator(
                    ModemSimulatorConfig(name=f"sim{number}"), self._network
                )
                simulator.start()
                self._simulators.append(simulator)
        except OSError as exc:
            self._stop_simulators()
            raise ChannelError(f"cannot start a simulated modem: {exc}") from exc
        return {sim.config.name: sim.device_path for sim in self._simulators}

    def _stop_simulators(self) -> None:
        simulators, self._simulators = self._simulators, []
        for simulator in simulators:
            simulator.stop()
        if self._network is not None:
            self._network.stop()

    @classmethod
    def preflight(cls, name: str, config: ChannelConfig, data_dir: Path) -> list[str]:
        """The subscriber groups of ``groups_csv``, read as ``start`` reads them."""
        assert isinstance(config, SmsChannelConfig)
        if config.groups_csv is None:
            return []
        try:
            import_groups(_in_data_dir(config.groups_csv, data_dir), name)
        except SmsImportError as exc:
            first = str(exc).splitlines()[0]
            more = len(exc.problems) - 3
            listed = exc.problems[:3] + ([f"{more} more problems"] if more > 0 else [])
            return ["; ".join([f"groups_csv: {first}", *listed])]
        return []

    async def _register_groups(self, path: Path) -> None:
        """Register the CSV's groups as targets; drop groups this CSV registered before."""
        directory = self.context.targets
        if directory is None:
            raise ChannelError("groups_csv: this server gives channels no target directory")
        path = _in_data_dir(path, self.context.data_dir)
        try:
            imported = await asyncio.to_thread(import_groups, path, self.name)
        except SmsImportError as exc:
            raise ChannelError(f"groups_csv: {exc}") from exc
        for problem in imported.problems:
            log.warning("channel %s: %s: %s", self.name, path.name, problem)
        ledger = self.context.data_dir / f"sms-{self.name}-groups.json"
        previous = await asyncio.to_thread(read_ledger, ledger)
        current = [target.id for target in imported.targets]
        for stale in sorted(set(previous) - set(current)):
            await directory.unregister(stale)
        for target in imported.targets:
            await directory.register(target)
        await asyncio.to_thread(write_ledger, ledger, current)
        shown = [f"{path.name}: {problem}" for problem in imported.problems[:3]]
        if len(imported.problems) > 3:
            shown.append(f"{path.name}: {len(imported.problems) - 3} more problems (see the log)")
        self._import_notes = tuple(shown)
        log.info(
            "channel %s: %d groups, %d numbers from %s",
            self.name,
            len(imported.targets),
            imported.members,
            path,
        )

    async def plan(
        self, message: AlertMessage, candidates: Sequence[Target]
    ) -> Sequence[PlannedDelivery]:
        return plan_numbers(message, candidates)

    def recipient(self, target: Target, part: int) -> GroupEntry:
        """The group entry a delivery is for; TargetRejectedError if there is none."""
        return recipient(target, part)

    def render(self, message: AlertMessage, languages: Sequence[str], index: int = 0) -> SmsText:
        """The SMS for ``message`` in the ``index``-th of ``languages`` the alert has."""
        return self.renderer.render(message, languages, index)

    def _validity(self, delivery: OutgoingDelivery) -> timedelta:
        if self.config.validity_minutes is not None:
            return timedelta(minutes=self.config.validity_minutes)
        return max(MIN_VALIDITY, timedelta(seconds=delivery.expires_at - time.time()))

    async def send(self, delivery: OutgoingDelivery) -> SendResult:
        await self._device.check()
        pool = self._pool
        if pool is None:
            raise DeviceUnavailableError(f"channel {self.name} is not running")
        entry = self.recipient(delivery.target, delivery.part)
        number = entry.number or ""
        sms = self.renderer.for_part(delivery.message, delivery.target.languages, delivery.part)
        content = sms.to_json()
        try:
            result = await self.sender.send(
                pool,
                delivery,
                number,
                sms.text,
                segments=sms.segments,
                priority=-priority_of(delivery.message.alert),
                validity=self._validity(delivery),
            )
        except GsmError as exc:
            raise channel_error(exc, number) from exc
        return replace(result, content=content)

    async def resume(self, deliveries: Sequence[OutgoingDelivery]) -> None:
        """After a restart: settle at once the accepted deliveries whose outcome the record
        already has; the others are confirmed by their reports (``restore``) or sent again
        after the confirmation timeout."""
        settled = await self.sender.resume(deliveries)
        if settled:
            log.info("channel %s: %d SMS settled from the record at start", self.name, settled)

    async def health(self) -> ChannelHealth:
        pool = self._pool
        if pool is None and not self._device.held and self._started:
            return ChannelHealth(ok=True, detail=f"{self._device.what} is used by another node")
        if pool is None:
            return ChannelHealth(ok=False, detail="not running")
        modems = pool.health()
        ready = sum(m.state is ModemState.READY for m in modems)
        parts = [f"{ready} of {len(modems)} modems ready"]
        parts.append(
            "confirmed per segment by status reports"
            if self.config.status_reports
            else NO_REPORTS_NOTE
        )
        if pool.queued_messages:
            parts.append(f"{pool.queued_messages} messages queued")
        if self.sender.tracker.open_attempts:
            parts.append(f"{self.sender.tracker.open_attempts} SMS await status reports")
        if self.sender.problem is not None:
            parts.append(self.sender.problem)
        parts.extend(self._import_notes)
        devices = {
            m.name: {
                "state": m.state.value,
                "rssi": m.rssi,
                "registered": m.registered,
                "busy": m.busy,
                "sent_segments": m.sent_segments,
                "failures": m.failures,
                "unreadable_lines": m.unreadable_lines,
                "last_error": m.last_error,
            }
            for m in modems
        }
        return ChannelHealth(ok=ready > 0, detail="; ".join(parts), devices=devices)

    async def probe(self, target: Target) -> ProbeResult:
        """Checks the group's numbers and that a modem is ready; sends nothing."""
        return probe_group(target, await self.health())

    async def content(self, message: AlertMessage, target: Target, part: int) -> dict[str, Any]:
        """The SMS of the delivery: language, text, segments and encoding (what ``send``
        hands to the modem pool)."""
        return self.render(message, target.languages, part // LANGUAGE_STRIDE).to_json()

    def variant(self, target: Target, part: int) -> Hashable:
        return (target.languages, part // LANGUAGE_STRIDE)

    def count_targets(self, planned: Sequence[PlannedDelivery]) -> int:
        """Recipients: the distinct numbers the deliveries go to."""
        return count_numbers(planned)

    async def preview(self, message: AlertMessage, targets: Sequence[Target]) -> ChannelPreview:
        base = await super().preview(message, targets)
        counts, notes = self.renderer.preview(base, message)
        if not self.config.status_reports:
            notes.append(NO_REPORTS_NOTE)
        return replace(base, counts=counts, notes=tuple(notes))


def _in_data_dir(path: Path, data_dir: Path) -> Path:
    return path if path.is_absolute() else data_dir / path
