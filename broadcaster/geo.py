"""Geometry for warning areas: which registered points lie in a CAP polygon or circle.

Coordinates are WGS 84 decimal degrees written ``(lat, lon)``, latitude first, as CAP 1.2
writes them in ``<polygon>`` and ``<circle>`` (OASIS CAP 1.2, section 3.2.4). GeoJSON writes
``lon, lat``; convert before calling anything here.

Rules every function follows:

* A polygon is one closed ring of at least three distinct vertices. The closing vertex may be
  repeated (CAP requires it) or left out; the edge from the last vertex back to the first is
  implied either way. Rings may be concave and may wind either way; a self-intersecting ring is
  read with the even-odd rule, so a part a looping ring winds around twice is outside: intake
  warns of it (:func:`enclosed_twice`).
* Inside is decided by ray casting (even-odd rule) on the plane of latitude and longitude, which
  is what CAP consumers do for areas the size of a county.
* Boundary: a point on an edge or a vertex, within ``BOUNDARY_TOLERANCE_DEG`` (about 0.1 mm),
  is inside. A village on the line of a warned area is warned.
* Circles use great-circle distance (haversine on a sphere of ``EARTH_RADIUS_KM``); a point at
  exactly the radius is inside.
* Out of scope: polygons that cross the antimeridian (±180° longitude) or enclose a pole. They
  are read literally on the plane, so a ring from 179° to -179° covers the long way round the
  globe. Circles are not affected: haversine distance wraps correctly.

``PointIndex`` holds many ``(id, lat, lon)`` points sorted by latitude in numpy arrays. Every
query first cuts, by binary search, the latitude band of the shape's bounding box. Points in a
polygon's box are then tested by shapely (GEOS) with ``dwithin(polygon, point,
BOUNDARY_TOLERANCE_DEG)``, which is the rule above: inside, or on the boundary within the
tolerance. ``point_in_polygon`` is the same rule written out as ray casting, for single points;
the tests hold the two to the same answers. Measured with 10,000 points (``bench/bench_geo.py``,
two shared cores): building the index takes about 20 ms (the GEOS points), a selection about
2 ms for a county-sized ring and 15-45 ms for a ring of 2,000 vertices, where the ray casting
vectorised in numpy that GEOS replaced took 70-160 ms.
"""

from __future__ import annotations

import math
import numbers
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely

from broadcaster.errors import BroadcasterError

EARTH_RADIUS_KM = 6371.0088
"""Mean Earth radius (IUGG), used for every distance here."""

BOUNDARY_TOLERANCE_DEG = 1e-9
"""Points this close (in degrees) to an edge count as on the boundary, hence inside."""

KM_PER_DEGREE_LAT = EARTH_RADIUS_KM * math.pi / 180.0

LatLon = tuple[float, float]
Ring = Sequence[LatLon]
IdPoint = tuple[str, float, float]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


class GeometryError(BroadcasterError, ValueError):
    """A polygon, circle or point is unusable; the message names what is wrong."""


def _check_coordinate(lat: float, lon: float, what: str) -> None:
    if not (math.isfinite(lat) and math.isfinite(lon)):
        raise GeometryError(f"{what}: coordinates must be finite numbers, got ({lat}, {lon})")
    if not -90.0 <= lat <= 90.0:
        raise GeometryError(f"{what}: latitude {lat} is outside -90..90")
    if not -180.0 <= lon <= 180.0:
        raise GeometryError(f"{what}: longitude {lon} is outside -180..180")


def _as_coordinate(lat: object, lon: object, what: str) -> LatLon:
    """``(lat, lon)`` as checked floats; strings, booleans and other non-numbers are refused."""
    numbers_given = [
        float(value)
        for value in (lat, lon)
        if isinstance(value, numbers.Real) and not isinstance(value, bool)
    ]
    if len(numbers_given) != 2:
        raise GeometryError(f"{what}: coordinates must be numbers, got ({lat!r}, {lon!r})")
    _check_coordinate(numbers_given[0], numbers_given[1], what)
    return numbers_given[0], numbers_given[1]


