"""Subscriptions as targets: checking what a browser sends and what the channel stores.

A resident's browser posts its ``PushSubscription`` (W3C Push API: ``endpoint`` and the keys
``p256dh`` and ``auth``) with the division they chose (a county or a township of the
deployment's division tree) and their languages. The subscription becomes one target::

    Target(id="push-<subscription id>", channel=<channel name>, name=…, address=<endpoint>,
           division=<12-digit code>, lat/lon=<the division's seat>, languages=(…),
           params={"p256dh": …, "auth": …, "secret": <ack secret>, "subscribed_at": …})

The subscription id is derived from the endpoint, so subscribing again with the same browser
(to change the area or the languages) replaces the target instead of adding one, and keeps its
ack secret. Knowing the endpoint (a capability URL only the browser and the push service hold)
is what entitles a caller to change or remove a subscription. Endpoints must point at public
addresses of push services (:mod:`channels.webpush.endpoints`); the host name is resolved and
checked when the browser subscribes, and again on every send.

:class:`SubscriptionError` (``ValueError``) names what is wrong with a request; nothing is
stored then.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver

from broadcaster.delivery import Target
from broadcaster.divisions import DivisionCodeError, DivisionTree
from channels.webpush.client import PushSubscription
from channels.webpush.ece import PushKeyError, auth_secret, subscriber_key
from channels.webpush.endpoints import (
    EndpointError,
    EndpointPolicy,
    check_endpoint,
    check_resolved,
    literal_address,
)

TARGET_PREFIX = "push-"
MAX_ENDPOINT_LENGTH = 2048
AREA_LEVELS = ("county", "township")


class SubscriptionError(ValueError):
    """A subscription request is invalid; the message says which field and why."""


@dataclass(frozen=True, slots=True)
class AreaChoice:
    """A county with its townships, as the subscription page offers them."""

    code: str
    name: str
    name_mn: str | None
    townships: tuple[tuple[str, str], ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "name": self.name,
            "name_mn": self.name_mn,
            "townships": [{"code": c, "name": n} for c, n in self.townships],
        }


def area_choices(tree: DivisionTree) -> list[AreaChoice]:
    """Every county of the tree with its townships, in code order."""
    return [
        AreaChoice(
            code=county.code,
            name=county.name,
            name_mn=county.name_mn,
            townships=tuple(
                (t.code, t.name) for t in tree.children(county.code) if t.level == "township"
            ),
        )
        for county in tree
        if county.level == "county"
    ]


def subscription_id(endpoint: str) -> str:
    """A stable id for the subscription at ``endpoint`` (no secret: derived, not chosen)."""
    return hashlib.sha256(endpoint.encode()).hexdigest()[:24]


def target_id(endpoint: str) -> str:
    return TARGET_PREFIX + subscription_id(endpoint)


def _field(doc: Mapping[str, Any], key: str, where: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value:
        raise SubscriptionError(f"{where}{key}: a non-empty string is required")
    return value


def parse_endpoint(doc: Any, policy: EndpointPolicy, *, where: str = "subscription") -> str:
    """The push endpoint in ``doc`` (the part of the request named ``where``); checks it by
    the rules that need no lookup (:func:`~channels.webpush.endpoints.check_endpoint`)."""
    if not isinstance(doc, Mapping):
        raise SubscriptionError(f"{where}: a JSON object with an endpoint is required")
    endpoint = _field(doc, "endpoint", "subscription.")
    if len(endpoint) > MAX_ENDPOINT_LENGTH:
        raise SubscriptionError(f"subscription.endpoint: longer than {MAX_ENDPOINT_LENGTH}")
    try:
        check_endpoint(endpoint, policy)
    except EndpointError as exc:
        raise SubscriptionError(f"subscription.endpoint: {exc}") from None
    return endpoint


async def check_endpoint_host(
    endpoint: str, policy: EndpointPolicy, names: AbstractResolver
) -> None:
    """Refuse an endpoint whose host name resolves to an address that is not public."""
    if policy.allow_private:
        return
    host = urlsplit(endpoint).hostname or ""
    if literal_address(host) is None:
        try:
            await check_resolved(host, names)
        except EndpointError as exc:
            raise SubscriptionError(f"subscription.endpoint: {exc}") from None


def parse_subscription(doc: Any, policy: EndpointPolicy) -> PushSubscription:
    """The browser's ``PushSubscription.toJSON()``, checked key by key."""
    endpoint = parse_endpoint(doc, policy)
    keys = doc.get("keys")
    if not isinstance(keys, Mapping):
        raise SubscriptionError("subscription.keys: an object with p256dh and auth is required")
    p256dh = _field(keys, "p256dh", "subscription.keys.")
    auth = _field(keys, "auth", "subscription.keys.")
    try:
        subscriber_key(p256dh)
        auth_secret(auth)
    except PushKeyError as exc:
        raise SubscriptionError(f"subscription.keys: {exc}") from None
    return PushSubscription(endpoint=endpoint, p256dh=p256dh, auth=auth)


def subscription_of(target: Target) -> PushSubscription:
    """The push subscription a target stands for."""
    params = target.params
    return PushSubscription(
        endpoint=target.address, p256dh=str(params["p256dh"]), auth=str(params["auth"])
    )


def build_target(
    body: Any,
    *,
    channel: str,
    tree: DivisionTree,
    languages: Sequence[str],
    policy: EndpointPolicy,
    previous: Target | None,
) -> Target:
    """The target for a subscribe request (``previous``: the same browser's current one)."""
    if not isinstance(body, Mapping):
        raise SubscriptionError("the request body must be a JSON object")
    subscription = parse_subscription(body.get("subscription"), policy)
    code = body.get("division")
    if not isinstance(code, str):
        raise SubscriptionError("division: a 12-digit division code is required")
    try:
        division = tree.get(code)
    except DivisionCodeError as exc:
        raise SubscriptionError(f"division: {exc}") from None
    if division is None or division.level not in AREA_LEVELS:
        raise SubscriptionError(f"division: {code} is no county or township of this service")
    chosen = body.get("languages") or [languages[0]]
    if not isinstance(chosen, list) or not all(lang in languages for lang in chosen):
        raise SubscriptionError(f"languages: a list drawn from {', '.join(languages)}")
    secret = str(previous.params["secret"]) if previous is not None else secrets.token_urlsafe(24)
    return Target(
        id=target_id(subscription.endpoint),
        channel=channel,
        name=f"网页推送 web push · {tree.path_names(division.code)}",
        address=subscription.endpoint,
        division=division.code,
        lat=division.lat,
        lon=division.lon,
        languages=tuple(dict.fromkeys(str(lang) for lang in chosen)),
        params={
            "p256dh": subscription.p256dh,
            "auth": subscription.auth,
            "secret": secret,
            "subscribed_at": int(time.time()),
        },
    )
