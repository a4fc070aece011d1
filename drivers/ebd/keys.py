"""SM2 keys and certificates from files: private keys with safe modes, peers' certificates as a
trust list (GB/T 32918 keys in PKCS#8 / SEC 1 PEM, X.509 certificates in PEM, as ``openssl``
writes them).

Only the few DER structures needed are read: the 32-byte private scalar of an EC private key,
and the uncompressed point (``04 || x || y``) of an SM2 SubjectPublicKeyInfo. A private-key file
readable by group or others is refused, as ``ssh`` does.
"""

from __future__ import annotations

import base64
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

import gmalg

from drivers.ebd.errors import EbdConfigError

SM2_CURVE_OID = bytes.fromhex("06082a811ccf5501822d")
_PEM = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\s+(.*?)-----END \1-----", re.S)


@dataclass(frozen=True)
class PeerCertificate:
    """A trusted peer: the 6-byte certificate id its signatures name, and its public key."""

    cert_id: bytes
    public_key: bytes
    source: str


def _pem_blocks(data: bytes, where: str) -> list[tuple[str, bytes]]:
    blocks = []
    for label, body in _PEM.findall(data):
        try:
            blocks.append((label.decode(), base64.b64decode(body, validate=False)))
        except ValueError as error:
            raise EbdConfigError(f"{where}: damaged PEM block ({error})") from error
    if not blocks:
        raise EbdConfigError(f"{where}: no PEM block found")
    return blocks


def _tlv(data: bytes, offset: int, where: str) -> tuple[int, int, int]:
    """(tag, start of content, end of content) of the DER element at ``offset``."""
    if offset + 2 > len(data):
        raise EbdConfigError(f"{where}: truncated DER")
    tag, length = data[offset], data[offset + 1]
    start = offset + 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or start + count > len(data):
            raise EbdConfigError(f"{where}: bad DER length")
        length = int.from_bytes(data[start : start + count], "big")
        start += count
    if start + length > len(data):
        raise EbdConfigError(f"{where}: truncated DER")
    return tag, start, start + length


def _elements(data: bytes, where: str) -> list[tuple[int, bytes]]:
    """The DER elements that follow each other in ``data``: (tag, content)."""
    items = []
    offset = 0
    while offset < len(data):
        tag, start, stop = _tlv(data, offset, where)
        items.append((tag, data[start:stop]))
        offset = stop
    return items


def _ec_scalar(data: bytes, depth: int = 0) -> bytes | None:
    """The private scalar of the first ECPrivateKey (INTEGER 1, OCTET STRING) inside ``data``."""
    try:
        items = _elements(data, "")
    except EbdConfigError:
        return None
    for index, (tag, value) in enumerate(items):
        following = items[index + 1] if index + 1 < len(items) else (0, b"")
        if tag == 0x02 and value == b"\x01" and following[0] == 0x04:
            return following[1]
        if tag in (0x30, 0x04) and depth < 4:
            found = _ec_scalar(value, depth + 1)
            if found is not None:
                return found
    return None


def load_private_key(path: Path) -> int:
    """The SM2 private scalar from a PEM file that only its owner can read."""
    try:
        mode = os.stat(path).st_mode
        data = path.read_bytes()
    except OSError as error:
        raise EbdConfigError(f"private key {path}: {error.strerror}") from error
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise EbdConfigError(
            f"private key {path}: readable by group or others (mode {stat.S_IMODE(mode):o});"
            " chmod 600 it"
        )
    for label, der in _pem_blocks(data, str(path)):
        scalar = _ec_scalar(der) if label in ("PRIVATE KEY", "EC PRIVATE KEY") else None
        if scalar is not None and len(scalar) == 32 and SM2_CURVE_OID in der:
            return int.from_bytes(scalar, "big")
    raise EbdConfigError(f"private key {path}: no SM2 private key found")


def public_key_from_der(der: bytes, where: str) -> bytes:
    """The 65-byte uncompressed SM2 point of the SubjectPublicKeyInfo inside ``der``."""
    at = der.find(SM2_CURVE_OID)
    if at < 0:
        raise EbdConfigError(f"{where}: not an SM2 key")
    tag, start, end = _tlv(der, at + len(SM2_CURVE_OID), where)
    point = der[start + 1 : end]
    if tag != 0x03 or len(point) != 65 or point[0] != 0x04:
        raise EbdConfigError(f"{where}: the SM2 public key is not an uncompressed point")
    if not gmalg.SM2().verify_pk(point):
        raise EbdConfigError(f"{where}: the SM2 public key is not a point of the curve")
    return point


def load_certificate(path: Path, cert_id: bytes | None = None) -> PeerCertificate:
    """A peer certificate (or bare public key) PEM; its id is the serial's last 6 bytes."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise EbdConfigError(f"certificate {path}: {error.strerror}") from error
    label, der = _pem_blocks(data, str(path))[0]
    point = public_key_from_der(der, str(path))
    if cert_id is None:
        if label != "CERTIFICATE":
            raise EbdConfigError(f"{path}: a bare public key needs its certificate id given")
        cert_id = _serial(der, str(path))[-6:].rjust(6, b"\0")
    if len(cert_id) != 6:
        raise EbdConfigError(f"{path}: a certificate id is 6 bytes, not {len(cert_id)}")
    return PeerCertificate(cert_id=cert_id, public_key=point, source=str(path))


def _serial(der: bytes, where: str) -> bytes:
    _, start, _ = _tlv(der, 0, where)  # Certificate
    _, start, _ = _tlv(der, start, where)  # TBSCertificate
    tag, content, end = _tlv(der, start, where)
    if tag == 0xA0:  # [0] version
        tag, content, end = _tlv(der, end, where)
    if tag != 0x02:
        raise EbdConfigError(f"{where}: no serial number")
    return der[content:end].lstrip(b"\0") or b"\0"


class TrustList:
    """Peers' certificates by certificate id."""

    def __init__(self, certificates: list[PeerCertificate]) -> None:
        self._by_id = {certificate.cert_id: certificate for certificate in certificates}

    @classmethod
    def from_paths(cls, paths: list[Path]) -> TrustList:
        """Load every ``.pem``/``.crt`` file given, or found in a given folder."""
        files: list[Path] = []
        for path in paths:
            if path.is_dir():
                files.extend(sorted(p for p in path.iterdir() if p.suffix in (".pem", ".crt")))
            else:
                files.append(path)
        return cls([load_certificate(path) for path in files])

    def get(self, cert_id: bytes) -> PeerCertificate | None:
        """The certificate with this id, or None when the peer is not trusted."""
        return self._by_id.get(cert_id)

    def __len__(self) -> int:
        return len(self._by_id)
