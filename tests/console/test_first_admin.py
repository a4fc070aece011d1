"""The first admin from ``BROADCASTER_ADMIN_PASSWORD``, with real server processes: a password
the account rules refuse stops the start with a clear message and exit 1, instead of leaving a
server nobody can log into; a good one makes the admin."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from drivers.mqtt.testing import free_port
from tests.conftest import REPO
from tests.processes import serve_argv, wait_http, write_log_server_config


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
    assert refused.stderr.splitlines()[-1] == (
        "error: BROADCASTER_ADMIN_PASSWORD: a password needs at least 10 characters; no officer"
        " exists yet, so nobody could log in (set a longer one, or add an admin with:"
        " broadcaster user add NAME --role admin)"
    )
    assert "Traceback" not in refused.stderr

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
