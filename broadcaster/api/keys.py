"""Typed application keys shared by the API modules."""

from __future__ import annotations

from aiohttp import web

from broadcaster.service import BroadcasterService

SERVICE = web.AppKey("service", BroadcasterService)
CLIENT = web.RequestKey("client", str)
APPROVAL_CLIENTS = web.AppKey("approval_clients", frozenset)
"""API clients whose alerts wait for approval."""
"""The name of the API client a request authenticated as."""
