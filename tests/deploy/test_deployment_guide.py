"""The deployment guide's files and commands, run as the guide says: every example configuration
passes ``broadcaster check-config``, the broker node's configuration passes ``nats-server -t``,
and every file the guide names exists (the units themselves are verified with
``systemd-analyze verify`` in test_install.py)."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from tests.conftest import REPO
from tests.processes import broadcaster

GUIDE = REPO / "docs/deployment.md"
SECRETS = {
    "BROADCASTER_BOX_SECRET": "box-provisioning-secret-for-the-guide",
    "BROADCASTER_MQTT_PASSWORD": "server-password",
    "BROADCASTER_BOX_MQTT_PASSWORD": "box-password",
}
SIZES = ["county", "city", "region"]


@pytest.mark.parametrize("size", SIZES)
def test_each_example_configuration_passes_check_config(size: str) -> None:
    result = broadcaster(
        "check-config", "--config", f"config/deploy/{size}.toml", env=os.environ | SECRETS
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "configuration is valid" in result.stdout


def test_an_example_without_its_secrets_is_refused_naming_them() -> None:
    bare = {k: v for k, v in os.environ.items() if k not in SECRETS}
    refused = broadcaster("check-config", "--config", "config/deploy/region.toml", env=bare)
    assert refused.returncode == 1
    assert "BROADCASTER_BOX_SECRET" in refused.stderr
    assert "BROADCASTER_MQTT_PASSWORD" in refused.stderr


def nats_test(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["nats-server", "-t", "-c", str(REPO / "config/deploy/nats.conf")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env=env,
    )


def test_the_broker_node_configuration_is_valid_with_its_passwords() -> None:
    checked = nats_test(os.environ | SECRETS)
    assert checked.returncode == 0, checked.stderr
    bare = {k: v for k, v in os.environ.items() if k not in SECRETS}
    missing = nats_test(bare)
    assert missing.returncode == 1 and "BROADCASTER_MQTT_PASSWORD" in missing.stderr


def test_every_file_the_guide_names_exists_and_every_example_is_in_the_guide() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    named = set(re.findall(r"`((?:config/deploy|systemd)/[\w./-]+)`", text))
    assert named, "the guide names no file"
    assert [n for n in sorted(named) if not (REPO / n).is_file()] == []
    examples = {f"config/deploy/{p.name}" for p in (REPO / "config/deploy").iterdir()}
    units = {f"systemd/{p.name}" for p in (REPO / "systemd").glob("*.service")}
    assert examples | units <= named
    assert "docs/deployment-postgresql.md" in text
