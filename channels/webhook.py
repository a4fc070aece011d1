"""The ``webhook`` channel: POSTs each delivery as JSON, signed with HMAC-SHA256.

For county nodes, neighbouring cities' systems and integrators. The request carries
``Idempotency-Key`` (alert + target: the receiver deduplicates retries with it) and
``X-Broadcaster-Signature: sha256=<hex HMAC of the body with the shared secret>``.

A 2xx answer confirms the delivery. 408, 425 and 429 (honouring ``Retry-After``), 5xx,
connection errors and timeouts are retried; any other 4xx fails for good. A target whose
``address`` is an http(s) URL is posted there, otherwise to the channel's ``url``.

``health`` follows the channel's ``url``: it fails while the latest message posted there
failed. A receiver a target names itself is that target's: its failures show on the delivery
and, per receiver (host and port, never the path or query, which may carry a key), in the
health's ``devices``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import replace
from typing import ClassVar

import aiohttp
from pydantic import Field

from broadcaster.channel import (
    Channel,
    ChannelCapabilities,
    ChannelContext,
    ChannelHealth,
    OutgoingDelivery,
    SendOutcome,
    SendResult,
)
from broadcaster.config import ChannelConfig, SecretValue
from broadcaster.destinations import DestinationStats, origin
from broadcaster.errors import (
    ChannelError,
    DeviceTimeoutError,
    DeviceUnavailableError,
    RetryableError,
    TargetRejectedError,
)
from channels.log import delivery_record

_RETRY_STATUSES = {408, 425, 429}


class WebhookChannelConfig(ChannelConfig):
    url: str | None = Field(None, pattern=r"^https?://")
    secret: SecretValue
    timeout_seconds: float = Field(10.0, gt=0)


def sign(secret: bytes, body: bytes) -> str:
    """The value of ``X-Broadcaster-Signature`` for ``body``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class WebhookChannel(Channel[WebhookChannelConfig]):
    capabilities = ChannelCapabilities(confirms=True, description="HTTP POST of signed JSON")
    target_unit: ClassVar[str] = "endpoints"
    config_model: ClassVar[type[ChannelConfig]] = WebhookChannelConfig
    _last_error = ""

    def __init__(self, name: str, config: WebhookChannelConfig, context: ChannelContext) -> None:
        super().__init__(name, config, context)
        self._receivers = DestinationStats()

    async def start(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self.config.timeout_seconds)
        self._session = aiohttp.ClientSession(timeout=timeout)

    async def stop(self) -> None:
        await self._session.close()

    def _url_for(self, delivery: OutgoingDelivery) -> str:
        address = delivery.target.address
        if address.startswith(("http://", "https://")):
            return address
        if self.config.url is None:
            raise TargetRejectedError(f"target {delivery.target.id} has no URL and no default")
        return self.config.url

    async def send(self, delivery: OutgoingDelivery) -> SendResult:
        url = self._url_for(delivery)
        record = delivery_record(delivery, self.name)
        body = json.dumps(record, ensure_ascii=False).encode()
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": delivery.idempotency_key,
            "X-Broadcaster-Signature": sign(self.config.secret.reveal().encode(), body),
        }
        try:
            result = await self._post(url, body, headers)
        except ChannelError as exc:
            self._receivers.failed(origin(url), str(exc), time.time())
            if url == self.config.url:
                self._last_error = str(exc)
            raise
        self._receivers.sent(origin(url), time.time())
        if url == self.config.url:
            self._last_error = ""
        return replace(result, content={"texts": record["texts"]})

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> SendResult:
        where = origin(url)
        try:
            async with self._session.post(url, data=body, headers=headers) as response:
                status = response.status
                retry_after = _retry_after(response.headers.get("Retry-After"))
                await response.read()
        except TimeoutError as exc:
            raise DeviceTimeoutError(f"{where}: no answer in time") from exc
        except aiohttp.ClientError as exc:
            raise DeviceUnavailableError(f"{where}: {exc}") from exc
        if 200 <= status < 300:
            return SendResult(SendOutcome.CONFIRMED, provider_ref=f"HTTP {status}")
        if status in _RETRY_STATUSES or status >= 500:
            raise RetryableError(f"{where} answered HTTP {status}", retry_after=retry_after)
        raise TargetRejectedError(f"{where} refused the message: HTTP {status}")

    async def health(self) -> ChannelHealth:
        """Whether the channel's own ``url`` took the latest message sent to it; receivers a
        target names itself are that target's and show in ``devices`` only."""
        receivers = self._receivers.summary("receivers")
        detail = f"{self._last_error}; {receivers}" if self._last_error else f"ok; {receivers}"
        return ChannelHealth(
            ok=not self._last_error, detail=detail, devices=self._receivers.devices()
        )
