"""Keys for tests: a fresh self-signed certificate and its private key, as PEM; and one for
127.0.0.1 written to files, for TLS servers on loopback (the hub, a broker)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID


def key_and_cert(kind: str = "ec", *, loopback: bool = False) -> tuple[bytes, bytes, bytes]:
    """(key PEM, certificate PEM, certificate DER). ``loopback``: for 127.0.0.1 (its IP in the
    subject alternative name) and usable as its own trust anchor."""
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    if kind == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        key = ec.generate_private_key(ec.SECP256R1())
    common_name = "127.0.0.1" if loopback else "warn.ulanqab.example.cn"
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
    )
    if loopback:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(IPv4Address("127.0.0.1"))]),
            critical=False,
        ).add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    cert = builder.sign(key, hashes.SHA256())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    return key_pem, cert_pem, cert.public_bytes(serialization.Encoding.DER)


def loopback_tls_files(work_dir: Path) -> tuple[Path, Path, bytes]:
    """A loopback certificate and key written to ``work_dir``: (cert file, key file, cert PEM)."""
    key_pem, cert_pem, _ = key_and_cert(loopback=True)
    cert_file, key_file = work_dir / "loopback.crt", work_dir / "loopback.key"
    cert_file.write_bytes(cert_pem)
    key_file.write_bytes(key_pem)
    return cert_file, key_file, cert_pem
