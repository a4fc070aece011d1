"""``POST /api/v1/uploads``: a recording an alert will carry by reference; ``GET
/api/v1/uploads/{sha256}`` returns it. Both need an API token (the bearer middleware guards
``/api/``).

The upload's ``Content-Type`` must be ``audio/*``; the answer (201) gives the ``uri`` to put in
the alert's ``<resource>`` with that ``mimeType``, the SHA-1 ``digest`` CAP 1.2 names and the
``size``. The server reads such a ``uri`` from its own store and never fetches any other
(:mod:`broadcaster.uploads`).
"""

from __future__ import annotations

import asyncio
import hashlib

from aiohttp import web

from broadcaster.api.keys import SERVICE

routes = web.RouteTableDef()


def _problem(status: type[web.HTTPException], message: str) -> web.HTTPException:
    return status(text=f'{{"error": "{message}"}}', content_type="application/json")


@routes.post("/api/v1/uploads")
async def upload(request: web.Request) -> web.Response:
    store = request.app[SERVICE].audio.uploads
    if store is None:
        raise _problem(web.HTTPNotFound, "this server keeps no uploads")
    if not request.content_type.startswith("audio/"):
        raise _problem(web.HTTPUnsupportedMediaType, "Content-Type must be audio/*")
    data = await request.read()
    if not data:
        raise _problem(web.HTTPBadRequest, "the upload is empty")
    name = await asyncio.to_thread(store.store, data)
    answer = {
        "uri": store.uri_of(name),
        "mimeType": request.content_type,
        "size": len(data),
        "digest": hashlib.sha1(data).hexdigest(),  # noqa: S324 - CAP 1.2 names SHA-1
        "sha256": name,
    }
    return web.json_response(answer, status=201)


@routes.get("/api/v1/uploads/{name}")
async def download(request: web.Request) -> web.Response:
    store = request.app[SERVICE].audio.uploads
    name = request.match_info["name"]
    data = await asyncio.to_thread(store.read, store.uri_of(name)) if store is not None else None
    if data is None:
        raise _problem(web.HTTPNotFound, "no such upload")
    return web.Response(body=data, content_type="application/octet-stream")
