"""Package signatures (GD/J 081-2018 as deployed): the ``SignatureValue`` layout, the
``EBDS_EBDB_<EBDID>.xml`` file in both generations, and the ``Signer``/``Verifier`` interface.

What is signed is the raw bytes of the ``EBDB`` file exactly as they sit in the tar; it is
never re-serialised. ``SignatureValue`` is Base64 of 74 bytes: a 4-byte counter (the Unix time
of signing in the deployed samples), the 6-byte certificate id, and the 64-byte SM2 signature
r‖s.

A signer is anything with ``sign(data) -> SignatureValue``: ``drivers.ebd.sm2.Sm2Signer`` in
software, or a hardware crypto device (for example a TASS card whose
``Platform_CalculateSignature`` already returns the 74 bytes: wrap it and return
``SignatureValue.unpack(result)``), or a signing service reached over HTTP from a thread. A
verifier raises ``EbdSignatureError`` (EBDResponse ResultCode 4) or returns.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from lxml import etree

from drivers.ebd.codes import check_ebdid
from drivers.ebd.errors import EbdFormatError, EbdSignatureError
from drivers.ebd.package import Package
from drivers.ebd.xmlsafe import add, child, parse_xml, required, serialize, text

SIGNATURE_BYTES = 64
VALUE_BYTES = 4 + 6 + SIGNATURE_BYTES


@dataclass(frozen=True)
class SignatureValue:
    """The decoded ``SignatureValue``: counter, certificate id and SM2 r‖s."""

    counter: int
    cert_id: bytes
    signature: bytes

    def pack(self) -> bytes:
        """The 74 raw bytes."""
        if not 0 <= self.counter < 2**32:
            raise EbdFormatError(f"counter {self.counter} does not fit 4 bytes", "SignatureValue")
        if len(self.cert_id) != 6 or len(self.signature) != SIGNATURE_BYTES:
            raise EbdFormatError("certificate id or signature is not 6/64 bytes", "SignatureValue")
        return self.counter.to_bytes(4, "big") + self.cert_id + self.signature

    @classmethod
    def unpack(cls, raw: bytes) -> SignatureValue:
        """Split the 74 raw bytes."""
        if len(raw) != VALUE_BYTES:
            raise EbdFormatError(f"{len(raw)} bytes, not {VALUE_BYTES}", "SignatureValue")
        return cls(int.from_bytes(raw[:4], "big"), raw[4:10], raw[10:])

    def to_text(self) -> str:
        """Base64, as written in the EBDS file."""
        return base64.b64encode(self.pack()).decode("ascii")

    @classmethod
    def from_text(cls, value: str) -> SignatureValue:
        """Decode the Base64 text of the EBDS file."""
        try:
            raw = base64.b64decode("".join(value.split()), validate=True)
        except (binascii.Error, ValueError) as error:
            raise EbdFormatError("is not Base64", "Signature/SignatureValue") from error
        return cls.unpack(raw)


class Signer(Protocol):
    """Signs the bytes of an EBDB file; raises ``EbdSignatureError`` when it cannot."""

    def sign(self, data: bytes) -> SignatureValue:
        """The signature value over ``data``."""
        ...


class Verifier(Protocol):
    """Checks a signature value over the bytes of an EBDB file."""

    def verify(self, data: bytes, value: SignatureValue) -> None:
        """Return when the signature is good; raise ``EbdSignatureError`` otherwise."""
        ...


class SignatureForm(StrEnum):
    """Which generation of the EBDS file to write (both are read)."""

    CURRENT = "2018"  # CertSN, SignatureAlgorithm "SM2-SM3"
    LEGACY = "2016"  # SignatureCert, SignatureTime, DigestAlgorithm "SM3", "SM2"


@dataclass(frozen=True)
class SignatureFile:
    """What an EBDS file says."""

    related_ebdid: str
    value: SignatureValue
    cert_sn: str | None = None


def write_signature_file(
    ebdid: str, value: SignatureValue, form: SignatureForm = SignatureForm.CURRENT
) -> bytes:
    """The bytes of ``EBDS_EBDB_<EBDID>.xml``; CertSN is the certificate id in hex."""
    root = etree.Element("Signature")
    add(root, "Version", "1.0")
    add(add(root, "RelatedEBD"), "EBDID", check_ebdid(ebdid))
    cert_sn = value.cert_id.hex().upper()
    if form is SignatureForm.CURRENT:
        add(root, "CertSN", cert_sn)
        add(root, "SignatureAlgorithm", "SM2-SM3")
    else:
        cert = add(root, "SignatureCert")
        add(cert, "CertType", "1")
        add(cert, "IssuerID", "")
        add(cert, "CertSN", cert_sn)
        add(root, "SignatureTime", f"{value.counter:x}")
        add(root, "DigestAlgorithm", "SM3")
        add(root, "SignatureAlgorithm", "SM2")
    add(root, "SignatureValue", value.to_text())
    return serialize(root)


def read_signature_file(data: bytes) -> SignatureFile:
    """Parse either generation of the EBDS file."""
    root = parse_xml(data, "Signature")
    if etree.QName(root).localname != "Signature":
        raise EbdFormatError("root element is not <Signature>", "Signature")
    cert = child(root, "SignatureCert")
    cert_sn = text(root, "CertSN", "Signature")
    if cert is not None:
        cert_sn = cert_sn or text(cert, "CertSN", "Signature/SignatureCert")
    return SignatureFile(
        related_ebdid=required(root, "RelatedEBD/EBDID", "Signature"),
        value=SignatureValue.from_text(required(root, "SignatureValue", "Signature")),
        cert_sn=cert_sn,
    )


def sign_package(
    package: Package, signer: Signer, form: SignatureForm = SignatureForm.CURRENT
) -> Package:
    """The package with its EBDS file made by ``signer`` over the EBDB bytes."""
    value = signer.sign(package.ebdb)
    ebds = write_signature_file(package.ebdid, value, form)
    return Package(package.ebdid, package.ebdb, ebds, dict(package.resources))


def verify_package(package: Package, verifier: Verifier) -> SignatureFile:
    """Check the package's EBDS against its EBDB bytes; ``EbdSignatureError`` if it fails."""
    if package.ebds is None:
        raise EbdSignatureError(f"package {package.ebdid} carries no EBDS signature file")
    try:
        signature = read_signature_file(package.ebds)
    except EbdFormatError as error:
        raise EbdSignatureError(f"signature file unreadable: {error}") from error
    if signature.related_ebdid != package.ebdid:
        raise EbdSignatureError(
            f"signature file signs {signature.related_ebdid}, not {package.ebdid}"
        )
    verifier.verify(package.ebdb, signature.value)
    return signature
