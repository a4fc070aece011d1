"""Sends encrypted messages to push services (RFC 8030 §5) and maps their answers.

One :class:`WebPushClient` holds one aiohttp session (connections to each push service are
reused) and the VAPID signer. A push is ``POST <endpoint>`` with the ``aes128gcm`` body and the
headers ``TTL``, ``Urgency``, ``Topic``, ``Content-Encoding`` and ``Authorization``.
Encryption (two P-256 operations) runs in a worker thread, never on the event loop; the
requests of one loop iteration go to the thread together (:class:`EncryptionBatcher`).

Answers (RFC 8030 §5, §7; RFC 8292 §4)::

    2xx                     accepted by the push service (201 Created; ``Location`` names it)
    404, 410                SubscriptionGoneError     the subscription no longer exists
    429                     RetryableError            with ``Retry-After`` when given
    408, 5xx, timeouts,     RetryableError, DeviceTimeoutError, DeviceUnavailableError
    connection errors
    413                     UnsupportedError          the message is too large
    other 4xx (400, 401,    TargetRejectedError       the service refuses the request (a 403
    403, …)                                           is usually a VAPID key mismatch)
    bad subscriber keys     TargetRejectedError
    3xx                     TargetRejectedError       redirects are not followed
    endpoint not public     EndpointRefusedError      (:mod:`channels.webpush.endpoints`)
    client closed           ClientClosedError         the channel's fault, not the endpoint's

Connections go through :class:`~channels.webpush.endpoints.PublicAddressResolver`, and each
endpoint is checked again before it is posted to, so only public addresses are reached (unless
the channel allows private endpoints for a lab stand-in).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiohttp
from aiohttp.abc import AbstractResolver

from broadcaster.destinations import origin
from broadcaster.errors import (
    DeviceTimeoutError,
    DeviceUnavailableError,
    RetryableError,
    TargetRejectedError,
    UnsupportedError,
)
from channels.webpush.ece import CONTENT_ENCODING, PayloadTooLargeError, PushKeyError, encrypt
from channels.webpush.endpoints import (
    BlockedAddressError,
    EndpointError,
    EndpointPolicy,
    PublicAddressResolver,
    check_endpoint,
)
from channels.webpush.payload import PushMessage
from channels.webpush.vapid import VapidSigner
from drivers.retry_after import retry_after_s


class SubscriptionGoneError(TargetRejectedError):
    """The push service says the subscription is gone (404/410): delete it."""


class EndpointRefusedError(TargetRejectedError):
    """The endpoint is not one the server connects to (not public, or malformed)."""


class ClientClosedError(DeviceUnavailableError):
    """The client is not open: a fault of the channel, whatever the endpoint."""


@dataclass(frozen=True, slots=True)
class PushSubscription:
    """Where and for whom a message is encrypted: the browser's ``PushSubscription``."""

    endpoint: str
    p256dh: str
    auth: str


_EncryptJob = tuple[bytes, str, str]


def _encrypt_all(jobs: list[_EncryptJob]) -> list[bytes | ValueError]:
    """Encrypt each job; a job's key or size error is returned in its place, not raised."""
    results: list[bytes | ValueError] = []
    for payload, p256dh, auth in jobs:
        try:
            results.append(encrypt(payload, p256dh, auth))
        except ValueError as exc:
            results.append(exc)
    return results


class EncryptionBatcher:
    """Encrypts in a worker thread, one thread hop for all requests of one loop iteration.

    The dispatcher hands a channel many deliveries at once; handing each encryption to a
    thread on its own costs more than the encryption (a future, a lock and a wake-up each).
    """

    def __init__(self) -> None:
        self._waiting: list[tuple[_EncryptJob, asyncio.Future[bytes]]] = []

    async def encrypt(self, payload: bytes, p256dh: str, auth: str) -> bytes:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bytes] = loop.create_future()
        self._waiting.append(((payload, p256dh, auth), future))
        if len(self._waiting) == 1:
            loop.call_soon(self._flush, loop)
        return await future

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        batch, self._waiting = self._waiting, []
        done = loop.run_in_executor(None, _encrypt_all, [job for job, _ in batch])

        def hand_out(finished: asyncio.Future[list[bytes | ValueError]]) -> None:
            failure = finished.exception()
            results = finished.result() if failure is None else [failure] * len(batch)
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)

        done.add_done_callback(hand_out)


