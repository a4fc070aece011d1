"""The database thread's CPU per delivery of a loudspeaker fan-out, without the channel: plan
one alert to N box targets, claim them in batches, record each send's result (accepted, with
the command's content) and each box's steps (playing, then played) the way the dispatcher
batches them, on SQLite or PostgreSQL.

Run: ``PYTHONPATH=. .venv/bin/python bench/bench_outbox.py`` (``--boxes 100000``,
``--engine postgresql`` for a throw-away PostgreSQL server, ``--profile FILE`` for a cProfile
of the store calls). Prints the thread CPU per delivery of each phase (``time.thread_time`` on
the database thread: steadier than wall time on a shared machine) and the load average.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from broadcaster.delivery import DeliveryState, Target, Transition
from broadcaster.store.alerts import AlertRecord, AlertTable, NewDelivery
from broadcaster.store.db import Database, open_database
from broadcaster.store.outbox import ClaimedDelivery, Outbox
from broadcaster.store.targets import TargetTable
from broadcaster.testing.pgserver import PgServer

S = DeliveryState
T = TypeVar("T")
COUNTY = "150921000000"
CLAIM = 1000
"""Deliveries per claim (a loudspeaker channel's concurrency)."""
BATCH = 500
"""Transitions per recorded batch of results or box steps."""
CONTENT = {
    "language": "zh-CN",
    "audio": "e" * 64,
    "duration_s": 31.5,
    "priority": 1,
    "volume": 80,
    "repeat": 2,
}
"""What a play command tells every box of a group command."""


def boxes(count: int) -> list[Target]:
    return [
        Target(
            f"spk-{n:05d}",
            "loudspeaker",
            f"村{n}",
            f"sim-{n:05d}",
            f"{COUNTY[:6]}{n // 500 + 1:03d}{n % 500 + 1:03d}",
            params={"group_areas": [COUNTY]},
        )
        for n in range(count)
    ]


def alert(now: float) -> AlertRecord:
    return AlertRecord(
        "bench-outbox", "bench", "1", "2026-01-01T00:00:00+08:00", "Actual", "Alert", "Public",
        "Flood", "洪水", "Severe", "Immediate", now - 1, now + 3600, "active", 1,
        ("loudspeaker",), "api", "1.2", b"<alert/>", {}, now,
    )  # fmt: skip


class Phases:
    """Thread CPU per phase, measured on the database thread."""

    def __init__(self, database: Database, profile: cProfile.Profile | None) -> None:
        self.database = database
        self.profile = profile
        self.cpu: dict[str, float] = {}

    def run(self, phase: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        def timed() -> T:
            start = time.thread_time()
            profile = self.profile
            result = profile.runcall(fn, *args, **kwargs) if profile else fn(*args, **kwargs)
            self.cpu[phase] = self.cpu.get(phase, 0.0) + time.thread_time() - start
            return result

        return self.database.call(timed)


def fan_out(database: Database, count: int, profile: cProfile.Profile | None) -> dict[str, float]:
    """Thread CPU seconds of each phase of one alert to ``count`` boxes."""
    targets = boxes(count)
    database.call(TargetTable(database).replace_all, targets)
    now = time.time()
    outbox, phases = Outbox(database), Phases(database, profile)
    planned = [
        NewDelivery("loudspeaker", t, 0, f"bench-outbox:loudspeaker:{t.id}") for t in targets
    ]
    phases.run(
        "plan", AlertTable(database).insert, alert(now), [], planned, supersede=None, now=now
    )
    claimed: list[ClaimedDelivery] = []
    while got := phases.run("claim", outbox.claim_due, "loudspeaker", now + 1, CLAIM):
        claimed += got
        for i in range(0, len(got), BATCH):
            sent = [
                Transition(
                    d.id,
                    S.ACCEPTED,
                    detail=f"sent to box {d.target.address} over mqtt: 洪水 zh-CN",
                    provider_ref="cmd-1",
                    content=CONTENT,
                )
                for d in got[i : i + BATCH]
            ]
            phases.run("accepted", outbox.apply, sent, now + 2)
    for i in range(0, len(claimed), BATCH):
        steps = [
            step
            for d in claimed[i : i + BATCH]
            for step in (
                Transition(d.id, S.ACCEPTED, f"playing on box {d.target.address}", progress=True),
                Transition(d.id, S.CONFIRMED, f"played on box {d.target.address} (url)"),
            )
        ]
        phases.run("confirmed", outbox.apply, steps, now + 3)
    return phases.cpu


@contextlib.contextmanager
def store(engine: str, workdir: Path) -> Iterator[Database]:
    with contextlib.ExitStack() as stack:
        url = None
        if engine == "postgresql":
            url = stack.enter_context(PgServer()).migrated()
        database = open_database(workdir / "bench.db", url, None, 30.0)
        stack.callback(database.close)
        yield database


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boxes", type=int, default=10_000)
    parser.add_argument("--engine", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--profile", type=Path, help="write a cProfile of the store calls here")
    args = parser.parse_args()
    profile = cProfile.Profile() if args.profile else None
    with tempfile.TemporaryDirectory() as tmp, store(args.engine, Path(tmp)) as database:
        cpu = fan_out(database, args.boxes, profile)
    if profile is not None:
        profile.dump_stats(args.profile)
    per = {phase: round(seconds * 1e6 / args.boxes, 1) for phase, seconds in cpu.items()}
    total = sum(cpu.values()) * 1e6 / args.boxes
    load = Path("/proc/loadavg").read_text().split()[0]
    print(f"{args.engine} {args.boxes} boxes: database thread CPU µs/delivery {per},")
    print(f"  total {total:.1f} µs/delivery; load {load}")


if __name__ == "__main__":
    main()
