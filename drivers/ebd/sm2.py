"""Software SM2-with-SM3 signing and verification of EBD packages (GB/T 32918.2, GB/T 32905).

The curve arithmetic comes from ``gmalg`` (pure Python; its nonce comes from ``secrets``, and
its verifier range-checks r and s). This module adds what the EBD format needs around it: the
SM2 user id (``1234567812345678`` unless configured), whether the 4-byte counter is appended to
the signed bytes (off unless configured; the standard text was not available), the counter
(the Unix time, as in deployed samples), r and s range checks on both sides, and the lookup of
the signer's public key in a trust list by the certificate id inside the value.

A ``gmalg.SM2`` object reuses one SM3 state for every hash, so two threads signing with the
same object corrupt each other's digests; each signer and verifier here holds a lock, as the
driver signs and verifies in worker threads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import gmalg

from drivers.ebd.errors import EbdConfigError, EbdSignatureError
from drivers.ebd.keys import TrustList
from drivers.ebd.signature import SIGNATURE_BYTES, SignatureValue

DEFAULT_USER_ID = b"1234567812345678"
CURVE_ORDER = int("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123", 16)


def _in_range(value: int) -> bool:
    return 1 <= value < CURVE_ORDER


def signed_bytes(data: bytes, counter: int, counter_signed: bool) -> bytes:
    """The message SM2 signs: the EBDB bytes, followed by the counter if so configured."""
    return data + counter.to_bytes(4, "big") if counter_signed else data


def public_key_of(private_key: int) -> bytes:
    """The uncompressed public point of an SM2 private scalar."""
    if not _in_range(private_key):
        raise EbdConfigError("SM2 private key is out of range")
    return bytes(gmalg.SM2().generate_pk(private_key.to_bytes(32, "big")))


class Sm2Signer:
    """Signs with an SM2 private key held in memory."""

    def __init__(
        self,
        private_key: int,
        cert_id: bytes,
        *,
        user_id: bytes = DEFAULT_USER_ID,
        counter_signed: bool = False,
        counter: Callable[[], int] | None = None,
    ) -> None:
        if len(cert_id) != 6:
            raise EbdConfigError(f"certificate id is 6 bytes, not {len(cert_id)}")
        self.cert_id = cert_id
        self.public_key = public_key_of(private_key)
        self._sm2 = gmalg.SM2(private_key.to_bytes(32, "big"), user_id, self.public_key)
        self._counter_signed = counter_signed
        self._counter = counter or (lambda: int(time.time()))
        self._lock = threading.Lock()

    def sign(self, data: bytes) -> SignatureValue:
        """Sign ``data`` (the EBDB bytes) with a fresh nonce."""
        counter = self._counter() & 0xFFFFFFFF
        with self._lock:
            r, s = self._sm2.sign(signed_bytes(data, counter, self._counter_signed))
        r_int, s_int = int.from_bytes(r, "big"), int.from_bytes(s, "big")
        if not (_in_range(r_int) and _in_range(s_int)):
            raise EbdSignatureError("SM2 produced r or s out of range")
        half = SIGNATURE_BYTES // 2
        raw = r_int.to_bytes(half, "big") + s_int.to_bytes(half, "big")
        return SignatureValue(counter, self.cert_id, raw)


class Sm2Verifier:
    """Verifies against the public keys of a trust list."""

    def __init__(
        self,
        trust: TrustList,
        *,
        user_id: bytes = DEFAULT_USER_ID,
        counter_signed: bool = False,
    ) -> None:
        self._trust = trust
        self.trusted = len(trust)
        """How many certificates the trust list holds."""
        self._user_id = user_id
        self._counter_signed = counter_signed
        self._cache: dict[bytes, gmalg.SM2] = {}
        self._lock = threading.Lock()

    def verify(self, data: bytes, value: SignatureValue) -> None:
        """Return when ``value`` is a good signature over ``data`` by a trusted certificate."""
        peer = self._trust.get(value.cert_id)
        if peer is None:
            raise EbdSignatureError(f"certificate {value.cert_id.hex()} is not trusted")
        half = SIGNATURE_BYTES // 2
        r, s = value.signature[:half], value.signature[half:]
        if not (_in_range(int.from_bytes(r, "big")) and _in_range(int.from_bytes(s, "big"))):
            raise EbdSignatureError("signature r or s is out of range")
        message = signed_bytes(data, value.counter, self._counter_signed)
        with self._lock:
            sm2 = self._cache.get(value.cert_id)
            if sm2 is None:
                sm2 = self._cache[value.cert_id] = gmalg.SM2(None, self._user_id, peer.public_key)
            good = sm2.verify(message, r, s)
        if not good:
            raise EbdSignatureError(f"signature by certificate {value.cert_id.hex()} is wrong")
