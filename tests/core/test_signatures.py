"""Signature policy at intake: verdicts recorded, tampered rejected, our own alerts signed."""

from __future__ import annotations

from pathlib import Path

import pytest

from broadcaster.cap.signature import verify_signature
from broadcaster.config import CapConfig
from broadcaster.errors import CapError
from tests.conftest import CAP_SAMPLES
from tests.core.support import make_alert, make_config, running, village_targets
from tests.signing import key_and_cert

CHANNELS = {"rec": {"type": "tests.core.support:RecordingChannel"}}


def _key_and_cert(tmp_path: Path) -> tuple[Path, Path]:
    key_pem, cert_pem, _ = key_and_cert("ec")
    key_path, cert_path = tmp_path / "key.pem", tmp_path / "cert.pem"
    key_path.write_bytes(key_pem)
    cert_path.write_bytes(cert_pem)
    return key_path, cert_path


async def test_valid_signature_with_expired_certificate_is_accepted_and_recorded(
    tmp_path: Path,
) -> None:
    async with running(make_config(tmp_path, CHANNELS, [])) as service:
        raw = (CAP_SAMPLES / "signed" / "wmo_sc_valid.xml").read_bytes()
        result = await service.submit(raw, origin="test", allow_empty=True)  # expired long ago
        rules = {p.rule for p in result.warnings}
        assert "certificate-expired" in rules
        record = await service.database.run(service.alerts.get, result.alert_id)
        notes = [e["detail"] for e in record["events"] if e["event"] == "signature"]
        assert notes and notes[0].startswith("signature valid; certificate expired")


@pytest.mark.parametrize("name", ["wmo_sc_invalid_digest.xml", "wmo_tg_invalid_signature.xml"])
async def test_tampered_signature_is_rejected(tmp_path: Path, name: str) -> None:
    async with running(make_config(tmp_path, CHANNELS, [])) as service:
        with pytest.raises(CapError) as err:
            await service.submit((CAP_SAMPLES / "signed" / name).read_bytes(), origin="test")
        assert err.value.problems[0].path == "/alert/Signature"
        assert err.value.problems[0].rule == "signature-tampered"
        count = await service.database.run(
            lambda: service.database.conn.execute("SELECT count(*) FROM alerts").fetchone()[0]
        )
        assert count == 0


async def test_malformed_signature_is_reported_and_the_alert_taken_as_unsigned(
    tmp_path: Path,
) -> None:
    async with running(make_config(tmp_path, CHANNELS, [])) as service:
        raw = (CAP_SAMPLES / "signed" / "google_canada_signed.xml").read_bytes()
        result = await service.submit(raw, origin="test", allow_empty=True)  # expired long ago
        assert result.created
        assert [p.rule for p in result.warnings if p.path == "/alert/Signature"] == [
            "signature-malformed"
        ]
        record = await service.database.run(service.alerts.get, result.alert_id)
        notes = [e["detail"] for e in record["events"] if e["event"] == "signature"]
        assert notes and notes[0].startswith("signature malformed")


async def test_alerts_the_server_writes_are_signed_and_verify(tmp_path: Path) -> None:
    key, cert = _key_and_cert(tmp_path)
    config = make_config(tmp_path, CHANNELS, village_targets("rec", 2))
    cap = CapConfig(
        signing_key=key,
        signing_certificate=cert,
        trusted_certificates=[cert],
        require_trusted_signature=True,
    )
    config = config.model_copy(update={"cap": cap})
    async with running(config) as service:
        with pytest.raises(CapError, match="unsigned"):
            await service.submit((CAP_SAMPLES / "valid" / "wmo_cn.xml").read_bytes(), origin="test")
        first = await service.submit(make_alert(), origin="console")
        cancel = await service.cancel(first.alert_id, reason="test over", origin="console")
        raw = await service.database.run(service.alerts.raw_xml, cancel.alert_id)
    report = verify_signature(raw, trusted_certs=[cert.read_bytes()])
    assert (report.status, report.certificate) == ("valid", "trusted")
