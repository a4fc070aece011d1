"""Two ``broadcaster serve`` nodes on one PostgreSQL database: SIGKILL one in the middle of a
fan-out to 1,000 targets over the ``log`` channel; the other takes over its deliveries when
their leases run out, and every delivery ends confirmed, none missing, none written twice
except those the killed node had in flight (same idempotency key). A node stopped cleanly
(SIGTERM) hands what it had in flight over at once, without waiting for its leases."""

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


LOG_CHANNEL = """
[channels.log]
type = "log"
concurrency = 50
rate_per_second = 60
"""


def _node(
    tmp_path: Path,
    name: str,
    url: str,
    targets: Path,
    lease_seconds: float = LEASE_SECONDS,
    *,
    channels: str = LOG_CHANNEL,
    idle_poll_seconds: float = 0.2,
) -> tuple[list[str], str]:
    """The command that serves node ``name`` with ``channels`` (TOML tables), and its address."""
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
lease_seconds = {lease_seconds}
[registry]
targets = "{targets}"
[dispatcher]
idle_poll_seconds = {idle_poll_seconds}
[[api.tokens]]
name = "ci"
token = "{TOKEN}"
{channels}""",
        encoding="utf-8",
    )
    serve = [sys.executable, "-m", "broadcaster", "serve", "--config", str(folder / "config.toml")]
    return serve, f"http://127.0.0.1:{port}"


def _fan_out(
    tmp_path: Path, url: str, processes: list[subprocess.Popen[bytes]], lease_seconds: float
) -> tuple[subprocess.Popen[bytes], subprocess.Popen[bytes], str, str]:
    """Nodes a and b started, an alert to every target sent to a and a writing: (a, b, b's
    address, the alert's id)."""
    targets = tmp_path / "targets.json"
    targets.write_text(json.dumps(village_targets("log", TARGETS)), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    serve_a, base_a = _node(tmp_path, "a", url, targets, lease_seconds)
    serve_b, base_b = _node(tmp_path, "b", url, targets, lease_seconds)
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
    wait_until(
        lambda: len(_keys(tmp_path / "a" / "data" / "deliveries.jsonl")) >= 100,
        "node a sending",
        timeout=60,
    )
    return node_a, node_b, base_b, json.loads(sent.stdout)["id"]


def _finished_by_b(
    tmp_path: Path, url: str, base_b: str, alert_id: str
) -> tuple[list[str], list[str], dict[str, float]]:
    """Every delivery confirmed through node b, each key written once by each node and none
    missing: (keys written by a, keys written by b, the keys b resumed from a with when)."""
    written_by_a = _keys(tmp_path / "a" / "data" / "deliveries.jsonl")
    assert len(written_by_a) < TARGETS, "node a must stop mid-fan-out"
    deliveries = f"/api/v1/alerts/{alert_id}/deliveries"
    body = wait_until(
        lambda: (b := api(base_b, deliveries, TOKEN))["complete"] and b,
        "every delivery settled on node b",
        timeout=90,
    )
    assert body["summary"] == {"log": {"confirmed": TARGETS}}, body["summary"]
    expected = {d["idempotency_key"] for d in body["deliveries"]}
    assert len(expected) == TARGETS
    written_by_b = _keys(tmp_path / "b" / "data" / "deliveries.jsonl")
    assert set(written_by_a) | set(written_by_b) == expected  # none missing, nothing foreign
    assert max(Counter(written_by_a).values()) == 1
    assert max(Counter(written_by_b).values()) == 1
    with psycopg.connect(url) as conn:
        resumed = conn.execute(
            "SELECT d.idempotency_key, min(e.at) FROM delivery_events e"
            " JOIN deliveries d ON d.id = e.delivery_id"
            " WHERE e.detail LIKE 'lease of node a ran out%' GROUP BY d.idempotency_key"
        ).fetchall()
    in_flight = {key: at for key, at in resumed}
    # Written twice only if node a had it in flight when it stopped, and then with the same key.
    assert set(written_by_a) & set(written_by_b) <= set(in_flight)
    return written_by_a, written_by_b, in_flight


@pytest.mark.slow
def test_a_killed_node_s_deliveries_are_finished_by_the_other(  # type: ignore[no-untyped-def]
    tmp_path: Path, pg_server: PgServer, processes
) -> None:
    url = pg_server.migrated()
    node_a, node_b, base_b, alert_id = _fan_out(tmp_path, url, processes, LEASE_SECONDS)
    node_a.send_signal(signal.SIGKILL)
    killed_at = time.time()
    node_a.wait(timeout=10)
    _, _, in_flight_at_kill = _finished_by_b(tmp_path, url, base_b, alert_id)
    assert in_flight_at_kill, "node a held deliveries when it was killed"
    took_over = min(in_flight_at_kill.values()) - killed_at
    assert took_over <= LEASE_SECONDS + 2.0, f"took over after {took_over:.1f} s"
    node_b.send_signal(signal.SIGTERM)
    assert node_b.wait(timeout=20) == 0
    pg_server.drop(url)


@pytest.mark.slow
def test_a_node_stopped_cleanly_hands_its_deliveries_over_at_once(  # type: ignore[no-untyped-def]
    tmp_path: Path, pg_server: PgServer, processes
) -> None:
    url = pg_server.migrated()
    lease = 60.0
    node_a, node_b, base_b, alert_id = _fan_out(tmp_path, url, processes, lease)
    node_a.send_signal(signal.SIGTERM)
    assert node_a.wait(timeout=20) == 0
    stopped_at = time.time()
    _, _, in_flight_at_stop = _finished_by_b(tmp_path, url, base_b, alert_id)
    assert in_flight_at_stop, "node a held deliveries when it stopped"
    took_over = max(in_flight_at_stop.values()) - stopped_at
    assert took_over <= 3.0, f"took over after {took_over:.1f} s, not at once (lease {lease:g} s)"
    node_b.send_signal(signal.SIGTERM)
    assert node_b.wait(timeout=20) == 0
    pg_server.drop(url)
