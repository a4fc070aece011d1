"""The relay channel takes only the configured county node's own answer, and only so much of it:
a redirect is retried, never followed (the signed alert goes nowhere else), an acceptance too
long to read is retried, and of a long refusal only the start is read."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp import web

from broadcaster.cap.serialize import to_xml
from broadcaster.config import Config
from broadcaster.service import BroadcasterService
from channels.relay.channel import MAX_ANSWER_BYTES
from tests.core.support import make_alert, make_config, running
from tests.relay.test_relay_contract import closed_port

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def _serving(handler: Handler) -> AsyncIterator[int]:
    """``handler`` answering every request on a loopback port: the port."""
    app = web.Application()
    app.router.add_route("*", "/{path:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = closed_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield port
    finally:
        await runner.cleanup()


def _city(tmp_path: Path, port: int) -> Config:
    node = {"division": "150921", "url": f"http://127.0.0.1:{port}", "token": "t" * 20}
    return make_config(tmp_path, {"relay": {"type": "relay", "nodes": [node]}}, [])


async def _relay_row(city: BroadcasterService, identifier: str, error: str) -> dict[str, Any]:
    """The relay delivery of a new alert once its last error contains ``error``."""
    result = await city.submit(to_xml(make_alert(identifier)), origin="test")
    for _ in range(200):
        row = (await city.store.deliveries.deliveries(result.alert_id))[0]
        if error in (row["last_error"] or ""):
            return row
        await asyncio.sleep(0.05)
    raise AssertionError(row)


class _Streamer:
    """Answers with ``status`` and a body of ``size`` bytes, written 1 MiB at a time; notes
    whether all of it was taken."""

    def __init__(self, status: int, size: int) -> None:
        self.status, self.size = status, size
        self.written_all = False

    async def answer(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(status=self.status)
        await response.prepare(request)
        chunk = b"x" * 1_048_576
        for _ in range(self.size // len(chunk)):
            await response.write(chunk)
        await response.write_eof()
        self.written_all = True
        return response


async def test_a_redirect_is_retried_and_never_followed(tmp_path: Path) -> None:
    elsewhere: list[str] = []

    async def other(request: web.Request) -> web.Response:
        elsewhere.append(f"{request.method} {request.path_qs}")
        return web.json_response({"id": "a1", "created": True}, status=201)

    async with _serving(other) as other_port:

        async def redirect(request: web.Request) -> web.Response:
            raise web.HTTPTemporaryRedirect(f"http://127.0.0.1:{other_port}/internal?x=1")

        async with _serving(redirect) as port, running(_city(tmp_path, port)) as city:
            row = await _relay_row(city, "redirect-1", "HTTP 307")
    assert row["state"] in ("queued", "sending")
    assert "redirects are not followed" in row["last_error"]
    assert elsewhere == []


async def test_of_a_long_refusal_only_the_start_is_read(tmp_path: Path) -> None:
    refusal = _Streamer(400, 64 * 1_048_576)
    async with _serving(refusal.answer) as port, running(_city(tmp_path, port)) as city:
        row = await _relay_row(city, "long-refusal-1", "HTTP 400")
    assert row["state"] == "failed"
    assert row["last_error"].endswith("HTTP 400: " + "x" * 300)
    assert not refusal.written_all


async def test_an_acceptance_longer_than_the_limit_is_retried(tmp_path: Path) -> None:
    async def verbose(request: web.Request) -> web.Response:
        await request.read()
        body = {"id": "a1", "created": True, "note": "x" * MAX_ANSWER_BYTES}
        return web.Response(status=201, text=json.dumps(body), content_type="application/json")

    async with _serving(verbose) as port, running(_city(tmp_path, port)) as city:
        row = await _relay_row(city, "verbose-1", "more than")
    assert row["state"] in ("queued", "sending")
    assert f"answered HTTP 201 with more than {MAX_ANSWER_BYTES} bytes" in row["last_error"]
