"""Area targeting: which registry targets lie inside a CAP alert's areas.

An ``<area>`` selects targets by any of its forms, and the alert's selection is the union over
all its ``<info>`` and ``<area>`` blocks (CAP 1.2 §3.2.4):

- ``<geocode>`` whose valueName names China's administrative division codes (12 digits, GB/T 2260
  plus township and village parts; 6- and 9-digit forms are accepted): a code covers every
  target whose division lies under it (a county covers its townships and villages), and a
  target that serves its whole division (``params.whole_division``: a county node) is chosen
  by any code inside that division as well;
- ``<polygon>``: targets whose coordinates lie inside (WGS 84 ``lat,lon``);
- ``<circle>``: targets within the radius.

Geocodes of other systems (SAME, UGC, WARNCELLID, ...) select nothing here; they are kept in the
alert for feeds and neighbours. An alert whose areas select no target on any of its channels
reaches no one: :func:`unreached_problems` names each area (description, geocodes, polygon bounds,
circles) so the sender can see what was asked for.
"""

from __future__ import annotations

from collections.abc import Sequence

from broadcaster.cap import Alert, Area, Problem
from broadcaster.delivery import Target
from broadcaster.divisions import code_prefix, normalize_code
from broadcaster.geo import (
    GeometryError,
    PointIndex,
    enclosed_twice,
    points_in_circle,
    points_in_polygon,
)

DIVISION_VALUE_NAMES = frozenset(
    {
        "cpeas geographic code",
        "adcode",
        "gb/t 2260",
        "gb2260",
        "division",
        "行政区划代码",
    }
)
"""``<geocode><valueName>`` values (case-insensitive) that carry a Chinese division code."""


def division_codes(area: Area) -> list[str]:
    """The 12-digit division codes an area names (other geocode systems are ignored)."""
    codes = []
    for geocode in area.geocodes:
        if geocode.value_name.strip().lower() not in DIVISION_VALUE_NAMES:
            continue
        try:
            codes.append(normalize_code(geocode.value.strip()))
        except ValueError:
            continue
    return codes


def division_code_problems(alert: Alert) -> list[Problem]:
    """A warning for each division geocode whose value is no division code: it selects no
    target, and a typo beside a valid code would leave part of the area unwarned unseen."""
    problems = []
    for i, info in enumerate(alert.infos, start=1):
        for j, area in enumerate(info.areas, start=1):
            for k, geocode in enumerate(area.geocodes, start=1):
                if geocode.value_name.strip().lower() not in DIVISION_VALUE_NAMES:
                    continue
                try:
                    normalize_code(geocode.value.strip())
                except ValueError as exc:
                    problems.append(
                        Problem(
                            f"/alert/info[{i}]/area[{j}]/geocode[{k}]",
                            "division-code",
                            f"{exc}: it selects no target",
                            severity="warning",
                        )
                    )
    return problems


def polygon_problems(alert: Alert) -> list[Problem]:
    """A warning for each polygon that loops over itself around part of its area: that part
    is read as outside (even-odd rule) and selects no target."""
    problems = []
    for i, info in enumerate(alert.infos, start=1):
        for j, area in enumerate(info.areas, start=1):
            for k, polygon in enumerate(area.polygons, start=1):
                try:
                    point = enclosed_twice(polygon.points)
                except GeometryError:
                    continue  # the validator has said what is wrong with it
                if point is not None:
                    problems.append(
                        Problem(
                            f"/alert/info[{i}]/area[{j}]/polygon[{k}]",
                            "polygon-loop",
                            f"the polygon winds twice around part of its area (near"
                            f" {point[0]:.4f},{point[1]:.4f}): that part is read as outside"
                            " and warned only by other areas",
                            severity="warning",
                        )
                    )
    return problems


def alert_areas(alert: Alert) -> list[Area]:
    return [area for info in alert.infos for area in info.areas]


def _located(target: Target) -> tuple[str, float, float]:
    return (target.id, float(target.lat or 0.0), float(target.lon or 0.0))


def select_targets(areas: Sequence[Area], targets: Sequence[Target]) -> list[Target]:
    """The targets inside any of ``areas``, in registry order, each once."""
    if not targets:
        return []
    chosen: set[str] = set()
    located = [_located(t) for t in targets if t.lat is not None and t.lon is not None]
    points = PointIndex(located) if located else None
    for area in areas:
        prefixes = [code_prefix(code) for code in division_codes(area)]
        if prefixes:
            chosen.update(
                t.id
                for t in targets
                if t.division and any(t.division.startswith(p) for p in prefixes)
            )
            codes = division_codes(area)
            chosen.update(
                t.id
                for t in targets
                if t.division
                and t.params.get("whole_division")
                and any(code.startswith(code_prefix(t.division)) for code in codes)
            )
        if points is None:
            continue
        for polygon in area.polygons:
            chosen.update(points_in_polygon(points, polygon.points))
        for circle in area.circles:
            chosen.update(points_in_circle(points, circle.lat, circle.lon, circle.radius_km))
    return [t for t in targets if t.id in chosen]


def describe_area(area: Area) -> str:
    """``areaDesc`` with the geocodes, each polygon's bounds and each circle, for a person."""
    details = []
    if area.geocodes:
        details.append("geocodes " + ", ".join(f"{g.value_name}={g.value}" for g in area.geocodes))
    for polygon in area.polygons:
        lats = [lat for lat, _ in polygon.points]
        lons = [lon for _, lon in polygon.points]
        details.append(
            f"polygon within lat {min(lats):g}..{max(lats):g}, lon {min(lons):g}..{max(lons):g}"
        )
    for circle in area.circles:
        details.append(f"circle {circle.radius_km:g} km around {circle.lat:g},{circle.lon:g}")
    return f"{area.area_desc!r} ({'; '.join(details) or 'no geocode, polygon or circle'})"


def unreached_problems(alert: Alert, channels: Sequence[str]) -> list[Problem]:
    """One problem per area of an alert that selects no target on any of ``channels``."""
    on = ", ".join(channels) or "no channel"
    problems = [
        Problem(
            f"/alert/info[{i}]/area[{j}]",
            "area-reaches-no-one",
            f"area {describe_area(area)} selects no target on {on}",
        )
        for i, info in enumerate(alert.infos, start=1)
        for j, area in enumerate(info.areas, start=1)
    ]
    return problems or [
        Problem("/alert/info[1]/area[1]", "area-reaches-no-one", "the alert names no area")
    ]
