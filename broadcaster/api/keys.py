"""Typed application keys shared by the API modules."""

from __future__ import annotations

from aiohttp import web

from broadcaster.service import BroadcasterService

SERVICE = web.AppKey("service", BroadcasterService)
CLIENT = web.RequestKey("client", str)
NEEDS_APPROVAL = web.RequestKey("needs_approval", bool)
"""Whether the authenticated client's alerts wait for an officer's approval."""
"""The name of the API client a request authenticated as."""
