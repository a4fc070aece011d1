"""Enveloped XML signatures: the published samples and alerts signed here."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import xmlschema
from cryptography.hazmat.primitives import serialization
from lxml import etree

from broadcaster.cap import (
    Alert,
    AlertSigner,
    Area,
    Category,
    Certainty,
    Info,
    MsgType,
    Scope,
    Severity,
    Status,
    Urgency,
    parse_cap,
    to_xml,
    verify_signature,
)
from broadcaster.errors import CapError
from tests.conftest import CAP_DATA
from tests.signing import key_and_cert

SIGNED = CAP_DATA / "samples" / "signed"
DSIG = "http://www.w3.org/2000/09/xmldsig#"


@pytest.mark.parametrize(
    ("name", "subject", "not_after"),
    [
        ("wmo_sc_valid.xml", "CN=www.meteo.sc", datetime(2024, 9, 30, 11, 23, 48, tzinfo=UTC)),
        ("wmo_tg_valid.xml", "CN=www.anamet-togo.com", datetime(2024, 9, 12, 8, 16, tzinfo=UTC)),
    ],
)
def test_published_valid_signatures_verify_with_expired_untrusted_cert(
    name: str, subject: str, not_after: datetime
) -> None:
    raw = (SIGNED / name).read_bytes()
    report = verify_signature(raw)
    assert (report.status, report.certificate) == ("valid", "expired")
    assert report.subject == subject and report.not_after == not_after
    assert "not in the trust store" in report.detail
    assert report.not_before is not None
    during = report.not_before + timedelta(days=10)
    assert verify_signature(raw, at=during).certificate == "untrusted"
    assert verify_signature(raw, at=report.not_before - timedelta(days=1)).certificate == (
        "not-yet-valid"
    )


@pytest.mark.parametrize(
    "name",
    [
        f"wmo_{country}_invalid_{part}.xml"
        for country in ("sc", "tg")
        for part in ("certificate", "digest", "signature")
    ],
)
def test_published_altered_signatures_reported_tampered(name: str) -> None:
    report = verify_signature((SIGNED / name).read_bytes())
    assert report.status == "tampered"
    assert "altered" in report.detail


def test_edited_content_of_published_sample_is_tampered() -> None:
    raw = (SIGNED / "wmo_sc_valid.xml").read_bytes()
    root = etree.fromstring(raw)
    event = root.find(".//{urn:oasis:names:tc:emergency:cap:1.2}event")
    assert event is not None and event.text
    event.text = event.text + " (edited)"
    report = verify_signature(etree.tostring(root))
    assert report.status == "tampered"
    assert "does not match" in report.detail


def test_canada_signature_with_bad_id_is_malformed() -> None:
    report = verify_signature((SIGNED / "google_canada_signed.xml").read_bytes())
    assert report.status == "malformed"
    assert "NAADS Signature" in report.detail


def test_unsigned_alert_reported_unsigned() -> None:
    report = verify_signature((CAP_DATA / "samples" / "valid" / "wmo_cn.xml").read_bytes())
    assert (report.status, report.certificate) == ("unsigned", "none")


@pytest.mark.parametrize("garbage", [b"", b"<alert", b"\xff\xfe\x00"])
def test_garbage_reported_malformed(garbage: bytes) -> None:
    assert verify_signature(garbage).status == "malformed"


def test_hostile_document_reported_malformed_unread() -> None:
    hostile = (CAP_DATA / "samples" / "hostile" / "google_xee.xml").read_bytes()
    for data in (hostile, hostile.decode().replace('"utf-8"', '"utf-16"').encode("utf-16")):
        report = verify_signature(data)
        assert (report.status, report.certificate) == ("malformed", "none")


def _alert() -> Alert:
    return Alert(
        identifier="CN-150900-sig-1",
        sender="warn@ulanqab.example.cn",
        sent=datetime(2024, 7, 1, 0, 0, tzinfo=UTC),
        status=Status.TEST,
        msg_type=MsgType.ALERT,
        scope=Scope.PUBLIC,
        infos=[
            Info(
                event="大风",
                urgency=Urgency.EXPECTED,
                severity=Severity.MODERATE,
                certainty=Certainty.LIKELY,
                categories=[Category.MET],
                headline="大风黄色预警",
                areas=[Area(area_desc="察哈尔右翼前旗")],
            )
        ],
    )


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_signed_output_verifies_trusted_and_detects_edits(kind: str) -> None:
    key_pem, cert_pem, cert_der = key_and_cert(kind)
    signer = AlertSigner.from_pem(key_pem, cert_pem)
    assert signer.certificate.public_bytes(serialization.Encoding.DER) == cert_der
    xml = to_xml(_alert(), signer=signer)
    root = etree.fromstring(xml)
    assert etree.QName(root[-1]).text == f"{{{DSIG}}}Signature"
    xmlschema.XMLSchema(str(CAP_DATA / "CAP-v1.2.xsd")).validate(xml.decode())
    assert parse_cap(xml).alert == _alert()

    report = verify_signature(xml, trusted_certs=[cert_pem])
    assert (report.status, report.certificate) == ("valid", "trusted")
    assert report.subject == "CN=warn.ulanqab.example.cn"
    assert verify_signature(xml, trusted_certs=[cert_der]).certificate == "trusted"
    assert verify_signature(xml).certificate == "untrusted"

    edited = xml.replace("大风黄色预警".encode(), "大风红色预警".encode())
    assert edited != xml
    assert verify_signature(edited, trusted_certs=[cert_pem]).status == "tampered"


def test_signer_refuses_mismatched_or_bad_keys() -> None:
    key_pem, _, _ = key_and_cert("ec")
    _, other_cert_pem, _ = key_and_cert("ec")
    with pytest.raises(CapError, match="does not belong"):
        AlertSigner.from_pem(key_pem, other_cert_pem)
    with pytest.raises(CapError, match="cannot be read"):
        AlertSigner.from_pem(b"not a key", other_cert_pem)
