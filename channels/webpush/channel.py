"""The ``webpush`` channel: warnings pushed to residents' browsers and phones.

Residents subscribe on the channel's page (``/channels/<name>/``, see
:mod:`channels.webpush.webapp`); each subscription is a target of the registry with the
division the resident chose, so the planner selects it by the alert's area like any device.
``send`` encrypts one message per subscription (RFC 8291) and posts it to the subscription's
push service with VAPID (RFC 8292), ``TTL``, ``Urgency`` and ``Topic`` (RFC 8030); a 2xx
answer makes the delivery *accepted*. The service worker shows the notification and posts an
acknowledgement back; a valid one confirms the delivery.

A push service that answers 404 or 410 has dropped the subscription: the delivery fails with
:class:`~broadcaster.errors.TargetRejectedError` and the subscription is removed from the
registry. Retries, expiry and state stay in the core.

``health`` is the channel's own: running, with its VAPID key, and no fault of its own in the
latest send. A failing push service belongs to the subscribers who use it (and anyone may
subscribe an endpoint they control), so it never marks the channel unhealthy; it shows on the
delivery and, per push service, in the health's ``devices``
(:class:`~broadcaster.destinations.DestinationStats`).

Configuration (``[channels.<name>]``, ``type = "webpush"``)::

    vapid_subject = "mailto:duty@example.cn"   # required; mailto: or https: (RFC 8292 §2.1)
    vapid_private_key = { file = "/etc/broadcaster/vapid.pem" }   # optional; PEM or base64url
    vapid_key_file = "webpush/vapid.pem"       # where a generated key is kept (data dir)
    timeout_seconds = 10
    languages = ["zh-CN", "mn", "en"]          # what residents may choose
    allow_http_endpoints = false               # true only for local push-service stand-ins
    allow_private_endpoints = false            # true only for a stand-in on a lab network or
                                               # loopback: lifts the public-address and port
                                               # rules of channels.webpush.endpoints
    changes_per_minute = 30                    # subscribe/unsubscribe/renew per client
    max_subscriptions = 100000                 # past it, new subscriptions get 503

Anyone may subscribe, so the registry could be filled with subscriptions that each cost a push
at every alert: beyond ``max_subscriptions`` a new subscription is refused with
:class:`SubscriptionsFullError` (503); renewing or re-subscribing an existing one still works.
The count comes from the registry when the channel starts and at most once a minute after,
and follows the channel's own changes in between. Subscribe, renew and removal hold one lock
while they read and change the count and the registry, so requests arriving at once never
take a node past the limit. Nodes sharing a store each keep their own count and learn of the
others' new subscriptions at their next recount.

Host names of endpoints are looked up with :attr:`WebPushChannel.resolver` (the system's
resolver when None); every address a name resolves to must be public, unless private ones are
allowed (:mod:`channels.webpush.endpoints`).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from aiohttp import web
from aiohttp.abc import AbstractResolver
from aiohttp.resolver import ThreadedResolver
from pydantic import Field

from broadcaster.channel import (
    AlertMessage,
    Channel,
    ChannelCapabilities,
    ChannelContext,
    ChannelHealth,
    Confirmation,
    ConfirmationOutcome,
    OutgoingDelivery,
    SendOutcome,
    SendResult,
    TargetDirectory,
)
from broadcaster.config import ChannelConfig, SecretValue
from broadcaster.delivery import Target
from broadcaster.destinations import DestinationStats, origin
from broadcaster.errors import ChannelError, DeviceUnavailableError, TargetRejectedError
from channels.webpush.client import ClientClosedError, SubscriptionGoneError, WebPushClient
from channels.webpush.endpoints import EndpointPolicy
from channels.webpush.enrolment import (
    TARGET_PREFIX,
    SubscriptionError,
    build_target,
    check_endpoint_host,
    parse_endpoint,
    parse_subscription,
    subscription_of,
    target_id,
)
from channels.webpush.payload import ack_token, build_message, push_texts
from channels.webpush.vapid import (
    VapidKeyError,
    VapidSigner,
    load_or_create_key,
    parse_private_key,
    read_key_file,
)
from channels.webpush.webapp import subscription_app


class WebPushChannelConfig(ChannelConfig):
    vapid_subject: str = Field(pattern=r"^(mailto:[^@\s]+@[^@\s]+|https://\S+)$")
    vapid_private_key: SecretValue | None = None
    vapid_key_file: Path | None = Field(
        None, description="relative to the data directory; default webpush-<name>/vapid.pem"
    )
    timeout_seconds: float = Field(10.0, gt=0)
    languages: tuple[str, ...] = Field(("zh-CN", "mn", "en"), min_length=1)
    allow_http_endpoints: bool = False
    allow_private_endpoints: bool = Field(
        False,
        description="connect to loopback, private and other non-public addresses and to any"
        " port: only for a push-service stand-in in a lab or in tests",
    )
    concurrency: int = Field(64, ge=1, le=10_000)
    changes_per_minute: int = Field(
        30,
        ge=1,
        description="subscribe, unsubscribe and renew requests per client: an IPv4 address"
        " or an IPv6 /64",
    )
    max_subscriptions: int = Field(
        100_000, ge=1, description="new subscriptions beyond this many are refused (503)"
    )


RECOUNT_SECONDS = 60.0
"""How long the channel trusts its own count of subscriptions before listing them again."""


class ChannelNotReadyError(DeviceUnavailableError):
    """The channel is not running (not started, or its start failed)."""


class SubscriptionsFullError(DeviceUnavailableError):
    """The channel holds ``max_subscriptions`` already: no new subscription is taken now."""


class WebPushChannel(Channel[WebPushChannelConfig]):
    capabilities = ChannelCapabilities(
        confirms=True,
        max_text_chars=1000,
        description="Web push (RFC 8030/8291/8292) to subscribed browsers, acked on display",
        enrols_targets=True,
    )
    config_model: ClassVar[type[ChannelConfig]] = WebPushChannelConfig
    target_unit: ClassVar[str] = "subscriptions"

    resolver: AbstractResolver | None = None
    _client: WebPushClient | None = None
    _names: AbstractResolver | None = None
    _fault = ""
    _subscriptions = 0
    _counted_at: float | None = None

    def __init__(self, name: str, config: WebPushChannelConfig, context: ChannelContext) -> None:
        super().__init__(name, config, context)
        self._services = DestinationStats()
        self._changing = asyncio.Lock()
        """Held while the count of subscriptions is read or changed with the registry."""

    @property
    def key_file(self) -> Path:
        return _key_file(self.config, self.name, self.context.data_dir)

    @classmethod
    def preflight(cls, name: str, config: ChannelConfig, data_dir: Path) -> list[str]:
        """The configured VAPID key, else the stored one (none yet: ``start`` makes it)."""
        assert isinstance(config, WebPushChannelConfig)
        secret = config.vapid_private_key
        try:
            if secret is not None:
                parse_private_key(secret.reveal())
            else:
                read_key_file(_key_file(config, name, data_dir))
        except VapidKeyError as exc:
            key = "vapid_private_key" if secret is not None else "vapid_key_file"
            return [f"{key}: {exc}"]
        return []

    @property
    def policy(self) -> EndpointPolicy:
        return EndpointPolicy(
            allow_http=self.config.allow_http_endpoints,
            allow_private=self.config.allow_private_endpoints,
        )

    @property
    def running(self) -> bool:
        return self._client is not None

    @property
    def public_key(self) -> str:
        """The VAPID public key browsers subscribe with (base64url)."""
        if self._client is None:
            raise ChannelNotReadyError(f"channel {self.name} is not running")
        return self._client.signer.public_key

    async def start(self) -> None:
        secret = self.config.vapid_private_key
        try:
            if secret is not None:
                key = parse_private_key(secret.reveal())
            else:
                key = await asyncio.to_thread(load_or_create_key, self.key_file)
        except (VapidKeyError, OSError) as exc:
            raise ChannelError(f"channel {self.name}: {exc}") from exc
        signer = VapidSigner(key, self.config.vapid_subject)
        self._names = self.resolver or ThreadedResolver()
        client = WebPushClient(
            signer,
            timeout_seconds=self.config.timeout_seconds,
            connections=self.config.concurrency,
            policy=self.policy,
            resolver=self._names,
        )
        await client.open()
        self._fault = ""
        self._counted_at = None
        self._client = client

    async def stop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()
        names, self._names = self._names, None
        if names is not None and names is not self.resolver:
            await names.close()

    async def send(self, delivery: OutgoingDelivery) -> SendResult:
        client = self._client
        if client is None:
            raise ChannelNotReadyError(f"channel {self.name} is not running")
        target = delivery.target
        try:
            subscription = subscription_of(target)
            secret = str(target.params["secret"])
        except KeyError as exc:
            raise TargetRejectedError(f"{target.id} is not a push subscription: no {exc}") from exc
        message = build_message(
            delivery,
            public_url=self.context.public_url,
            subscription_id=target.id.removeprefix(TARGET_PREFIX),
            secret=secret,
            now=time.time(),
        )
        service = origin(subscription.endpoint)
        try:
            reference = await client.push(subscription, message)
        except ClientClosedError as exc:
            self._fault = str(exc)
            raise
        except ChannelError as exc:
            self._services.failed(service, str(exc), time.time())
            if isinstance(exc, SubscriptionGoneError) and self.context.targets is not None:
                await self._forget(self.context.targets, target.id)
            raise
        except Exception as exc:
            self._fault = f"{type(exc).__name__}: {exc}"
            raise
        self._services.sent(service, time.time())
        self._fault = ""
        content = {"texts": json.loads(message.payload)["texts"]}
        return SendResult(SendOutcome.ACCEPTED, provider_ref=reference, content=content)

    async def content(self, message: AlertMessage, target: Target, part: int) -> dict[str, Any]:
        """The notification texts (language, title, area, body) a subscriber of ``target``'s
        languages is sent."""
        texts = push_texts(message, target.languages, public_url=self.context.public_url)
        return {"texts": texts}

    async def health(self) -> ChannelHealth:
        """Whether the channel can send: running, its VAPID key loaded, no fault of its own.

        A push service that refuses, fails or is unreachable is one subscriber's (anyone may
        subscribe an endpoint they control): it shows per push service in ``devices`` and on
        the delivery, never as the channel's state.
        """
        if self._client is None:
            return ChannelHealth(ok=False, detail="not running")
        pushes = self._services.summary("push services")
        detail = f"{self._fault}; {pushes}" if self._fault else f"ok; {pushes}"
        return ChannelHealth(ok=not self._fault, detail=detail, devices=self._services.devices())

    async def enrol(self, body: Any) -> Target:
        """Register (or update) the subscription in a subscribe request; returns its target.

        The request is checked and the endpoint's host looked up first; then, under the
        channel's lock on subscription changes, the count is checked and the target written,
        so that subscribes arriving at once cannot each see room for one more."""
        directory, tree = self.context.targets, self.context.divisions
        if directory is None or tree is None:
            raise ChannelNotReadyError("subscriptions need a target registry and division tree")
        endpoint = parse_endpoint(_mapping(body).get("subscription"), self.policy)

        def target_of(previous: Target | None) -> Target:
            return build_target(
                body,
                channel=self.name,
                tree=tree,
                languages=self.config.languages,
                policy=self.policy,
                previous=previous,
            )

        target_of(None)  # a bad request is refused before the host is looked up
        await check_endpoint_host(endpoint, self.policy, self._lookup())
        async with self._changing:
            previous = await directory.get(target_id(endpoint))
            target = target_of(previous)
            if previous is None:
                await self._check_room(directory)
            await directory.register(target)
            if previous is None:
                self._subscriptions += 1
        return target

    async def _check_room(self, directory: TargetDirectory) -> None:
        """SubscriptionsFullError unless one more subscription fits (hold ``_changing``)."""
        now = time.monotonic()
        if self._counted_at is None or now - self._counted_at >= RECOUNT_SECONDS:
            self._subscriptions = len(await directory.all())
            self._counted_at = now
        limit = self.config.max_subscriptions
        if self._subscriptions >= limit:
            raise SubscriptionsFullError(
                f"this alert service has reached its limit of {limit} subscriptions and takes"
                " no new ones now; please try again later"
            )

    async def withdraw(self, body: Any) -> bool:
        """Remove the subscription whose endpoint the body names; True if it was there."""
        if self.context.targets is None:
            raise ChannelNotReadyError("subscriptions need a target registry")
        anywhere = EndpointPolicy(allow_http=True, allow_private=True)
        endpoint = parse_endpoint(body, anywhere, where="the request body")
        return await self._forget(self.context.targets, target_id(endpoint))

    async def _forget(self, directory: TargetDirectory, subscription: str) -> bool:
        """Remove the target ``subscription`` and count it out; True if it was there."""
        async with self._changing:
            removed = await directory.unregister(subscription)
            if removed:
                self._subscriptions -= 1
        return removed

    async def renew(self, body: Any) -> Target | None:
        """Move a subscription the browser replaced (``pushsubscriptionchange``) to its new
        endpoint and keys, keeping its area, languages and ack secret.

        ``body`` is ``{"old_endpoint": …, "subscription": PushSubscription.toJSON()}``; the old
        endpoint entitles the caller. None when no subscription has that endpoint.
        """
        directory = self.context.targets
        if directory is None:
            raise ChannelNotReadyError("subscriptions need a target registry")
        doc = _mapping(body)
        old_endpoint = doc.get("old_endpoint")
        if not isinstance(old_endpoint, str) or not old_endpoint:
            raise SubscriptionError(
                "old_endpoint: the replaced subscription's endpoint is required"
            )
        if await directory.get(target_id(old_endpoint)) is None:
            return None
        subscription = parse_subscription(doc.get("subscription"), self.policy)
        await check_endpoint_host(subscription.endpoint, self.policy, self._lookup())
        keys = {"p256dh": subscription.p256dh, "auth": subscription.auth}
        async with self._changing:  # the old one may have gone meanwhile: nothing to move
            previous = await directory.get(target_id(old_endpoint))
            if previous is None:
                return None
            target = replace(
                previous,
                id=target_id(subscription.endpoint),
                address=subscription.endpoint,
                params={**previous.params, **keys},
            )
            await directory.register(target)
            if target.id != previous.id:
                await directory.unregister(previous.id)
        return target

    async def acknowledge(self, body: Any) -> bool:
        """Confirm the delivery a service worker acknowledges; False if the ack is not valid."""
        doc = _mapping(body)
        alert, delivery, sub, token = (doc.get(k) for k in ("alert", "delivery", "sub", "ack"))
        if not (isinstance(alert, str) and isinstance(sub, str) and isinstance(token, str)):
            raise SubscriptionError("an ack needs alert, delivery, sub and ack")
        if not isinstance(delivery, int) or isinstance(delivery, bool) or delivery < 1:
            raise SubscriptionError("delivery: a positive integer is required")
        if self.context.targets is None:
            raise ChannelNotReadyError("acks need a target registry")
        target = await self.context.targets.get(TARGET_PREFIX + sub)
        if target is None or "secret" not in target.params:
            return False
        expected = ack_token(str(target.params["secret"]), delivery, alert, sub)
        if not hmac.compare_digest(expected, token):
            return False
        shown = "shown on the subscriber's device"
        self.confirm(Confirmation(delivery, ConfirmationOutcome.CONFIRMED, shown))
        return True

    def _lookup(self) -> AbstractResolver:
        if self._names is None:
            raise ChannelNotReadyError(f"channel {self.name} is not running")
        return self._names

    def web_app(self) -> web.Application:
        return subscription_app(self)


def _mapping(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise SubscriptionError("the request body must be a JSON object")
    return body


def _key_file(settings: WebPushChannelConfig, name: str, data_dir: Path) -> Path:
    """Where the channel's VAPID key is kept: ``vapid_key_file``, else webpush-<name>/."""
    path = settings.vapid_key_file or Path(f"webpush-{name}") / "vapid.pem"
    return path if path.is_absolute() else data_dir / path
