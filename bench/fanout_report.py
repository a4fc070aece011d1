"""The report of ``bench/bench_fanout.py``: one line per measurement as it ends, the table of
every kind side by side for each fleet size, and the extrapolation of a size that cannot run
on this machine from the sizes that did (a least-squares line through the measured points,
printed as an extrapolation, never as a measurement)."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from typing import Any

Result = dict[str, Any] | str
"""A measurement's figures, or why it did not run or failed."""


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _share(result: dict[str, Any], key: str) -> str:
    """A process group's CPU as a share of the machine's cores over the measured window."""
    if key not in result or not result.get("window_s"):
        return "-"
    return f"{result[key] / (result['window_s'] * result['cores']) * 100:.0f} %"


def _per_delivery(result: dict[str, Any]) -> str:
    return f"{result['cpu_s'] / result['boxes'] * 1000:.3f}" if "cpu_s" in result else "-"


def format_row(result: Result) -> str:
    """One measurement on one line."""
    if isinstance(result, str):
        return result
    started, wire = result["started"], result.get("wire", {})
    parts = [
        f"started first {_s(started['first'])} 50% {_s(started['p50'])}"
        f" 99% {_s(started['p99'])} all {_s(started['all'])}",
        f"accepted {_s(result.get('accepted'))}",
        f"wire first {_s(wire.get('first'))} all {_s(wire.get('all'))}",
        f"sim CPU {result['sim_cpu']:.2f} s ({_share(result, 'sim_cpu')}, {result['sim_loop']})",
        f"broker CPU {result.get('broker_cpu', 0.0):.2f} s ({_share(result, 'broker_cpu')})",
    ]
    if "cpu_s" in result:
        parts.append(f"CPU {result['cpu_s']:.2f} s ({_per_delivery(result)} ms/delivery)")
        parts.append(f"peak RSS {result['rss_mb']:.0f} MB")
    if "downloaded" in result:
        fetched = result["downloaded"]
        failed = result["download_failures"]
        parts.append(f"downloaded first {_s(fetched['first'])} all {_s(fetched['all'])}")
        parts.append(f"download failures {failed}, {result['download_mb']:.0f} MB received")
    if "confirmed" in result:
        parts.append(f"confirmed {_s(result['confirmed'])}")
    if "timed_out" in result:
        parts.append(f"NOT COMPLETE within the timeout, deliveries by state {result['timed_out']}")
    if "instances" in result:
        parts.append(f"channel instances {result['instances']}")
    if "threads" in result:
        parts.append(f"CPU by thread {result['threads']}")
    parts.append(f"load {result.get('load', '?')}")
    return "; ".join(parts)


ROWS: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
    ("first", lambda r: _s(r["started"]["first"])),
    ("50 %", lambda r: _s(r["started"]["p50"])),
    ("99 %", lambda r: _s(r["started"]["p99"])),
    ("all started", lambda r: _s(r["started"]["all"])),
    ("all accepted", lambda r: _s(r.get("accepted"))),
    ("wire: first", lambda r: _s(r.get("wire", {}).get("first"))),
    ("wire: all", lambda r: _s(r.get("wire", {}).get("all"))),
    ("confirmed", lambda r: _s(r.get("confirmed"))),
    ("CPU ms/dlv", _per_delivery),
    ("peak RSS MB", lambda r: f"{r['rss_mb']:.0f}" if "rss_mb" in r else "-"),
    ("sim CPU s", lambda r: f"{r['sim_cpu']:.2f}"),
    ("sim share", lambda r: _share(r, "sim_cpu")),
    ("sim loop", lambda r: r["sim_loop"]),
    ("broker CPU s", lambda r: f"{r.get('broker_cpu', 0.0):.2f}"),
    ("broker share", lambda r: _share(r, "broker_cpu")),
    ("window s", lambda r: _s(r.get("window_s"))),
    ("load 1 min", lambda r: str(r.get("load", "?")).split()[0]),
]
DOWNLOAD_ROWS: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
    ("audio: all", lambda r: _s(r["downloaded"]["all"]) if "downloaded" in r else "-"),
    ("audio failures", lambda r: str(r.get("download_failures", "-"))),
    ("audio MB", lambda r: f"{r['download_mb']:.0f}" if "download_mb" in r else "-"),
]
"""Rows of runs whose boxes downloaded their audio (``--download``): when every box had it
verified, the downloads that failed, the megabytes received."""


def print_table(
    sizes: Sequence[int], kinds: Sequence[str], results: dict[tuple[str, int], Result]
) -> None:
    """For each size, every kind side by side: seconds from the publish (bare), the first send
    (hub) or the API's answer (server); CPU shares of the machine's cores over the window."""
    print(
        "\nseconds from the publish / first send / API answer (started: acks at the hub or server)"
    )
    for size in sizes:
        print(f"\n{size:,} boxes" + "".join(f"{kind:>16}" for kind in kinds))
        bare = results.get(("bare", size))
        floor = bare["wire"]["all"] if isinstance(bare, dict) else None
        measured = [results.get((kind, size)) for kind in kinds]
        fetched = any(isinstance(r, dict) and "downloaded" in r for r in measured)
        rows = [*ROWS, *(DOWNLOAD_ROWS if fetched else []), *_against(floor)]
        for label, value in rows:
            cells = []
            for kind in kinds:
                result = results.get((kind, size))
                cells.append(value(result) if isinstance(result, dict) else "n/a")
            print(f"  {label:14}" + "".join(f"{cell:>16}" for cell in cells))


