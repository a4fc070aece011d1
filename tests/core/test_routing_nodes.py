"""Two ``broadcaster serve`` nodes on one PostgreSQL database and a channel whose one device
(under a device lease) node a holds: the deliveries node b claims are handed to node a and sent
there within a poll, not after the lease's retry delay; every delivery is sent once, by a.
Then node a is killed (SIGKILL) with deliveries handed to it: once its lease runs out node b
opens the device and sends them, none lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from broadcaster.cap.serialize import to_xml
from broadcaster.testing.pgserver import PgServer
from tests.conftest import REPO
from tests.core.support import make_alert, village_targets
from tests.core.test_cluster import TOKEN, _node
from tests.processes import api, wait_http, wait_until

TARGETS = 200
LEASE_SECONDS = 6.0
POLL_SECONDS = 0.5
"""The nodes' ``idle_poll_seconds``: how long a node may take to see work handed to it."""


CHANNEL = """
[channels.line]
type = "tests.core.leased:LeasedFileChannel"
concurrency = 20
rate_per_second = 400
"""


def _serve(tmp_path: Path, name: str, url: str, targets: Path) -> tuple[list[str], str]:
    return _node(
        tmp_path,
        name,
        url,
        targets,
        LEASE_SECONDS,
        channels=CHANNEL,
        idle_poll_seconds=POLL_SECONDS,
    )


def _sent(tmp_path: Path, name: str) -> list[dict[str, Any]]:
    path = tmp_path / name / "data" / "sent.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def _send(base: str, identifier: str) -> str:
    """Submit an alert to every target at ``base``; its id."""
    return str(api(base, "/api/v1/alerts", TOKEN, to_xml(make_alert(identifier)))["id"])


def _first_event(url: str, alert_id: str, detail: str = "attempt 1") -> dict[str, float]:
    """The keys of ``alert_id``'s deliveries with an event whose detail holds ``detail``, each
    with when its first such event was."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT d.idempotency_key, min(e.at) FROM delivery_events e"
            " JOIN deliveries d ON d.id = e.delivery_id"
            " WHERE d.alert_id = %s AND e.detail LIKE %s GROUP BY d.idempotency_key",
            (alert_id, f"%{detail}%"),
        ).fetchall()
    return {key: at for key, at in rows}


def _settled(base: str, alert_id: str) -> dict[str, Any]:
    deliveries = f"/api/v1/alerts/{alert_id}/deliveries?limit={TARGETS}"
    body: dict[str, Any] = wait_until(
        lambda: (b := api(base, deliveries, TOKEN))["complete"] and b,
        f"every delivery of {alert_id} settled",
        timeout=40,
    )
    assert body["summary"] == {"line": {"confirmed": TARGETS}}, body["summary"]
    return body


@pytest.mark.slow
def test_deliveries_go_to_the_node_holding_their_device_and_to_the_next_when_it_dies(  # type: ignore[no-untyped-def]
    tmp_path: Path, pg_server: PgServer, processes
) -> None:
    url = pg_server.migrated()
    targets = tmp_path / "targets.json"
    targets.write_text(json.dumps(village_targets("line", TARGETS)), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    serve_a, base_a = _serve(tmp_path, "a", url, targets)
    serve_b, base_b = _serve(tmp_path, "b", url, targets)
    node_a = subprocess.Popen(serve_a, cwd=REPO, env=env)
    processes.append(node_a)
    wait_http(base_a + "/healthz", timeout=60)  # a starts first: the device is a's
    node_b = subprocess.Popen(serve_b, cwd=REPO, env=env)
    processes.append(node_b)
    wait_http(base_b + "/healthz", timeout=60)

    first = _send(base_b, "routed-1")
    body = _settled(base_b, first)
    by_a = _sent(tmp_path, "a")
    assert _sent(tmp_path, "b") == []
    keys = [line["key"] for line in by_a]
    assert sorted(keys) == sorted(d["idempotency_key"] for d in body["deliveries"])  # each once
    assert _first_event(url, first, "handed to node a"), "node b claimed none of the fan-out"
    sent_at = {line["key"]: line["at"] for line in by_a}
    claimed_at = _first_event(url, first)
    waits = sorted(sent_at[key] - at for key, at in claimed_at.items())
    # within a poll of node a and a busy machine's slack, sooner than the retry after a third
    # of the lease that a send refused on node b used to wait for
    assert waits[-1] < LEASE_SECONDS / 3 - 0.1, f"claimed, then sent after {waits[-1]:.2f} s"

    node_a.send_signal(signal.SIGKILL)
    node_a.wait(timeout=10)
    killed_at = time.time()
    second = _send(base_b, "routed-2")
    wait_until(lambda: _first_event(url, second, "handed to node a"), "handed to the dead node")
    body = _settled(base_b, second)
    by_b = _sent(tmp_path, "b")
    assert sorted(line["key"] for line in by_b) == sorted(
        d["idempotency_key"] for d in body["deliveries"]
    )
    assert len(_sent(tmp_path, "a")) == TARGETS  # nothing more from the dead node
    took = min(line["at"] for line in by_b) - killed_at
    assert took <= LEASE_SECONDS + LEASE_SECONDS / 3 + 2.0, f"b sent after {took:.1f} s"
    node_b.send_signal(signal.SIGTERM)
    assert node_b.wait(timeout=20) == 0
    pg_server.drop(url)
