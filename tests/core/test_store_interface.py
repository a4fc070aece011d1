"""The typed store: the SQLite implementation answers through the interface, on a real file,
and the scheduler and the API reach the database only through it."""

from __future__ import annotations

import ast
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import broadcaster
from broadcaster.delivery import Target
from broadcaster.errors import StoreError
from broadcaster.scheduler.store import SeedEntry, TargetOutcome
from broadcaster.store.alerts import AlertTable
from broadcaster.store.db import Database
from broadcaster.store.interface import Store
from broadcaster.store.outbox import Outbox
from broadcaster.store.sqlite import SQLiteStore
from broadcaster.store.targets import TargetTable

PACKAGE = Path(broadcaster.__file__).parent
_REACHING_THROUGH = re.compile(r"\bdatabase\.run\(|\bservice\.(alerts|outbox|targets)\.")


@pytest.fixture
async def store(database: Database) -> AsyncIterator[Store]:
    """The store's interface over a fresh database of each engine."""
    yield SQLiteStore(
        database,
        alerts=AlertTable(database),
        outbox=Outbox(database),
        targets=TargetTable(database),
        clock=lambda: 1_000.0,
    )


async def test_targets_round_trip_through_the_interface(store: Store) -> None:
    box = Target(id="v1", channel="boxes", name="Village 1", division="110101")
    assert await store.targets.replace_all([box]) == 1
    assert await store.targets.get("v1") == box
    await store.targets.upsert(Target(id="v2", channel="boxes", name="Village 2"), "channel:boxes")
    assert [t.id for t in await store.targets.for_channel("boxes")] == ["v1", "v2"]
    assert await store.targets.counts() == {"boxes": 2}
    assert await store.targets.remove("v2", "registry") is False  # another source's row
    assert await store.targets.remove("v2", "channel:boxes") is True
    assert await store.targets.get("v2") is None


async def test_unknown_alerts_and_deliveries_are_empty_answers(store: Store) -> None:
    assert await store.alerts.get("nope") is None
    assert await store.alerts.document("nope") is None
    assert await store.alerts.raw_xml("nope") is None
    assert await store.alerts.approval("nope") is None
    assert await store.alerts.active(0.0) == []
    assert await store.alerts.pending_approvals() == []
    assert await store.deliveries.summary("nope") == {}
    assert await store.deliveries.deliveries("nope") == []
    assert await store.deliveries.events(1) == []
    assert await store.deliveries.state_counts() == {}


async def test_audit_entries_chain_and_verify(store: Store) -> None:
    first = await store.audit.append("officer:a", "alert.submit", "a1", {"n": 1})
    second = await store.audit.append("api:feed", "notice.ack", "7")
    assert (first.seq, second.seq) == (1, 2)
    assert second.prev_hash == first.hash
    assert first.at == 1_000.0
    entries = await store.audit.entries(actor="api:feed")
    assert [e.action for e in entries] == ["notice.ack"]
    report = await store.audit.verify()
    assert report.ok and report.entries == 2


async def test_schedules_runs_and_notices_through_the_interface(store: Store) -> None:
    schedules = store.schedules
    definition = {"name": "weekly", "kind": "silent", "cron": "0 10 * * 1"}
    assert await schedules.seed([SeedEntry("weekly", definition, "h1")], 5.0)
    with pytest.raises(StoreError):
        await schedules.create("weekly", definition, by="admin", now=6.0)
    (row,) = await schedules.schedules()
    assert row["name"] == "weekly" and row["source"] == "config"
    run_id = await schedules.start_run("weekly", "silent", "manual", None, 7.0)
    assert await schedules.take_over_runs(7.5, starting=False) == []  # its lease runs
    assert [r["id"] for r in await schedules.take_over_runs(8.0, starting=True)] == [run_id]
    assert await schedules.renew_runs(8.0, [run_id, run_id + 1]) == [run_id]
    outcome = TargetOutcome("boxes", "v1", "Village 1", False, "no answer")
    await schedules.finish_run(run_id, [outcome], state="failed", detail="0 of 1", now=8.0)
    report = await schedules.run(run_id)
    assert report is not None and report["state"] == "failed"
    assert await schedules.take_over_runs(9.0, starting=True) == []
    assert await schedules.renew_runs(9.0, [run_id]) == []
    notice = await schedules.open_notice("test-run", "weekly", "failed", 8.0)
    assert notice is not None
    assert await schedules.open_notice("test-run", "weekly", "again", 9.0) is None
    assert await schedules.acknowledge(notice, by="officer:a", now=9.0)
    assert await schedules.resolve_notices("test-run", ["weekly"], 10.0) == ["weekly"]
    assert await schedules.notices(open_only=True) == []


def _sources(*packages: str) -> list[Path]:
    return sorted(p for package in packages for p in (PACKAGE / package).rglob("*.py"))


def test_scheduler_and_api_reach_the_database_only_through_the_store() -> None:
    offenders = []
    for path in _sources("scheduler", "api"):
        if path.name == "store.py":  # the scheduler's SQLite tables themselves
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if _REACHING_THROUGH.search(line):
                offenders.append(f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}")
    assert offenders == []


def test_the_scheduler_does_not_take_the_service() -> None:
    importers = []
    for path in _sources("scheduler"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "broadcaster.service":
                importers.append(str(path.relative_to(PACKAGE)))
    assert importers == []
