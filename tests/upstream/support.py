"""Stand-ins for the region's platform and the neighbours: real HTTP servers on loopback.

:class:`FeedServer` serves CAP documents and an Atom feed (or a plain index) of them, with an
``ETag`` it honours (304), and can be told to fail, answer garbage or link elsewhere; it counts
every request. :func:`node` runs a whole broadcaster node (service and web app) on loopback.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from broadcaster.api.app import make_app
from broadcaster.cap import Alert
from broadcaster.cap.serialize import to_xml
from broadcaster.cap.signature import AlertSigner
from broadcaster.config import Config
from broadcaster.federationconfig import UpstreamConfig
from broadcaster.service import BroadcasterService
from tests.signing import key_and_cert

ATOM = "http://www.w3.org/2005/Atom"


@dataclass
class Signing:
    """A key and certificate of an upstream sender, the certificate written to a file."""

    signer: AlertSigner
    cert_file: Path

    @classmethod
    def make(cls, folder: Path, name: str = "region") -> Signing:
        key_pem, cert_pem, _ = key_and_cert("ec")
        cert_file = folder / f"{name}.crt"
        cert_file.write_bytes(cert_pem)
        return cls(AlertSigner.from_pem(key_pem, cert_pem), cert_file)

    def sign(self, alert: Alert) -> bytes:
        return to_xml(alert, signer=self.signer)


def tampered(signed: bytes) -> bytes:
    """A signed document whose headline was changed after signing."""
    changed = signed.replace("暴雪".encode(), "暴雨".encode(), 1)
    assert changed != signed
    return changed


@dataclass
class FeedServer:
    """A CAP feed on loopback: ``/feed.atom``, ``/index.txt``, ``/cap/<name>.xml``."""

    host: str = "127.0.0.1"
    documents: dict[str, bytes] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    """Entry name → href to use instead of the document's own URL."""
    failure: int | None = None
    garbage: bytes | None = None
    token: str | None = None
    delay: float = 0.0
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    server: TestServer | None = None

    @property
    def base(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("")).rstrip("/")

    def feed(self) -> bytes:
        entries = "".join(
            f"<entry><id>urn:{name}</id><title>{name}</title>"
            f"<updated>2026-01-01T00:00:00Z</updated>"
            f'<link rel="alternate" type="application/cap+xml"'
            f' href="{self.links.get(name, f"/cap/{name}.xml")}"/></entry>'
            for name in self.documents
        )
        return (
            f'<?xml version="1.0" encoding="UTF-8"?><feed xmlns="{ATOM}"><id>urn:feed</id>'
            f"<title>region</title><updated>2026-01-01T00:00:00Z</updated>{entries}</feed>"
        ).encode()

    def _answer(self, request: web.Request, body: bytes, content_type: str) -> web.Response:
        if self.token is not None and request.headers.get("Authorization") != (
            f"Bearer {self.token}"
        ):
            return web.Response(status=401)
        if self.failure is not None:
            return web.Response(status=self.failure, text="down")
        if self.garbage is not None:
            return web.Response(body=self.garbage, content_type=content_type)
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        return web.Response(body=body, content_type=content_type, headers={"ETag": etag})

    async def start(self) -> None:
        app = web.Application()

        async def log(request: web.Request) -> None:
            self.requests.append((request.path, dict(request.headers)))

        async def feed(request: web.Request) -> web.Response:
            await log(request)
            await asyncio.sleep(self.delay)
            return self._answer(request, self.feed(), "application/atom+xml")

        async def index(request: web.Request) -> web.Response:
            await log(request)
            lines = "\n".join(f"/cap/{name}.xml" for name in self.documents)
            return self._answer(request, f"# CAP index\n{lines}\n".encode(), "text/plain")

        async def document(request: web.Request) -> web.Response:
            await log(request)
            name = request.match_info["name"]
            if name not in self.documents:
                return web.Response(status=404)
            return web.Response(body=self.documents[name], content_type="application/cap+xml")

        async def redirect(request: web.Request) -> web.Response:
            await log(request)
            raise web.HTTPFound(request.query["to"])

        async def endless(request: web.Request) -> web.StreamResponse:
            """A chunked answer (no Content-Length) that never ends."""
            await log(request)
            response = web.StreamResponse()
            response.enable_chunked_encoding()
            await response.prepare(request)
            while True:
                await response.write(b"<entry>" * 1000)
                await asyncio.sleep(0.001)

        app.router.add_get("/feed.atom", feed)
        app.router.add_get("/endless", endless)
        app.router.add_get("/index.txt", index)
        app.router.add_get("/cap/{name}.xml", document)
        app.router.add_get("/redirect", redirect)
        self.server = TestServer(app, host=self.host)
        await self.server.start_server()

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()

    def fetched(self, path: str) -> int:
        return sum(1 for p, _ in self.requests if p == path)


@asynccontextmanager
async def feed_server(**kwargs: Any) -> AsyncIterator[FeedServer]:
    server = FeedServer(**kwargs)
    await server.start()
    try:
        yield server
    finally:
        await server.close()


def with_sources(config: Config, *sources: dict[str, Any], **other: Any) -> Config:
    """``config`` with these ``[[upstream]]`` tables (and other top-level sections)."""
    upstream = [UpstreamConfig.model_validate(s) for s in sources]
    return config.model_copy(update={"upstream": upstream, **other})


@dataclass
class Node:
    service: BroadcasterService
    session: aiohttp.ClientSession

    async def get(self, path: str, token: str | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.session.get(path, headers=headers) as response:
            if response.content_type == "application/json":
                return response.status, await response.json()
            return response.status, await response.read()

    async def push(self, token: str, body: bytes) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/cap+xml"}
        async with self.session.post("/api/v1/alerts", headers=headers, data=body) as response:
            return response.status, await response.json()

    async def polled(self, source: str, rounds: int, timeout: float = 10.0) -> None:
        """Wait until ``source`` has been polled ``rounds`` times."""
        health = self.service.upstream.health()[source]
        async with asyncio.timeout(timeout):
            while health.polls < rounds:
                self.service.upstream.rounds.clear()
                await self.service.upstream.rounds.wait()

    async def state(self, alert_id: str) -> str:
        record = await self.service.store.alerts.get(alert_id)
        assert record is not None
        return str(record["state"])

    async def alert_count(self) -> int:
        return int(
            await self.service.database.run(
                lambda: self.service.database.conn.execute(
                    "SELECT count(*) FROM alerts"
                ).fetchone()[0]
            )
        )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@asynccontextmanager
async def node(config: Config) -> AsyncIterator[Node]:
    """A broadcaster node serving on loopback at its ``public_url``, with a client session."""
    port = _free_port()
    server_config = config.server.model_copy(
        update={"port": port, "public_url": f"http://127.0.0.1:{port}"}
    )
    service = BroadcasterService(config.model_copy(update={"server": server_config}))
    server = TestServer(make_app(service), port=port)
    await server.start_server()
    try:
        async with aiohttp.ClientSession(base_url=str(server.make_url("/"))) as session:
            yield Node(service, session)
    finally:
        await server.close()
