"""Request bodies against the real listener (raw sockets on loopback): a client that sends its
header at once and then trickles the body, or stops, is answered 408 and cut off after
``body_timeout_seconds`` on every endpoint that takes a body (the public push subscription and
console login among them) while other clients are answered; body size limits hold on every
such endpoint, the push channel's 16 KiB included, for declared and for chunked bodies."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from broadcaster.api.app import make_app
from broadcaster.config import parse_config
from broadcaster.deploy.listen import make_runner, open_listener
from broadcaster.service import BroadcasterService
from channels.webpush.webapp import MAX_BODY
from tests.web.conftest import TOKEN, site_config

TIMEOUT = 0.6
LIMIT = 64 * 1024
BEARER = f"Authorization: Bearer {TOKEN}\r\n"
Routes = list[tuple[str, str]]
METHODS = ("POST", "PUT", "PATCH")


@asynccontextmanager
async def listening(tmp_path: Path, **server: Any) -> AsyncIterator[tuple[int, Routes]]:
    """The server on a loopback port with ``server`` settings; yields the port and the paths
    of every route that takes a body."""
    data = site_config(tmp_path)
    data["server"] |= server
    config = parse_config(data, base_dir=tmp_path, source=None)
    app = make_app(BroadcasterService(config))
    runner = make_runner(app, config.server)
    await runner.setup()
    listener = await open_listener(runner, "127.0.0.1", 0, config.server)
    try:
        yield listener.sockets[0].getsockname()[1], body_routes(app)
    finally:
        listener.close()
        await runner.cleanup()


def body_routes(app: web.Application) -> Routes:
    """(method, path) of every POST, PUT and PATCH route, in the root and mounted apps, with
    route parameters filled in."""
    found: Routes = []
    pending = [app]
    while pending:
        for resource in pending.pop().router.resources():
            info = resource.get_info()
            if "app" in info:
                pending.append(info["app"])
                continue
            path = info.get("path", info.get("formatter", ""))
            found += [(r.method, _filled(path)) for r in resource if r.method in METHODS]
    return sorted(set(found))


def _filled(path: str) -> str:
    out, depth = [], 0
    for char in path:
        if char == "{":
            depth += 1
            if depth == 1:
                out.append("1")
        elif char == "}":
            depth -= 1
        elif depth == 0:
            out.append(char)
    return "".join(out)


async def _answer(reader: asyncio.StreamReader, limit: float) -> tuple[int, bytes, float]:
    """The status and body of the answer, once the server has closed (a reset counts: the
    server closes with the trickled bytes unread); and how long it took."""
    started = time.monotonic()
    data = b""
    async with asyncio.timeout(limit):
        with contextlib.suppress(ConnectionResetError):
            while chunk := await reader.read(65536):
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head else 0
    return status, body, time.monotonic() - started


async def _trickled(
    port: int, method: str, path: str, headers: str = ""
) -> tuple[int, bytes, float]:
    """Send the header of a 4 KiB form body at once, then one byte every 0.1 s."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"{method} {path} HTTP/1.1\r\nHost: x\r\n{headers}"
        "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 4096\r\n\r\na=".encode()
    )

    async def trickle() -> None:
        while not reader.at_eof():
            await asyncio.sleep(0.1)
            writer.write(b"b")

    dripping = asyncio.create_task(trickle())
    try:
        return await _answer(reader, 10)
    finally:
        dripping.cancel()
        writer.close()


async def test_trickled_bodies_are_answered_408_and_cut_off(tmp_path: Path) -> None:
    async with listening(tmp_path, body_timeout_seconds=TIMEOUT) as (port, _routes):
        login = await _trickled(port, "POST", "/console/login")
        subscribe = await _trickled(port, "POST", "/channels/webpush/subscribe")
        alerts = await _trickled(port, "POST", "/api/v1/alerts", BEARER)
        for status, body, waited in (login, subscribe, alerts):
            assert status == 408, body
            assert json.loads(body) == {"error": "the request body did not arrive within 0.6 s"}
            assert TIMEOUT - 0.1 < waited < TIMEOUT + 1.5, waited
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/healthz") as response,
        ):
            assert response.status == 200


async def test_every_body_endpoint_lets_go_of_a_trickling_client(tmp_path: Path) -> None:
    """Whatever the endpoint does (reads the body, refuses before reading, answers without
    it), the connection is closed within the body time, not held for the trickle."""
    async with listening(tmp_path, body_timeout_seconds=TIMEOUT) as (port, routes):
        assert ("POST", "/channels/webpush/subscribe") in routes and len(routes) > 20
        answers = await asyncio.gather(
            *(_trickled(port, method, path, BEARER) for method, path in routes)
        )
    waits = {route: waited for route, (_, _, waited) in zip(routes, answers, strict=True)}
    slow = {route: waited for route, waited in waits.items() if waited > 2.5}
    assert not slow, slow


async def test_a_body_that_arrives_in_time_is_taken(tmp_path: Path) -> None:
    """The control: a body sent in parts that all arrive before the deadline is read."""
    async with listening(tmp_path, body_timeout_seconds=2.0) as (port, _routes):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        body = b'{"endpoint": "https://push.example/none"}'
        writer.write(
            b"POST /channels/webpush/unsubscribe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
        )
        for start in range(0, len(body), 10):
            await asyncio.sleep(0.1)
            writer.write(body[start : start + 10])
        status, answer, _ = await _answer(reader, 5)
        writer.close()
    assert status == 200 and json.loads(answer) == {"removed": False}


@pytest.mark.parametrize("chunked", [False, True])
async def test_body_size_limits_hold_on_every_endpoint(tmp_path: Path, chunked: bool) -> None:
    async with listening(tmp_path, max_body_bytes=LIMIT, body_timeout_seconds=1) as (port, routes):
        results = {}
        for method, path in routes:
            limit = MAX_BODY if path.startswith("/channels/webpush/") else LIMIT
            results[method, path] = (limit, await _oversized(port, method, path, limit, chunked))
    for route, (limit, (status, body)) in results.items():
        if chunked and status != 413:
            # a chunked body is refused when it is read: by the handler, or before it (its
            # content type or the caller refused first)
            assert status in (401, 403, 404, 405, 415), (route, status, body)
            continue
        assert status == 413, (route, status, body)
        assert str(limit).encode() in body, (route, body)


async def _oversized(
    port: int, method: str, path: str, limit: int, chunked: bool
) -> tuple[int, bytes]:
    """Send a body one byte over ``limit``; the answer (read by its length: the server then
    goes on discarding the rest for a while, so the client still gets to read it)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\n{BEARER}Connection: close\r\n"
    head += "Content-Type: application/x-www-form-urlencoded\r\n"
    body = b"a=" + b"b" * (limit - 1)
    if chunked:
        writer.write(f"{head}Transfer-Encoding: chunked\r\n\r\n".encode())
        writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
    else:
        writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body[:1000])
    async with asyncio.timeout(5):
        header = await reader.readuntil(b"\r\n\r\n")
        length = re.search(rb"\r\nContent-Length: (\d+)", header, re.IGNORECASE)
        assert length is not None, header
        answer = await reader.readexactly(int(length.group(1)))
    writer.close()
    return int(header.split(b" ", 2)[1]), answer
