"""Polygon selection: ``broadcaster.geo.PointIndex`` against plain shapely 2 (GEOS) calls.

10,000 registered points (villages) spread over the demo city's extent; three rings: a
county-sized star of 24 vertices, a ring of 2,000 vertices, and a 10,000-vertex ring. For
each: milliseconds per selection with ``PointIndex.in_polygon`` (index built once, as the
planner does per registry load; it cuts the ring's bounding box and asks GEOS ``dwithin`` for the
points in it) and with shapely over all points on a prepared polygon (its build timed apart):
``intersects_xy`` (exact: a point on an edge counts only if its rounded coordinates fall exactly
on it) and ``dwithin`` 1e-9° (the project's rule: within ``BOUNDARY_TOLERANCE_DEG`` of the
boundary is inside). The ``dwithin`` selection must equal the index's.

Run: ``PYTHONPATH=. .venv/bin/python bench/bench_geo.py [--points 10000]``.
"""

from __future__ import annotations

import argparse
import math
import random
import time
from collections.abc import Callable

import numpy as np
import shapely

from broadcaster.geo import BOUNDARY_TOLERANCE_DEG as TOLERANCE
from broadcaster.geo import PointIndex


def star(
    vertices: int, lat: float, lon: float, outer: float, inner: float
) -> list[tuple[float, float]]:
    ring = []
    for k in range(vertices):
        radius = outer if k % 2 == 0 else inner
        angle = 2 * math.pi * k / vertices
        ring.append((lat + radius * math.cos(angle), lon + radius * math.sin(angle)))
    return [*ring, ring[0]]


def per_call_ms(work: Callable[[], object], repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        work()
    return (time.perf_counter() - start) / repeats * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10_000)
    args = parser.parse_args()
    rng = random.Random(7)
    points = [
        (f"p{i}", rng.uniform(39.5, 42.5), rng.uniform(110.5, 114.5)) for i in range(args.points)
    ]
    lats = np.array([p[1] for p in points])
    lons = np.array([p[2] for p in points])
    ids = np.array([p[0] for p in points])
    build_ms = per_call_ms(lambda: PointIndex(points), 5)
    index = PointIndex(points)
    print(f"{args.points} points; PointIndex built in {build_ms:.1f} ms")
    print(f"{'ring':22}{'index':>8}{'intersects':>12}{'dwithin':>9}{'prepare':>9}  ms; selected")
    rings = {
        "county, 24 vertices": star(24, 41.0, 112.5, 0.6, 0.3),
        "2,000 vertices": star(2000, 41.0, 112.5, 1.2, 0.9),
        "10,000 vertices": star(10_000, 41.0, 112.5, 1.2, 0.9),
    }
    cloud = shapely.points(lons, lats)
    for name, ring in rings.items():
        polygon = shapely.Polygon([(lon, lat) for lat, lon in ring])
        shapely.prepare(polygon)
        own_ms = per_call_ms(lambda ring=ring: index.in_polygon(ring), 10)
        prepare_ms = per_call_ms(
            lambda ring=ring: shapely.prepare(shapely.Polygon([(x, y) for y, x in ring])), 10
        )
        exact_ms = per_call_ms(lambda p=polygon: shapely.intersects_xy(p, lons, lats), 10)
        near_ms = per_call_ms(lambda p=polygon: shapely.dwithin(p, cloud, TOLERANCE), 10)
        own = sorted(index.in_polygon(ring))
        exact = shapely.intersects_xy(polygon, lons, lats)
        assert own == sorted(ids[shapely.dwithin(polygon, cloud, TOLERANCE)]), name
        print(
            f"{name:22}{own_ms:8.2f}{exact_ms:12.2f}{near_ms:9.2f}{prepare_ms:9.2f}"
            f"  {len(own)} (exact: {int(exact.sum())})"
        )


if __name__ == "__main__":
    main()
