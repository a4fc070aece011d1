"""A local push-service stand-in (RFC 8030) and subscriber keys, for tests and benchmarks.

:class:`PushServiceStandIn` is an aiohttp app: ``POST /push/<subscription>`` checks the request
the way a push service does and accepts whatever RFC 8030, RFC 8291 and RFC 8292 allow a sender:

* ``Authorization: vapid t=<JWT>, k=<key>`` (RFC 8292 §3): scheme and parameter names in any
  case, parameters in any order, optional white space around ``,`` and ``=``, token or
  quoted-string values (RFC 9110 §11.2); the JWT is ES256-signed by ``k`` (RFC 8292 §2) with
  ``aud`` the origin of the push resource and ``exp`` no more than 24 hours ahead; ``sub`` is
  optional (§2.1) and kept in :attr:`ReceivedPush.claims` for tests to judge;
* header names compared without regard to case; ``TTL`` required (RFC 8030 §5.2); ``Topic``
  (§5.4) and ``Urgency`` (§5.3) optional but checked when present;
* a body needs ``Content-Encoding: aes128gcm`` (RFC 8291 §4); a push without a body is allowed.

A body is decrypted with the subscriber's private key by ``http_ece`` (an implementation
independent of the channel's) and the message recorded; it answers 201 with ``Location``, or what
the test scripted for that subscription (410, 429 with ``Retry-After``, 500, or a delay).

``on_push`` is called with every accepted message: tests use it to play the phone (post the
service worker's ack) or to hand the message to a real browser.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import os
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import http_ece
from aiohttp import web
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from multidict import CIMultiDict

_TOPIC = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_URGENCIES = {"very-low", "low", "normal", "high"}
_TCHARS = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_AUTH_PARAM = re.compile(rf'({_TCHARS})[ \t]*=[ \t]*({_TCHARS}|"(?:[^"\\]|\\.)*")')


def b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def vapid_params(header: str) -> dict[str, str] | None:
    """The auth-params of a ``vapid`` Authorization header (lower-cased names), or None."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "vapid":
        return None
    params: dict[str, str] = {}
    position = 0
    while position < len(rest):
        if rest[position] in " \t,":
            position += 1
            continue
        match = _AUTH_PARAM.match(rest, position)
        if match is None or match.group(1).lower() in params:
            return None
        name, value = match.groups()
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        params[name.lower()] = value
        position = match.end()
        following = rest[position:].lstrip(" \t")
        if following and not following.startswith(","):
            return None
    return params


@dataclass
class SubscriberKeys:
    """A browser's side of a subscription: its ECDH key pair and auth secret."""

    private_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    auth: bytes = field(default_factory=lambda: os.urandom(16))

    @property
    def p256dh(self) -> str:
        raw = self.private_key.public_key().public_bytes(
            Encoding.X962, PublicFormat.UncompressedPoint
        )
        return b64e(raw)

    def subscription(self, endpoint: str) -> dict[str, Any]:
        """What ``PushSubscription.toJSON()`` gives."""
        return {"endpoint": endpoint, "keys": {"p256dh": self.p256dh, "auth": b64e(self.auth)}}


@dataclass(frozen=True)
class ReceivedPush:
    """One accepted push: ``payload`` is the plaintext as a JSON object (None if it is none)."""

    subscription: str
    payload: dict[str, Any] | None
    headers: Mapping[str, str]
    size: int
    data: bytes = b""
    claims: Mapping[str, Any] = field(default_factory=dict)


class PushRefused(Exception):
    """A request no conforming sender makes: answered 400 with this text."""