def ring_vertices(polygon: Ring) -> list[LatLon]:
    """Check ``polygon`` and return its vertices without the repeated closing vertex.

    Raises ``GeometryError`` for bad coordinates or fewer than three distinct vertices.
    """
    vertices = [
        _as_coordinate(lat, lon, f"polygon vertex {number}")
        for number, (lat, lon) in enumerate(polygon, start=1)
    ]
    if len(vertices) > 1 and vertices[0] == vertices[-1]:
        vertices.pop()
    if len(set(vertices)) < 3:
        raise GeometryError(f"polygon needs at least 3 distinct vertices, got {len(set(vertices))}")
    return vertices


def _on_segment(lat: float, lon: float, a: LatLon, b: LatLon) -> bool:
    (ay, ax), (by, bx) = a, b
    eps = BOUNDARY_TOLERANCE_DEG
    if not (min(ax, bx) - eps <= lon <= max(ax, bx) + eps):
        return False
    if not (min(ay, by) - eps <= lat <= max(ay, by) + eps):
        return False
    cross = (bx - ax) * (lat - ay) - (by - ay) * (lon - ax)
    return abs(cross) <= eps * math.hypot(bx - ax, by - ay)


def point_in_polygon(lat: float, lon: float, polygon: Ring) -> bool:
    """True if ``(lat, lon)`` lies inside ``polygon`` or on its boundary.

    ``polygon`` is a ring of ``(lat, lon)`` pairs (see the module docstring for the rules).
    """
    _check_coordinate(lat, lon, "point")
    vertices = ring_vertices(polygon)
    inside = False
    previous = vertices[-1]
    for current in vertices:
        if _on_segment(lat, lon, previous, current):
            return True
        (ay, ax), (by, bx) = previous, current
        if (ay > lat) != (by > lat) and lon < ax + (lat - ay) * (bx - ax) / (by - ay):
            inside = not inside
        previous = current
    return inside


def winding_number(lat: float, lon: float, vertices: Sequence[LatLon]) -> int:
    """How many times the ring of ``vertices`` (no closing repeat) winds around ``(lat, lon)``,
    counter-clockwise positive (the crossing-sign rule)."""
    winding = 0
    previous = vertices[-1]
    for current in vertices:
        (ay, ax), (by, bx) = previous, current
        side = (bx - ax) * (lat - ay) - (by - ay) * (lon - ax)
        if ay <= lat < by and side > 0:
            winding += 1
        elif by <= lat < ay and side < 0:
            winding -= 1
        previous = current
    return winding


def enclosed_twice(polygon: Ring) -> LatLon | None:
    """A point of a part that ``polygon`` winds around an even number of times, not none: a
    ring that loops over itself encloses it, yet the even-odd rule reads it as outside (its
    boundary crossed twice). None for a ring without such a part (a simple ring, a bow tie).
    """
    vertices = ring_vertices(polygon)
    if len(vertices) < 5:  # a triangle is simple; a quadrilateral winds once at most
        return None
    ring = shapely.LinearRing([(lon, lat) for lat, lon in vertices])
    if shapely.is_simple(ring):
        return None
    faces = shapely.polygonize(shapely.get_parts(shapely.node(ring)))
    for face in shapely.get_parts(faces):
        inner = shapely.point_on_surface(face)
        lat, lon = float(inner.y), float(inner.x)
        count = winding_number(lat, lon, vertices)
        if count != 0 and count % 2 == 0:
            return (lat, lon)
    return None


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in kilometres between two points given in degrees."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    half_dphi = math.radians(lat2 - lat1) / 2.0
    half_dlambda = math.radians(lon2 - lon1) / 2.0
    a = math.sin(half_dphi) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(half_dlambda) ** 2
    return 2.0 * EARTH_RADIUS_KM * math.asin(math.sqrt(min(1.0, a)))


