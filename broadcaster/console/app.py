"""The console's aiohttp sub-application, assembled from its page modules.

Mounted by :func:`broadcaster.api.app.make_app` at ``/console/``; the page modules
(:mod:`.login`, :mod:`.alerts`, :mod:`.board`, :mod:`.devices`, :mod:`.testruns`,
:mod:`.admin`) build on :mod:`broadcaster.console.web` and nothing imports this module back.

On first start with no officers, ``BROADCASTER_ADMIN_PASSWORD`` (if set) creates the officer
``admin``; otherwise ``broadcaster user add NAME --role admin`` does. A password the account
rules refuse (too short) stops the start with a ConfigError, rather than leave a server nobody
can log into.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from broadcaster.auth import AccountError, LoginRateLimiter, Role
from broadcaster.auth.officers import ADMIN_PASSWORD_ENV, first_admin_refusal
from broadcaster.console import (
    admin,
    alerts,
    board,
    catalogue,
    devices,
    devicewords,
    login,
    recordings,
    testruns,
)
from broadcaster.console.hazards import default_templates_dir, load_templates
from broadcaster.console.mapping import registry_frame
from broadcaster.console.web import (
    CONSOLE,
    STATIC_DIR,
    ConsoleState,
    channel_names,
    security_headers,
    session_required,
)
from broadcaster.errors import ConfigError
from broadcaster.service import BroadcasterService

log = logging.getLogger(__name__)


async def _first_admin(state: ConsoleState) -> None:
    password = os.environ.get(ADMIN_PASSWORD_ENV)
    if not password or await state.officers.count():
        return
    try:
        await state.officers.create("admin", password, Role.ADMIN, "Administrator")
    except AccountError as exc:
        raise ConfigError(first_admin_refusal(str(exc))) from None
    await state.audit("system", "user.add", "admin", {"role": "admin", "from": "environment"})
    log.warning("created the console officer 'admin' from %s", ADMIN_PASSWORD_ENV)


def templates_dir(service: BroadcasterService) -> Path:
    return service.config.console.templates or default_templates_dir()


def make_console_app(service: BroadcasterService) -> web.Application:
    """The console sub-application for ``service`` (mount it at ``/console/``)."""
    app = web.Application(middlewares=[security_headers, session_required])
    state = ConsoleState(
        service=service,
        hazards=load_templates(templates_dir(service)),
        limiter=LoginRateLimiter(service.config.console.login_attempts_per_minute),
        frame=registry_frame(service.divisions),
    )
    app[CONSOLE] = state
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("broadcaster.console", "templates"),
        autoescape=jinja2.select_autoescape(default=True),
        undefined=jinja2.StrictUndefined,
    )
    zone = service.config.server.zone
    env.filters["label"] = catalogue.label
    env.filters["who"] = catalogue.who
    env.filters["localtime"] = lambda ts: catalogue.local_time(ts, zone)
    env.filters["detail"] = lambda detail: catalogue.detail_items(detail, channel_names(service))
    env.filters["words"] = catalogue.words
    env.filters["run_detail"] = catalogue.run_detail
    env.filters["device_words"] = devicewords.device_words
    env.filters["field_words"] = devicewords.field_words
    env.filters["notice_kind"] = devicewords.notice_kind
    env.filters["target_detail"] = devicewords.target_detail

    async def lifetime(_app: web.Application) -> AsyncIterator[None]:
        state.start()
        await _first_admin(state)
        yield

    async def on_shutdown(_app: web.Application) -> None:
        state.closing.set()
        for stream in state.streams:
            stream.set()

    app.cleanup_ctx.append(lifetime)
    app.on_shutdown.append(on_shutdown)
    app.router.add_static("/static/", STATIC_DIR, name="static")
    for module in (login, alerts, recordings, board, devices, testruns, admin):
        app.add_routes(module.routes)
    return app
