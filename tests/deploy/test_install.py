"""``broadcaster install`` into a staging root, and ``systemd-analyze verify`` on the unit there.

The root gets minimal account files (useradd writes to them, never to the machine's) and a copy
of the machine's systemd units (verify resolves the unit's dependencies inside the root).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.processes import broadcaster

UNIT = "/etc/systemd/system/broadcaster.service"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc/group").write_text("root:x:0:\ndialout:x:20:\naudio:x:29:\n")
    (root / "etc/shadow").write_text("root:*:19000:0:99999:7:::\n")
    (root / "etc/gshadow").write_text("root:*::\ndialout:*::\naudio:*::\n")
    units = Path("/usr/lib/systemd/system")
    shutil.copytree(units, root / "usr/lib/systemd/system", symlinks=True)
    (root / "lib").symlink_to("usr/lib")
    return root


def verify(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", "verify", "--man=no", f"--root={root}", UNIT],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_install_creates_user_directories_config_and_a_unit_that_verifies(root: Path) -> None:
    result = broadcaster("install", "--root", str(root), "--config-from", "config/county.toml")
    assert result.returncode == 0, result.stderr

    passwd = (root / "etc/passwd").read_text()
    user = next(line for line in passwd.splitlines() if line.startswith("broadcaster:"))
    uid, gid, home, shell = (user.split(":")[i] for i in (2, 3, 5, 6))
    assert (home, shell) == ("/var/lib/broadcaster", "/usr/sbin/nologin")
    groups = (root / "etc/group").read_text().splitlines()
    for group in ("dialout", "audio"):
        line = next(g for g in groups if g.startswith(f"{group}:"))
        assert line.endswith(":broadcaster"), line

    data = (root / "var/lib/broadcaster").stat()
    assert stat.S_IMODE(data.st_mode) == 0o700 and (data.st_uid, data.st_gid) == (
        int(uid),
        int(gid),
    )
    assert (root / "var/lib/broadcaster/backups").is_dir()
    config = root / "etc/broadcaster/broadcaster.toml"
    assert config.read_bytes() == (REPO / "config/county.toml").read_bytes()
    assert (root / "etc/broadcaster/demo/targets.json").is_file()
    assert config.stat().st_gid == int(gid) and stat.S_IMODE(config.stat().st_mode) == 0o640

    secrets = (root / "etc/broadcaster/secrets.env").read_text().splitlines()
    names = [line.split("=", 1)[0] for line in secrets]
    assert names == [
        "BROADCASTER_CITY_NODE_TOKEN",
        "BROADCASTER_DUTY_SECRET",
        "BROADCASTER_TOWNSHIP_SECRET",
    ]
    assert stat.S_IMODE((root / "etc/broadcaster/secrets.env").stat().st_mode) == 0o640
    for line in secrets:
        assert line.split("=", 1)[1] not in result.stdout  # secrets are never printed

    launcher = root / "usr/local/bin/broadcaster"
    assert os.access(launcher, os.X_OK)
    ran = subprocess.run([launcher, "--help"], capture_output=True, text=True, check=False)
    assert ran.returncode == 0 and "install" in ran.stdout

    checked = verify(root)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    # Installing again changes nothing that exists, and says so.
    config.write_text(config.read_text() + "\n# edited by the operator\n")
    again = broadcaster("install", "--root", str(root), "--config-from", "config/county.toml")
    assert again.returncode == 0, again.stderr
    assert "user broadcaster exists" in again.stdout and "kept as it is" in again.stdout
    assert config.read_text().endswith("# edited by the operator\n")
    assert (root / "etc/broadcaster/secrets.env").read_text().splitlines() == secrets


def test_every_unit_in_the_repository_verifies(root: Path) -> None:
    assert broadcaster("install", "--root", str(root)).returncode == 0
    # The box agent's program comes with the package as a console script.
    agent = Path(sys.executable).parent / "broadcaster-box"
    shutil.copy2(agent, root / "usr/local/bin/broadcaster-box")
    # The broker node runs Debian's nats-server.
    (root / "usr/sbin").mkdir(parents=True, exist_ok=True)
    shutil.copy2("/usr/sbin/nats-server", root / "usr/sbin/nats-server")
    units = sorted((REPO / "systemd").glob("*.service"))
    assert {u.name for u in units} >= {"broadcaster.service", "broadcaster-box.service"}
    for unit in units:
        shutil.copyfile(unit, root / "etc/systemd/system" / unit.name)
    checked = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", f"--root={root}"]
        + [f"/etc/systemd/system/{u.name}" for u in units],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_verify_fails_when_the_unit_cannot_start(root: Path) -> None:
    assert broadcaster("install", "--root", str(root)).returncode == 0
    (root / "usr/local/bin/broadcaster").unlink()
    checked = verify(root)
    assert checked.returncode != 0
    assert "/usr/local/bin/broadcaster" in checked.stderr


def test_install_reports_a_missing_example_without_a_traceback(root: Path) -> None:
    result = broadcaster("install", "--root", str(root), "--config-from", "no/such.toml")
    assert result.returncode == 1
    assert "cannot read" in result.stderr and "Traceback" not in result.stderr
    assert not (root / "etc/broadcaster").exists()


def test_the_unit_is_hardened_as_documented() -> None:
    unit = (REPO / "systemd/broadcaster.service").read_text()
    settings = {}
    for line in unit.splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    expected = {
        "Type": ["notify"],
        "User": ["broadcaster"],
        "SupplementaryGroups": ["dialout audio"],
        "NoNewPrivileges": ["yes"],
        "ProtectSystem": ["strict"],
        "ReadWritePaths": ["/var/lib/broadcaster"],
        "Restart": ["always"],
        "WatchdogSec": ["30"],
        "LimitNOFILE": ["1048576"],
    }
    for key, value in expected.items():
        assert settings.get(key) == value, key
    assert "char-ttyUSB rw" in settings["DeviceAllow"]