@dataclass(frozen=True, slots=True)
class BoundingBox:
    """A latitude/longitude rectangle, edges included. Never crosses the antimeridian."""

    min_lat: float
    min_lon: float
    max_lat: float
    max_lon: float

    def __post_init__(self) -> None:
        _check_coordinate(self.min_lat, self.min_lon, "bounding box corner")
        _check_coordinate(self.max_lat, self.max_lon, "bounding box corner")
        if self.min_lat > self.max_lat or self.min_lon > self.max_lon:
            raise GeometryError(
                f"bounding box minimum ({self.min_lat}, {self.min_lon}) exceeds its "
                f"maximum ({self.max_lat}, {self.max_lon})"
            )

    @classmethod
    def from_points(cls, points: Iterable[LatLon]) -> BoundingBox:
        """The smallest box holding every ``(lat, lon)`` in ``points`` (at least one)."""
        lats: list[float] = []
        lons: list[float] = []
        for lat, lon in points:
            lats.append(float(lat))
            lons.append(float(lon))
        if not lats:
            raise GeometryError("a bounding box needs at least one point")
        return cls(min(lats), min(lons), max(lats), max(lons))

    @classmethod
    def around_circle(cls, lat: float, lon: float, radius_km: float) -> BoundingBox:
        """A box holding every point within ``radius_km`` of ``(lat, lon)``.

        Near a pole, or where the circle would cross the antimeridian, the box widens to the
        full longitude range rather than wrap.
        """
        _check_coordinate(lat, lon, "circle centre")
        _check_radius(radius_km)
        dlat = radius_km / KM_PER_DEGREE_LAT
        min_lat, max_lat = max(-90.0, lat - dlat), min(90.0, lat + dlat)
        cos_lat = math.cos(math.radians(max(abs(min_lat), abs(max_lat))))
        if cos_lat <= 1e-12 or dlat / cos_lat >= 180.0:
            return cls(min_lat, -180.0, max_lat, 180.0)
        dlon = dlat / cos_lat
        if lon - dlon < -180.0 or lon + dlon > 180.0:
            return cls(min_lat, -180.0, max_lat, 180.0)
        return cls(min_lat, lon - dlon, max_lat, lon + dlon)

    def contains(self, lat: float, lon: float) -> bool:
        """True if ``(lat, lon)`` lies in the box or on its edge."""
        return self.min_lat <= lat <= self.max_lat and self.min_lon <= lon <= self.max_lon

    def intersects(self, other: BoundingBox) -> bool:
        """True if the two boxes share at least one point."""
        return not (
            other.min_lat > self.max_lat
            or other.max_lat < self.min_lat
            or other.min_lon > self.max_lon
            or other.max_lon < self.min_lon
        )


def _check_radius(radius_km: float) -> None:
    if not math.isfinite(radius_km) or radius_km < 0.0:
        raise GeometryError(f"circle radius must be a finite number of km >= 0, got {radius_km}")


