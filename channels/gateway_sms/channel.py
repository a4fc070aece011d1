"""The ``gateway-sms`` channel: warnings as SMS through an operator's SMS gateway.

- ``plan``, group resolution and the text are the modem channel's (``channels.smstext``): a
  delivery per (number, language) of each subscriber group, the same templates, signatures
  and segment budget, and ``preview`` shows what ``send`` submits.
- ``send`` splits the text as the gateway will carry it (UCS-2, or GBK for CMPP with
  ``coding = "gbk"``) and submits each segment through ``drivers.smpp`` or ``drivers.cmpp``
  over the least busy of ``binds`` connections, within each bind's ``window`` and
  ``submit_rate_per_second``. It answers ACCEPTED once every segment has a gateway message id
  and the delivery's record is committed to the store's channel records
  (``channels.gateway_sms.tracking``, ``channels.gateway_sms.records``); the delivery is
  confirmed when every segment's receipt says delivered, failed when one says otherwise.
- The dispatcher hands over each claimed batch in one ``send_many``: the batch's segments
  are submitted together through the windows, their records written in one commit; segments
  still waiting for room after ``batch_submit_seconds`` are not sent and their deliveries
  are retried, so a throttled gateway cannot hold the batch's results back.
- A throttled bind rests (the pause doubling while the gateway keeps throttling) and the
  segment is submitted again, up to ``throttle_retries`` times, before the core's backoff takes
  over. A connection that drops mid-window fails only the segments it had not answered; the
  next attempt of the delivery submits those and never a segment that already has an id.
  Errors map onto the core's tree as ``channels.gateway_sms.errors`` documents.
- ``fallback = "<sms channel>"``: a number whose receipt reports a passing failure (expired,
  deleted, unknown), or whose send finds no bind up for longer than ``fallback_after_seconds``,
  is handed to that channel for the same alert (``DispatchHooks.forward``); the delivery's
  detail and history say so.
- ``health`` reports binds up and the progress of this run: segments submitted and receipted,
  each per second, deliveries awaiting receipts.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import replace
from typing import Any, ClassVar

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
    PlannedDelivery,
    ProbeResult,
    SendOutcome,
    SendResult,
    send_through_batch,
)
from broadcaster.config import ChannelConfig
from broadcaster.delivery import Target
from broadcaster.errors import (
    ChannelError,
    DeviceUnavailableError,
    PermanentError,
    UnsupportedError,
)
from channels.gateway_sms.config import GatewaySmsChannelConfig
from channels.gateway_sms.records import GatewayRecords
from channels.gateway_sms.sending import NOT_SUBMITTED, SegmentSubmitter, SmsJob
from channels.gateway_sms.tracking import OPEN, SETTLED, ReceiptTracker
from channels.smstext import (
    LANGUAGE_STRIDE,
    SmsRenderer,
    count_numbers,
    plan_numbers,
    probe_group,
    recipient,
)
from drivers.cmpp import CmppClient, CmppClientConfig
from drivers.smpp import SmppClient
from drivers.smsgw.client import GatewayClient
from drivers.smsgw.errors import GatewayError
from drivers.smsgw.results import EncodedSegment
from drivers.smsgw.segments import TextCoding, count_segments, split_message

log = logging.getLogger(__name__)

EARLIER_RECORDS = "records.sqlite3"
"""The record file of earlier versions, taken into the store once (``GatewayRecords.adopt``)."""
KEEP_SETTLED_SECONDS = 2 * 86400
KEEP_OPEN_SECONDS = 7 * 86400
FORM_CACHE = 64


class GatewaySmsChannel(Channel[GatewaySmsChannelConfig]):
    capabilities = ChannelCapabilities(
        confirms=True,
        description="SMS through operators' SMS gateways (SMPP 3.4, CMPP 2.0/3.0),"
        " confirmed per segment by delivery receipts",
    )
    config_model: ClassVar[type[ChannelConfig]] = GatewaySmsChannelConfig
    target_unit: ClassVar[str] = "recipients"

    def __init__(self, name: str, config: GatewaySmsChannelConfig, context: ChannelContext) -> None:
        super().__init__(name, config, context)
        self.clock = time.time
        client_config = config.client_config()
        self.coding = (
            TextCoding.GBK
            if isinstance(client_config, CmppClientConfig) and client_config.coding == "gbk"
            else TextCoding.UCS2
        )
        self.renderer = SmsRenderer(config, lambda: context.sender_name, self._count)
        self.records = GatewayRecords(context.records, self.clock)
        self.earlier_records = context.data_dir / f"gateway-sms-{name}" / EARLIER_RECORDS
        self.tracker = ReceiptTracker(self.records, self._settled, self.clock)
        self._client: GatewayClient | None = None
        self._down_since: float | None = None
        self._forwards: set[asyncio.Task[None]] = set()
        self._forms: OrderedDict[
            tuple[str, tuple[str, ...], int], tuple[str, list[EncodedSegment], dict[str, Any]]
        ] = OrderedDict()
        self.submitter = SegmentSubmitter(config, self.tracker)
        self.forwarded = 0

    def _count(self, text: str) -> int:
        try:
            return count_segments(text, self.coding)
        except GatewayError:
            return self.config.segment_limit + 1  # uncodable: never fits; send says why

    @property
    def throttled(self) -> int:
        """Throttled submits since start."""
        return self.submitter.throttled

    @property
    def client(self) -> GatewayClient | None:
        """The gateway client while the channel runs."""
        return self._client

    def _make_client(self) -> GatewayClient:
        client_config = self.config.client_config()
        if isinstance(client_config, CmppClientConfig):
            return CmppClient(client_config, on_receipt=self.tracker.on_receipt)
        return SmppClient(client_config, on_receipt=self.tracker.on_receipt)

    async def start(self) -> None:
        await self.records.open()
        try:
            adopted = await self.records.adopt(self.earlier_records)
            if adopted:
                log.info(
                    "channel %s: %d records taken from %s", self.name, adopted, self.earlier_records
                )
            client = self._make_client()
            restored = await self.tracker.restore(client)
            await client.start(wait=0)
        except BaseException:
            await self.records.close()
            raise
        self._client = client
        self._down_since = self.clock()
        if restored:
            log.info("channel %s: %d SMS of an earlier run await receipts", self.name, restored)

    async def stop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()
        if self._forwards:
            await asyncio.gather(*self._forwards, return_exceptions=True)
        await self.records.close()

    async def housekeeping(self) -> None:
        """Drop settled outcomes older than two days and open records older than a week."""
        if self._client is None:
            return
        now = self.clock()
        await self.records.prune(now - KEEP_SETTLED_SECONDS, SETTLED)
        await self.records.prune(now - KEEP_OPEN_SECONDS, OPEN)

    async def plan(
        self, message: AlertMessage, candidates: Sequence[Target]
    ) -> Sequence[PlannedDelivery]:
        return plan_numbers(message, candidates)

    def count_targets(self, planned: Sequence[PlannedDelivery]) -> int:
        """Recipients: the distinct numbers the deliveries go to."""
        return count_numbers(planned)

    def variant(self, target: Target, part: int) -> Hashable:
        return (target.languages, part // LANGUAGE_STRIDE)

    def _form(
        self, message: AlertMessage, target: Target, part: int
    ) -> tuple[str, list[EncodedSegment], dict[str, Any]]:
        """The text's digest, its gateway segments and the content ``send`` reports: rendered
        once per alert and language, as thousands of numbers get the same SMS."""
        key = (message.id, tuple(target.languages), part // LANGUAGE_STRIDE)
        form = self._forms.get(key)
        if form is None:
            form = self._render_form(message, target, part)
            self._forms[key] = form
            while len(self._forms) > FORM_CACHE:
                self._forms.popitem(last=False)
        return form

    def _render_form(
        self, message: AlertMessage, target: Target, part: int
    ) -> tuple[str, list[EncodedSegment], dict[str, Any]]:
        sms = self.renderer.for_part(message, target.languages, part)
        try:
            segments = split_message(sms.text, self.coding, self.config.segment_limit)
        except GatewayError as exc:
            raise UnsupportedError(f"the SMS cannot be sent through the gateway: {exc}") from exc
        content = sms.to_json() | {
            "segments": len(segments),
            "encoding": "GBK" if self.coding is TextCoding.GBK else "UCS-2",
        }
        return hashlib.sha256(sms.text.encode()).hexdigest()[:16], segments, content

    async def content(self, message: AlertMessage, target: Target, part: int) -> dict[str, Any]:
        """The SMS of the delivery: language, text, gateway segments and encoding."""
        return dict(self._form(message, target, part)[2])

    sends_in_batches = True

    async def send(self, delivery: OutgoingDelivery) -> SendResult:
        return await send_through_batch(self, delivery)

    async def send_many(
        self, deliveries: Sequence[OutgoingDelivery]
    ) -> Sequence[SendResult | Exception]:
        """Submit the batch's segments together, pipelined through every bind's window; each
        delivery ends as its own ``send`` would have left it. Segments still waiting for room
        ``batch_submit_seconds`` after the start are not sent (their deliveries are retried),
        so a throttled gateway cannot hold the batch's results back for long. The records
        of what the gateway took are written in one commit before the results are given."""
        client = self._client
        if client is None:
            raise DeviceUnavailableError(f"channel {self.name} is not running")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.batch_submit_seconds
        results: list[SendResult | Exception] = []
        jobs: list[SmsJob] = []
        link_up = client.binds_up > 0
        for index, delivery in enumerate(deliveries):
            try:
                prepared = await self._prepare(delivery, link_up)
            except ChannelError as exc:
                results.append(exc)
                continue
            results.append(prepared if isinstance(prepared, SendResult) else NOT_SUBMITTED)
            if isinstance(prepared, SmsJob):
                prepared.index = index
                jobs.append(prepared)
        errors = await self.submitter.submit(client, jobs, deadline)
        await self.tracker.save(job.sms for job in jobs if job.sms.ids)
        for job, error in zip(jobs, errors, strict=True):
            results[job.index] = self.submitter.result(job, error)
        return results

    async def _prepare(self, delivery: OutgoingDelivery, link_up: bool) -> SendResult | SmsJob:
        """The delivery's open record and segments, or its outcome when it needs no submit."""
        number = recipient(delivery.target, delivery.part).number or ""
        digest, segments, form_content = self._form(
            delivery.message, delivery.target, delivery.part
        )
        content = dict(form_content)
        if delivery.attempt > 1:
            earlier = await self.tracker.settled(delivery.id)
            if earlier is not None:
                return self._repeat(earlier, content)
        await self._check_link(link_up, delivery, number)
        sms = self.tracker.begin(
            delivery.id, number, digest, len(segments), delivery.attempt, self._fresh_after()
        )
        if sms.reference is None:
            sms.reference = segments[0].reference
        return SmsJob(sms, number, segments, content, delivery.expires_at)

    def _fresh_after(self) -> float:
        """How long an accepted delivery waits for its receipts before it is submitted anew."""
        return self.config.confirm_timeout_seconds or 600.0

    def _repeat(self, earlier: Confirmation, content: dict[str, Any]) -> SendResult:
        if earlier.outcome is ConfirmationOutcome.CONFIRMED:
            return SendResult(SendOutcome.CONFIRMED, detail=earlier.detail, content=content)
        raise PermanentError(earlier.detail)

    async def _check_link(self, link_up: bool, delivery: OutgoingDelivery, number: str) -> None:
        """With no bind up for longer than ``fallback_after_seconds``, hand the number over."""
        if link_up:
            self._down_since = None
            return
        now = self.clock()
        if self._down_since is None:
            self._down_since = now
        down = now - self._down_since
        if self.config.fallback is None or down < self.config.fallback_after_seconds:
            return
        reason = f"no bind to the gateway up for {down:.0f} s"
        forwarded = await self._forward(delivery.id, reason)
        if forwarded is not None:
            raise PermanentError(f"SMS to {number}: {reason}; {forwarded}")

    def _settled(self, confirmation: Confirmation, passing: bool) -> None:
        if (
            confirmation.outcome is ConfirmationOutcome.FAILED
            and passing
            and self.config.fallback is not None
        ):
            self._spawn_forward(confirmation)
            return
        self.confirm(confirmation)

    def _spawn_forward(self, confirmation: Confirmation) -> None:
        async def forward() -> None:
            forwarded = await self._forward(confirmation.delivery_id, confirmation.detail)
            detail = (
                confirmation.detail if forwarded is None else f"{confirmation.detail}; {forwarded}"
            )
            self.confirm(replace(confirmation, detail=detail))

        task = asyncio.get_running_loop().create_task(forward())
        self._forwards.add(task)
        task.add_done_callback(self._forwards.discard)

    async def _forward(self, delivery_id: int, reason: str) -> str | None:
        """Queue the delivery for the fallback channel; what to add to its detail, or None."""
        hooks = self.context.dispatch
        fallback = self.config.fallback
        if hooks is None or fallback is None:
            return None
        try:
            new_id = await hooks.forward(delivery_id, fallback, reason)
        except ChannelError as exc:
            log.warning("channel %s: fallback to %s refused: %s", self.name, fallback, exc)
            return f"fallback to {fallback} refused: {exc}"
        self.forwarded += 1
        return f"handed to channel {fallback} (delivery {new_id})"

    async def resume(self, deliveries: Sequence[OutgoingDelivery]) -> None:
        """After a restart: give at once the outcomes recorded but not yet seen by the core;
        the others are matched to their receipts through the records (``start``)."""
        given = await self.tracker.resume(d.id for d in deliveries)
        if given:
            log.info("channel %s: %d outcomes given again from the records", self.name, given)

    async def health(self) -> ChannelHealth:
        client = self._client
        if client is None:
            return ChannelHealth(ok=False, detail="not running")
        progress = self.tracker.progress
        parts = [
            f"{client.binds_up} of {self.config.binds} binds up to the"
            f" {self.config.protocol.upper()} gateway {self.config.host}:{self.config.port}",
            f"{progress.submitted} segments submitted ({self.tracker.submit_rate.rate:.0f}/s)",
            f"{progress.receipted} receipted ({self.tracker.receipt_rate.rate:.0f}/s)",
            f"{self.tracker.awaiting} SMS await receipts",
        ]
        if self.throttled:
            parts.append(f"{self.throttled} submits throttled")
        if self.forwarded:
            parts.append(f"{self.forwarded} numbers handed to {self.config.fallback}")
        if client.last_bind_error is not None and not client.binds_up:
            parts.append(f"last bind error: {client.last_bind_error}")
        gateway = {
            "state": "up" if client.binds_up else "down",
            "binds_up": client.binds_up,
            "binds": self.config.binds,
            "submitted": progress.submitted,
            "receipted": progress.receipted,
            "delivered": progress.delivered,
            "failed": progress.failed,
            "awaiting_receipts": self.tracker.awaiting,
            "submits_per_second": self.tracker.submit_rate.rate,
            "receipts_per_second": self.tracker.receipt_rate.rate,
            "throttled": self.throttled,
            "forwarded": self.forwarded,
            "last_error": None if client.last_bind_error is None else str(client.last_bind_error),
        }
        return ChannelHealth(
            ok=client.binds_up > 0, detail="; ".join(parts), devices={"gateway": gateway}
        )

    def progress(self) -> dict[str, Any] | None:
        """Segments submitted and receipted since start, each per second, and what waits."""
        client = self._client
        return {
            "binds_up": 0 if client is None else client.binds_up,
            "submitted": self.tracker.progress.submitted,
            "submitted_per_second": self.tracker.submit_rate.rate,
            "receipted": self.tracker.progress.receipted,
            "receipted_per_second": self.tracker.receipt_rate.rate,
            "awaiting_receipts": self.tracker.awaiting,
        }

    async def probe(self, target: Target) -> ProbeResult:
        """Checks the group's numbers and that a bind is up; sends nothing."""
        return probe_group(target, await self.health())

    async def preview(self, message: AlertMessage, targets: Sequence[Target]) -> ChannelPreview:
        base = await super().preview(message, targets)
        counts, notes = self.renderer.preview(base, message)
        return replace(base, counts=counts, notes=tuple(notes))
