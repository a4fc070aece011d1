"""Submitting a batch's segments through the gateway client, and what each delivery becomes.

The ``gateway-sms`` channel prepares each delivery of a claimed batch (its open record and
segments, an ``SmsJob``); :class:`SegmentSubmitter` submits the jobs' segments through as many
coroutines as the binds' windows hold, each taking the next job when its last is done, so the
batch pipelines through every window without a task per delivery. A throttled segment is
submitted again in place up to ``throttle_retries`` times; one still waiting for room at the
batch's deadline is not sent (``GatewayBusyError``), so its delivery is retried rather than
holding the batch back. Each segment is valid until its alert expires (at least a few
minutes, ``drivers.smsgw.validity``): the gateway does not deliver it to a phone that comes
back later. ``result`` turns each job's outcome into the delivery's send result or the core's
error (``channels.gateway_sms.errors``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from broadcaster.channel import SendOutcome, SendResult
from broadcaster.errors import RetryableError
from channels.gateway_sms.config import GatewaySmsChannelConfig
from channels.gateway_sms.errors import channel_error
from channels.gateway_sms.tracking import OpenSms, ReceiptTracker
from drivers.smsgw.client import GatewayClient
from drivers.smsgw.errors import GatewayError, GatewayThrottledError
from drivers.smsgw.results import EncodedSegment, SegmentResult
from drivers.smsgw.segments import with_reference


@dataclass(slots=True)
class SmsJob:
    """One delivery of a batch being submitted."""

    sms: OpenSms
    number: str
    segments: list[EncodedSegment]
    content: dict[str, Any]
    expires_at: float  # the alert's expiry (``time.time()``): the gateway gives up then
    index: int = 0


NOT_SUBMITTED = RetryableError("not submitted")
"""A batch's place-holder result until its delivery's submits end."""


class SegmentSubmitter:
    """Submits jobs' segments and maps their outcomes (see the module docstring)."""

    def __init__(self, config: GatewaySmsChannelConfig, tracker: ReceiptTracker) -> None:
        self.config = config
        self.tracker = tracker
        self.throttled = 0

    async def submit(
        self, client: GatewayClient, jobs: list[SmsJob], deadline: float
    ) -> list[GatewayError | None]:
        """Submit the jobs; per job, the error that stopped it or None."""
        errors: list[GatewayError | None] = [None] * len(jobs)
        waiting = iter(range(len(jobs)))

        async def worker() -> None:
            for index in waiting:
                errors[index] = await self._submit_all(client, jobs[index], deadline)

        workers = min(len(jobs), self.config.binds * self.config.window)
        await asyncio.gather(*(worker() for _ in range(workers)))
        return errors

    async def _submit_all(
        self, client: GatewayClient, job: SmsJob, deadline: float
    ) -> GatewayError | None:
        """Submit the segments of ``job`` that have no message id yet, in order."""
        sms = job.sms
        try:
            for segment in job.segments:
                if segment.sequence not in sms.ids:
                    reference = segment.reference if sms.reference is None else sms.reference
                    again = with_reference(segment, reference)
                    self.tracker.accepted(sms, await self._submit(client, job, again, deadline))
        except GatewayError as exc:
            return exc
        return None

    async def _submit(
        self, client: GatewayClient, job: SmsJob, segment: EncodedSegment, deadline: float
    ) -> SegmentResult:
        for attempt in range(self.config.throttle_retries + 1):
            try:
                return await client.submit_segment(job.number, segment, deadline, job.expires_at)
            except GatewayThrottledError:
                self.throttled += 1
                if attempt == self.config.throttle_retries:
                    raise
        raise AssertionError("unreachable")

    def result(self, job: SmsJob, error: GatewayError | None) -> SendResult | Exception:
        """ACCEPTED with the segments' ids, or the core's error for ``error``."""
        sms = job.sms
        if error is not None:
            found = channel_error(
                error, job.number, retry_after=self.config.throttle_pause_max_seconds
            )
            if not isinstance(found, RetryableError):
                self.tracker.forget(sms.delivery_id)
            return found
        return SendResult(
            SendOutcome.ACCEPTED,
            provider_ref=",".join(sms.ids[n] for n in sorted(sms.ids)),
            detail=f"{sms.total} segments accepted by the {self.config.protocol.upper()} gateway",
            content=job.content,
        )
