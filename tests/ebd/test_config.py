"""Link and signing settings: every bad value is refused naming the setting; good ones load."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from drivers.ebd import EbdConfigError
from drivers.ebd.config import EbdPeerConfig, EbdSigningConfig
from drivers.ebd.testing import COUNTY_PLATFORM_EBRID, WARNING_SOURCE_EBRID

PEER = EbdPeerConfig(WARNING_SOURCE_EBRID, COUNTY_PLATFORM_EBRID, "http://127.0.0.1:7070/ebd")


@pytest.mark.parametrize(
    ("change", "setting"),
    [
        ({"local_ebrid": "1234"}, "local_ebrid"),
        ({"peer_ebrid": "x" * 23}, "peer_ebrid"),
        ({"peer_url": "ftp://127.0.0.1/x"}, "peer_url"),
        ({"local_url": "127.0.0.1:8080"}, "local_url"),
        ({"timeout": 0}, "timeout"),
        ({"connect_timeout": -1.0}, "connect_timeout"),
        ({"heartbeat_seconds": 0}, "heartbeat_seconds"),
        ({"ebmid_width": 5}, "ebmid_width"),
    ],
)
def test_bad_peer_settings_name_the_setting(change: dict[str, object], setting: str) -> None:
    with pytest.raises(EbdConfigError, match=setting):
        replace(PEER, **change).validate()  # type: ignore[arg-type]


def test_good_peer_settings_pass() -> None:
    config = replace(PEER, local_url="http://127.0.0.1:8080/ebd").validate()
    assert (config.timeouts.connect, config.timeouts.total) == (10.0, 60.0)


def test_signing_settings_load_keys_and_trust(tmp_path: Path) -> None:
    key = tmp_path / "key.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "SM2", "-out", str(key)], check=True)
    key.chmod(0o600)
    (tmp_path / "peers").mkdir()
    subprocess.run(
        ["openssl", "req", "-new", "-x509", "-key", str(key), "-sm3", "-subj", "/CN=peer",
         "-days", "1", "-out", str(tmp_path / "peers" / "peer.pem")],
        check=True, capture_output=True,
    )  # fmt: skip
    config = EbdSigningConfig(key, "0a0b0c0d0e0f", (tmp_path / "peers",)).validate()
    signer = config.signer()
    assert signer.cert_id == bytes.fromhex("0a0b0c0d0e0f")
    config.verifier()  # loads
    for change, setting in (
        ({"cert_id": "0a0b"}, "cert_id"),
        ({"trust": ()}, "trust"),
        ({"user_id": ""}, "user_id"),
    ):
        with pytest.raises(EbdConfigError, match=setting):
            replace(config, **change).validate()  # type: ignore[arg-type]
    key.chmod(0o644)
    with pytest.raises(EbdConfigError, match="chmod 600"):
        config.signer()
