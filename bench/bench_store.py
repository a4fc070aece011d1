"""Store throughput: one alert to 10,000 and 100,000 targets through the ``log`` channel, on
SQLite, on PostgreSQL with one node and on PostgreSQL with two nodes, in one run.

Run: ``PYTHONPATH=. .venv/bin/python bench/bench_store.py`` (``--sizes 10000`` for a short
run). PostgreSQL is a throw-away server (:class:`~broadcaster.testing.pgserver.PgServer`,
fsync off: this measures the store's work, not the disk). With two nodes the second is a
``broadcaster serve`` process on the same database, so each node has a core of its own.

Prints, per engine and size:
- plan: from submitting the alert until intake answers (every delivery stored);
- confirm: from that answer until every delivery is confirmed, and the rate;
- with two nodes, how many deliveries each node sent;
- the server's CPU per delivery while confirming (all its threads, from ``/proc``), split by
  thread (``main`` is the event loop, ``sqlite`` the database thread of either engine), and
  on PostgreSQL the database server's own CPU per delivery (its processes, all nodes' work).
Goal on a 2-core machine: 100,000 confirmed in under 20 s on PostgreSQL with two nodes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.bench_fanout import thread_cpu_s, threads_spent
from broadcaster.cap.serialize import to_xml
from broadcaster.config import parse_config
from broadcaster.service import BroadcasterService
from broadcaster.testing.pgserver import PgServer
from drivers.mqtt.testing import free_port
from tests.conftest import REPO
from tests.core.support import COUNTY, COUNTY_SEAT, make_alert
from tests.processes import wait_http

DISPATCH = {"batch_size": 2000, "idle_poll_seconds": 0.05}
LOG_CHANNEL = {"type": "log", "concurrency": 2000}


def targets_file(workdir: Path, count: int) -> Path:
    """``count`` log targets in villages of the county the bench alert names."""
    lat0, lon0 = COUNTY_SEAT
    rows = [
        {
            "id": f"log-{n:06d}",
            "channel": "log",
            "name": f"村{n}",
            "division": f"{COUNTY[:6]}{n // 999 + 1:03d}{n % 999 + 1:03d}",
            "lat": lat0 + (n % 100) * 0.001,
            "lon": lon0 + (n // 100) * 0.0001,
        }
        for n in range(count)
    ]
    path = workdir / f"targets-{count}.json"
    path.write_text(json.dumps(rows), encoding="utf-8")
    return path


@contextlib.contextmanager
def second_node(workdir: Path, url: str, registry: Path) -> Iterator[None]:
    """A ``broadcaster serve`` process on the same database until the block ends."""
    port = free_port()
    config = workdir / "node-b.toml"
    config.write_text(
        f"""
[server]
port = {port}
data_dir = "{workdir / "node-b"}"
[store]
url = "{url}"
node = "b"
[registry]
targets = "{registry}"
[dispatcher]
batch_size = {DISPATCH["batch_size"]}
idle_poll_seconds = {DISPATCH["idle_poll_seconds"]}
[channels.log]
type = "log"
concurrency = {LOG_CHANNEL["concurrency"]}
""",
        encoding="utf-8",
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    serve = [sys.executable, "-m", "broadcaster", "serve", "--config", str(config)]
    process = subprocess.Popen(serve, cwd=REPO, env=env, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", timeout=300)
        yield
    finally:
        process.terminate()
        process.wait(timeout=60)


def tree_cpu_s(pid: int | None) -> float:
    """CPU seconds of process ``pid`` and its children so far (0 without a process)."""
    if pid is None:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(proc.name) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


async def fan_out(
    workdir: Path, registry: Path, count: int, url: str | None, pg_pid: int | None
) -> dict[str, Any]:
    store: dict[str, Any] = {"url": url, "node": "a"} if url else {}
    config = parse_config(
        {
            "server": {"data_dir": str(workdir / "node-a")},
            "registry": {"targets": str(registry)},
            "dispatcher": DISPATCH,
            "channels": {"log": LOG_CHANNEL},
            "store": store,
        },
        base_dir=workdir,
        source=None,
    )
    service = BroadcasterService(config)
    await service.start()
    try:
        started = time.perf_counter()
        result = await service.submit(to_xml(make_alert(f"bench-store-{count}")), origin="bench")
        planned = time.perf_counter()
        assert result.planned == {"log": count}, result.planned
        threads_before, pg_before = thread_cpu_s(), tree_cpu_s(pg_pid)
        while True:
            summary = await service.store.deliveries.summary(result.alert_id)
            if summary.get("log", {}).get("confirmed", 0) == count:
                break
            await asyncio.sleep(0.05)
        confirmed = time.perf_counter()
        threads = threads_spent(threads_before)
        pg_cpu = tree_cpu_s(pg_pid) - pg_before
        by_node = await service.database.run(
            service.database.query,
            "SELECT claimed_by, count(*) AS n FROM deliveries GROUP BY claimed_by",
        )
    finally:
        await service.stop()
    return {
        "plan": planned - started,
        "confirm": confirmed - planned,
        "nodes": {str(r["claimed_by"]): int(r["n"]) for r in by_node},
        "threads": threads,
        "pg_cpu": pg_cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument(
        "--engines", nargs="+", default=["sqlite", "pg-1", "pg-2"], help="sqlite pg-1 pg-2"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, PgServer() as server:
        base = Path(tmp)
        for count in args.sizes:
            registry = targets_file(base, count)
            for engine in args.engines:
                workdir = base / f"{engine}-{count}"
                workdir.mkdir()
                url = None if engine == "sqlite" else server.migrated()
                with contextlib.ExitStack() as stack:
                    if engine == "pg-2":
                        assert url is not None
                        stack.enter_context(second_node(workdir, url, registry))
                    pg_pid = None if url is None else server.pid
                    got = asyncio.run(fan_out(workdir, registry, count, url, pg_pid))
                rate = count / got["confirm"]
                nodes = "" if engine != "pg-2" else f"   by node: {got['nodes']}"
                cpu = {name: s / count * 1e6 for name, s in got["threads"].items()}
                split = ", ".join(f"{name} {us:.0f}" for name, us in sorted(cpu.items()))
                pg = f", PostgreSQL {got['pg_cpu'] / count * 1e6:.0f}" if url else ""
                print(
                    f"{engine:7} {count:>7} deliveries: plan {got['plan']:6.2f} s"
                    f"   confirm {got['confirm']:6.2f} s ({rate:8.0f}/s){nodes}\n"
                    f"        CPU per delivery while confirming, µs: server {sum(cpu.values()):.0f}"
                    f" ({split}){pg}; load {Path('/proc/loadavg').read_text().split()[0]}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