class PushServiceStandIn:
    """Receives, verifies and decrypts pushes; answers as scripted per subscription."""

    def __init__(
        self,
        on_push: Callable[[ReceivedPush], Awaitable[None]] | None = None,
        *,
        decrypt: bool = True,
    ) -> None:
        self.keys: dict[str, SubscriberKeys] = {}
        self.script: dict[str, list[int | float]] = {}
        self.received: list[ReceivedPush] = []
        self.rejected: list[str] = []
        self.arrived = asyncio.Event()
        self.on_push = on_push
        self.decrypt = decrypt
        self.count = 0
        self._verified: dict[tuple[str, str], dict[str, Any]] = {}
        self.base_url = ""

    def subscriber(self, name: str) -> dict[str, Any]:
        """A new subscriber ``name`` at this service; returns its ``toJSON()`` form."""
        keys = self.keys.setdefault(name, SubscriberKeys())
        return keys.subscription(f"{self.base_url}/push/{name}")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/push/{name}", self._push)
        return app

    def check_vapid(self, header: str, origin: str) -> dict[str, Any]:
        """The JWT claims of a valid VAPID ``Authorization`` for ``origin``; PushRefused if not."""
        if (header, origin) not in self._verified:
            self._verified[header, origin] = _verify_vapid(header, origin)
        return self._verified[header, origin]

    async def _push(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        body = await request.read()
        try:
            claims = self.check_vapid(
                request.headers.get("Authorization", ""), str(request.url.origin())
            )
            _check_headers(request.headers, body)
        except PushRefused as refused:
            self.rejected.append(str(refused))
            return web.Response(status=400, text=str(refused))
        self.count += 1
        scripted = self.script.get(name)
        answer = scripted.pop(0) if scripted else 201
        if isinstance(answer, float):
            await asyncio.sleep(answer)
            answer = 201
        if answer != 201:
            extra = {"Retry-After": "7"} if answer == 429 else {}
            return web.Response(status=answer, headers=extra)
        if self.decrypt:
            try:
                plain = self._decrypt(name, body)
            except PushRefused as refused:
                self.rejected.append(str(refused))
                return web.Response(status=400, text=str(refused))
            push = ReceivedPush(
                name, _json_object(plain), CIMultiDict(request.headers), len(body), plain, claims
            )
            self.received.append(push)
            self.arrived.set()
            if self.on_push is not None:
                await self.on_push(push)
        return web.Response(status=201, headers={"Location": f"/msg/{name}/{self.count}"})

    def _decrypt(self, name: str, body: bytes) -> bytes:
        if not body:
            return b""
        keys = self.keys.get(name)
        if keys is None:
            raise PushRefused(f"no subscription {name}")
        try:
            plain: bytes = http_ece.decrypt(
                body, private_key=keys.private_key, auth_secret=keys.auth, version="aes128gcm"
            )
        except (InvalidTag, ValueError, http_ece.ECEException) as exc:
            raise PushRefused(f"body does not decrypt (RFC 8291): {exc}") from exc
        return plain


def _verify_vapid(header: str, origin: str) -> dict[str, Any]:
    params = vapid_params(header)
    if params is None or "t" not in params or "k" not in params:
        raise PushRefused("no VAPID Authorization")
    try:
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64d(params["k"]))
        head, body, signature = params["t"].split(".")
        jose = json.loads(b64d(head))
        claims = json.loads(b64d(body))
        raw = b64d(signature)
    except (ValueError, binascii.Error) as exc:
        raise PushRefused(f"malformed VAPID token or key: {exc}") from exc
    if not isinstance(jose, dict) or jose.get("alg") != "ES256" or not isinstance(claims, dict):
        raise PushRefused("VAPID token is not an ES256 JWT")
    if len(raw) != 64:
        raise PushRefused("ES256 signature is not 64 bytes")
    der = encode_dss_signature(int.from_bytes(raw[:32]), int.from_bytes(raw[32:]))
    try:
        public.verify(der, f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise PushRefused("bad JWT signature") from exc
    if claims.get("aud") != origin:
        raise PushRefused(f"aud {claims.get('aud')} is not {origin}")
    expires = claims.get("exp")
    if not isinstance(expires, int | float) or not time.time() < expires <= time.time() + 86400:
        raise PushRefused("exp not within 24 h")
    if "sub" in claims and not isinstance(claims["sub"], str):
        raise PushRefused("sub is not a string")
    return claims


def _check_headers(headers: Mapping[str, str], body: bytes) -> None:
    if not re.fullmatch(r"[0-9]+", headers.get("TTL", "")):
        raise PushRefused("TTL missing")
    if body and headers.get("Content-Encoding", "").lower() != "aes128gcm":
        raise PushRefused("Content-Encoding is not aes128gcm")
    if "Topic" in headers and not _TOPIC.match(headers["Topic"]):
        raise PushRefused("Topic is not 1-32 base64url characters")
    if "Urgency" in headers and headers["Urgency"].lower() not in _URGENCIES:
        raise PushRefused("Urgency is not very-low, low, normal or high")


def _json_object(plain: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(plain)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