def _against(floor: float | None) -> list[tuple[str, Callable[[dict[str, Any]], str]]]:
    """Rows of all started and all accepted as multiples of the bare fan-out ``floor``."""

    def started(result: dict[str, Any]) -> str:
        return _times(result["started"]["all"], floor)

    def accepted(result: dict[str, Any]) -> str:
        return _times(result.get("accepted"), floor)

    return [("started ÷ bare", started), ("accepted ÷ bare", accepted)]


def _times(value: float | None, floor: float | None) -> str:
    """``value`` as a multiple of the bare broker's fan-out to every box, measured in the
    same run ("-" without one of them)."""
    return "-" if value is None or not floor else f"{value / floor:.1f}×"


SPREAD: list[tuple[str, int, Callable[[dict[str, Any], float | None], float | None]]] = [
    ("all started s", 2, lambda r, _: r["started"]["all"]),
    ("all accepted s", 2, lambda r, _: r.get("accepted")),
    (
        "accepted ÷ bare",
        1,
        lambda r, bare: r["accepted"] / bare if r.get("accepted") and bare else None,
    ),
    ("CPU ms/dlv", 3, lambda r, _: r["cpu_s"] / r["boxes"] * 1000 if "cpu_s" in r else None),
]
"""The figures :func:`print_spread` gives over repeated runs (each ratio against the bare
fan-out of its own run)."""


def print_spread(
    sizes: Sequence[int], kinds: Sequence[str], runs: Sequence[dict[tuple[str, int], Result]]
) -> None:
    """The median, lowest and highest of each :data:`SPREAD` figure of every kind over ``runs``
    (each a run of every kind, in turn), so one noisy run does not make the verdict."""
    print(f"\nover {len(runs)} runs of each kind, taken in turn: median (lowest–highest)")
    for size in sizes:
        print(f"\n{size:,} boxes" + "".join(f"{label:>24}" for label, _, _ in SPREAD))
        for kind in kinds:
            cells = []
            for _, digits, figure in SPREAD:
                values = []
                for run in runs:
                    result, bare = run.get((kind, size)), run.get(("bare", size))
                    floor = bare["wire"]["all"] if isinstance(bare, dict) else None
                    value = figure(result, floor) if isinstance(result, dict) else None
                    if value is not None:
                        values.append(value)
                cells.append(_spread(values, digits))
            print(f"  {kind:14}" + "".join(f"{cell:>24}" for cell in cells))


def _spread(values: Sequence[float], digits: int) -> str:
    if not values:
        return "-"
    low, high = min(values), max(values)
    return f"{statistics.median(values):.{digits}f} ({low:.{digits}f}–{high:.{digits}f})"


def _line(points: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """Intercept and slope of the least-squares line through ``points``."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    spread_x = sum((x - mean_x) ** 2 for x, _ in points)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / spread_x
    return mean_y - slope * mean_x, slope


def extrapolate(kind: str, measured: dict[int, dict[str, Any]], size: int) -> str:
    """The figures of ``kind`` at ``size`` boxes extrapolated from the ``measured`` sizes."""
    sizes = sorted(measured)
    if len(sizes) < 2:
        return f"{kind} {size:,}: no extrapolation: fewer than two sizes measured ({sizes})"
    results = [measured[n] for n in sizes]
    cpu = _line([(n, r["cpu_s"]) for n, r in zip(sizes, results, strict=True)])
    rss = _line([(n, r["rss_mb"]) for n, r in zip(sizes, results, strict=True)])
    points = [(n, r["started"]["all"]) for n, r in zip(sizes, results, strict=True)]
    started = _line([(n, t) for n, t in points if t is not None] or [(0, 0.0), (1, 0.0)])
    cpu_at = cpu[0] + cpu[1] * size
    return (
        f"{kind} {size:,}: EXTRAPOLATION, NOT MEASURED (least-squares line through "
        f"{', '.join(f'{n:,}' for n in sizes)} boxes): CPU {cpu_at:.1f} s = "
        f"{cpu_at / size * 1000:.3f} ms/delivery (marginal {cpu[1] * 1000:.3f} ms/box); "
        f"peak RSS {rss[0] + rss[1] * size:.0f} MB ({rss[0]:.0f} MB + {rss[1] * 1024:.1f} KB/box); "
        f"all started {started[0] + started[1] * size:.1f} s "
        f"({started[1] * 1000 * 1000:.0f} µs/box, load as measured)"
    )


def print_cpu_split(
    sizes: Sequence[int], kinds: Sequence[str], results: dict[tuple[str, int], Result]
) -> None:
    """For each server or hub kind measured at two sizes or more: its CPU as a least-squares
    line through them, a part per alert (API, plan, render, and what a window costs
    whatever the fleet) and a part per box, the marginal cost of a delivery."""
    lines = []
    for kind in kinds:
        points = [
            (size, result["cpu_s"])
            for size in sizes
            if isinstance(result := results.get((kind, size)), dict) and "cpu_s" in result
        ]
        if len(points) < 2:
            continue
        fixed, per_box = _line(points)
        lines.append(
            f"  {kind:<16} {fixed:6.2f} s per alert + {per_box * 1000:.3f} ms per delivery"
            f" (through {', '.join(f'{n:,}' for n, _ in points)} boxes)"
        )
    if lines:
        print("\nCPU of the server (or hub) split by least squares over the sizes measured:")
        print("\n".join(lines))
