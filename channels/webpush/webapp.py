"""The channel's public endpoints, mounted by the core at ``/channels/<name>/`` (no login).

::

    GET  /                 the subscription page (county, township, languages; Chinese and
                           English), from the Jinja2 template ``templates/subscribe.html``
    GET  /sw.js            the service worker: shows each push, posts its ack, opens the
                           alert page on a click (scope: ``/channels/<name>/``)
    GET  /static/…         the page's script and style sheet (nothing from a CDN)
    GET  /key              ``{"publicKey": …}``: the VAPID key to subscribe with
    POST /subscribe        ``{"subscription": PushSubscription.toJSON(), "division": code,
                           "languages": [...]}`` → 201 ``{"id", "division", "area"}``
    POST /unsubscribe      ``{"endpoint": …}`` → 200 ``{"removed": bool}``
    POST /renew            ``{"old_endpoint": …, "subscription": …}`` (the service worker's
                           ``pushsubscriptionchange``) → 200 ``{"id", "division"}``, or 404
    POST /ack              ``{"alert", "delivery", "sub", "ack"}`` → 204, or 403 if the token
                           does not match the subscription

Requests with a bad body get 400 with ``{"error": …}`` naming the field; while the channel is
not running every endpoint answers 503, and so does a subscribe that would take the channel past
``max_subscriptions``. Bodies are limited to 16 KiB. Subscribe, unsubscribe and renew are
limited to ``changes_per_minute`` per client (behind the server's trusted proxies, the
resident): an IPv4 address, or an IPv6 /64, the smallest block a home or phone is given, whose
last 64 bits (the interface identifier, RFC 4291 §2.5.1) its owner chooses freely, so hopping
between them does not dodge the limit. Past it, 429 with ``Retry-After``.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web
from jinja2 import Environment, PackageLoader, select_autoescape

from broadcaster.client_limits import RateLimiter
from broadcaster.errors import DeviceUnavailableError
from broadcaster.jsonbody import read_json_object
from broadcaster.web.bodies import MAX_BODY_BYTES
from channels.webpush.enrolment import SubscriptionError, area_choices

if TYPE_CHECKING:
    from channels.webpush.channel import WebPushChannel

MAX_BODY = 16 * 1024
STATIC_DIR = Path(__file__).resolve().parent / "static"
LANGUAGE_LABELS = {"zh-CN": "中文", "mn": "ᠮᠣᠩᠭᠣᠯ Монгол", "en": "English"}

_templates = Environment(
    loader=PackageLoader("channels.webpush", "templates"),
    autoescape=select_autoescape(default=True),
)

CHANNEL: web.AppKey[WebPushChannel] = web.AppKey("webpush_channel")
LIMITER: web.AppKey[RateLimiter] = web.AppKey("webpush_changes")


class _TooManyChangesError(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"retry after {retry_after:.0f} s")
        self.retry_after = retry_after


def _client_key(remote: str) -> str:
    """Whose changes ``remote`` counts towards: its IPv4 address (an IPv4-mapped IPv6 one
    too), else its IPv6 /64; an address that does not parse counts as itself."""
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return remote
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def _count_change(request: web.Request) -> None:
    """Count a subscription change of the client; raises _TooManyChangesError past the limit."""
    wait = request.app[LIMITER].wait_needed(_client_key(request.remote or ""))
    if wait:
        raise _TooManyChangesError(wait)


def _json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@web.middleware
async def _errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Map the channel's errors to answers: 400 for bad input, 503 while not running, 429 for
    a client that changes subscriptions too often."""
    try:
        response: web.StreamResponse = await handler(request)
    except _TooManyChangesError as exc:
        answer = _json_error(429, f"too many requests; try again in {exc.retry_after:.0f} s")
        answer.headers["Retry-After"] = str(round(exc.retry_after))
        return answer
    except SubscriptionError as exc:
        return _json_error(400, str(exc))
    except DeviceUnavailableError as exc:
        return _json_error(503, str(exc))
    except web.HTTPRequestEntityTooLarge:
        return _json_error(413, f"the request body is larger than {MAX_BODY} bytes")
    return response


async def page(request: web.Request) -> web.Response:
    channel = request.app[CHANNEL]
    tree = channel.context.divisions
    config = {
        "publicKey": channel.public_key,
        "areas": [a.to_json() for a in area_choices(tree)] if tree is not None else [],
        "languages": [
            {"code": code, "label": LANGUAGE_LABELS.get(code, code)}
            for code in channel.config.languages
        ],
    }
    html = _templates.get_template("subscribe.html").render(
        config=config,
        sender_name=channel.context.sender_name,
        alerts_url=channel.context.public_url.rstrip("/") + "/alerts",
    )
    return web.Response(text=html, content_type="text/html", charset="utf-8")


async def service_worker(request: web.Request) -> web.FileResponse:
    headers = {"Cache-Control": "no-cache", "Content-Type": "text/javascript; charset=utf-8"}
    return web.FileResponse(STATIC_DIR / "sw.js", headers=headers)


async def key(request: web.Request) -> web.Response:
    return web.json_response({"publicKey": request.app[CHANNEL].public_key})


async def subscribe(request: web.Request) -> web.Response:
    _count_change(request)
    channel = request.app[CHANNEL]
    if not channel.running:
        return _json_error(503, "the push channel is not running")
    target = await channel.enrol(await read_json_object(request))
    area = target.name.split(" · ", 1)[-1]
    return web.json_response(
        {"id": target.id, "division": target.division, "area": area}, status=201
    )


async def unsubscribe(request: web.Request) -> web.Response:
    _count_change(request)
    removed = await request.app[CHANNEL].withdraw(await read_json_object(request))
    return web.json_response({"removed": removed})


async def renew(request: web.Request) -> web.Response:
    _count_change(request)
    target = await request.app[CHANNEL].renew(await read_json_object(request))
    if target is None:
        return _json_error(404, "no subscription has that old endpoint")
    return web.json_response({"id": target.id, "division": target.division})


async def ack(request: web.Request) -> web.Response:
    if not await request.app[CHANNEL].acknowledge(await read_json_object(request)):
        return _json_error(403, "the ack does not match a current subscription")
    return web.Response(status=204)


def subscription_app(channel: WebPushChannel) -> web.Application:
    """The aiohttp application the core mounts for ``channel``."""
    app = web.Application(middlewares=[_errors], client_max_size=MAX_BODY)
    app[MAX_BODY_BYTES] = MAX_BODY  # aiohttp heeds client_max_size only on the root app
    app[CHANNEL] = channel
    app[LIMITER] = RateLimiter(channel.config.changes_per_minute)
    app.router.add_get("/", page)
    app.router.add_get("/sw.js", service_worker)
    app.router.add_get("/key", key)
    app.router.add_post("/subscribe", subscribe)
    app.router.add_post("/unsubscribe", unsubscribe)
    app.router.add_post("/renew", renew)
    app.router.add_post("/ack", ack)
    app.router.add_static("/static/", STATIC_DIR)
    return app
