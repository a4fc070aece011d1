"""What the ``loudspeaker`` channel knows of each box from its hub's events: online or not,
over which transport, when it was last heard and its latest heartbeat (docs/protocols/speaker.md
sections 2.4 and 5.2). :class:`BoxViews` answers the channel's ``health`` (every box, how many
are online and which are not) and ``probe`` (one box's link and heartbeat, without a sound),
and lets callers wait for boxes to come online or go offline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from broadcaster.channel import ChannelHealth, ProbeResult
from drivers.speaker import BoxPresence, BoxStatus


@dataclass(slots=True)
class BoxView:
    """What the channel knows of a box from the hub's events."""

    online: bool = False
    transport: str = ""
    status: BoxStatus | None = None

    def describe(self) -> dict[str, object]:
        status = self.status
        return {
            "online": self.online,
            "transport": self.transport,
            "last_heartbeat": status.at.isoformat() if status else None,
            "state": str(status.state) if status else None,
            "volume": status.volume if status else None,
            "playing": status.playing_alert_id if status else None,
        }


class BoxViews:
    """Every box's view, by box id; ``heard`` says when a box was last heard (seconds since
    the epoch), which the hub notes for every message it verifies."""

    def __init__(self, heard: Callable[[str], float | None]) -> None:
        self._views: dict[str, BoxView] = {}
        self._changed = asyncio.Event()
        self._heard = heard

    def known(self, box_id: str, transport: str) -> None:
        """A registered box, offline until it is heard."""
        self._views.setdefault(box_id, BoxView(transport=transport))

    def on_event(self, event: BoxPresence | BoxStatus) -> None:
        """Note a presence change or a heartbeat (an ack changes no view)."""
        view = self._views.get(event.box_id)
        if view is None:
            view = self._views[event.box_id] = BoxView()
        if isinstance(event, BoxPresence):
            view.online = event.online
            view.transport = event.transport
            self._changed.set()
        else:
            view.status = event

    async def wait_online(
        self, box_ids: Sequence[str], within_s: float, *, online: bool = True
    ) -> None:
        """Wait until every box of ``box_ids`` is online (or, ``online=False``, offline);
        raises TimeoutError."""

        def reached() -> bool:
            views = [self._views.get(b) for b in box_ids]
            return all(v is not None and v.online == online for v in views)

        async with asyncio.timeout(within_s):
            while not reached():
                self._changed.clear()
                await self._changed.wait()

    def online_count(self) -> int:
        return sum(1 for view in self._views.values() if view.online)

    def health(self) -> ChannelHealth:
        devices = {box_id: view.describe() for box_id, view in sorted(self._views.items())}
        offline = [box_id for box_id, view in devices.items() if not view["online"]]
        online = len(devices) - len(offline)
        detail = f"{online} of {len(devices)} boxes online"
        if offline:
            detail += f"; offline: {', '.join(offline[:10])}{' …' if len(offline) > 10 else ''}"
        return ChannelHealth(ok=online > 0 or not devices, detail=detail, devices=devices)

    def probe(self, box_id: str) -> ProbeResult:
        view = self._views.get(box_id)
        if view is None or not view.online:
            last = self._heard(box_id)
            heard = "never" if last is None else datetime.fromtimestamp(last, UTC).isoformat()
            return ProbeResult(ok=False, detail=f"box {box_id} offline (last heard {heard})")
        state = view.status.state if view.status else "unknown"
        return ProbeResult(ok=True, detail=f"box {box_id} online over {view.transport}, {state}")
