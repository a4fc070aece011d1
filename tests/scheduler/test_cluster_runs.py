"""Two nodes on one PostgreSQL store, both with the same schedule: its cron time runs once."""

from __future__ import annotations

import asyncio
from pathlib import Path

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
