"""A node whose PostgreSQL server goes away, as the deployment guide's failure table says: the
API answers 503 with ``Retry-After`` instead of failing or hanging, and the watchdog keep-alives
stop (the liveness check queries the database), so systemd restarts the node; ``check-config``,
which the unit runs before every start, then refuses with one clear line. A server that freezes
instead (its connections open, nothing answering) gets the same 503 within the statement
timeout, and the node recovers by itself when the server runs again."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from broadcaster.cap.serialize import to_xml
from broadcaster.testing.pgserver import PgServer
from drivers.mqtt.testing import free_port
from tests.conftest import REPO
from tests.core.support import make_alert
from tests.processes import (
    api,
    broadcaster,
    serve_argv,
    wait_http,
    wait_until,
    write_log_server_config,
)

TOKEN = "token-for-the-outage-test"


def status_of(url: str) -> tuple[int, str | None, str]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers.get("Retry-After"), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Retry-After"), exc.read().decode()


def stop(server: subprocess.Popen[bytes]) -> None:
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
    assert server.stderr is not None
    server.stderr.close()


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
        stop(server)
        notify.close()


def test_a_node_whose_database_freezes_answers_503_in_time_and_recovers(
    tmp_path: Path, own_pg_server: PgServer
) -> None:
    """A server that stops answering without closing its connections (SIGSTOP on every one of
    its processes, over TCP on 127.0.0.1): within ``statement_timeout_seconds`` the API answers
    503 instead of holding the request, and once the server runs again the node answers and
    delivers without a restart."""
    port = free_port()
    config = write_log_server_config(tmp_path, port=port, data_dir=tmp_path / "data")
    url = own_pg_server.tcp_url(own_pg_server.fresh())
    config.write_text(
        config.read_text()
        + f'[store]\nurl = "{url}"\nnode = "node-a"\nstatement_timeout_seconds = 2\n'
    )
    env = os.environ | {"BROADCASTER_API_TOKEN": TOKEN}
    server = subprocess.Popen(
        serve_argv(config), cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    base = f"http://127.0.0.1:{port}"
    alert = f"{base}/api/v1/alerts/no-such-alert"
    try:
        wait_http(base + "/healthz", timeout=60)
        assert status_of(alert)[0] == 404
        own_pg_server.freeze()
        try:
            for _ in range(2):  # the frozen connection, then a connection that cannot be made
                started = time.monotonic()
                status, retry_after, body = status_of(alert)
                took = time.monotonic() - started
                assert (status, retry_after) == (503, "5"), body
                assert "the database cannot be reached" in body and "Traceback" not in body
                # 2 s of statement time and 1 s of margin, plus what was queued before it
                assert took <= 2 * (2 + 1) + 1, f"answered after {took:.1f} s"
        finally:
            own_pg_server.thaw()
        wait_until(lambda: status_of(alert)[0] == 404, "the node answering again", timeout=15)
        sent = api(base, "/api/v1/alerts", TOKEN, to_xml(make_alert("after-the-freeze")))
        deliveries = f"/api/v1/alerts/{sent['id']}/deliveries"
        summary = wait_until(
            lambda: (b := api(base, deliveries, TOKEN))["complete"] and b["summary"],
            "the alert delivered after the freeze",
        )
        assert summary == {"log": {"confirmed": 3}}
    finally:
        stop(server)