class WebPushClient:
    """Posts push messages; raises the channel error tree for every failure."""

    def __init__(
        self,
        signer: VapidSigner,
        *,
        timeout_seconds: float,
        connections: int,
        policy: EndpointPolicy,
        resolver: AbstractResolver | None = None,
    ) -> None:
        self.signer = signer
        self.policy = policy
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._connections = connections
        self._resolver = resolver
        self._session: aiohttp.ClientSession | None = None
        self._encryption = EncryptionBatcher()

    async def open(self) -> None:
        resolver = self._resolver
        if not self.policy.allow_private:
            resolver = PublicAddressResolver(resolver)
        connector = aiohttp.TCPConnector(
            limit=self._connections, limit_per_host=0, resolver=resolver
        )
        self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def push(self, subscription: PushSubscription, message: PushMessage) -> str:
        """Send one message; returns the push service's message URI (or status line)."""
        if self._session is None:
            raise ClientClosedError("the web push client is not open")
        endpoint = subscription.endpoint
        try:
            check_endpoint(endpoint, self.policy)
        except EndpointError as exc:
            raise EndpointRefusedError(f"push endpoint {origin(endpoint)} refused: {exc}") from exc
        try:
            body = await self._encryption.encrypt(
                message.payload, subscription.p256dh, subscription.auth
            )
        except PushKeyError as exc:
            raise TargetRejectedError(f"subscription keys are unusable: {exc}") from exc
        except PayloadTooLargeError as exc:
            raise UnsupportedError(str(exc)) from exc
        headers = {
            "TTL": str(message.ttl),
            "Urgency": message.urgency,
            "Topic": message.topic,
            "Content-Encoding": CONTENT_ENCODING,
            "Content-Type": "application/octet-stream",
            "Authorization": self.signer.authorization(subscription.endpoint),
        }
        try:
            async with self._session.post(
                endpoint, data=body, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                location = response.headers.get("Location", "")
                retry_after = response.headers.get("Retry-After")
                text = (await response.text(errors="replace"))[:200]
        except TimeoutError as exc:
            raise DeviceTimeoutError(f"push service {origin(endpoint)}: no answer") from exc
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, BlockedAddressError):
                raise EndpointRefusedError(
                    f"push endpoint {origin(endpoint)} refused: {exc.os_error}"
                ) from exc
            raise DeviceUnavailableError(f"push service {origin(endpoint)}: {exc}") from exc
        except aiohttp.ClientError as exc:
            raise DeviceUnavailableError(f"push service {origin(endpoint)}: {exc}") from exc
        return _outcome(status, location, retry_after, text, endpoint)


def _outcome(status: int, location: str, retry_after: str | None, text: str, endpoint: str) -> str:
    where = f"push service {origin(endpoint)}"
    if 200 <= status < 300:
        return location or f"HTTP {status}"
    if 300 <= status < 400:
        raise TargetRejectedError(f"{where} answered HTTP {status}; redirects are not followed")
    if status in (404, 410):
        raise SubscriptionGoneError(f"{where}: subscription gone (HTTP {status})")
    if status == 429 or status == 408 or status >= 500:
        delay = retry_after_s(retry_after)
        raise RetryableError(f"{where}: HTTP {status} {text}".rstrip(), retry_after=delay)
    if status == 413:
        raise UnsupportedError(f"{where}: message too large (HTTP 413)")
    raise TargetRejectedError(f"{where} refused the message: HTTP {status} {text}".rstrip())
