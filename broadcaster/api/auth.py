"""API client authentication: ``Authorization: Bearer <token>``, compared in constant time.

Tokens come from ``[[api.tokens]]`` in the configuration, from the environment variable
``BROADCASTER_API_TOKEN``, and from the tokens admins issue (and revoke) in the console. When
none is configured, a random token is generated on first start and written to
``<data dir>/api-token`` (mode 0600); only its path is logged, never the token.

A client whose token ``requires_approval`` is one party of the two-person rule: its alerts and
cancels wait for a second party, and :func:`refuse_first_party` turns away what would let it
act alone (deciding approvals, changing or running scheduled broadcasts). Every such action,
allowed or refused, goes to the audit log (:func:`audit_client`). A token an officer issued
acts for that officer in the two-person rule: it cannot decide an alert that officer asked for
(:func:`refuse_own_request`).
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import re
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

from broadcaster.api.keys import CLIENT, ISSUED_BY, NEEDS_APPROVAL, SERVICE
from broadcaster.auth.tokens import ApiTokenStore
from broadcaster.config import Config, Secret
from broadcaster.errors import DiskFullError

log = logging.getLogger(__name__)

ENV_TOKEN = "BROADCASTER_API_TOKEN"  # noqa: S105 - a variable name, not a secret
TOKEN_FILE = "api-token"  # noqa: S105 - a file name, not a secret

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def api_tokens(config: Config, data_dir: Path) -> dict[str, Secret]:
    """Client name → token for every accepted API token."""
    tokens = {t.name: t.token for t in config.api.tokens}
    from_env = os.environ.get(ENV_TOKEN)
    if from_env:
        tokens["env"] = Secret(from_env)
    if not tokens:
        path = data_dir / TOKEN_FILE
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(32) + "\n")
            log.warning("no API token configured; generated one in %s", path)
        tokens["generated"] = Secret(path.read_text(encoding="utf-8").strip())
    return tokens


def client_for(header: str | None, tokens: dict[str, Secret]) -> str | None:
    """The client name a bearer header authenticates, or None."""
    if not header or not header.startswith("Bearer "):
        return None
    offered = header[len("Bearer ") :].strip().encode()
    found = None
    for name, token in tokens.items():
        if hmac.compare_digest(offered, token.reveal().encode()):
            found = name
    return found


_REPORT = re.compile(r"/api/v1/alerts/[^/]+/reports")
"""The one route a county node's token may call."""


def bearer_middleware(
    tokens: dict[str, Secret],
    approval_clients: frozenset[str],
    issued: Callable[[], ApiTokenStore],
    prefix: str = "/api/",
    reporters: frozenset[str] = frozenset(),
) -> Middleware:
    """Require a valid bearer token on every path under ``prefix``.

    A client of ``reporters`` (a county node's token, ``[[api.tokens]] node``) may only report
    the delivery state of alerts relayed to it (``POST /api/v1/alerts/{id}/reports``):
    whoever holds one county node must not submit or approve the city's alerts.

    A token is one from the configuration (client name = its ``name``) or one an admin issued
    in the console (client name ``token:<name>``, revocable there). The request learns the
    client's name, whether its alerts wait for approval and, for an issued token, the officer
    who issued it; elsewhere a valid token is learnt the same way but not required
    (``/healthz`` shows details only to a client).
    """

    async def identify(header: str | None) -> tuple[str | None, bool, str]:
        """The client, whether it needs approval, and the officer who issued its token."""
        client = client_for(header, tokens)
        needs_approval = client in approval_clients
        issued_by = ""
        if client is None and header and header.startswith("Bearer "):
            grant = await issued().client_for(header[len("Bearer ") :].strip())
            if grant is not None:
                client, needs_approval = f"token:{grant.name}", grant.requires_approval
                issued_by = grant.created_by
        return client, needs_approval, issued_by

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        header = request.headers.get("Authorization")
        protected = request.path.startswith(prefix)
        if protected or header:
            client, needs_approval, issued_by = await identify(header)
            if client is None and protected:
                return web.json_response(
                    {"error": "missing or invalid bearer token"},
                    status=401,
                    headers={"WWW-Authenticate": 'Bearer realm="broadcaster"'},
                )
            if client in reporters and not (
                request.method == "POST" and _REPORT.fullmatch(request.path)
            ):
                return web.json_response(
                    {"error": "a node's token may only report delivery states"}, status=403
                )
            if client is not None:
                request[CLIENT] = client
                request[NEEDS_APPROVAL] = needs_approval
                request[ISSUED_BY] = issued_by
        return await handler(request)

    return middleware


async def audit_client(
    request: web.Request, action: str, subject: str, detail: dict[str, Any] | None = None
) -> None:
    """Record an API client's action in the hash-chained audit log (actor ``api:<client>``).

    The action is done (or refused) already: a full disk loses the entry, logged here, but
    does not turn the answer into a failure.
    """
    service = request.app[SERVICE]
    try:
        await service.store.audit.append(f"api:{request[CLIENT]}", action, subject, detail)
    except DiskFullError:
        log.error("audit entry %s %s by api:%s lost: disk full", action, subject, request[CLIENT])


async def refuse_first_party(request: web.Request, action: str, subject: str) -> None:
    """Raise 403 (audited as ``<action>.refused``) if the client's alerts wait for approval.

    Such a client is the first party of the two-person rule: it may not be the second one
    (approve or reject), nor change or run what broadcasts without a second one (schedules).
    """
    if not request[NEEDS_APPROVAL]:
        return
    error = "this API token's alerts need approval; it cannot do this alone"
    await audit_client(request, f"{action}.refused", subject, {"error": error})
    raise web.HTTPForbidden(text=json.dumps({"error": error}), content_type="application/json")


async def refuse_own_request(request: web.Request, action: str, alert_id: str) -> None:
    """Raise 403 (audited as ``<action>.refused``) if the client's token was issued by the
    officer who asked for the pending alert, in the console or through another token that
    officer issued: through the token, that officer would be their own second party. Tokens
    from the configuration or the environment have no issuing officer."""
    issuer = request[ISSUED_BY]
    if not issuer:
        return
    service = request.app[SERVICE]
    approval = await service.store.alerts.approval(alert_id)
    requested_by = str(approval["requested_by"]) if approval else ""
    tokens = ApiTokenStore(service.database, service.clock)
    if issuer != await tokens.officer_behind(requested_by):
        return
    error = (
        "this API token was issued by the officer who asked for the alert;"
        " a second officer must decide it"
    )
    await audit_client(request, f"{action}.refused", alert_id, {"error": error})
    raise web.HTTPForbidden(text=json.dumps({"error": error}), content_type="application/json")
