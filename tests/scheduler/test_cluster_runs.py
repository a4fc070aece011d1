"""Scheduled runs on several nodes: two nodes on one PostgreSQL store, both with the same
schedule, run its cron time once; a run belongs to the node executing it while that node renews
its lease, and is resumed by another node only once the lease ran out or its node stopped
cleanly; a node that lost a run's lease stops it; on SQLite a start resumes what the last stop
interrupted."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from broadcaster.config import Secret, StoreConfig
from broadcaster.service import BroadcasterService
from broadcaster.testing.pgserver import PgServer
from tests.scheduler.support import (
    BoxChannel,
    OfficerChannel,
    OffsetClock,
    at,
    box_targets,
    scheduler_config,
    serving,
)
from tests.scheduler.test_runs import MONTHLY_TEST


async def test_a_schedule_shared_by_two_nodes_runs_once(
    tmp_path: Path, pg_server: PgServer
) -> None:
    BoxChannel.reset()
    OfficerChannel.notices.clear()
    url = pg_server.migrated()
    configs = []
    for node in ("a", "b"):
        (tmp_path / node).mkdir()
        config = scheduler_config(tmp_path / node, [MONTHLY_TEST], box_targets(3))
        store = StoreConfig(url=Secret(url), node=node)
        configs.append(config.model_copy(update={"store": store}))
    clock = OffsetClock(at("2026-06-01 09:59:59.300"))
    a, b = (BroadcasterService(config, clock=clock) for config in configs)
    await a.start()
    await b.start()
    try:
        async with asyncio.timeout(10):  # either node may run it
            while not (done := [r for r in await a.store.schedules.runs() if r["finished_at"]]):
                await asyncio.sleep(0.05)
        run = done[0]
        await asyncio.sleep(1.0)  # time for the other node to have fired too, had it
        runs = await b.store.schedules.runs(None, 10)
        fires = await b.database.run(b.database.query, "SELECT node FROM schedule_fires")
    finally:
        await a.stop()
        await b.stop()
    assert [r["id"] for r in runs] == [run["id"]] and run["trigger"] == "cron"
    assert len(fires) == 1
    assert len(BoxChannel.sent) == 3  # one alert to the three boxes, not two
    pg_server.drop(url)


SLOW = {"name": "slow", "kind": "silent", "cron": "0 10 1 1 *", "probe_timeout_seconds": 60}
"""A silent test whose first box never answers its probe: the run goes on for a minute."""


async def run_row(service: BroadcasterService, run_id: int) -> dict[str, Any]:
    row = await service.store.schedules.run(run_id)
    assert row is not None
    return row


async def run_ended(service: BroadcasterService, run_id: int, timeout: float) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while (row := await run_row(service, run_id))["state"] == "running":
            await asyncio.sleep(0.05)
    return row


def slow_run_nodes(
    tmp_path: Path, url: str, lease_seconds: float
) -> tuple[BroadcasterService, BroadcasterService]:
    """Nodes a and b on one store, with the slow schedule whose first box never answers."""
    BoxChannel.reset()
    targets = box_targets(2)
    BoxChannel.hanging.add(targets[0]["id"])
    a, b = (
        BroadcasterService(
            scheduler_config(tmp_path / node, [SLOW], targets).model_copy(
                update={
                    "store": StoreConfig(url=Secret(url), node=node, lease_seconds=lease_seconds)
                }
            ),
            clock=OffsetClock(at("2026-06-01 09:00:00")),
        )
        for node in ("a", "b")
        if not (tmp_path / node).mkdir()
    )
    return a, b


async def test_a_run_is_resumed_only_when_its_node_stops_renewing_its_lease(
    tmp_path: Path, pg_server: PgServer
) -> None:
    url = pg_server.migrated()
    a, b = slow_run_nodes(tmp_path, url, lease_seconds=2)
    await a.start()
    stopped_a = False
    try:
        run_id = await a.operations.scheduler.run_now("slow")
        await b.start()  # a node that starts while a's run goes on leaves it to a
        await asyncio.sleep(3.0)  # longer than the lease: a renews it
        row = await run_row(b, run_id)
        assert (row["state"], row["node"]) == ("running", "a")
        assert row["lease_until"] > a.clock()
        await a.stop()  # a stops and leaves the run: b takes it over at its next renewal
        stopped_a = True
        stopped_at = b.clock()
        row = await run_ended(b, run_id, timeout=6)
        assert (row["state"], row["node"]) == ("interrupted", "b")
        assert row["finished_at"] - stopped_at <= 2 + 2 / 3 + 2
    finally:
        if not stopped_a:
            await a.stop()
        await b.stop()
    pg_server.drop(url)


async def test_a_run_of_a_node_stopped_cleanly_is_taken_over_before_its_lease_ends(
    tmp_path: Path, pg_server: PgServer
) -> None:
    url = pg_server.migrated()
    lease = 9.0
    a, b = slow_run_nodes(tmp_path, url, lease_seconds=lease)
    await a.start()
    await b.start()
    try:
        run_id = await a.operations.scheduler.run_now("slow")
        await a.stop()
        stopped_at = b.clock()
        row = await run_ended(b, run_id, timeout=lease)
        assert (row["state"], row["node"]) == ("interrupted", "b")
        # b's renewal comes every lease / 3; the lease itself would have lasted 9 s.
        assert row["finished_at"] - stopped_at <= lease / 3 + 1.5
    finally:
        await b.stop()
    pg_server.drop(url)


async def test_a_run_whose_lease_another_node_took_is_stopped(tmp_path: Path) -> None:
    BoxChannel.reset()
    targets = box_targets(2)
    BoxChannel.hanging.add(targets[0]["id"])
    config = scheduler_config(tmp_path, [SLOW], targets)
    config = config.model_copy(update={"store": StoreConfig(node="a", lease_seconds=2)})
    async with serving(config, OffsetClock(at("2026-06-01 09:00:00"))) as service:
        run_id = await service.operations.scheduler.run_now("slow")
        await service.database.run(
            service.database.conn.execute,
            "UPDATE schedule_runs SET node = 'c', lease_until = 9e12 WHERE id = ?",
            (run_id,),
        )
        async with asyncio.timeout(3):
            while service.operations.scheduler._running:  # stopped at the next renewal
                await asyncio.sleep(0.05)
        row = await run_row(service, run_id)
        assert (row["state"], row["node"]) == ("running", "c")  # left to node c to finish


async def test_on_sqlite_a_start_resumes_the_run_its_stop_interrupted(tmp_path: Path) -> None:
    BoxChannel.reset()
    targets = box_targets(2)
    BoxChannel.hanging.add(targets[0]["id"])
    config = scheduler_config(tmp_path, [SLOW], targets)
    clock = OffsetClock(at("2026-06-01 09:00:00"))
    async with serving(config, clock) as first:
        run_id = await first.operations.scheduler.run_now("slow")
        first_node = (await run_row(first, run_id))["node"]
    async with serving(config, clock) as second:  # another default node name, lease still on
        row = await run_ended(second, run_id, timeout=3)
    assert row["state"] == "interrupted" and row["node"] not in (None, first_node)
