"""Device health: every channel's health with its devices, targets and enrolled receivers.

Each channel reports :class:`~broadcaster.channel.ChannelHealth` with a ``devices`` mapping
(device id → fields); the page shows the fields channels commonly report first (online, last
heartbeat, signal, queue, link) and any others after them, so a new channel's devices appear
without a change here. Receivers that enrolled themselves (web-push subscriptions, boxes that
registered) are counted per channel beside the registry's targets. Channels that failed to
load are listed with their error. Open notices of the scheduler (failing link checks, failed
test runs) head the page, and an officer acknowledges them there (audited); failing link
checks are listed per target. Upstream sources (``[[upstream]]``) and pushes to neighbours
(``[[neighbour]]`` with a ``push_url``) are listed with their last success, last error,
failures in a row and lag.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from broadcaster.auth import Permission
from broadcaster.console.catalogue import Words
from broadcaster.console.devicewords import ago
from broadcaster.console.web import PREFIX, actor_of, page, require, state_of

routes = web.RouteTableDef()

KNOWN_FIELDS = (
    ("online", ("online",)),
    ("link", ("link", "connected")),
    ("state", ("state", "status")),
    ("last_heartbeat", ("last_heartbeat", "last_seen")),
    ("signal", ("signal", "rssi")),
    ("queue", ("queue", "queued")),
    ("on_air", ("on_air", "playing")),
    ("subscriptions", ("subscriptions",)),
    ("last_error", ("last_error",)),
)
"""Columns shown first: (column, the field names channels use for it); their labels are in
:data:`~broadcaster.console.devicewords.DEVICE_FIELDS`."""
_KNOWN = {name for _column, names in KNOWN_FIELDS for name in names}
_TIME_FIELDS = ("last_heartbeat", "last_seen", "since", "updated_at")


def _shown(name: str, value: Any, now: float) -> Words | str:
    """A field's value: words for a time ago, a mark for a yes or no, else the value as the
    device reported it (the template labels the states it knows)."""
    if value is None:
        return ""
    if name in _TIME_FIELDS and isinstance(value, int | float) and value > 1e9:
        return ago(max(0, int(now - value)))
    if isinstance(value, bool):
        return "✔" if value else "✘"
    return str(value)


def device_rows(devices: Mapping[str, Any], now: float) -> list[dict[str, Any]]:
    """One row per device: the known columns in a fixed order, then the other fields."""
    rows = []
    for device_id, info in sorted(devices.items()):
        fields = info if isinstance(info, Mapping) else {"state": info}
        known = {}
        for column, names in KNOWN_FIELDS:
            found = next((n for n in names if n in fields), None)
            if found is not None:
                known[column] = _shown(found, fields[found], now)
        extra = {k: _shown(k, v, now) for k, v in fields.items() if k not in _KNOWN}
        up = next(
            (fields[n] for n in ("online", "connected") if isinstance(fields.get(n), bool)), None
        )
        rows.append(
            {
                "id": device_id,
                "known": known,
                "extra": extra,
                "ok": up if up is not None else not fields.get("last_error"),
            }
        )
    return rows


@routes.get("/devices")
async def devices(request: web.Request) -> web.Response:
    require(request, Permission.VIEW)
    service = state_of(request).service
    health = await service.health()
    counts = await service.database.run(
        service.database.query,
        "SELECT channel, source, count(*) AS n FROM targets WHERE enabled = 1"
        " GROUP BY channel, source",
    )
    registry: dict[str, int] = {}
    enrolled: dict[str, int] = {}
    for row in counts:
        bucket = enrolled if str(row["source"]).startswith("channel:") else registry
        bucket[row["channel"]] = bucket.get(row["channel"], 0) + row["n"]
    now = time.time()
    channels = [
        {
            "name": name,
            "type": service.config.channel_base(name).type,
            "ok": h.ok,
            "detail": h.detail,
            "devices": device_rows(h.devices, now),
            "registry": registry.get(name, 0),
            "enrolled": enrolled.get(name, 0),
        }
        for name, h in sorted(health.items())
    ]
    notices = await service.store.schedules.notices(open_only=True, limit=50)
    links = await service.store.schedules.links(failing=True)
    upstream = [
        {
            "name": name,
            "health": h,
            "lag": ago(int(lag)) if (lag := h.lag(now)) is not None else None,
        }
        for name, h in [
            *sorted(service.upstream.health().items()),
            *sorted(service.neighbours.health.items()),
        ]
    ]
    return page(
        request,
        "devices.html",
        {
            "channels": channels,
            "failures": service.failures,
            "known_fields": KNOWN_FIELDS,
            "notices": notices,
            "links": links,
            "upstream": upstream,
        },
    )


# Store ids are 64-bit integers: a longer number names nothing (404), not a store error.
@routes.post("/notices/{notice_id:\\d{1,18}}/ack")
async def acknowledge_notice(request: web.Request) -> web.Response:
    require(request, Permission.DRAFT)
    state = state_of(request)
    service = state.service
    notice_id = int(request.match_info["notice_id"])
    done = await service.store.schedules.acknowledge(
        notice_id, by=actor_of(request), now=service.clock()
    )
    if not done:
        raise web.HTTPNotFound(text=f"no unacknowledged notice {notice_id}")
    await state.audit(actor_of(request), "notice.ack", str(notice_id))
    raise web.HTTPSeeOther(f"{PREFIX}/devices")
