"""A local push-service stand-in (RFC 8030) and subscriber keys, for tests and benchmarks.

:class:`PushServiceStandIn` is an aiohttp app: ``POST /push/<subscription>`` checks the
request the way a push service does (VAPID ``Authorization`` with a valid ES256 JWT for its own
origin, ``TTL``, ``Content-Encoding: aes128gcm``, ``Topic`` ≤ 32 base64url characters), then
decrypts the body with the subscriber's private key using ``http_ece`` (an implementation
independent of the channel's) and records the message. It answers 201 with ``Location``, or
what the test scripted for that subscription (410, 429 with ``Retry-After``, 500, or a delay).

``on_push`` is called with every decrypted message: tests use it to play the phone (post the
service worker's ack) or to hand the message to a real browser.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import http_ece
from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

_TOPIC = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


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
    subscription: str
    payload: dict[str, Any]
    headers: dict[str, str]
    size: int


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
        self._verified: set[str] = set()
        self.base_url = ""

    def subscriber(self, name: str) -> dict[str, Any]:
        """A new subscriber ``name`` at this service; returns its ``toJSON()`` form."""
        keys = self.keys.setdefault(name, SubscriberKeys())
        return keys.subscription(f"{self.base_url}/push/{name}")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/push/{name}", self._push)
        return app

    def _check_vapid(self, request: web.Request) -> str | None:
        header = request.headers.get("Authorization", "")
        if header in self._verified:
            return None
        problem = self._verify_vapid(header)
        if problem is None:
            self._verified.add(header)
        return problem

    def _verify_vapid(self, header: str) -> str | None:
        match = re.fullmatch(r"vapid t=([^,]+), k=(\S+)", header)
        if match is None:
            return "no VAPID Authorization"
        token, key = match.groups()
        head, body, signature = token.split(".")
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64d(key))
        raw = b64d(signature)
        der = encode_dss_signature(int.from_bytes(raw[:32]), int.from_bytes(raw[32:]))
        try:
            public.verify(der, f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return "bad JWT signature"
        claims = json.loads(b64d(body))
        if claims["aud"] != self.base_url:
            return f"aud {claims['aud']} is not {self.base_url}"
        if not time.time() < claims["exp"] <= time.time() + 24 * 3600:
            return "exp not within 24 h"
        if not claims["sub"].startswith(("mailto:", "https:")):
            return "sub is no contact"
        return None

    async def _push(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        problem = self._check_vapid(request)
        headers = dict(request.headers)
        if problem is None and headers.get("Content-Encoding") != "aes128gcm":
            problem = "Content-Encoding is not aes128gcm"
        if problem is None and not headers.get("TTL", "").isdigit():
            problem = "TTL missing"
        if problem is None and not _TOPIC.match(headers.get("Topic", "")):
            problem = "Topic is not 1-32 base64url characters"
        if problem is not None:
            self.rejected.append(problem)
            return web.Response(status=400, text=problem)
        body = await request.read()
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
            keys = self.keys[name]
            plain = http_ece.decrypt(
                body, private_key=keys.private_key, auth_secret=keys.auth, version="aes128gcm"
            )
            push = ReceivedPush(name, json.loads(plain), headers, len(body))
            self.received.append(push)
            self.arrived.set()
            if self.on_push is not None:
                await self.on_push(push)
        return web.Response(status=201, headers={"Location": f"/msg/{name}/{self.count}"})
