"""Typed application keys shared by the API modules."""

from __future__ import annotations

from aiohttp import web

from broadcaster.service import BroadcasterService

SERVICE = web.AppKey("service", BroadcasterService)
CLIENT = web.RequestKey("client", str)
"""The name of the API client a request authenticated as."""
NEEDS_APPROVAL = web.RequestKey("needs_approval", bool)
"""Whether the authenticated client's alerts wait for an officer's approval."""
ISSUED_BY = web.RequestKey("issued_by", str)
"""The officer who issued the client's token in the console (``console:<name>``); empty for
tokens from the configuration or the environment."""
