"""The server's open-file limit (broadcaster/deploy/filelimit.py): raised at start from a low
soft limit, such as systemd's 1,024, to the hard one, so that it keeps taking connections beyond
the soft limit; and the units that set the hard limit, for the server and for Mosquitto."""

from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import sys
from pathlib import Path

from drivers.mqtt.testing import free_port
from tests.conftest import REPO
from tests.processes import serve_argv, wait_http

LOW = 64
"""The soft limit the processes start under: far below the clients the test opens."""
CLIENTS = 200


def under_low_limit(argv: list[str]) -> list[str]:
    """``argv`` run with the soft open-file limit at :data:`LOW` (the hard one unchanged)."""
    return ["sh", "-c", f'ulimit -Sn {LOW} && exec "$@"', "sh", *argv]


def limits_of(pid: int) -> tuple[int, int]:
    """The soft and hard open-file limits of process ``pid``, from ``/proc``."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError(f"no open-file limit for {pid}")


def answer_to(client: socket.socket) -> bytes:
    """The status line the server sent ``client``, or what went wrong waiting for it."""
    try:
        return client.recv(64).split(b"\r\n", 1)[0]
    except OSError as exc:
        return repr(exc).encode()


def test_the_soft_limit_is_raised_to_the_hard_one() -> None:
    code = (
        "import json; from dataclasses import asdict;"
        "from broadcaster.deploy.filelimit import raise_open_file_limit;"
        "print(json.dumps(asdict(raise_open_file_limit())))"
    )
    done = subprocess.run(
        under_low_limit([sys.executable, "-c", code]),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert json.loads(done.stdout) == {"before": LOW, "soft": hard, "hard": hard}


def test_a_server_started_under_a_low_limit_answers_more_clients_at_once(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "server.toml"
    config.write_text(
        f'[server]\nport = {port}\ndata_dir = "{tmp_path / "data"}"\n'
        f"connections_per_client = {CLIENTS * 2}\n"
        '[channels.log]\ntype = "log"\n',
        encoding="utf-8",
    )
    env = os.environ | {"BROADCASTER_API_TOKEN": "token-for-this-test"}
    server = subprocess.Popen(
        under_low_limit(serve_argv(config)),
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    clients: list[socket.socket] = []
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", timeout=60)
        for _ in range(CLIENTS):  # every connection stays open until the end
            client = socket.create_connection(("127.0.0.1", port), timeout=10)
            client.sendall(b"GET /healthz HTTP/1.1\r\nHost: broadcaster\r\n\r\n")
            clients.append(client)
        answers = [answer_to(client) for client in clients]
        assert answers == [b"HTTP/1.1 200 OK"] * CLIENTS
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        assert limits_of(server.pid) == (hard, hard)
    finally:
        for client in clients:
            client.close()
        server.terminate()
        server.wait(timeout=30)
