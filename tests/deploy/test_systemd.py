"""The server under a watchdog-aware runner: a unix datagram socket bound here plays systemd's
notify socket; READY=1 arrives once the server listens, WATCHDOG=1 keeps coming, STOPPING=1 on
SIGTERM. Also the protocol pieces on their own: abstract sockets, a failing liveness check, and
structured journal records."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from broadcaster.deploy.journal import JournalHandler, stderr_is_journal
from broadcaster.deploy.sdnotify import SystemdNotifier
from tests.conftest import REPO


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(60)
    try:
        yield sock, path
    finally:
        sock.close()


def fields(datagram: bytes) -> dict[str, str]:
    return dict(line.split("=", 1) for line in datagram.decode().splitlines())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_server_sends_ready_after_listening_then_watchdog_then_stopping(
    tmp_path: Path, notify_socket: tuple[socket.socket, str]
) -> None:
    sock, path = notify_socket
    port = free_port()
    config = tmp_path / "server.toml"
    config.write_text(
        f'[server]\nport = {port}\ndata_dir = "{tmp_path / "data"}"\n'
        '[channels.log]\ntype = "log"\n',
        encoding="utf-8",
    )
    env = os.environ | {
        "NOTIFY_SOCKET": path,
        "WATCHDOG_USEC": "300000",
        "BROADCASTER_API_TOKEN": "token-for-this-test",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "broadcaster", "serve", "--config", str(config)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        ready = fields(sock.recv(4096))
        assert ready["READY"] == "1" and f":{port}" in ready["STATUS"]
        # Ready means listening: the health endpoint answers at once.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            assert response.status == 200
        started = time.monotonic()
        keep_alives = [fields(sock.recv(4096)) for _ in range(3)]
        assert keep_alives == [{"WATCHDOG": "1"}] * 3
        assert time.monotonic() - started < 3  # every 0.15 s: half of WATCHDOG_USEC

        # A second server on the same data directory is refused while the first runs.
        second = subprocess.run(
            [sys.executable, "-m", "broadcaster", "serve", "--config", str(config)],
            cwd=REPO,
            env=os.environ | {"BROADCASTER_API_TOKEN": "x"},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert second.returncode == 1 and "a server is running" in second.stderr

        server.send_signal(signal.SIGTERM)
        message = fields(sock.recv(4096))
        while message == {"WATCHDOG": "1"}:
            message = fields(sock.recv(4096))
        assert message["STOPPING"] == "1"
        assert server.wait(timeout=30) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        assert server.stderr is not None
        server.stderr.close()


async def test_no_keep_alive_while_the_liveness_check_fails(
    notify_socket: tuple[socket.socket, str],
) -> None:
    sock, path = notify_socket
    sock.setblocking(False)
    notifier = SystemdNotifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "40000"})
    answers = iter([False, False, True])
    checked = asyncio.Event()

    async def alive() -> bool:
        try:
            return next(answers)
        except StopIteration:
            checked.set()
            return False

    task = asyncio.create_task(notifier.keep_alive(alive))
    try:
        async with asyncio.timeout(5):
            await checked.wait()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        notifier.close()
    received = []
    while True:
        try:
            received.append(sock.recv(4096))
        except BlockingIOError:
            break
    assert received == [b"WATCHDOG=1"]  # only the one healthy round


def test_abstract_socket_and_no_socket() -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    name = f"broadcaster-test-{os.getpid()}"
    listener.bind(b"\0" + name.encode())
    listener.settimeout(5)
    try:
        notifier = SystemdNotifier({"NOTIFY_SOCKET": f"@{name}"})
        assert notifier.ready("up") and listener.recv(100) == b"READY=1\nSTATUS=up"
        notifier.close()
    finally:
        listener.close()
    outside = SystemdNotifier({})
    assert not outside.enabled and not outside.ready("up") and outside.watchdog_interval is None
    other_pid = SystemdNotifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "1", "WATCHDOG_PID": "1"})
    assert other_pid.watchdog_interval is None  # the watchdog is meant for another process


def parse_journal(datagram: bytes) -> dict[str, str]:
    """An independent reader of journald's native format (text and binary-safe fields)."""
    found: dict[str, str] = {}
    rest = datagram
    while rest:
        line, _sep, tail = rest.partition(b"\n")
        if b"=" in line:
            key, value = line.split(b"=", 1)
            found[key.decode()] = value.decode()
            rest = tail
        else:
            (size,) = struct.unpack("<Q", tail[:8])
            found[line.decode()] = tail[8 : 8 + size].decode()
            assert tail[8 + size : 9 + size] == b"\n"
            rest = tail[9 + size :]
    return found


def test_journal_records_carry_priority_code_location_and_extra_fields(tmp_path: Path) -> None:
    path = str(tmp_path / "journal.sock")
    journal = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    journal.bind(path)
    journal.settimeout(5)
    handler = JournalHandler(path=path)
    logger = logging.getLogger("broadcaster.test.journal")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise ValueError("modem answered garbage")
        except ValueError:
            logger.exception("send failed", extra={"journal": {"ALERT_ID": "a123", "bad key": 1}})
        record = parse_journal(journal.recv(65536))
    finally:
        logger.removeHandler(handler)
        handler.close()
        journal.close()
    assert record["PRIORITY"] == "3" and record["SYSLOG_IDENTIFIER"] == "broadcaster"
    assert record["MESSAGE"].startswith("send failed\nTraceback")
    assert "ValueError: modem answered garbage" in record["MESSAGE"]
    assert record["LOGGER"] == "broadcaster.test.journal" and record["ALERT_ID"] == "a123"
    assert record["CODE_FILE"].endswith("test_systemd.py") and int(record["CODE_LINE"]) > 0
    assert "bad key" not in record


def test_stderr_is_journal_only_when_systemd_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open(tmp_path / "stream", "w") as stream:
        monkeypatch.setattr(sys, "stderr", stream)
        info = os.fstat(stream.fileno())
        assert stderr_is_journal({"JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"})
        assert not stderr_is_journal({"JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino + 1}"})
        assert not stderr_is_journal({})
