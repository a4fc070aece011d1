"""Web push message encryption: RFC 8291 key derivation over RFC 8188 ``aes128gcm`` records.

One push message is one record (RFC 8291 §4: push services accept at least 4,096 bytes of
body), so the plaintext fits in ``MAX_PLAINTEXT`` = 4096 − 86 (header) − 16 (tag) − 1
(padding delimiter) = 3,993 bytes.

Steps (RFC 8291 §3.3–3.4, RFC 8188 §2):

- a fresh P-256 key pair per message (the application server's ``as_public``) and an ECDH
  shared secret with the subscriber's ``p256dh`` key (``ua_public``);
- ``IKM = HKDF(salt=auth_secret, ikm=ecdh_secret,
  info="WebPush: info" 0x00 ua_public as_public, L=32)``;
- with a random 16-byte salt: ``CEK = HKDF(salt, IKM, "Content-Encoding: aes128gcm" 0x00, 16)``
  and ``NONCE = HKDF(salt, IKM, "Content-Encoding: nonce" 0x00, 12)``;
- body = ``salt | rs (uint32) | idlen=65 | as_public`` then AES-128-GCM over
  ``plaintext | 0x02`` (0x02 marks the last record).

HKDF is ``cryptography``'s (RFC 5869); ECDH and AES-GCM come from the same library, so only the
RFC 8291 key schedule and the record layout are written here.

Errors: :class:`PushKeyError` (``ValueError``) for a subscriber key that is not a valid P-256
point or an auth secret that is not 16 bytes; :class:`PayloadTooLargeError` (``ValueError``)
for a plaintext over the limit.
"""

from __future__ import annotations

import base64
import os
import struct
from functools import lru_cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

RECORD_SIZE = 4096
HEADER_SIZE = 16 + 4 + 1 + 65
TAG_SIZE = 16
MAX_PLAINTEXT = RECORD_SIZE - HEADER_SIZE - TAG_SIZE - 1
"""3,993 bytes: the largest plaintext one push message carries."""

CONTENT_ENCODING = "aes128gcm"

_KEY_INFO = b"WebPush: info\x00"
_CEK_INFO = b"Content-Encoding: aes128gcm\x00"
_NONCE_INFO = b"Content-Encoding: nonce\x00"
_LAST_RECORD = b"\x02"


class PushKeyError(ValueError):
    """A subscriber's ``p256dh`` key or ``auth`` secret is unusable."""


class PayloadTooLargeError(ValueError):
    """A plaintext does not fit in one push message."""


def b64url_decode(text: str) -> bytes:
    """Decode base64url with or without padding (browsers send it unpadded)."""
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (ValueError, TypeError):
        raise PushKeyError(f"a value of {len(text)} characters is not base64url") from None


def b64url_encode(data: bytes) -> str:
    """base64url without padding, as the Push API and VAPID write it."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@lru_cache(maxsize=4096)
def subscriber_key(p256dh: str) -> ec.EllipticCurvePublicKey:
    """The subscriber's public key from its base64url ``p256dh`` (65-byte uncompressed point).

    Cached: parsing checks the point is on the curve, which costs as much as the ECDH itself.
    """
    raw = b64url_decode(p256dh)
    if len(raw) != 65 or raw[0] != 0x04:
        raise PushKeyError(f"p256dh must be a 65-byte uncompressed P-256 point, got {len(raw)}")
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    except ValueError as exc:
        raise PushKeyError("p256dh is not a point on P-256") from exc


def auth_secret(auth: str) -> bytes:
    """The subscriber's 16-byte authentication secret from its base64url ``auth``."""
    raw = b64url_decode(auth)
    if len(raw) != 16:
        raise PushKeyError(f"auth must be 16 bytes, got {len(raw)}")
    return raw


def _hkdf(salt: bytes, ikm: bytes, info: bytes, length: int) -> bytes:
    """HKDF-SHA-256 (RFC 5869)."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def encrypt(
    plaintext: bytes,
    p256dh: str,
    auth: str,
    *,
    salt: bytes | None = None,
    sender_key: ec.EllipticCurvePrivateKey | None = None,
) -> bytes:
    """The ``aes128gcm`` body of one push message for the subscriber ``(p256dh, auth)``.

    ``salt`` and ``sender_key`` are fresh for every message unless given (test vectors only).
    """
    if len(plaintext) > MAX_PLAINTEXT:
        raise PayloadTooLargeError(
            f"payload is {len(plaintext)} bytes; one push message carries {MAX_PLAINTEXT}"
        )
    ua_key = subscriber_key(p256dh)
    secret = auth_secret(auth)
    as_private = sender_key or ec.generate_private_key(ec.SECP256R1())
    as_public = as_private.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    ua_public = ua_key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    ecdh_secret = as_private.exchange(ec.ECDH(), ua_key)
    ikm = _hkdf(secret, ecdh_secret, _KEY_INFO + ua_public + as_public, 32)
    salt = salt if salt is not None else os.urandom(16)
    cek = _hkdf(salt, ikm, _CEK_INFO, 16)
    nonce = _hkdf(salt, ikm, _NONCE_INFO, 12)
    header = salt + struct.pack("!IB", RECORD_SIZE, len(as_public)) + as_public
    return header + AESGCM(cek).encrypt(nonce, plaintext + _LAST_RECORD, None)
