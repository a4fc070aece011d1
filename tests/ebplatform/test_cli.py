"""``broadcaster ebd keygen`` and ``broadcaster ebd inspect``: the identity works for signing,
a package is printed, its signature is verified against a trust list, a tampered one refused."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from broadcaster.cli import main as broadcaster_main
from drivers.ebd import Ebd, build_package, write_package
from drivers.ebd.testing import sample_ebm
from drivers.ebd.xmlsafe import beijing_now
from tests.ebplatform.conftest import OURS, Pki


def _tar(pki: Pki, folder: Path) -> Path:
    ebd = Ebd("10" + OURS + "2024060100000001", OURS, beijing_now(), sample_ebm(OURS))
    path = folder / "EBDT_x.tar"
    path.write_bytes(write_package(build_package(ebd, pki.ours.signer())))
    return path


def test_keygen_writes_a_private_key_and_a_certificate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert broadcaster_main(["ebd", "keygen", "--out", str(tmp_path), "--ebrid", OURS]) == 0
    out = capsys.readouterr().out
    assert out.startswith('cert_id = "') and len(out.strip()) == len('cert_id = ""') + 12
    assert stat.S_IMODE((tmp_path / "key.pem").stat().st_mode) == 0o600
    assert b"BEGIN CERTIFICATE" in (tmp_path / "cert.pem").read_bytes()
    assert broadcaster_main(["ebd", "keygen", "--out", str(tmp_path), "--ebrid", OURS]) == 1
    assert "not overwritten" in capsys.readouterr().err
    assert broadcaster_main(["ebd", "keygen", "--out", str(tmp_path / "x"), "--ebrid", "1"]) == 1


def test_inspect_prints_the_package_and_verifies_it(
    tmp_path: Path, pki: Pki, capsys: pytest.CaptureFixture[str]
) -> None:
    tar = _tar(pki, tmp_path)
    trust = tmp_path / "trust"
    trust.mkdir()
    (trust / "ours.pem").write_bytes(pki.ours.cert.read_bytes())
    assert broadcaster_main(["ebd", "inspect", str(tar), "--trust", str(trust)]) == 0
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    assert document["type"] == "EBM"
    assert document["ebd"]["body"]["sender_code"] == OURS
    assert document["ebd"]["body"]["area_codes"] == ["150902000000", "150921000000"]
    assert f"verified (certificate {pki.ours.cert_id})" in captured.err

    assert broadcaster_main(["ebd", "inspect", str(tar), "--trust", str(pki.trust)]) == 1
    assert "REFUSED" in capsys.readouterr().err  # not signed by anyone in that trust list

    data = bytearray(tar.read_bytes())
    at = data.index("暴雨".encode())
    data[at : at + 3] = "大".encode()
    tar.write_bytes(bytes(data))
    assert broadcaster_main(["ebd", "inspect", str(tar), "--trust", str(trust)]) == 1
    assert "REFUSED" in capsys.readouterr().err


def test_inspect_refuses_what_is_not_a_package(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar at all" * 40)
    assert broadcaster_main(["ebd", "inspect", str(junk)]) == 1
    assert broadcaster_main(["ebd", "inspect", str(tmp_path / "missing.tar")]) == 1
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err
