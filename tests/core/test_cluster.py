"""Two ``broadcaster serve`` nodes on one PostgreSQL database: SIGKILL one in the middle of a
fan-out to 1,000 targets over the ``log`` channel; the other takes over its deliveries when
their leases run out, and every delivery ends confirmed, none missing, none written twice
except those the killed node had in flight (same idempotency key)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import psycopg
import pytest

from broadcaster.cap.serialize import to_xml
from broadcaster.testing.pgserver import PgServer
from drivers.mqtt.testing import free_port
from tests.conftest import REPO
from tests.core.support import make_alert, village_targets
from tests.processes import api, wait_http, wait_until

TOKEN = "cluster-test-token-42"
TARGETS = 1000
LEASE_SECONDS = 3.0


def _keys(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [json.loads(line)["idempotency_key"] for line in path.read_text().splitlines()]


def _node(tmp_path: Path, name: str, url: str, targets: Path) -> tuple[list[str], str]:
    port = free_port()
    folder = tmp_path / name
    folder.mkdir()
    (folder / "config.toml").write_text(
        f"""
[server]
port = {port}
data_dir = "{folder / "data"}"
[store]
url = "{url}"
node = "{name}"
lease_seconds = {LEASE_SECONDS}
[registry]
targets = "{targets}"
[dispatcher]
idle_poll_seconds = 0.2
[[api.tokens]]
name = "ci"
token = "{TOKEN}"
[channels.log]
type = "log"
concurrency = 50
rate_per_second = 60
""",
        encoding="utf-8",
    )
    serve = [sys.executable, "-m", "broadcaster", "serve", "--config", str(folder / "config.toml")]
    return serve, f"http://127.0.0.1:{port}"


@pytest.mark.slow
def test_a_killed_node_s_deliveries_are_finished_by_the_other(  # type: ignore[no-untyped-def]
    tmp_path: Path, pg_server: PgServer, processes
) -> None:
    url = pg_server.migrated()
    targets = tmp_path / "targets.json"
    targets.write_text(json.dumps(village_targets("log", TARGETS)), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    serve_a, base_a = _node(tmp_path, "a", url, targets)
    serve_b, base_b = _node(tmp_path, "b", url, targets)
    node_a = subprocess.Popen(serve_a, cwd=REPO, env=env)
    processes.append(node_a)
    node_b = subprocess.Popen(serve_b, cwd=REPO, env=env)
    processes.append(node_b)
    wait_http(base_a + "/healthz", timeout=60)
    wait_http(base_b + "/healthz", timeout=60)
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
            base_a,
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
    file_a = tmp_path / "a" / "data" / "deliveries.jsonl"
    file_b = tmp_path / "b" / "data" / "deliveries.jsonl"

    wait_until(lambda: len(_keys(file_a)) >= 100, "node a sending", timeout=60)
    node_a.send_signal(signal.SIGKILL)
    killed_at = time.time()
    node_a.wait(timeout=10)
    written_by_a = _keys(file_a)
    assert len(written_by_a) < TARGETS, "the kill must land mid-fan-out"

    deliveries = f"/api/v1/alerts/{alert_id}/deliveries"
    body = wait_until(
        lambda: (b := api(base_b, deliveries, TOKEN))["complete"] and b,
        "every delivery settled on node b",
        timeout=90,
    )
    assert body["summary"] == {"log": {"confirmed": TARGETS}}, body["summary"]
    expected = {d["idempotency_key"] for d in body["deliveries"]}
    assert len(expected) == TARGETS
    written_by_b = _keys(file_b)
    assert set(written_by_a) | set(written_by_b) == expected  # none missing, nothing foreign
    assert max(Counter(written_by_a).values()) == 1
    assert max(Counter(written_by_b).values()) == 1

    with psycopg.connect(url) as conn:
        resumed = conn.execute(
            "SELECT d.idempotency_key, min(e.at) FROM delivery_events e"
            " JOIN deliveries d ON d.id = e.delivery_id"
            " WHERE e.detail LIKE 'lease of node a ran out%' GROUP BY d.idempotency_key"
        ).fetchall()
        in_flight_at_kill = {key for key, _ in resumed}
    # Written twice only if node a had it in flight when it died, and then with the same key.
    assert set(written_by_a) & set(written_by_b) <= in_flight_at_kill
    assert in_flight_at_kill, "node a held deliveries when it was killed"
    took_over = min(at for _, at in resumed) - killed_at
    assert took_over <= LEASE_SECONDS + 2.0, f"took over after {took_over:.1f} s"
    node_b.send_signal(signal.SIGTERM)
    assert node_b.wait(timeout=20) == 0
    pg_server.drop(url)
