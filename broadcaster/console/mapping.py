"""The registry map: an SVG frame over the deployment's divisions, and points placed on it.

The projection is equirectangular around the middle latitude (x scaled by cos φ₀), which over
a city-sized area (Ulanqab spans about 2.5° × 4°) distorts distances by well under 2 %; the
page inverts it to turn clicks into WGS 84 ``lat,lon`` polygon corners (CAP order). The frame
is sent to the page as JSON (``to_json``) so both sides use the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from broadcaster.divisions import DivisionTree

WIDTH = 1000.0
_MARGIN = 0.08


@dataclass(frozen=True, slots=True)
class MapFrame:
    """A lat/lon box drawn ``width`` × ``height`` SVG units."""

    min_lat: float
    max_lat: float
    min_lon: float
    max_lon: float
    width: float
    height: float

    def xy(self, lat: float, lon: float) -> tuple[float, float]:
        x = (lon - self.min_lon) / (self.max_lon - self.min_lon) * self.width
        y = (self.max_lat - lat) / (self.max_lat - self.min_lat) * self.height
        return round(x, 1), round(y, 1)

    def to_json(self) -> dict[str, float]:
        return {
            "minLat": self.min_lat,
            "maxLat": self.max_lat,
            "minLon": self.min_lon,
            "maxLon": self.max_lon,
            "width": self.width,
            "height": self.height,
        }


def frame_around(points: Iterable[tuple[float, float]]) -> MapFrame:
    """The frame that shows ``points`` (lat, lon) with a margin; a default one if none."""
    pts = list(points) or [(41.0, 113.0)]
    lats = [p[0] for p in pts]
    lons = [p[1] for p in pts]
    lat_span = max(max(lats) - min(lats), 0.05)
    lon_span = max(max(lons) - min(lons), 0.05)
    min_lat = min(lats) - lat_span * _MARGIN
    max_lat = max(lats) + lat_span * _MARGIN
    min_lon = min(lons) - lon_span * _MARGIN
    max_lon = max(lons) + lon_span * _MARGIN
    scale = math.cos(math.radians((min_lat + max_lat) / 2))
    height = WIDTH * (max_lat - min_lat) / ((max_lon - min_lon) * scale)
    return MapFrame(min_lat, max_lat, min_lon, max_lon, WIDTH, round(height, 1))


def registry_frame(tree: DivisionTree | None) -> MapFrame:
    """The frame of the whole registry: the compose map and the board map share it."""
    return frame_around((d.lat, d.lon) for d in tree) if tree is not None else frame_around([])


def division_map(tree: DivisionTree | None, frame: MapFrame) -> dict[str, Any]:
    """Frame, county labels and village dots of the registry, for the compose map."""
    labels = []
    dots = []
    for division in tree if tree is not None else []:
        x, y = frame.xy(division.lat, division.lon)
        if division.level == "county":
            labels.append({"code": division.code, "name": division.name, "x": x, "y": y})
        elif division.level == "village":
            dots.append({"code": division.code, "name": division.name, "x": x, "y": y})
    return {"frame": frame.to_json(), "labels": labels, "dots": dots}


def target_dots(frame: MapFrame, deliveries: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One dot per delivery whose target has a place, for the board map."""
    dots = []
    for d in deliveries:
        if d.get("lat") is None or d.get("lon") is None:
            continue
        x, y = frame.xy(float(d["lat"]), float(d["lon"]))
        dots.append({"id": d["id"], "x": x, "y": y, "state": d["state"], "name": d["name"]})
    return dots


def division_tree(tree: DivisionTree | None) -> list[dict[str, Any]]:
    """The tree as nested lists for the area picker: city → county → township → village."""
    if tree is None:
        return []

    def node(code: str) -> dict[str, Any]:
        division = tree.require(code)
        return {
            "code": division.code,
            "name": division.name,
            "level": division.level,
            "children": [node(child.code) for child in tree.children(code)],
        }

    return [node(root.code) for root in tree.roots()]
