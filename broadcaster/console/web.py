"""What every console page shares: state, sessions, CSRF, security headers, page rendering.

The sub-application is assembled in :mod:`broadcaster.console.app`. Every page needs a logged-in
officer except the login page and static files; every POST needs the session's CSRF token
(form field ``csrf_token`` or header ``X-CSRF-Token``). Pages are Jinja2 templates; CSS and
scripts are served from the package (no external CDN or fonts) under a Content-Security-Policy
that allows nothing from elsewhere and no inline script.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from broadcaster.auth import (
    ApiTokenStore,
    CsrfError,
    LoginRateLimiter,
    Officer,
    OfficerStore,
    Permission,
    Role,
    SessionStore,
)
from broadcaster.auth.sessions import SESSION_COOKIE, ConsoleSession, require_csrf
from broadcaster.channel import PreviewAudio
from broadcaster.console import catalogue
from broadcaster.console.hazards import HazardTemplate
from broadcaster.console.mapping import MapFrame
from broadcaster.errors import BroadcasterError
from broadcaster.service import BroadcasterService

log = logging.getLogger(__name__)

PREFIX = "/console"
STATIC_DIR = Path(__file__).parent / "static"
_PUBLIC = ("/login", "/static/")
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " font-src 'self'; media-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none';"
    " form-action 'self'; frame-ancestors 'none'"
)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class ConsoleState:
    """Everything the console's handlers share; stores exist once the service has started."""

    service: BroadcasterService
    hazards: dict[str, HazardTemplate]
    limiter: LoginRateLimiter
    frame: MapFrame
    officers: OfficerStore = field(init=False)
    sessions: SessionStore = field(init=False)
    tokens: ApiTokenStore = field(init=False)
    audio: dict[str, PreviewAudio] = field(default_factory=dict)
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    streams: set[asyncio.Event] = field(default_factory=set)

    def start(self) -> None:
        database = self.service.database
        config = self.service.config.console
        self.officers = OfficerStore(database, config, self.service.clock)
        self.sessions = SessionStore(database, config, self.service.clock)
        self.tokens = ApiTokenStore(database, self.service.clock)

    async def audit(
        self, actor: str, action: str, subject: str = "", detail: dict[str, Any] | None = None
    ) -> None:
        await self.service.store.audit.append(actor, action, subject, detail)


CONSOLE = web.AppKey("console", ConsoleState)
OFFICER = web.RequestKey("officer", Officer)
SESSION = web.RequestKey("session", ConsoleSession)


def state_of(request: web.Request) -> ConsoleState:
    return request.app[CONSOLE]


def actor_of(request: web.Request) -> str:
    return f"console:{request[OFFICER].username}"


def client_address(request: web.Request) -> str:
    return request.remote or "unknown"


def require(request: web.Request, permission: Permission) -> Officer:
    """The officer of the request, if their role allows ``permission``; else 403."""
    officer = request[OFFICER]
    if not officer.can(permission):
        raise web.HTTPForbidden(
            text=f"your role ({officer.role}) does not allow this ({permission})",
        )
    return officer


def page(
    request: web.Request, template: str, context: dict[str, Any], status: int = 200
) -> web.Response:
    """Render a page with the officer, CSRF token and navigation in its context."""
    officer = request.get(OFFICER)
    session = request.get(SESSION)
    base = {
        "officer": officer,
        "csrf_token": session.csrf_token if session else "",
        "prefix": PREFIX,
        "Permission": Permission,
        "roles": [r.value for r in Role],
        "path": request.path,
        "channel_names": channel_names(state_of(request).service),
        "catalogue": catalogue.catalogue_json(),
    }
    response = aiohttp_jinja2.render_template(template, request, base | context)
    response.set_status(status)
    response.enable_compression()
    return response


def channel_names(service: BroadcasterService) -> dict[str, catalogue.Words]:
    """Each channel's name for officers: its ``display_name``, else the Chinese and English
    names of its type, else the instance name."""
    names = {}
    for name, channel in service.channels.items():
        configured = channel.config.display_name
        if configured:
            names[name] = (configured, configured)
        else:
            kind = channel.config.type.partition(":")[0].rpartition(".")[2]
            names[name] = catalogue.CHANNEL_TYPES.get(kind, (name, name))
    return names


def _is_public(path: str) -> bool:
    return any(path.startswith(PREFIX + p) for p in _PUBLIC)


def _wants_json(request: web.Request) -> bool:
    """Scripts of the console ask for JSON (or an event stream); browsers navigating do not."""
    accept = request.headers.get("Accept", "")
    return "application/json" in accept or "text/event-stream" in accept


def _add_headers(request: web.Request, headers: Any) -> None:
    headers.setdefault("Content-Security-Policy", _CSP)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("X-Frame-Options", "DENY")
    if not request.path.startswith(PREFIX + "/static/"):
        headers.setdefault("Cache-Control", "no-store")


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Security headers on every answer; errors as a page (or JSON for scripts)."""
    try:
        response = await handler(request)
    except BroadcasterError as exc:
        # Refused input or a store fault the handler did not expect: a clear page, no traceback.
        log.warning("console %s %s: %s", request.method, request.path, exc)
        raise web.HTTPBadRequest(text=str(exc)) from None
    except web.HTTPException as exc:
        if exc.status < 400:
            _add_headers(request, exc.headers)
            raise
        message = exc.text or exc.reason
        if _wants_json(request):
            response = web.json_response({"error": message}, status=exc.status)
        else:
            response = page(request, "error.html", {"status": exc.status, "message": message})
            response.set_status(exc.status)
    _add_headers(request, response.headers)
    return response


@web.middleware
async def session_required(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Load the session; send strangers to the login page; check CSRF on every POST."""
    state = state_of(request)
    if _is_public(request.path):
        return await handler(request)
    session = await state.sessions.lookup(request.cookies.get(SESSION_COOKIE))
    officer = await state.officers.get(session.username) if session else None
    if session is None or officer is None or not officer.enabled:
        if request.method == "GET" and not _wants_json(request):
            raise web.HTTPSeeOther(f"{PREFIX}/login?next={request.path}")
        raise web.HTTPUnauthorized(text="log in first")
    request[SESSION] = session
    request[OFFICER] = officer
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        given = request.headers.get("X-CSRF-Token")
        if given is None and request.content_type in (
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        ):
            form = await request.post()
            value = form.get("csrf_token")
            given = value if isinstance(value, str) else None
        try:
            require_csrf(given, session.csrf_token)
        except CsrfError as exc:
            await state.audit(
                f"console:{officer.username}", "csrf.refused", request.path, {"method": "POST"}
            )
            raise web.HTTPForbidden(text=str(exc)) from None
    return await handler(request)
