"""This server's place between a city and its counties, and the areas its officers may warn.

City and county release centres run the same program in different roles (``[node]``,
``docs/federation.md``): a ``city`` node relays alerts down to its county nodes (the ``relay``
channel) and records what they report back; a ``county`` node delivers on its own devices and
reports upward; ``both`` does both. A node's officers warn only within its ``division``: a city
node any county of its city, a county node its own county. :func:`check_within` is that rule
for the API and the console; a stand-alone server (no ``role``) has no such limit.

An area reaches outside the division when one of its division geocodes lies outside it
(:data:`~broadcaster.planner.DIVISION_VALUE_NAMES`), or when its polygon or circle contains a
place of the division tree (a county seat, township or village) that lies outside it.
"""

from __future__ import annotations

from collections.abc import Iterable

from broadcaster.cap import Alert, Area, Problem
from broadcaster.divisions import DivisionTree, code_prefix
from broadcaster.errors import OutsideDivisionError
from broadcaster.federationconfig import NodeConfig
from broadcaster.geo import PointIndex, points_in_circle, points_in_polygon
from broadcaster.planner import division_codes


def _outside_places(area: Area, prefix: str, places: PointIndex, tree: DivisionTree) -> list[str]:
    inside: set[str] = set()
    for polygon in area.polygons:
        inside.update(points_in_polygon(places, polygon.points))
    for circle in area.circles:
        inside.update(points_in_circle(places, circle.lat, circle.lon, circle.radius_km))
    return sorted(code for code in inside if not code.startswith(prefix))


def _names(tree: DivisionTree | None, codes: Iterable[str]) -> str:
    shown = []
    for code in codes:
        division = tree.get(code) if tree is not None else None
        shown.append(f"{division.name} ({code[:6]})" if division else code)
    return "、".join(shown[:5]) + (" …" if len(shown) > 5 else "")


def outside_problems(alert: Alert, division: str, tree: DivisionTree | None) -> list[Problem]:
    """One problem per area of ``alert`` that reaches beyond ``division``."""
    prefix = code_prefix(division)
    places: PointIndex | None = None
    if tree is not None:
        places = PointIndex([(d.code, d.lat, d.lon) for d in tree])
    own = _names(tree, [division.ljust(12, "0")])
    problems = []
    for i, info in enumerate(alert.infos, start=1):
        for j, area in enumerate(info.areas, start=1):
            codes = [c for c in division_codes(area) if not c.startswith(prefix)]
            if places is not None and tree is not None:
                codes += _outside_places(area, prefix, places, tree)
            if codes:
                problems.append(
                    Problem(
                        f"/alert/info[{i}]/area[{j}]",
                        "outside-division",
                        f"area {area.area_desc!r} reaches {_names(tree, dict.fromkeys(codes))},"
                        f" outside {own}, the division this node serves",
                    )
                )
    return problems


def check_within(alert: Alert, node: NodeConfig, tree: DivisionTree | None) -> None:
    """Raise :class:`OutsideDivisionError` if ``alert`` reaches beyond ``node``'s division."""
    if node.role is None or node.division is None:
        return
    problems = outside_problems(alert, node.division, tree)
    if problems:
        noun = "county" if node.role == "county" else "city"
        raise OutsideDivisionError(
            f"this {noun} node's officers may warn only within its own {noun}: "
            + problems[0].message,
            problems,
        )
