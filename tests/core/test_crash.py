"""SIGKILL the server while deliveries are in flight to a slow webhook receiver, restart it:
every target ends confirmed, none is missing, and duplicates carry the same idempotency key."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from broadcaster.cap.serialize import to_xml
from drivers.mqtt.testing import free_port
from tests.conftest import REPO
from tests.core.receiver import SECRET
from tests.core.support import make_alert, village_targets
from tests.processes import api, wait_http, wait_until

TOKEN = "crash-test-token-42"
TARGETS = 40


def _lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


@pytest.mark.slow
def test_sigkill_mid_delivery_loses_nothing(tmp_path: Path, processes) -> None:  # type: ignore[no-untyped-def]
    hook_port, api_port = free_port(), free_port()
    received = tmp_path / "received.txt"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    processes.append(
        subprocess.Popen(
            [sys.executable, "-m", "tests.core.receiver", str(hook_port), str(received), "0.3"],
            cwd=REPO,
            env=env,
        )
    )
    targets = village_targets("hook", TARGETS)
    (tmp_path / "targets.json").write_text(json.dumps(targets), encoding="utf-8")
    (tmp_path / "config.toml").write_text(
        f"""
[server]
port = {api_port}
data_dir = "{tmp_path / "data"}"
[registry]
targets = "targets.json"
[dispatcher]
retry_base_seconds = 0.2
retry_max_seconds = 1
idle_poll_seconds = 0.1
[[api.tokens]]
name = "ci"
token = "{TOKEN}"
[channels.hook]
type = "webhook"
url = "http://127.0.0.1:{hook_port}/hook"
secret = "{SECRET.decode()}"
concurrency = 4
""",
        encoding="utf-8",
    )
    serve = [
        sys.executable,
        "-m",
        "broadcaster",
        "serve",
        "--config",
        str(tmp_path / "config.toml"),
    ]
    base = f"http://127.0.0.1:{api_port}"
    server = subprocess.Popen(serve, cwd=REPO, env=env)
    processes.append(server)
    wait_http(base + "/healthz")
    alert_file = tmp_path / "alert.xml"
    alert_file.write_bytes(to_xml(make_alert()))
    sent = subprocess.run(
        [
            sys.executable,
            "-m",
            "broadcaster",
            "send",
            str(alert_file),
            "--url",
            base,
            "--token",
            TOKEN,
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    alert_id = json.loads(sent.stdout)["id"]

    wait_until(lambda: len(_lines(received)) >= 8, "eight deliveries before the kill")
    server.send_signal(signal.SIGKILL)
    server.wait(timeout=10)
    delivered_before = len(set(_lines(received)))
    assert 8 <= delivered_before < TARGETS, "the kill must land mid-delivery"

    restarted = subprocess.Popen(serve, cwd=REPO, env=env)
    processes.append(restarted)
    wait_http(base + "/healthz")
    deliveries = f"/api/v1/alerts/{alert_id}/deliveries"
    body = wait_until(
        lambda: (b := api(base, deliveries, TOKEN))["complete"] and b,
        "every delivery settled",
        timeout=60,
    )
    assert body["summary"] == {"hook": {"confirmed": TARGETS}}, body["summary"]
    keys = _lines(received)
    expected = {d["idempotency_key"] for d in body["deliveries"]}
    assert set(keys) == expected  # none missing, nothing foreign
    assert len(keys) >= TARGETS  # duplicates are possible, and dedupable by key
    status = subprocess.run(
        [sys.executable, "-m", "broadcaster", "status", alert_id, "--url", base, "--token", TOKEN],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert f"alert {alert_id}: active, complete: True" in status.stdout
    assert f"hook: confirmed {TARGETS}" in status.stdout
    restarted.send_signal(signal.SIGTERM)
    assert restarted.wait(timeout=20) == 0
