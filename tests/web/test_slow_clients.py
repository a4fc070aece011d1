"""Slow and greedy clients against the real listener (raw sockets on loopback): connections that
trickle a header line now and then, or send nothing, are cut after ``header_timeout_seconds``
while other clients are answered; one address gets at most ``connections_per_client``
connections, the next is turned away with 503 (the log names the address at most once a
minute with how many, ``/metrics`` counts them), and trusted proxies and shared addresses (many
boxes behind one NAT) are not limited; a burst of
connections (every box fetching its audio) waits in the listening queue while the server is
busy."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from broadcaster.api.app import make_app
from broadcaster.client_limits import REPORT_EVERY_S, TurnedAway
from broadcaster.config import parse_config
from broadcaster.deploy.listen import make_runner, open_listener
from broadcaster.errors import ConfigError
from broadcaster.service import BroadcasterService
from tests.web.conftest import site_config

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@asynccontextmanager
async def listening(tmp_path: Path, **server: Any) -> AsyncIterator[int]:
    """The server on a loopback port with ``server`` settings; yields the port."""
    data = site_config(tmp_path)
    data["server"] |= server
    config = parse_config(data, base_dir=tmp_path, source=None)
    service = BroadcasterService(config)
    runner = make_runner(make_app(service), config.server)
    await runner.setup()
    listener = await open_listener(runner, "127.0.0.1", 0, config.server, service.turned_away)
    try:
        yield listener.sockets[0].getsockname()[1]
    finally:
        listener.close()
        await runner.cleanup()


async def _closed_after(reader: asyncio.StreamReader, limit: float) -> float:
    started = time.monotonic()
    data = await asyncio.wait_for(reader.read(), limit)
    assert data == b"", data
    return time.monotonic() - started


async def _trickle(writer: asyncio.StreamWriter, closed: Callable[[], bool]) -> None:
    """One header line every 0.2 s, as a slowloris client does (every 10 s in the wild)."""
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    for n in range(100):
        await asyncio.sleep(0.2)
        if closed():
            return
        writer.write(f"X-Slow-{n}: y\r\n".encode())


async def test_slow_and_silent_clients_are_cut_off(tmp_path: Path) -> None:
    async with listening(tmp_path, header_timeout_seconds=1.0) as port:
        slow = [await asyncio.open_connection("127.0.0.1", port) for _ in range(5)]
        silent = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
        tricklers = [asyncio.create_task(_trickle(w, r.at_eof)) for r, w in slow]
        url = f"http://127.0.0.1:{port}/healthz"
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            assert response.status == 200
        waited = await asyncio.gather(*(_closed_after(r, 5) for r, _ in slow + silent))
        assert all(0.5 < w < 2.5 for w in waited), waited
        await asyncio.gather(*tricklers)
        for _, writer in slow + silent:
            writer.close()


async def test_connections_per_client_are_bounded(tmp_path: Path) -> None:
    async with listening(tmp_path, connections_per_client=4, header_timeout_seconds=30) as port:
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(4)]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        answer = await asyncio.wait_for(reader.read(), 5)
        assert answer.startswith(b"HTTP/1.1 503 ") and b"Retry-After: 5" in answer
        writer.close()
        held_reader, held_writer = held.pop()
        held_writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert (await asyncio.wait_for(held_reader.read(), 5)).startswith(b"HTTP/1.1 200 ")
        held_writer.close()
        await asyncio.sleep(0.1)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert (await asyncio.wait_for(reader.read(), 5)).startswith(b"HTTP/1.1 200 ")
        for _, w in [*held, (reader, writer)]:
            w.close()


async def _turned_away(port: int, times: int) -> None:
    for _ in range(times):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert (await asyncio.wait_for(reader.read(), 5)).startswith(b"HTTP/1.1 503 ")
        writer.close()


async def test_turned_away_connections_are_logged_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="broadcaster.deploy.listen")
    async with listening(tmp_path, connections_per_client=2, header_timeout_seconds=30) as port:
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
        await _turned_away(port, 5)
        reports = [r.getMessage() for r in caplog.records if r.name == "broadcaster.deploy.listen"]
        assert reports == [
            "turned away 1 connection(s) from 127.0.0.1: it had 2 open"
            " ([server] connections_per_client); if many boxes or people reach this server"
            " from that one address (a NAT), list it in [server] shared_addresses"
        ]
        reader, writer = held.pop()
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        metrics = (await asyncio.wait_for(reader.read(), 5)).decode()
        assert "\nbroadcaster_connections_turned_away_total 5\n" in metrics
        for _, w in [*held, (reader, writer)]:
            w.close()


def test_an_address_is_reported_once_a_minute_with_what_came_since() -> None:
    now = [1000.0]
    turned_away = TurnedAway(clock=lambda: now[0])
    assert turned_away.count("10.0.0.1") == 1
    assert [turned_away.count("10.0.0.1") for _ in range(3)] == [None] * 3
    assert turned_away.count("10.0.0.2") == 1
    now[0] += REPORT_EVERY_S - 0.1
    assert turned_away.count("10.0.0.1") is None
    now[0] += 0.1
    assert turned_away.count("10.0.0.1") == 5
    assert turned_away.count("10.0.0.2") == 1
    assert turned_away.total == 8


@pytest.mark.parametrize("unlimited", ["trusted_proxies", "shared_addresses"])
async def test_proxies_and_shared_addresses_are_not_limited(tmp_path: Path, unlimited: str) -> None:
    settings = {"connections_per_client": 2, unlimited: ["127.0.0.0/8"]}
    async with listening(tmp_path, **settings) as port:
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(6)]
        reader, writer = held[-1]
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert (await asyncio.wait_for(reader.read(), 5)).startswith(b"HTTP/1.1 200 ")
        for _, w in held:
            w.close()


async def test_a_burst_of_connections_waits_in_the_queue_while_the_server_is_busy(
    tmp_path: Path,
) -> None:
    # Every box fetches its audio at once; the server may be busy for a moment meanwhile (here:
    # its event loop is held). The kernel completes each handshake and queues it until then.
    burst = 600
    async with listening(tmp_path, connections_per_client=burst) as port:
        clients: list[socket.socket] = []
        try:
            for _ in range(burst):  # blocking, on the server's own thread: nothing accepts
                clients.append(socket.create_connection(("127.0.0.1", port), timeout=0.5))
            for client in clients:
                client.settimeout(30)  # the server answers them all once its loop turns
                client.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            answers = await asyncio.gather(*(asyncio.to_thread(c.recv, 64) for c in clients))
            assert {a.split(b"\r\n", 1)[0] for a in answers} == {b"HTTP/1.1 200 OK"}
        finally:
            for client in clients:
                client.close()


def test_a_shared_address_must_be_an_address_or_network(tmp_path: Path) -> None:
    data = site_config(tmp_path)
    data["server"] |= {"shared_addresses": ["10.64.0.0/10", "boxes.example.cn"]}
    with pytest.raises(ConfigError, match=r"'boxes\.example\.cn' is not an IP address or network"):
        parse_config(data, base_dir=tmp_path, source=None)
