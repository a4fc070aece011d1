"""Enveloped XML signatures on CAP alerts (CAP 1.2 §3.3.4.1 "Digital Signature", W3C XML-DSig).

:func:`verify_signature` reports two separate facts, never a bare "invalid": whether the
signature matches the document (``unsigned``, ``valid``, ``tampered``, ``malformed``) and what
is known of the certificate that signed it (``trusted``, ``untrusted``, ``expired``,
``not-yet-valid``). The cryptographic check uses the certificate embedded in ``<KeyInfo>`` at a
moment inside its validity, so an expired certificate does not hide a good signature; validity
and trust are then judged at ``at`` (default now) against the caller's trusted certificates.
Documents pretty-printed after signing are tried again with blank text between elements
removed. A base64 value that is not canonical (altered by hand) counts as tampering; a
signature whose structure breaks the XML-DSig schema otherwise (e.g. an ``Id`` that is not an
XML name) is malformed.

:class:`AlertSigner` appends an enveloped signature (RSA or ECDSA with SHA-256, C14N 1.1) as
the last child of ``<alert>``; :func:`broadcaster.cap.serialize.to_xml` uses it.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature as CryptoInvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from lxml import etree
from signxml.algorithms import (
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureConstructionMethod,
    SignatureMethod,
)
from signxml.exceptions import InvalidCertificate, InvalidDigest, InvalidInput
from signxml.exceptions import InvalidSignature as XmlInvalidSignature
from signxml.signer import XMLSigner
from signxml.verifier import SignatureConfiguration, XMLVerifier

from broadcaster.cap.parse import declares_dtd, safe_parser
from broadcaster.errors import CapError

DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"
_NCNAME = re.compile(r"[A-Za-z_][\w.\-]*")
_BASE64_ELEMENTS = ("SignatureValue", "DigestValue", "X509Certificate")

SignatureStatus = Literal["unsigned", "valid", "tampered", "malformed"]
CertificateStatus = Literal["none", "trusted", "untrusted", "expired", "not-yet-valid"]


@dataclass
class SignatureReport:
    """What is known about the signature of one CAP document."""

    status: SignatureStatus
    certificate: CertificateStatus
    subject: str | None = None
    not_before: datetime | None = None
    not_after: datetime | None = None
    detail: str = ""
    fingerprint: str | None = None
    """The SHA-256 of the signing certificate (hex): who signed, beyond the subject it names."""


def verify_signature(
    raw: bytes,
    *,
    trusted_certs: Sequence[bytes] = (),
    at: datetime | None = None,
    element: str = "alert",
) -> SignatureReport:
    """Check the enveloped signature of ``raw`` and judge its certificate at ``at``.

    The signature must cover the whole document, whose root is ``element`` (a CAP
    ``alert``; ``feed`` for a signed Atom feed).
    """
    if declares_dtd(raw):
        return SignatureReport("malformed", "none", detail="document declares a DOCTYPE")
    try:
        root = etree.fromstring(raw, safe_parser(keep_layout=True))
    except (etree.XMLSyntaxError, ValueError) as exc:
        return SignatureReport("malformed", "none", detail=f"not well-formed XML: {exc}")
    signatures = root.findall(f"{{{DSIG_NS}}}Signature")
    if not signatures:
        return SignatureReport("unsigned", "none", detail="the alert carries no XML signature")
    for signature in signatures:
        problem = _bad_identifier(signature)
        if problem:
            return SignatureReport("malformed", "none", detail=problem)
    if len(signatures) > 1:
        return SignatureReport("malformed", "none", detail="more than one enveloped signature")
    signature = signatures[0]
    altered = _altered_base64(signature)
    certificate = _embedded_certificate(signature)
    if certificate is None:
        status: SignatureStatus = "tampered" if altered else "malformed"
        return SignatureReport(status, "none", detail=altered or "no X509Certificate in KeyInfo")
    status, detail = ("tampered", altered) if altered else _check(raw, certificate, element)
    cert_status, cert_detail = _judge_certificate(certificate, trusted_certs, at)
    return SignatureReport(
        status=status,
        certificate=cert_status,
        subject=certificate.subject.rfc4514_string(),
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
        detail=f"{detail}; {cert_detail}",
        fingerprint=certificate.fingerprint(hashes.SHA256()).hex(),
    )


def _bad_identifier(signature: etree._Element) -> str | None:
    for element in signature.iter(tag=etree.Element):
        value = element.get("Id")
        if value is not None and not _NCNAME.fullmatch(value):
            name = etree.QName(element).localname
            return f"{name} has Id {value!r}, which is not an XML name (xs:ID)"
    return None


def _altered_base64(signature: etree._Element) -> str | None:
    for name in _BASE64_ELEMENTS:
        for element in signature.iter(f"{{{DSIG_NS}}}{name}"):
            text = "".join((element.text or "").split())
            try:
                canonical = base64.b64encode(base64.b64decode(text, validate=True)).decode()
            except (binascii.Error, ValueError):
                return f"{name} is not base64"
            if canonical != text:
                return f"{name} is not canonical base64: its value was altered"
    return None


def _embedded_certificate(signature: etree._Element) -> x509.Certificate | None:
    element = signature.find(f".//{{{DSIG_NS}}}X509Certificate")
    if element is None:
        return None
    try:
        return x509.load_der_x509_certificate(
            base64.b64decode("".join((element.text or "").split()))
        )
    except ValueError:
        return None


def _check(raw: bytes, certificate: x509.Certificate, element: str) -> tuple[SignatureStatus, str]:
    moment = certificate.not_valid_before_utc + timedelta(seconds=1)
    config = SignatureConfiguration(
        require_x509=True,
        signature_methods=frozenset(SignatureMethod),
        digest_algorithms=frozenset(DigestAlgorithm),
        verification_time=moment,
    )
    outcome: tuple[SignatureStatus, str] = ("tampered", "")
    for remove_blank_text in (False, True):
        root = etree.fromstring(
            raw, safe_parser(keep_layout=True, remove_blank_text=remove_blank_text)
        )
        try:
            result = XMLVerifier().verify(root, x509_cert=certificate, expect_config=config)
        except (InvalidDigest, XmlInvalidSignature) as exc:
            outcome = ("tampered", f"the signature does not match the document: {exc}")
            continue
        except InvalidCertificate as exc:
            return "tampered", f"the embedded certificate is unusable: {exc}"
        except (InvalidInput, etree.DocumentInvalid) as exc:
            return "malformed", f"the signature is malformed: {exc}"
        results = result if isinstance(result, list) else [result]
        if len(results) != 1 or etree.QName(results[0].signed_xml).localname != element:
            return "malformed", f"the signature does not cover the whole {element}"
        how = " after removing blank text" if remove_blank_text else ""
        return "valid", f"signature matches the document{how}"
    return outcome


def _judge_certificate(
    certificate: x509.Certificate, trusted_certs: Sequence[bytes], at: datetime | None
) -> tuple[CertificateStatus, str]:
    moment = at or datetime.now(UTC)
    trusted = _is_trusted(certificate, trusted_certs)
    trust = "in the trust store" if trusted else "not in the trust store"
    if moment < certificate.not_valid_before_utc:
        return "not-yet-valid", f"certificate not valid before {certificate.not_valid_before_utc}"
    if moment > certificate.not_valid_after_utc:
        return "expired", f"certificate expired {certificate.not_valid_after_utc} and is {trust}"
    return ("trusted" if trusted else "untrusted"), f"certificate is {trust}"


def _load_certificate(data: bytes) -> x509.Certificate:
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)


def _is_trusted(certificate: x509.Certificate, trusted_certs: Sequence[bytes]) -> bool:
    for data in trusted_certs:
        anchor = _load_certificate(data)
        if anchor == certificate:
            return True
        try:
            certificate.verify_directly_issued_by(anchor)
        except (ValueError, TypeError, CryptoInvalidSignature):
            continue
        return True
    return False


def _public_der(key: object) -> bytes:
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        return b""
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


class AlertSigner:
    """Signs alerts with one private key and its certificate (RSA or EC, SHA-256)."""

    def __init__(
        self,
        key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
        certificate: x509.Certificate,
    ) -> None:
        if isinstance(key, rsa.RSAPrivateKey):
            self._algorithm = SignatureMethod.RSA_SHA256
        else:
            self._algorithm = SignatureMethod.ECDSA_SHA256
        self._key = key
        self._certificate = certificate

    @classmethod
    def from_pem(cls, key_pem: bytes, cert_pem: bytes) -> AlertSigner:
        """A signer from an unencrypted PEM private key and its PEM certificate."""
        try:
            key = serialization.load_pem_private_key(key_pem, password=None)
            certificate = x509.load_pem_x509_certificate(cert_pem)
        except (ValueError, TypeError) as exc:
            raise CapError(f"signing key or certificate cannot be read: {exc}") from exc
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise CapError("signing key must be an RSA or EC private key")
        if _public_der(key.public_key()) != _public_der(certificate.public_key()):
            raise CapError("signing key does not belong to the certificate")
        return cls(key, certificate)

    @property
    def certificate(self) -> x509.Certificate:
        """The certificate embedded in every signature."""
        return self._certificate

    def sign(self, root: etree._Element) -> etree._Element:
        """``root`` with an enveloped signature appended as its last child."""
        signer = XMLSigner(
            method=SignatureConstructionMethod.enveloped,
            signature_algorithm=self._algorithm,
            digest_algorithm=DigestAlgorithm.SHA256,
            c14n_algorithm=CanonicalizationMethod.CANONICAL_XML_1_1,
        )
        signed: etree._Element = signer.sign(root, key=self._key, cert=[self._certificate])
        return signed