class PointIndex:
    """Many ``(id, lat, lon)`` points, indexed for fast polygon and circle selection.

    Build it once per registry load and query it per alert; it is immutable and safe to share
    between threads. Results list ids in the order the points were given.
    """

    __slots__ = ("_ids", "_lat", "_lon", "_order", "_points")

    def __init__(self, points: Iterable[IdPoint]) -> None:
        ids: list[str] = []
        lats: list[object] = []
        lons: list[object] = []
        for point_id, lat, lon in points:
            ids.append(point_id)
            lats.append(lat)
            lons.append(lon)
        if len(set(ids)) != len(ids):
            duplicate = next(i for i, n in Counter(ids).items() if n > 1)
            raise GeometryError(f"point id {duplicate!r} appears twice")
        if not {type(value) for value in (*lats, *lons)} <= {float, int}:
            # Only then look point by point, to name the offender (numpy numbers are fine).
            for point_id, raw_lat, raw_lon in zip(ids, lats, lons, strict=True):
                _as_coordinate(raw_lat, raw_lon, f"point {point_id!r}")
        lat_array = np.asarray(lats, dtype=np.float64)
        lon_array = np.asarray(lons, dtype=np.float64)
        valid = (np.abs(lat_array) <= 90.0) & (np.abs(lon_array) <= 180.0)
        if not valid.all():
            bad = int(np.flatnonzero(~valid)[0])
            _check_coordinate(lat_array[bad], lon_array[bad], f"point {ids[bad]!r}")
        self._order = np.argsort(lat_array, kind="stable")
        self._lat: FloatArray = lat_array[self._order]
        self._lon: FloatArray = lon_array[self._order]
        self._points = shapely.points(self._lon, self._lat)
        self._ids = ids

    def __len__(self) -> int:
        return len(self._ids)

    def _band(self, low: float, high: float) -> tuple[int, int]:
        """Sorted positions ``[start, stop)`` of the points with ``low <= lat <= high``."""
        start = int(np.searchsorted(self._lat, low, side="left"))
        stop = int(np.searchsorted(self._lat, high, side="right"))
        return start, stop

    def _ids_at(self, positions: npt.NDArray[np.intp]) -> list[str]:
        originals = np.sort(self._order[positions])
        return [self._ids[int(i)] for i in originals]

    def _mask_in_bbox(self, box: BoundingBox) -> tuple[int, BoolArray]:
        start, stop = self._band(box.min_lat, box.max_lat)
        lon = self._lon[start:stop]
        return start, (lon >= box.min_lon) & (lon <= box.max_lon)

    def in_bbox(self, box: BoundingBox) -> list[str]:
        """Ids of the points inside ``box`` (edges included)."""
        start, mask = self._mask_in_bbox(box)
        return self._ids_at(np.flatnonzero(mask) + start)

    def _mask_in_polygon(self, polygon: Ring) -> BoolArray:
        """Sorted-order mask of the points inside ``polygon`` or on its boundary.

        Only the points in the ring's bounding box (widened by the tolerance) go to GEOS; a
        self-intersecting ring is read with the even-odd rule there too (GEOS counts crossings).
        """
        ring = ring_vertices(polygon)
        eps = BOUNDARY_TOLERANCE_DEG
        box = BoundingBox.from_points(ring)
        start, stop = self._band(box.min_lat - eps, box.max_lat + eps)
        lon = self._lon[start:stop]
        candidates = np.flatnonzero((lon >= box.min_lon - eps) & (lon <= box.max_lon + eps))
        shape = shapely.Polygon([(vertex_lon, vertex_lat) for vertex_lat, vertex_lon in ring])
        shapely.prepare(shape)
        inside = np.zeros(len(self._ids), dtype=np.bool_)
        candidates += start
        inside[candidates] = shapely.dwithin(shape, self._points[candidates], eps)
        return inside

    def in_polygon(self, polygon: Ring) -> list[str]:
        """Ids of the points inside ``polygon`` or on its boundary."""
        return self._ids_at(np.flatnonzero(self._mask_in_polygon(polygon)))

    def _mask_in_circle(self, lat: float, lon: float, radius_km: float) -> tuple[int, BoolArray]:
        box = BoundingBox.around_circle(lat, lon, radius_km)
        start, stop = self._band(box.min_lat, box.max_lat)
        plat = np.radians(self._lat[start:stop])
        plon = np.radians(self._lon[start:stop])
        phi = math.radians(lat)
        a = (
            np.sin((plat - phi) / 2.0) ** 2
            + np.cos(plat) * math.cos(phi) * np.sin((plon - math.radians(lon)) / 2.0) ** 2
        )
        distance = 2.0 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.minimum(a, 1.0)))
        return start, distance <= radius_km

    def in_circle(self, lat: float, lon: float, radius_km: float) -> list[str]:
        """Ids of the points within ``radius_km`` (great-circle) of ``(lat, lon)``."""
        start, mask = self._mask_in_circle(lat, lon, radius_km)
        return self._ids_at(np.flatnonzero(mask) + start)

    def in_area(
        self,
        polygons: Iterable[Ring] = (),
        circles: Iterable[tuple[float, float, float]] = (),
    ) -> list[str]:
        """Ids inside any of ``polygons`` or ``circles`` (``(lat, lon, radius_km)``): a union,
        as CAP defines an ``<area>`` with several shapes."""
        selected = np.zeros(len(self._ids), dtype=np.bool_)
        for polygon in polygons:
            selected |= self._mask_in_polygon(polygon)
        for lat, lon, radius_km in circles:
            start, mask = self._mask_in_circle(lat, lon, radius_km)
            selected[start : start + mask.size] |= mask
        return self._ids_at(np.flatnonzero(selected))


def _as_index(points: Sequence[IdPoint] | PointIndex) -> PointIndex:
    return points if isinstance(points, PointIndex) else PointIndex(points)


def points_in_polygon(points: Sequence[IdPoint] | PointIndex, polygon: Ring) -> list[str]:
    """Ids of the ``(id, lat, lon)`` points inside ``polygon``, in the order given.

    Pass a prebuilt ``PointIndex`` when querying the same points repeatedly.
    """
    return _as_index(points).in_polygon(polygon)


def points_in_circle(
    points: Sequence[IdPoint] | PointIndex, lat: float, lon: float, radius_km: float
) -> list[str]:
    """Ids of the ``(id, lat, lon)`` points within ``radius_km`` of ``(lat, lon)``."""
    return _as_index(points).in_circle(lat, lon, radius_km)
