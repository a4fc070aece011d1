"""EBD signatures: the software SM2-with-SM3 signer checked against OpenSSL (an independent SM2
implementation) both ways, the 74-byte value layout, both EBDS generations, key-file modes,
the trust list, and tampering refused with ResultCode 4."""

from __future__ import annotations

import base64
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from drivers.ebd import (
    EbdConfigError,
    EbdFormatError,
    EbdSignatureError,
    SignatureForm,
    SignatureValue,
    Sm2Signer,
    Sm2Verifier,
    TrustList,
    build_package,
    load_certificate,
    load_private_key,
)
from drivers.ebd.codec import write_ebd
from drivers.ebd.model import ConnectionCheck, Ebd
from drivers.ebd.signature import (
    SignatureFile,
    read_signature_file,
    verify_package,
    write_signature_file,
)
from drivers.ebd.sm2 import CURVE_ORDER
from drivers.ebd.testing import WARNING_SOURCE_EBRID, PlatformIdentity, fixed_time, verifier_for

UID = "1234567812345678"
EBDID = "10" + WARNING_SOURCE_EBRID + "2024060100000001"


def openssl(*args: str, data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["openssl", *args], input=data, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SM2 key (mode 600) and a self-signed SM2/SM3 certificate made by OpenSSL."""
    folder = tmp_path_factory.mktemp("pki")
    assert openssl("genpkey", "-algorithm", "SM2", "-out", str(folder / "key.pem")).returncode == 0
    (folder / "key.pem").chmod(0o600)
    (folder / "trusted").mkdir()
    made = openssl(
        "req", "-new", "-x509", "-key", str(folder / "key.pem"), "-sm3",
        "-sigopt", f"distid:{UID}", "-subj", "/CN=county platform", "-days", "2",
        "-set_serial", "0x0102030405060708", "-out", str(folder / "trusted" / "peer.pem"),
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    openssl("pkey", "-in", str(folder / "key.pem"), "-pubout", "-out", str(folder / "pub.pem"))
    return folder


def _openssl_verify(pki: Path, data: bytes, r_s: bytes, uid: str = UID) -> bool:
    der = encode_dss_signature(int.from_bytes(r_s[:32], "big"), int.from_bytes(r_s[32:], "big"))
    (pki / "sig.der").write_bytes(der)
    (pki / "data").write_bytes(data)
    result = openssl(
        "dgst", "-sm3", "-verify", str(pki / "pub.pem"), "-sigopt", f"distid:{uid}",
        "-signature", str(pki / "sig.der"), str(pki / "data"),
    )  # fmt: skip
    return result.returncode == 0 and b"Verified OK" in result.stdout


def _openssl_sign(pki: Path, data: bytes) -> bytes:
    (pki / "data").write_bytes(data)
    result = openssl(
        "dgst", "-sm3", "-sign", str(pki / "key.pem"), "-sigopt", f"distid:{UID}",
        str(pki / "data"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    r, s = decode_dss_signature(result.stdout)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def _ebdb() -> bytes:
    return write_ebd(Ebd(EBDID, WARNING_SOURCE_EBRID, fixed_time(), ConnectionCheck(fixed_time())))


def test_our_signature_verifies_with_openssl(pki: Path) -> None:
    peer = load_certificate(pki / "trusted" / "peer.pem")
    assert peer.cert_id == bytes.fromhex("030405060708")  # the serial's last 6 bytes
    signer = Sm2Signer(load_private_key(pki / "key.pem"), peer.cert_id, counter=lambda: 0x5B2891C5)
    data = _ebdb()
    value = signer.sign(data)
    assert value.counter == 0x5B2891C5 and value.cert_id == peer.cert_id
    assert len(value.pack()) == 74
    assert _openssl_verify(pki, data, value.signature)
    assert not _openssl_verify(pki, data, value.signature, uid="8765432187654321")
    assert not _openssl_verify(pki, data[:-2] + b"!\n", value.signature)
    # Two signatures over the same bytes differ: the nonce is fresh each time.
    assert signer.sign(data).signature != value.signature


def test_counter_signed_appends_the_counter(pki: Path) -> None:
    peer = load_certificate(pki / "trusted" / "peer.pem")
    signer = Sm2Signer(
        load_private_key(pki / "key.pem"), peer.cert_id, counter_signed=True, counter=lambda: 7
    )
    data = _ebdb()
    value = signer.sign(data)
    assert _openssl_verify(pki, data + b"\0\0\0\7", value.signature)
    assert not _openssl_verify(pki, data, value.signature)
    Sm2Verifier(TrustList([peer]), counter_signed=True).verify(data, value)
    with pytest.raises(EbdSignatureError):
        Sm2Verifier(TrustList([peer])).verify(data, value)


def test_openssl_signature_verifies_with_ours_and_tampering_is_refused(pki: Path) -> None:
    trust = TrustList.from_paths([pki / "trusted"])
    assert len(trust) == 1
    verifier = Sm2Verifier(trust)
    data = _ebdb()
    cert_id = bytes.fromhex("030405060708")
    value = SignatureValue(0x5B2891C5, cert_id, _openssl_sign(pki, data))
    verifier.verify(data, value)
    for index in (0, len(data) // 2, len(data) - 1):
        tampered = bytearray(data)
        tampered[index] ^= 0x01
        with pytest.raises(EbdSignatureError) as caught:
            verifier.verify(bytes(tampered), value)
        assert caught.value.result_code == 4
    with pytest.raises(EbdSignatureError, match="not trusted"):
        verifier.verify(data, replace(value, cert_id=b"\0" * 6))


@pytest.mark.parametrize("r_s", [(0, 1), (1, 0), (CURVE_ORDER, 1), (1, CURVE_ORDER)])
def test_r_and_s_out_of_range_are_refused(city: PlatformIdentity, r_s: tuple[int, int]) -> None:
    raw = r_s[0].to_bytes(32, "big") + r_s[1].to_bytes(32, "big")
    with pytest.raises(EbdSignatureError, match="out of range"):
        verifier_for(city).verify(b"x", SignatureValue(1, city.cert_id, raw))


@pytest.mark.parametrize("form", list(SignatureForm))
def test_both_ebds_generations_are_written_and_verified(
    city: PlatformIdentity, form: SignatureForm
) -> None:
    ebd = Ebd(EBDID, WARNING_SOURCE_EBRID, fixed_time(), ConnectionCheck(fixed_time()))
    package = build_package(ebd, city.signer(counter=lambda: 0x5B2891C5), form=form)
    assert package.ebds is not None
    text = package.ebds.decode()
    if form is SignatureForm.CURRENT:
        assert "<SignatureAlgorithm>SM2-SM3</SignatureAlgorithm>" in text
        assert f"<CertSN>{city.cert_id.hex().upper()}</CertSN>" in text
    else:
        assert "<SignatureTime>5b2891c5</SignatureTime>" in text
        assert "<DigestAlgorithm>SM3</DigestAlgorithm>" in text
        assert "<SignatureCert>" in text
    signature = read_signature_file(package.ebds)
    assert signature.related_ebdid == EBDID
    raw = base64.b64decode(text.split("<SignatureValue>")[1].split("<")[0])
    assert raw[:4] == bytes.fromhex("5b2891c5") and raw[4:10] == city.cert_id
    verify_package(package, verifier_for(city))


def test_a_signature_for_another_package_is_refused(city: PlatformIdentity) -> None:
    ebd = Ebd(EBDID, WARNING_SOURCE_EBRID, fixed_time(), ConnectionCheck(fixed_time()))
    package = build_package(ebd, city.signer())
    other = EBDID[:-1] + "2"
    assert package.ebds is not None
    moved = replace(package, ebds=package.ebds.replace(EBDID.encode(), other.encode()))
    with pytest.raises(EbdSignatureError, match="signs"):
        verify_package(moved, verifier_for(city))
    with pytest.raises(EbdSignatureError, match="no EBDS"):
        verify_package(replace(package, ebds=None), verifier_for(city))
    with pytest.raises(EbdSignatureError, match="unreadable"):
        verify_package(replace(package, ebds=b"<Signature/>"), verifier_for(city))


def test_private_keys_readable_by_others_are_refused(pki: Path, tmp_path: Path) -> None:
    key = tmp_path / "key.pem"
    key.write_bytes((pki / "key.pem").read_bytes())
    for mode in (0o640, 0o604, 0o644):
        key.chmod(mode)
        with pytest.raises(EbdConfigError, match="chmod 600"):
            load_private_key(key)
    key.chmod(0o600)
    assert load_private_key(key) == load_private_key(pki / "key.pem")
    with pytest.raises(EbdConfigError, match="public key"):
        load_certificate(key)
    with pytest.raises(EbdConfigError, match=r"missing\.pem"):
        load_certificate(tmp_path / "missing.pem")
    (tmp_path / "ec.pem").write_bytes(
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
    )
    (tmp_path / "ec.pem").chmod(0o600)
    with pytest.raises(EbdConfigError, match="no SM2 private key"):
        load_private_key(tmp_path / "ec.pem")


def test_signing_and_verifying_from_many_threads_stays_correct(city: PlatformIdentity) -> None:
    signer, verifier = city.signer(), verifier_for(city)
    messages = [b"package %d" % n for n in range(16)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        values = list(pool.map(signer.sign, messages))
        list(pool.map(verifier.verify, messages, values))


SAMPLE_VALUE = SignatureValue(0x5B2891C5, bytes.fromhex("000000003363"), bytes(range(64)))
SAMPLE_B64 = base64.b64encode(SAMPLE_VALUE.pack()).decode()


def test_ebds_files_are_written_byte_exact_in_both_generations() -> None:
    current = write_signature_file(EBDID, SAMPLE_VALUE)
    assert (
        current
        == (
            "<?xml version='1.0' encoding='UTF-8'?>\n<Signature>\n  <Version>1.0</Version>\n"
            f"  <RelatedEBD>\n    <EBDID>{EBDID}</EBDID>\n  </RelatedEBD>\n"
            "  <CertSN>000000003363</CertSN>\n  <SignatureAlgorithm>SM2-SM3</SignatureAlgorithm>\n"
            f"  <SignatureValue>{SAMPLE_B64}</SignatureValue>\n</Signature>\n"
        ).encode()
    )
    legacy = write_signature_file(EBDID, SAMPLE_VALUE, SignatureForm.LEGACY)
    assert (
        legacy
        == (
            "<?xml version='1.0' encoding='UTF-8'?>\n<Signature>\n  <Version>1.0</Version>\n"
            f"  <RelatedEBD>\n    <EBDID>{EBDID}</EBDID>\n  </RelatedEBD>\n"
            "  <SignatureCert>\n    <CertType>1</CertType>\n    <IssuerID></IssuerID>\n"
            "    <CertSN>000000003363</CertSN>\n  </SignatureCert>\n"
            "  <SignatureTime>5b2891c5</SignatureTime>\n  <DigestAlgorithm>SM3</DigestAlgorithm>\n"
            "  <SignatureAlgorithm>SM2</SignatureAlgorithm>\n"
            f"  <SignatureValue>{SAMPLE_B64}</SignatureValue>\n</Signature>\n"
        ).encode()
    )
    for data in (current, legacy):
        assert read_signature_file(data) == SignatureFile(EBDID, SAMPLE_VALUE, "000000003363")


def test_signature_values_are_74_bytes_of_counter_cert_id_and_r_s() -> None:
    raw = SAMPLE_VALUE.pack()
    assert raw[:10] == bytes.fromhex("5b2891c5000000003363") and raw[10:] == bytes(range(64))
    assert SignatureValue.from_text(" " + SAMPLE_B64[:20] + "\n" + SAMPLE_B64[20:]) == SAMPLE_VALUE
    for bad in ("!!!", base64.b64encode(raw[:-1]).decode(), ""):
        with pytest.raises(EbdFormatError, match="SignatureValue"):
            SignatureValue.from_text(bad)


def test_a_certificate_whose_key_is_off_the_curve_is_refused(pki: Path, tmp_path: Path) -> None:
    pem = (pki / "trusted" / "peer.pem").read_bytes()
    body = b"".join(pem.splitlines()[1:-1])
    der = bytearray(base64.b64decode(body))
    point_at = der.find(bytes.fromhex("06082a811ccf5501822d")) + 10 + 3
    der[point_at + 64] ^= 0x01  # one bit of y
    damaged = base64.encodebytes(bytes(der))
    (tmp_path / "bad.pem").write_bytes(
        b"-----BEGIN CERTIFICATE-----\n" + damaged + b"-----END CERTIFICATE-----\n"
    )
    with pytest.raises(EbdConfigError, match="not a point of the curve"):
        load_certificate(tmp_path / "bad.pem")
