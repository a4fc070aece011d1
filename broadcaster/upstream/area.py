"""Whether a CAP alert touches an area given as division codes.

Used both ways: an upstream source's alerts are taken only when they touch our area, and a
neighbour's feed carries only what touches the area its rules name. An alert touches the area
when one of its ``<area>`` blocks names a division code (:data:`broadcaster.planner.
DIVISION_VALUE_NAMES`) that lies in one of the area's divisions or contains one, or when one of
its polygons or circles encloses the seat of a division of the area (the division list,
``registry.divisions``, gives the seats; :mod:`broadcaster.geo` does the geometry). An area of
no codes is everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from broadcaster.cap import Alert
from broadcaster.divisions import DivisionTree, covers, normalize_code
from broadcaster.geo import PointIndex, points_in_circle, points_in_polygon
from broadcaster.planner import alert_areas, division_codes


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
