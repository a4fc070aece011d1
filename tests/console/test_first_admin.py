"""The first admin from ``BROADCASTER_ADMIN_PASSWORD``, with real server processes: a password
the account rules refuse stops the start with a clear message and exit 1, instead of leaving a
server nobody can log into; a good one makes the admin."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from drivers.mqtt.testing import free_port
from tests.conftest import REPO
from tests.processes import serve_argv, wait_http, write_log_server_config

REFUSAL = (
    "BROADCASTER_ADMIN_PASSWORD: a password needs at least 10 characters; no officer"
    " exists yet, so nobody could log in (set a longer one, or add an admin with:"
    " broadcaster user add NAME --role admin)"
)


def _run(
    config: Path, env: dict[str, str], *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "broadcaster", *args, "--config", str(config)],
        cwd=REPO,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_config_refuses_a_short_admin_password_only_while_no_officer_exists(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    config = write_log_server_config(tmp_path, port=free_port(), data_dir=data)
    env = {**os.environ, "PYTHONPATH": str(REPO), "BROADCASTER_ADMIN_PASSWORD": "short"}
    checked = _run(config, env, "check-config")
    assert checked.returncode == 1
    assert checked.stderr.splitlines() == [f"{config}: 1 problem(s):", f"  {REFUSAL}"]
    assert not data.exists()  # a fresh data directory stays as it was

    added = _run(
        config,
        env,
        "user",
        "add",
        "chief",
        "--role",
        "admin",
        "--password-stdin",
        stdin="a long enough password\n",
    )
    assert added.returncode == 0, added.stderr
    before = sorted(p.name for p in data.iterdir())
    checked = _run(config, env, "check-config")
    assert checked.returncode == 0, checked.stderr  # the variable is not read any more
    assert sorted(p.name for p in data.iterdir()) == before

    # A store left with a write-ahead log (a crash) is read through it: here the log removes
    # the officer that the main file still holds.
    with contextlib.closing(sqlite3.connect(data / "broadcaster.db")) as store:
        store.execute("PRAGMA wal_autocheckpoint = 0")
        store.execute("DELETE FROM officers")
        store.commit()
        assert (data / "broadcaster.db-wal").exists()
        checked = _run(config, env, "check-config")
    assert checked.returncode == 1
    assert checked.stderr.splitlines() == [f"{config}: 1 problem(s):", f"  {REFUSAL}"]


@pytest.mark.slow
def test_a_too_short_admin_password_stops_the_start(tmp_path: Path, processes) -> None:  # type: ignore[no-untyped-def]
    port, data = free_port(), tmp_path / "data"
    config = write_log_server_config(tmp_path, port=port, data_dir=data)
    env = {**os.environ, "PYTHONPATH": str(REPO), "BROADCASTER_ADMIN_PASSWORD": "short"}
    refused = subprocess.run(
        serve_argv(config), cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 1
    assert "serving on" not in refused.stdout
    assert f"  {REFUSAL}" in refused.stderr.splitlines()
    assert refused.stderr.splitlines()[-1] == (
        "broadcaster: not starting until these problems are fixed"
    )
    assert "Traceback" not in refused.stderr
    assert not data.exists()

    env["BROADCASTER_ADMIN_PASSWORD"] = "a long enough password"
    server = subprocess.Popen(
        serve_argv(config), cwd=REPO, env=env, stdout=subprocess.PIPE, text=True
    )
    processes.append(server)
    wait_http(f"http://127.0.0.1:{port}/healthz")
    officers = subprocess.run(
        [sys.executable, "-m", "broadcaster", "user", "list", "--config", str(config)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert officers.returncode == 0, officers.stderr
    assert "admin" in officers.stdout
