"""Names for an area drawn on the map, from the administrative divisions it covers.

Residents read the area of a warning in its headline; "the area drawn on the map" tells them
nothing. A drawn polygon is named after the county-level divisions (县 / 旗 / 区 / 县级市) of the
deployment's tree whose places (the county seat and every township and village under it) it
contains: a county with all of them inside is named as it is ("卓资县"), one with some of them
inside as a part ("凉城县部分地区"); both kinds together read "卓资县及凉城县、丰镇市部分地区".
Every county wholly inside a city that is wholly inside gives the city's name. A polygon that
contains no place of the tree has no name: the officer then types one.
"""

from __future__ import annotations

from collections.abc import Sequence

from broadcaster.divisions import Division, DivisionTree
from broadcaster.geo import GeometryError, LatLon, points_in_polygon


def _share_inside(tree: DivisionTree, division: Division, inside: set[str]) -> float:
    places = [division, *tree.descendants(division.code)]
    return sum(p.code in inside for p in places) / len(places)


def drawn_area_name(tree: DivisionTree, polygon: Sequence[LatLon]) -> str:
    """The name residents read for ``polygon`` (see the module docstring); "" for none."""
    try:
        # One indexed selection (the places in the polygon's box, tested by GEOS), not every
        # place against every corner.
        inside = set(points_in_polygon([(d.code, d.lat, d.lon) for d in tree], polygon))
    except GeometryError:
        return ""
    whole: list[str] = []
    partial: list[str] = []
    for city in (d for d in tree if d.level == "city"):
        counties = [d for d in tree.children(city.code) if d.level == "county"]
        shares = [_share_inside(tree, county, inside) for county in counties]
        if counties and all(share == 1.0 for share in shares):
            whole.append(city.name)
            continue
        whole.extend(c.name for c, share in zip(counties, shares, strict=True) if share == 1.0)
        partial.extend(c.name for c, share in zip(counties, shares, strict=True) if 0 < share < 1)
    parts = f"{'、'.join(partial)}部分地区" if partial else ""
    if whole and parts:
        return f"{'、'.join(whole)}及{parts}"
    return parts or "、".join(whole)
