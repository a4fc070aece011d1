"""Settings of one link to a peer 应急广播平台, validated once, and the signing settings.

Every value the sources leave uncertain is here with the best-supported default (see
``docs/protocols/ebd.md`` §3 and §4): the SM2 user id, whether the counter is signed, the EBDS
generation, whether heartbeats are verified, the EBMID sequence width and the timeouts. Bad
values raise :class:`~drivers.ebd.errors.EbdConfigError` naming the setting.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from drivers.ebd.client import PostTimeouts
from drivers.ebd.codes import check_ebrid
from drivers.ebd.errors import EbdConfigError, EbdFormatError
from drivers.ebd.keys import TrustList, load_private_key
from drivers.ebd.signature import SignatureForm
from drivers.ebd.sm2 import DEFAULT_USER_ID, Sm2Signer, Sm2Verifier


@dataclass(frozen=True, slots=True)
class EbdSigningConfig:
    """Our key and certificate id, the peers' certificates, and the uncertain SM2 details."""

    key_file: Path
    cert_id: str
    trust: tuple[Path, ...]
    user_id: str = DEFAULT_USER_ID.decode()
    counter_signed: bool = False
    form: SignatureForm = SignatureForm.CURRENT
    verify_heartbeat: bool = True

    def validate(self) -> EbdSigningConfig:
        """Return self if every value is usable; raise naming the first that is not."""
        if not re.fullmatch(r"[0-9A-Fa-f]{12}", self.cert_id):
            raise EbdConfigError(f"cert_id: {self.cert_id!r} is not 6 bytes in hex")
        if not self.trust:
            raise EbdConfigError("trust: at least one peer certificate is needed")
        if not self.user_id or len(self.user_id.encode()) > 8191:
            raise EbdConfigError("user_id: must be 1 to 8191 bytes")
        return self

    def signer(self) -> Sm2Signer:
        """Load the private key (refused when others can read it) into a software signer."""
        return Sm2Signer(
            load_private_key(self.key_file),
            bytes.fromhex(self.validate().cert_id),
            user_id=self.user_id.encode(),
            counter_signed=self.counter_signed,
        )

    def verifier(self) -> Sm2Verifier:
        """Load the peers' certificates into a verifier."""
        trust = TrustList.from_paths(list(self.validate().trust))
        return Sm2Verifier(trust, user_id=self.user_id.encode(), counter_signed=self.counter_signed)


@dataclass(frozen=True, slots=True)
class EbdPeerConfig:
    """Who we are, who the peer is, where each receives packages, and how patiently to wait."""

    local_ebrid: str
    peer_ebrid: str
    peer_url: str
    local_url: str | None = None
    connect_timeout: float = 10.0
    timeout: float = 60.0
    heartbeat_seconds: float = 60.0
    ebmid_width: int = 4

    def validate(self) -> EbdPeerConfig:
        """Return self if every value is usable; raise naming the first that is not."""
        for name in ("local_ebrid", "peer_ebrid"):
            try:
                check_ebrid(getattr(self, name), name)
            except EbdFormatError as error:
                raise EbdConfigError(str(error)) from error
        for name in ("peer_url", "local_url"):
            value = getattr(self, name)
            if value is None and name == "local_url":
                continue
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise EbdConfigError(f"{name}: {value!r} is not an http(s) URL")
        for name in ("connect_timeout", "timeout", "heartbeat_seconds"):
            if not getattr(self, name) > 0:
                raise EbdConfigError(f"{name}: must be a positive number of seconds")
        if not 1 <= self.ebmid_width <= 4:
            raise EbdConfigError("ebmid_width: must be 1 to 4 (an EBMID has at most 35 digits)")
        return self

    @property
    def timeouts(self) -> PostTimeouts:
        """The timeouts for ``post_package``."""
        return PostTimeouts(self.connect_timeout, self.timeout)
