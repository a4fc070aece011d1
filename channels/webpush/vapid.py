"""VAPID: the application server's identity towards push services (RFC 8292).

The server holds one P-256 key pair. Its public key (65-byte uncompressed point, base64url) is
the ``applicationServerKey`` browsers subscribe with; every push request carries
``Authorization: vapid t=<JWT>, k=<public key>`` (RFC 8292 §3). The JWT is ES256-signed
(RFC 7515/7518: the signature is the raw ``r | s``, 64 bytes) with the claims ``aud`` (the
origin of the push endpoint), ``exp`` (at most 24 hours ahead, §2) and ``sub`` (a ``mailto:``
or ``https:`` contact, §2.1).

The JWT is made by PyJWT (``jwt.encode`` with ES256, which writes the raw ``r | s`` signature).
A signed JWT is reused for the same audience until an hour before it expires, so signing costs
nothing per message. Anyone may subscribe an endpoint on an origin of their own, so the cache
keeps only the ``MAX_AUDIENCES`` origins used most recently; one that falls out is signed for
again when it is next pushed to. The key comes from configuration or from a PEM file that
:func:`load_or_create_key` writes (mode 0600) on first start; the private key is never logged.
"""

from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from channels.webpush.ece import b64url_decode, b64url_encode

log = logging.getLogger(__name__)

TOKEN_LIFETIME = 12 * 3600
"""Seconds a JWT is valid; RFC 8292 §2 allows at most 24 hours."""
RENEW_BEFORE = 3600
MAX_AUDIENCES = 256
"""Origins whose header is kept: far more than the push services browsers use."""


class VapidKeyError(ValueError):
    """A configured or stored VAPID private key cannot be read."""


def parse_private_key(text: str) -> ec.EllipticCurvePrivateKey:
    """A P-256 private key from PEM (PKCS#8 or SEC1) or from a base64url 32-byte scalar."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_private_key(text.encode(), password=None)
        except (ValueError, TypeError) as exc:
            raise VapidKeyError("the VAPID key is not a readable PEM private key") from exc
    else:
        try:
            scalar = int.from_bytes(b64url_decode(text), "big")
            key = ec.derive_private_key(scalar, ec.SECP256R1())
        except ValueError as exc:
            raise VapidKeyError("the VAPID key is neither PEM nor a base64url P-256 key") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise VapidKeyError("the VAPID key must be an elliptic-curve key on P-256")
    return key


def read_key_file(path: Path) -> ec.EllipticCurvePrivateKey | None:
    """The key stored at ``path``, or None when there is no file yet."""
    if not path.exists():
        return None
    try:
        return parse_private_key(path.read_text(encoding="ascii"))
    except (OSError, UnicodeDecodeError) as exc:
        raise VapidKeyError(f"cannot read the VAPID key file {path}: {exc}") from exc
    except VapidKeyError as exc:
        raise VapidKeyError(f"{path}: {exc}") from exc


def load_or_create_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """Read the key stored at ``path``, or make one and store it there (mode 0600)."""
    stored = read_key_file(path)
    if stored is not None:
        return stored
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    log.warning("no VAPID key configured; generated one in %s", path)
    return key


def audience(endpoint: str) -> str:
    """The ``aud`` claim for a push endpoint: its origin (scheme, host and port)."""
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc}"


class VapidSigner:
    """Makes and caches the ``Authorization`` header for each push service origin."""

    def __init__(
        self,
        key: ec.EllipticCurvePrivateKey,
        subject: str,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = key
        self.subject = subject
        self._clock = clock
        self.public_key = b64url_encode(
            key.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
        )
        """The ``applicationServerKey`` browsers subscribe with (base64url)."""
        self._headers: OrderedDict[str, tuple[float, str]] = OrderedDict()
        """Per origin, when its JWT expires and the header; least recently used first."""

    def __repr__(self) -> str:
        return f"VapidSigner(public_key={self.public_key!r}, subject={self.subject!r})"

    def authorization(self, endpoint: str) -> str:
        """The ``Authorization`` header value for a request to ``endpoint``."""
        aud = audience(endpoint)
        now = self._clock()
        cached = self._headers.get(aud)
        if cached is not None and cached[0] - RENEW_BEFORE > now:
            self._headers.move_to_end(aud)
            return cached[1]
        expires = int(now) + TOKEN_LIFETIME
        header = f"vapid t={self._jwt(aud, expires)}, k={self.public_key}"
        self._headers[aud] = (float(expires), header)
        self._headers.move_to_end(aud)
        if len(self._headers) > MAX_AUDIENCES:
            self._headers.popitem(last=False)
        return header

    def _jwt(self, aud: str, expires: int) -> str:
        claims = {"aud": aud, "exp": expires, "sub": self.subject}
        return jwt.encode(claims, self._key, algorithm="ES256", headers={"typ": "JWT"})
