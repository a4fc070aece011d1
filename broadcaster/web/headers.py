"""Security headers on every answer of the server, downloads of raw documents, and no tracebacks.

:func:`add_security_headers` runs (as the root application's ``on_response_prepare`` signal)
for every answer: console, public pages, API, feeds, and the pages channels mount. It sets

- ``Content-Security-Policy``: for HTML pages and scripts, :data:`PAGE_POLICY` (scripts,
  styles, images, media and requests from this origin only, no inline script, no plugins, no
  framing); for everything else (JSON, feeds, CAP documents, audio), :data:`DOCUMENT_POLICY`
  (nothing may load or run, sandboxed), so a document a browser opens directly can run nothing;
- ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: same-origin`` and
  ``X-Frame-Options: DENY``.

A header a handler or sub-application set itself (the console sets its own policy) is kept.
:func:`document_download` answers with a document as received (a CAP alert, which may carry
anything a signature's ``ds:Object`` holds) as an attachment, so browsers save it instead of
rendering it. :func:`no_tracebacks` answers an unexpected error with a plain 500 and logs it.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable

from aiohttp import web

log = logging.getLogger(__name__)

PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " font-src 'self'; media-src 'self'; connect-src 'self'; worker-src 'self';"
    " manifest-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
DOCUMENT_POLICY = "default-src 'none'; base-uri 'none'; frame-ancestors 'none'; sandbox"
_PAGE_TYPES = ("text/html", "text/javascript", "application/javascript")
_FIXED = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def policy_for(content_type: str) -> str:
    """The Content-Security-Policy for an answer of ``content_type``."""
    kind = content_type.split(";", 1)[0].strip().lower()
    return PAGE_POLICY if kind in _PAGE_TYPES else DOCUMENT_POLICY


async def add_security_headers(_request: web.Request, response: web.StreamResponse) -> None:
    """Set the security headers a handler did not set itself (``on_response_prepare``)."""
    headers = response.headers
    headers.setdefault("Content-Security-Policy", policy_for(response.content_type))
    for name, value in _FIXED.items():
        headers.setdefault(name, value)


def document_download(body: bytes, *, content_type: str, filename: str) -> web.Response:
    """``body`` as an attachment named ``filename`` (unsafe characters replaced)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", filename)[:120] or "document"
    return web.Response(
        body=body,
        content_type=content_type,
        headers={"Content-Disposition": f'attachment; filename="{safe}"'},
    )


@web.middleware
async def no_tracebacks(request: web.Request, handler: Handler) -> web.StreamResponse:
    """An error no handler expected becomes a plain 500; the details go to the log only."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        log.exception("unexpected error answering %s %s", request.method, request.path)
        body = json.dumps({"error": "internal error; the details are in the server log"})
        return web.Response(text=body, status=500, content_type="application/json")
