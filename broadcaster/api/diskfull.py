"""Answering when the data directory's disk is full: 503 with the reason, nothing stored.

A write that finds the disk full is rolled back and raises
:class:`~broadcaster.errors.DiskFullError` (:mod:`broadcaster.store.db`); the API answers it
with 503 and ``Retry-After``, so a client knows to try again later and an officer sees why,
instead of a bare server error. A PostgreSQL store that cannot be reached for a moment
(:class:`~broadcaster.errors.StoreUnavailableError`) is answered the same way.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from broadcaster.errors import DiskFullError, StoreUnavailableError

DISK_FULL_RETRY_AFTER = "60"
"""Seconds a client is asked to wait before trying again when the disk is full."""


def disk_full_response(message: str) -> web.Response:
    """503 with ``message``: the disk is full and nothing of the request was stored."""
    return web.json_response(
        {"error": message}, status=503, headers={"Retry-After": DISK_FULL_RETRY_AFTER}
    )


@web.middleware
async def disk_full_answer(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer 503 for any request whose write found the disk full (it was rolled back)."""
    try:
        return await handler(request)
    except DiskFullError:
        return disk_full_response("disk full: the change was not stored")
    except StoreUnavailableError:
        return web.json_response(
            {"error": "the database cannot be reached: the change was not stored"},
            status=503,
            headers={"Retry-After": "5"},
        )
