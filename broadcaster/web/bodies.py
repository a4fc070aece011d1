"""Request bodies: how large they may be and how long they may take, on every endpoint.

Two limits, enforced by one middleware of the root application (so they hold for the API, the
console and every channel's endpoints alike):

- size: ``[server] max_body_bytes``, or less where an application mounted under the root says
  so with :data:`MAX_BODY_BYTES` in its state (aiohttp applies only the root application's
  ``client_max_size``; a sub-application's own is ignored). A declared ``Content-Length`` over
  the limit is answered ``413`` at once; a chunked body is cut off by the reader when it passes
  the limit (aiohttp's ``413``);
- time: ``[server] body_timeout_seconds``, the total time the whole body may take to arrive
  once the request header is in. A client that sends its header quickly and then trickles the
  body (or sends nothing more) would otherwise hold a connection and a handler as long as it
  likes. When the time is up, the body's reads raise :class:`BodyTimeoutError`; the request is
  answered ``408`` and the connection closed. A handler that answered without reading the body
  does not keep the connection open for it either: the server's discarding of the rest stops
  then too.

Answers are JSON ``{"error": …}`` with ``Connection: close``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web

MAX_BODY_BYTES: web.AppKey[int] = web.AppKey("max_body_bytes", int)
"""Set in a mounted application's state to allow its endpoints smaller bodies than the root."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BodyTimeoutError(TimeoutError):
    """The request body did not arrive in time (raised by the body's reads)."""


def _refusal(status: int, message: str) -> web.Response:
    response = web.json_response({"error": message}, status=status)
    response.force_close()
    return response


def body_limit(request: web.Request, default: int) -> int:
    """The body size allowed for ``request``: the smallest of ``default`` and the limits the
    applications it is routed through set."""
    limit = default
    for app in request.match_info.apps:
        limit = min(limit, app.get(MAX_BODY_BYTES, limit))
    return limit


def _start_deadline(request: web.Request, seconds: float) -> None:
    """Make the body's reads fail once ``seconds`` have passed without the whole body."""
    content = request.content
    late = BodyTimeoutError(f"the request body did not arrive within {seconds:g} s")
    timer = asyncio.get_running_loop().call_later(seconds, content.set_exception, late)
    content.on_eof(timer.cancel)


def request_bodies(
    max_bytes: int, timeout_seconds: float
) -> Callable[..., Awaitable[web.StreamResponse]]:
    """The middleware enforcing both limits; put it first after the traceback guard."""

    @web.middleware
    async def limit_bodies(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.body_exists:
            _start_deadline(request, timeout_seconds)
        limit = body_limit(request, max_bytes)
        length = request.content_length
        if length is not None and length > limit:
            return _refusal(413, f"the request body is larger than {limit} bytes")
        if limit < request.client_max_size:
            request = request.clone(client_max_size=limit)
        try:
            return await handler(request)
        except BodyTimeoutError as exc:
            return _refusal(408, str(exc))

    return limit_bodies
