"""Push sources on the API: ``POST /api/v1/alerts`` with a source's own token.

The token names the source (client ``upstream:<name>``); what it submits passes the source's
gate instead of plain intake and is answered with the gate's outcome: 201 for an alert taken
(``created``, or ``pending`` under the ``review`` policy), 200 for one already here
(``duplicate``) or not for our area (``outside-area``), 400 with the problems for one refused
(bad CAP, or a signature the source's trust refuses). A source's token does nothing else:
every other API path answers 403, so a source can neither read alerts nor approve its own.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from broadcaster.api.keys import CLIENT, SERVICE
from broadcaster.upstream.sources import CLIENT_PREFIX

SUBMIT_PATH = "/api/v1/alerts"
_STATUS = {"created": 201, "pending": 201, "duplicate": 200, "outside-area": 200, "refused": 400}


@web.middleware
async def sources_only_submit(request: web.Request, handler: Any) -> web.StreamResponse:
    """403 for a push source's token anywhere but ``POST /api/v1/alerts``."""
    client = request.get(CLIENT)
    submitting = request.method == "POST" and request.path == SUBMIT_PATH
    if client is not None and client.startswith(CLIENT_PREFIX) and not submitting:
        error = {"error": "an upstream source's token may only submit alerts"}
        raise web.HTTPForbidden(text=json.dumps(error), content_type="application/json")
    response: web.StreamResponse = await handler(request)
    return response


async def pushed(request: web.Request, data: bytes | dict[str, Any]) -> web.Response | None:
    """The answer to a push source's submission, or None if the client is no push source."""
    service = request.app[SERVICE]
    gate = service.upstream.pushed_by(request[CLIENT])
    if gate is None:
        return None
    outcome = await gate.ingest(data, service.clock())
    await service.store.audit.append(
        f"upstream:{gate.name}",
        f"upstream.{outcome.outcome}",
        outcome.alert_id or "",
        {"error": outcome.error} if outcome.error else None,
    )
    return web.json_response(outcome.to_json(), status=_STATUS[outcome.outcome])
