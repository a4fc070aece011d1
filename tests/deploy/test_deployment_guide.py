"""The deployment guide's files and commands, run as the guide says: every example configuration
passes ``broadcaster check-config`` (the city and region ones against a real PostgreSQL server,
and with a clear error when it does not answer), the broker node's configuration passes
``nats-server -t``, every file the guide names exists, and the guide's install commands for a
city node and for a second node on its machine run in a staging root, their units passing
``systemd-analyze verify`` (every unit on its own is verified in test_install.py)."""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from broadcaster.testing.pgserver import PgServer
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
DATABASE_URL = "BROADCASTER_DATABASE_URL"


@pytest.fixture
def database_env(pg_server: PgServer) -> Iterator[dict[str, str]]:
    """The environment with the example secrets and the URL of an empty database on a real
    PostgreSQL server (check-config only connects: it creates nothing)."""
    url = pg_server.fresh()
    yield os.environ | SECRETS | {DATABASE_URL: url}
    pg_server.drop(url)


def check_config(path: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "broadcaster", "check-config", "--config", path],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_each_example_passes_check_config_and_is_refused_without_its_secrets(
    database_env: dict[str, str],
) -> None:
    bare = {k: v for k, v in os.environ.items() if k not in {*SECRETS, DATABASE_URL}}
    # The four runs at once: each loads the demo registry, which takes seconds.
    runs = {size: check_config(f"config/deploy-{size}.toml", database_env) for size in SIZES}
    refused = check_config("config/deploy-region.toml", bare)
    for size, run in runs.items():
        out, err = run.communicate(timeout=120)
        assert run.returncode == 0, f"{size}: {out}{err}"
        assert "configuration is valid" in out
    out, err = refused.communicate(timeout=120)
    assert refused.returncode == 1
    assert "BROADCASTER_BOX_SECRET" in err and "BROADCASTER_MQTT_PASSWORD" in err
    assert f"environment variable {DATABASE_URL} is not set" in err


def test_check_config_says_clearly_when_the_database_does_not_answer(
    database_env: dict[str, str],
) -> None:
    with socket.socket() as probe:  # a loopback port where nothing listens
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    password = "db-password-not-to-be-shown"
    refused = f"postgresql://broadcaster:{password}@127.0.0.1:{closed}/broadcaster"
    # The real server, a database that does not exist on it.
    missing = re.sub(r"/[^/?]+\?", "/no_such_database?", database_env[DATABASE_URL])
    runs = [
        check_config("config/deploy-city.toml", database_env | {DATABASE_URL: url})
        for url in (refused, missing)
    ]
    reasons = ["Connection refused", '"no_such_database" does not exist']
    for run, reason in zip(runs, reasons, strict=True):
        out, err = run.communicate(timeout=120)
        assert run.returncode == 1 and "configuration is valid" not in out
        assert "1 problem(s)" in err and "Traceback" not in err
        (problem,) = [line.strip() for line in err.splitlines() if "store.url" in line]
        assert problem.startswith("store.url: cannot connect to PostgreSQL:") and reason in problem
        assert password not in err


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
    named = set(re.findall(r"`((?:config/deploy-|systemd/)[\w./@-]+)`", text))
    assert named, "the guide names no file"
    assert [n for n in sorted(named) if not (REPO / n).is_file()] == []
    examples = {f"config/{p.name}" for p in (REPO / "config").glob("deploy-*")}
    units = {f"systemd/{p.name}" for p in (REPO / "systemd").glob("*.service")}
    assert examples | units <= named
    assert "docs/deployment-postgresql.md" in text


def guide_commands(containing: str) -> list[str]:
    """The commands of the guide's shell block that contains ``containing``."""
    blocks = re.findall(r"```sh\n(.*?)```", GUIDE.read_text(encoding="utf-8"), re.S)
    (block,) = [b for b in blocks if containing in b]
    return [line for line in block.splitlines() if line and not line.startswith("#")]


