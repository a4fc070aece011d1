"""The aiohttp application: routes, authentication, body limits and the service's lifetime.

The service is started and stopped in ``cleanup_ctx``, so the server accepts requests only
while every part is running. ``GET /healthz`` reports each channel, every plugin that failed to
load, each upstream source and push to a neighbour, and whether the data directory's disk has
room: whether each is up for anyone, and the details (which may name devices, hosts and
errors) only for a request with a valid API token.
A request whose write finds the disk full is answered 503 with the reason, never a bare server
error. Request bodies are held to a size and a time on every endpoint
(:mod:`broadcaster.web.bodies`). Every answer carries the security headers of
:mod:`broadcaster.web.headers`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from broadcaster.api import alerts, feed, metrics, reports, uploads
from broadcaster.api.auth import api_tokens, bearer_middleware
from broadcaster.api.diskfull import disk_full_answer
from broadcaster.api.keys import CLIENT, SERVICE
from broadcaster.auth.tokens import ApiTokenStore
from broadcaster.client_limits import forwarded_client
from broadcaster.console.app import make_console_app
from broadcaster.scheduler import api as scheduler_api
from broadcaster.service import BroadcasterService
from broadcaster.upstream import web as federation
from broadcaster.upstream.sources import push_tokens
from broadcaster.web import public
from broadcaster.web.bodies import request_bodies
from broadcaster.web.headers import add_security_headers, no_tracebacks

log = logging.getLogger(__name__)

health_routes = web.RouteTableDef()


@health_routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """Overall and per-channel state for anyone; details (device states, errors, which
    plugins failed and why) only for an authenticated API client."""
    service = request.app[SERVICE]
    health = await service.health()
    disk = service.database.space.check()
    ok = all(h.ok for h in health.values()) and not service.failures and not disk.full
    ok = ok and not service.faults.recent()
    ok = ok and all(h.ok for h in service.upstream.health().values())
    ok = ok and all(h.ok for h in service.neighbours.health.values())
    body: dict[str, Any] = {
        "status": "degraded: disk full" if disk.full else "ok" if ok else "degraded",
        "disk": {"ok": not disk.full},
        "channels": {name: {"ok": h.ok} for name, h in health.items()},
        "failed_channels": [{"channel": f.channel} for f in service.failures],
        "upstream": service.upstream.health_json(details=request.get(CLIENT) is not None),
        "neighbours": {n: {"ok": h.ok} for n, h in service.neighbours.health.items()},
    }
    if request.get(CLIENT) is not None:
        body["disk"] = {"ok": not disk.full, "free_bytes": disk.free_bytes, "detail": disk.detail}
        body["channels"] = {
            name: {"ok": h.ok, "detail": h.detail, "devices": h.devices}
            for name, h in health.items()
        }
        body["failed_channels"] = [
            {"channel": f.channel, "type": f.type, "error": f.error} for f in service.failures
        ]
        now = service.clock()
        body["neighbours"] = {n: h.to_json(now) for n, h in service.neighbours.health.items()}
        body["channel_faults"] = [
            {
                "channel": f.channel,
                "point": f.point,
                "count": f.count,
                "error": f.error,
                "last_at": f.last_at,
            }
            for f in service.faults.all()
        ]
    return web.json_response(body, status=200)


async def _to_console(_request: web.Request) -> web.Response:
    raise web.HTTPFound("/console/")


def make_app(service: BroadcasterService) -> web.Application:
    """The web application for ``service``; the service starts and stops with it."""
    tokens = api_tokens(service.config, service.data_dir) | push_tokens(service.config)
    server = service.config.server
    app = web.Application(
        middlewares=[
            no_tracebacks,
            request_bodies(server.max_body_bytes, server.body_timeout_seconds),
            disk_full_answer,
            forwarded_client(service.config.server.trusted_proxies),
            bearer_middleware(
                tokens,
                frozenset(t.name for t in service.config.api.tokens if t.requires_approval),
                lambda: ApiTokenStore(service.database, service.clock),
                reporters=frozenset(t.name for t in service.config.api.tokens if t.node),
            ),
            federation.sources_only_submit,
        ],
        client_max_size=server.max_body_bytes,
    )
    app[SERVICE] = service
    app.on_response_prepare.append(add_security_headers)

    async def lifetime(_app: web.Application) -> AsyncIterator[None]:
        await service.start()
        yield
        await service.stop()

    app.cleanup_ctx.append(lifetime)
    app.add_routes(alerts.routes)
    app.add_routes(reports.routes)
    app.add_routes(feed.routes)
    app.add_routes(metrics.routes)
    app.add_routes(uploads.routes)
    app.add_routes(scheduler_api.routes)
    app.add_routes(health_routes)
    app.add_routes(public.routes)
    app.add_routes(federation.routes)
    for name, sub_app in service.web_apps().items():
        app.add_subapp(f"/channels/{name}/", sub_app)
    if service.config.console.enabled:
        app.add_subapp("/console/", make_console_app(service))
        app.router.add_get("/", _to_console)
    return app
