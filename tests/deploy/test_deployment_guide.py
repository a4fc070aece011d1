"""The deployment guide's files and commands, run as the guide says: every example configuration
passes ``broadcaster check-config``, the broker node's configuration passes ``nats-server -t``,
and every file the guide names exists (the units themselves are verified with
``systemd-analyze verify`` in test_install.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO
from tests.deploy.test_install import root  # noqa: F401 - the staging root fixture
from tests.processes import broadcaster

GUIDE = REPO / "docs/deployment.md"
SECRETS = {
    "BROADCASTER_BOX_SECRET": "box-provisioning-secret-for-the-guide",
    "BROADCASTER_MQTT_PASSWORD": "server-password",
    "BROADCASTER_BOX_MQTT_PASSWORD": "box-password",
}
SIZES = ["county", "city", "region"]


def check_config(path: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "broadcaster", "check-config", "--config", path],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_each_example_passes_check_config_and_is_refused_without_its_secrets() -> None:
    bare = {k: v for k, v in os.environ.items() if k not in SECRETS}
    # The four runs at once: each loads the demo registry, which takes seconds.
    env = os.environ | SECRETS
    runs = {size: check_config(f"config/deploy-{size}.toml", env) for size in SIZES}
    refused = check_config("config/deploy-region.toml", bare)
    for size, run in runs.items():
        out, err = run.communicate(timeout=120)
        assert run.returncode == 0, f"{size}: {out}{err}"
        assert "configuration is valid" in out
    out, err = refused.communicate(timeout=120)
    assert refused.returncode == 1
    assert "BROADCASTER_BOX_SECRET" in err and "BROADCASTER_MQTT_PASSWORD" in err


def nats_test(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["nats-server", "-t", "-c", str(REPO / "config/deploy-nats.conf")],
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
    named = set(re.findall(r"`((?:config/deploy-|systemd/)[\w./-]+)`", text))
    assert named, "the guide names no file"
    assert [n for n in sorted(named) if not (REPO / n).is_file()] == []
    examples = {f"config/{p.name}" for p in (REPO / "config").glob("deploy-*")}
    units = {f"systemd/{p.name}" for p in (REPO / "systemd").glob("*.service")}
    assert examples | units <= named
    assert "docs/deployment-postgresql.md" in text


def test_an_example_installed_as_the_guide_says_passes_check_config_where_installed(
    root: Path,  # noqa: F811 - the fixture imported above
) -> None:
    installed = broadcaster(
        "install", "--root", str(root), "--config-from", "config/deploy-region.toml"
    )
    assert installed.returncode == 0, installed.stderr
    config = root / "etc/broadcaster/broadcaster.toml"
    assert (root / "etc/broadcaster/demo/targets.json").is_file()
    run = check_config(str(config), os.environ | SECRETS)
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0, out + err