def run_in_root(line: str, staging: Path, env: dict[str, str]) -> str | None:
    """Run one command of the guide with the machine's paths moved into ``staging``; a
    ``systemctl`` or ``apt-get`` command is not run but returned (the test verifies its unit
    instead, or does what the package would)."""
    moved = re.sub(r"(?<=\s)/(?=(etc|var|usr)/)", f"{staging}/", line)
    words = shlex.split(moved)
    if words[0] in ("systemctl", "apt-get"):
        return line
    if words[0] == "broadcaster":
        extra = ["--root", str(staging)] if words[1] == "install" else []
        done = broadcaster(*words[1:], *extra, env=env)
    elif words[0] == "systemd-analyze":
        verify = ["systemd-analyze", "verify", "--man=no", f"--root={staging}"]
        done = subprocess.run(
            verify + shlex.split(line)[2:], capture_output=True, text=True, timeout=60, check=False
        )
    else:
        done = subprocess.run(
            ["sh", "-c", moved], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
        )
    assert done.returncode == 0, f"{line}\n{done.stdout}{done.stderr}"
    return None


def test_the_guide_installs_a_city_node_and_a_second_node_beside_it(
    root: Path,  # noqa: F811 - the fixture imported above
    database_env: dict[str, str],
) -> None:
    commands = guide_commands("config/deploy-city.toml") + guide_commands("broadcaster@.service")
    started = [run_in_root(line, root, database_env) for line in commands]
    assert [s for s in started if s] == [
        "systemctl enable --now broadcaster",
        "systemctl enable --now broadcaster@node2",
    ]
    assert (root / "etc/broadcaster/demo/targets.json").is_file()
    assert DATABASE_URL in (root / "etc/broadcaster/secrets.env").read_text()
    first = tomllib.loads((root / "etc/broadcaster/broadcaster.toml").read_text())
    second = tomllib.loads((root / "etc/broadcaster/node2.toml").read_text())
    assert (first["server"]["port"], second["server"]["port"]) == (8080, 8081)
    assert (first["store"]["node"], second["store"]["node"]) == ("city-node1", "city-node2")
    mqtt = [c["channels"]["loudspeaker"]["mqtt"] for c in (first, second)]
    assert [m["client_id"] for m in mqtt] == ["broadcaster-node1", "broadcaster-node2"]
    assert second["store"]["url"] == first["store"]["url"] == {"env": DATABASE_URL}


def test_the_guide_installs_a_county_node_and_a_broker_unit_that_takes_every_box(
    root: Path,  # noqa: F811 - the fixture imported above
) -> None:
    (root / "etc/mosquitto/conf.d").mkdir(parents=True)  # as Debian's package makes it
    commands = guide_commands("config/deploy-county.toml")
    started = [run_in_root(line, root, os.environ | SECRETS) for line in commands]
    assert [s for s in started if s] == [
        "apt-get install -y mosquitto",
        "systemctl daemon-reload",
        "systemctl enable --now mosquitto broadcaster",
    ]
    assert (root / "etc/mosquitto/conf.d/broadcaster.conf").is_file()
    # Debian's unit, with the drop-in the guide installed, loads as systemd would load it; the
    # programs it runs come from the machine (the package installs them).
    (root / "usr/bin").mkdir(parents=True, exist_ok=True)
    (root / "usr/sbin").mkdir(parents=True, exist_ok=True)
    (root / "bin").symlink_to("usr/bin")
    for program in ("/usr/sbin/mosquitto", "/usr/bin/mkdir", "/usr/bin/chown", "/usr/bin/kill"):
        shutil.copy2(program, root / program.lstrip("/"))
    unit = "/usr/lib/systemd/system/mosquitto.service"
    assert (root / unit.lstrip("/")).is_file(), "Debian's mosquitto package is not installed"
    checked = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", f"--root={root}", unit],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (checked.returncode, checked.stdout + checked.stderr) == (0, "")
    drop_in = configparser.ConfigParser()
    drop_in.read(root / "etc/systemd/system/mosquitto.service.d/broadcaster.conf")
    # Far above the boxes of the largest size on one broker, and above systemd's soft 1,024.
    assert int(drop_in["Service"]["LimitNOFILE"]) >= 200_000
