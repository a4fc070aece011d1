"""Two nodes on one PostgreSQL and a channel with one device that node a holds, the alert
submitted to node b: what handing deliveries over to the holder costs, and what a channel
saves by saying that another node sends all of its deliveries (``Channel.sends_elsewhere``).

Each kind starts two ``broadcaster serve`` processes on a throw-away PostgreSQL server
(:class:`~broadcaster.testing.pgserver.PgServer`, fsync off) with the test channel
``tests.core.leased``: ``LeasedFileChannel`` refuses sends on node b naming node a, which the
core hands over; ``WholeLineChannel`` also answers ``sends_elsewhere``, so node b claims
nothing. Prints per kind the time from the submission to the last confirmation, how many
deliveries were handed over, how many claims were made, and the CPU per delivery of each node
and of PostgreSQL (all its processes), with the load average.

Run: ``PYTHONPATH=. .venv/bin/python bench/bench_routing.py [--deliveries N] [--kinds ...]``
(default 2,000 deliveries, both kinds once; a kind takes about 15 s).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from bench.bench_store import tree_cpu_s
from broadcaster.cap.serialize import to_xml
from broadcaster.testing.pgserver import PgServer
from tests.conftest import REPO
from tests.core.support import make_alert, village_targets
from tests.core.test_cluster import TOKEN, _node
from tests.processes import api, wait_http, wait_until

KINDS = ("LeasedFileChannel", "WholeLineChannel")


def run(kind: str, count: int, server: PgServer, workdir: Path) -> str:
    url = server.migrated()
    targets = workdir / "targets.json"
    targets.write_text(json.dumps(village_targets("line", count)), encoding="utf-8")
    channel = (
        f'\n[channels.line]\ntype = "tests.core.leased:{kind}"\n'
        "concurrency = 200\nrate_per_second = 100000\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    nodes: list[subprocess.Popen[bytes]] = []
    bases = []
    for name in ("a", "b"):  # a first: the line is a's
        serve, base = _node(workdir, name, url, targets, 30.0, channels=channel)
        nodes.append(subprocess.Popen(serve, cwd=REPO, env=env, stderr=subprocess.DEVNULL))
        wait_http(base + "/healthz", timeout=60)
        bases.append(base)
    try:
        time.sleep(1.0)  # both nodes started and idle
        before = [tree_cpu_s(p.pid) for p in nodes] + [tree_cpu_s(server.pid)]
        started = time.perf_counter()
        alert_id = api(bases[1], "/api/v1/alerts", TOKEN, to_xml(make_alert(f"bench-{kind}")))["id"]
        path = f"/api/v1/alerts/{alert_id}/deliveries?limit=1"
        wait_until(lambda: api(bases[1], path, TOKEN)["complete"], "all confirmed", timeout=120)
        took = time.perf_counter() - started
        after = [tree_cpu_s(p.pid) for p in nodes] + [tree_cpu_s(server.pid)]
        cpu = [(a - b) / count * 1e3 for a, b in zip(after, before, strict=True)]
        with psycopg.connect(url) as conn:
            handed, claims = conn.execute(
                "SELECT count(DISTINCT delivery_id) FILTER (WHERE detail LIKE '%handed to%'),"
                " count(*) FILTER (WHERE to_state = 'sending') FROM delivery_events"
            ).fetchone() or (0, 0)
        sent = len((workdir / "a" / "data" / "sent.jsonl").read_text().splitlines())
    finally:
        for proc in nodes:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        server.drop(url)
    return (
        f"{kind:18} {count} deliveries: confirmed in {took:5.2f} s, handed over {handed},"
        f" claims {claims}, sent by a {sent}\n"
        f"    CPU per delivery, ms: node a {cpu[0]:.3f}, node b {cpu[1]:.3f},"
        f" PostgreSQL {cpu[2]:.3f}; load {Path('/proc/loadavg').read_text().split()[0]}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=2000)
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, PgServer() as server:
        for n, kind in enumerate(args.kinds):
            workdir = Path(tmp) / f"{n}-{kind}"
            workdir.mkdir()
            print(run(kind, args.deliveries, server, workdir), flush=True)


if __name__ == "__main__":
    main()
