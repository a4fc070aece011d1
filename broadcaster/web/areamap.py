"""The area of an alert as SVG shapes, from its CAP geometry and the division registry.

No map tiles and no external service: the picture is drawn from what the server has.

- ``<polygon>`` (CAP 1.2 §3.2.4: ``lat,lon`` pairs, WGS 84) and ``<circle>`` (``lat,lon
  radius_km``) are drawn as they are;
- a ``<geocode>`` with a division code is drawn as the convex hull of the places the registry
  knows under it (the division's seat, its townships and villages), or as a marker when it
  has only one place;
- for orientation, the deployment's outline (the hull of every known place) and its county
  seats with their names are drawn underneath; the picture always shows the whole deployment
  and the whole alert area.

Coordinates go through an equirectangular projection scaled by the cosine of the middle
latitude, which is faithful enough for an area the size of a prefecture.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from broadcaster.cap import Alert
from broadcaster.divisions import DivisionTree
from broadcaster.planner import alert_areas, division_codes

Point = tuple[float, float]
"""(lat, lon) in degrees."""

WIDTH = 640.0
MIN_HEIGHT = 260.0
MAX_HEIGHT = 760.0
MARGIN = 0.08
KM_PER_DEGREE = 111.32
MARKER_RADIUS = 7.0


@dataclass(frozen=True, slots=True)
class Shape:
    """One SVG element: ``kind`` is ``polygon`` (``points``) or ``circle`` (``cx, cy, r``)."""

    kind: str
    role: str
    points: str = ""
    cx: float = 0.0
    cy: float = 0.0
    r: float = 0.0
    label: str = ""


@dataclass(frozen=True, slots=True)
class Place:
    """A labelled dot for orientation (a county seat)."""

    x: float
    y: float
    name: str


@dataclass(frozen=True, slots=True)
class AreaMap:
    width: float
    height: float
    outline: Shape | None
    shapes: tuple[Shape, ...]
    places: tuple[Place, ...]

    @property
    def view_box(self) -> str:
        return f"0 0 {self.width:.0f} {self.height:.0f}"


def convex_hull(points: Iterable[Point]) -> list[Point]:
    """The convex hull of ``points`` in counter-clockwise order (Andrew's monotone chain)."""
    unique = sorted(set(points))
    if len(unique) < 3:
        return unique

    def cross(o: Point, a: Point, b: Point) -> float:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list[Point] = []
    upper: list[Point] = []
    for p in unique:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    for p in reversed(unique):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return lower[:-1] + upper[:-1]


class _Projection:
    """Degrees to SVG pixels for the box around ``points``."""

    def __init__(self, points: Sequence[Point]) -> None:
        lats = [p[0] for p in points]
        lons = [p[1] for p in points]
        self.lat_top, lat_bottom = max(lats), min(lats)
        self.lon_left, lon_right = min(lons), max(lons)
        self.cos = math.cos(math.radians((self.lat_top + lat_bottom) / 2))
        span_x = max((lon_right - self.lon_left) * self.cos, 0.02)
        span_y = max(self.lat_top - lat_bottom, 0.02)
        pad_x, pad_y = span_x * MARGIN, span_y * MARGIN
        self.lon_left -= pad_x / self.cos
        self.lat_top += pad_y
        span_x, span_y = span_x + 2 * pad_x, span_y + 2 * pad_y
        self.scale = WIDTH / span_x
        self.height = min(MAX_HEIGHT, max(MIN_HEIGHT, span_y * self.scale))
        self.scale = min(self.scale, self.height / span_y)

    def xy(self, point: Point) -> tuple[float, float]:
        x = (point[1] - self.lon_left) * self.cos * self.scale
        y = (self.lat_top - point[0]) * self.scale
        return x, y

    def points(self, ring: Sequence[Point]) -> str:
        return " ".join(f"{x:.1f},{y:.1f}" for x, y in map(self.xy, ring))

    def km(self, distance: float) -> float:
        return distance / KM_PER_DEGREE * self.scale


def _circle_box(lat: float, lon: float, radius_km: float) -> list[Point]:
    d_lat = radius_km / KM_PER_DEGREE
    d_lon = d_lat / max(math.cos(math.radians(lat)), 0.01)
    return [(lat - d_lat, lon - d_lon), (lat + d_lat, lon + d_lon)]


def _division_places(tree: DivisionTree, code: str) -> tuple[str, list[Point]]:
    division = tree.get(code)
    if division is None:
        return "", []
    found = [division, *tree.descendants(division.code)]
    return division.name, [(d.lat, d.lon) for d in found]


def build_map(alert: Alert, tree: DivisionTree | None) -> AreaMap | None:
    """The shapes of ``alert``'s areas, or ``None`` when nothing in it can be placed."""
    # Each language's <info> usually repeats the same areas: draw each shape once.
    rings: dict[tuple[Point, ...], None] = {}
    round_areas: dict[tuple[float, float, float], None] = {}
    codes: dict[str, None] = {}
    for area in alert_areas(alert):
        rings.update((polygon.points, None) for polygon in area.polygons)
        round_areas.update(((c.lat, c.lon, c.radius_km), None) for c in area.circles)
        codes.update((code, None) for code in division_codes(area))
    polygons = [list(ring) for ring in rings]
    circles = list(round_areas)
    divisions: list[tuple[str, list[Point]]] = []
    if tree is not None:
        for code in codes:
            name, places = _division_places(tree, code)
            if places:
                divisions.append((name, places))
    extent: list[Point] = [p for ring in polygons for p in ring]
    extent += [p for c in circles for p in _circle_box(*c)]
    extent += [p for _, places in divisions for p in places]
    if not extent:
        return None
    context = [d for d in tree if d.level == "county"] if tree is not None else []
    region = convex_hull((d.lat, d.lon) for d in tree) if tree is not None else []
    projection = _Projection(extent + region)
    outline = None
    if len(region) >= 3:
        outline = Shape("polygon", "region", points=projection.points(region))
    shapes: list[Shape] = []
    for name, places in divisions:
        hull = convex_hull(places)
        if len(hull) >= 3:
            shapes.append(Shape("polygon", "division", points=projection.points(hull), label=name))
        else:
            x, y = projection.xy(places[0])
            shapes.append(Shape("circle", "division", cx=x, cy=y, r=MARKER_RADIUS, label=name))
    for ring in polygons:
        shapes.append(Shape("polygon", "polygon", points=projection.points(ring)))
    for lat, lon, radius in circles:
        x, y = projection.xy((lat, lon))
        r = max(projection.km(radius), 3.0)
        shapes.append(Shape("circle", "circle", cx=x, cy=y, r=r, label=f"{radius:g} km"))
    seats = tuple(Place(*projection.xy((d.lat, d.lon)), d.name) for d in context)
    return AreaMap(WIDTH, projection.height, outline, tuple(shapes), seats)
