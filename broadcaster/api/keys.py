"""Typed application keys shared by the API modules."""

from __future__ import annotations

from aiohttp import web

from broadcaster.service import BroadcasterService

SERVICE = web.AppKey("service", BroadcasterService)
