"""A node whose PostgreSQL server goes away, as the deployment guide's failure table says: the
API answers 503 with ``Retry-After`` instead of failing or hanging, and the watchdog keep-alives
stop (the liveness check queries the database), so systemd restarts the node; ``check-config``,
which the unit runs before every start, then refuses with one clear line."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from broadcaster.testing.pgserver import PgServer, postgres_bin
from drivers.mqtt.testing import free_port
from tests.conftest import REPO
from tests.processes import broadcaster, serve_argv, write_log_server_config

TOKEN = "token-for-the-outage-test"


@pytest.fixture
def own_pg_server() -> Iterator[PgServer]:
    """A PostgreSQL server of this test's own, since the test stops it."""
    if postgres_bin() is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql; see README Tests)")
    with PgServer() as server:
        yield server


def status_of(url: str) -> tuple[int, str | None, str]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers.get("Retry-After"), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Retry-After"), exc.read().decode()


def datagrams(sock: socket.socket, within: float) -> list[bytes]:
    """Every notification that arrives within ``within`` seconds."""
    received = []
    deadline = time.monotonic() + within
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            received.append(sock.recv(4096))
        except TimeoutError:
            break
    return received


def test_a_node_whose_database_goes_away_answers_503_and_stops_its_watchdog(
    tmp_path: Path, own_pg_server: PgServer
) -> None:
    port = free_port()
    config = write_log_server_config(tmp_path, port=port, data_dir=tmp_path / "data")
    url = own_pg_server.fresh()
    config.write_text(config.read_text() + f'[store]\nurl = "{url}"\nnode = "node-a"\n')
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    env = os.environ | {
        "NOTIFY_SOCKET": str(tmp_path / "notify.sock"),
        "WATCHDOG_USEC": "1000000",  # a keep-alive every 0.5 s while the database answers
        "BROADCASTER_API_TOKEN": TOKEN,
    }
    server = subprocess.Popen(
        serve_argv(config), cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    alert = f"http://127.0.0.1:{port}/api/v1/alerts/no-such-alert"
    try:
        notify.settimeout(60)
        assert notify.recv(4096).startswith(b"READY=1")
        assert status_of(alert)[0] == 404  # the database answers: no such alert
        assert b"WATCHDOG=1" in datagrams(notify, 1.5)

        own_pg_server.stop()
        for _ in range(2):  # the broken connection, then a new one that cannot be made
            status, retry_after, body = status_of(alert)
            assert (status, retry_after) == (503, "5")
            assert "the database cannot be reached" in body and "Traceback" not in body
        datagrams(notify, 0.6)  # a keep-alive already on its way
        assert datagrams(notify, 2.0) == []  # no keep-alive: systemd would restart the node
        assert server.poll() is None  # until then it keeps running and answering

        checked = broadcaster("check-config", "--config", str(config), "--port", "0")
        assert checked.returncode == 1 and "Traceback" not in checked.stderr
        problems = [line for line in checked.stderr.splitlines() if line.startswith("  ")]
        assert len(problems) == 2  # the database, and the server running on the data directory
        assert any("store.url: cannot connect to PostgreSQL" in p for p in problems)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        assert server.stderr is not None
        server.stderr.close()
        notify.close()
