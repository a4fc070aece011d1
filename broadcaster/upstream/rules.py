"""Which alerts touch an area, and which a neighbour may see.

An alert touches an area given as division codes when one of its ``<area>`` blocks names a
division code (:data:`broadcaster.planner.DIVISION_VALUE_NAMES`) that lies in one of the area's
divisions or contains one, or when one of its polygons or circles encloses the seat of a
division of the area (the division list, ``registry.divisions``, gives the seats;
:mod:`broadcaster.geo` does the geometry). An area of no codes is everywhere. Upstream sources
take only what touches our area (:class:`AreaFilter`); a neighbour sees what its rules allow
(:func:`allows`): an alert that is active, released here (approved if it waited for approval),
of a status and type that is broadcast, of one of the neighbour's scopes, of one of its events
(any when none is listed), touching its area, and not from that neighbour in the first place.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any

from broadcaster.cap import Alert, MsgType, Status
from broadcaster.cap.serialize import from_json
from broadcaster.divisions import DivisionTree, covers, normalize_code
from broadcaster.federationconfig import NeighbourConfig
from broadcaster.geo import PointIndex, points_in_circle, points_in_polygon
from broadcaster.intake import broadcasts
from broadcaster.planner import alert_areas, division_codes
from broadcaster.store.interface import Store


class AreaFilter:
    """An area of division codes, with the seats of its divisions for the geometry."""

    def __init__(self, codes: Iterable[str], divisions: DivisionTree | None) -> None:
        self.codes = [normalize_code(code) for code in codes]
        seats = [
            (division.code, division.lat, division.lon)
            for code in self.codes
            for division in (divisions.covered_by(code) if divisions else [])
        ]
        self._seats = PointIndex(seats) if seats else None

    @classmethod
    def ours(cls, codes: Sequence[str], divisions: DivisionTree | None) -> AreaFilter:
        """The area of an upstream source: ``codes``, or every root of the division list."""
        if not codes and divisions is not None:
            codes = [root.code for root in divisions.roots()]
        return cls(codes, divisions)

    @property
    def everywhere(self) -> bool:
        return not self.codes

    def touches(self, alert: Alert) -> bool:
        """Whether any area of ``alert`` touches this one."""
        if self.everywhere:
            return True
        for area in alert_areas(alert):
            for code in division_codes(area):
                if any(covers(code, ours) or covers(ours, code) for ours in self.codes):
                    return True
            if self._seats is None:
                continue
            for polygon in area.polygons:
                if points_in_polygon(self._seats, polygon.points):
                    return True
            for circle in area.circles:
                if points_in_circle(self._seats, circle.lat, circle.lon, circle.radius_km):
                    return True
        return False


def allows(
    neighbour: NeighbourConfig, area: AreaFilter, record: dict[str, Any], alert: Alert
) -> bool:
    """Whether the neighbour's rules let it see ``alert`` (with its stored ``record``)."""
    approval = record.get("approval")
    if record["state"] != "active" or (approval is not None and approval["state"] != "approved"):
        return False
    if record["origin"] == f"upstream:{neighbour.name}":
        return False
    if not broadcasts(Status(record["status"]), MsgType(record["msg_type"])):
        return False
    if record["scope"] not in neighbour.scopes:
        return False
    if neighbour.events and not any(info.event in neighbour.events for info in alert.infos):
        return False
    return area.touches(alert)


async def shared_records(
    store: Store, neighbour: NeighbourConfig, divisions: DivisionTree | None, now: float
) -> list[dict[str, Any]]:
    """The records of the alerts in force at ``now`` that ``neighbour`` may see, newest
    first."""
    area = AreaFilter(neighbour.areas, divisions)
    shared = []
    for row in await store.alerts.active(now):
        record = await store.alerts.get(row["id"])
        document = await store.alerts.document(row["id"])
        if record is None or document is None:
            continue
        alert = await asyncio.to_thread(from_json, document)
        if allows(neighbour, area, record, alert):
            shared.append(record)
    return shared
