"""Admin pages and device health in the console: officers, roles, the audit chain view, and
the devices channels report."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from broadcaster.audit import AuditLog
from broadcaster.scheduler.store import SchedulerStore, TargetOutcome
from tests.console.support import (
    ConsoleClient,
    ConsoleServer,
    console_config,
    console_server,
    demo_targets,
)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ConsoleServer]:
    channels = {"speaker": {"type": "tests.console.support:BoxChannel"}}
    config = console_config(tmp_path, channels, demo_targets("speaker"), audio_preview=False)
    async with console_server(config) as running:
        yield running


async def test_admin_pages_and_the_audit_chain(server: ConsoleServer) -> None:
    admin, drafter = ConsoleClient(server), ConsoleClient(server)
    try:
        await admin.login("admin")
        await drafter.login("drafter")
        status, _ = await drafter.get("/console/users")
        assert status == 403
        status, page = await admin.post(
            "/console/users/drafter", {"action": "role", "role": "viewer"}
        )
        assert status == 200
        status, _ = await drafter.get("/console/compose")  # the new role applies at once
        assert status == 403
        status, page = await admin.post("/console/users/admin", {"action": "disable"})
        assert status == 400 and "last enabled admin" in page
        status, page = await admin.get("/console/audit")
        assert status == 200 and "Hash chain intact" in page
        assert "user.role" in page
    finally:
        await admin.close()
        await drafter.close()


async def test_device_health_page(tmp_path: Path) -> None:
    channels = {"boxes": {"type": "tests.console.support:DeviceReportingChannel"}}
    config = console_config(tmp_path, channels, demo_targets("boxes"), audio_preview=False)
    async with console_server(config) as running:
        client = ConsoleClient(running)
        try:
            await client.login("viewer")
            status, page = await client.get("/console/devices")
        finally:
            await client.close()
    assert status == 200
    # The channel's and the devices' own words are shown as received, marked as such, beside
    # the labels of their kinds of state.
    raw = '<span class="raw" data-raw>{}</span>'.format
    assert raw("1 of 2 boxes offline") in page and ">故障<" in page and ">FAULT<" in page
    assert page.count('<tr class="offline">') == 2
    assert ">15 分钟前<" in page and ">15 min ago<" in page
    assert '<td data-field="last_error"><span class="zh" lang="zh-CN">故障</span>' in page
    assert raw("encoder did not answer") in page
    assert '<td data-field="state"><span class="zh" lang="zh-CN">就绪</span>' in page
    assert f"{raw('imei')}：{raw('8600000001')}" in page and raw("21") in page
    assert f"<b>{len(demo_targets('boxes'))}</b>" in page


async def test_notices_and_failing_links_are_shown_and_acknowledged(
    server: ConsoleServer,
) -> None:
    database = server.service.database
    store = SchedulerStore(database)

    def raise_problems() -> int | None:
        with database.transaction() as conn:
            conn.execute(
                "INSERT INTO link_status (channel, target_id, ok, detail, failures, checked_at)"
                " VALUES ('speaker', 'speaker-150921001001', 0, 'box did not answer', 3, ?)",
                (time.time(),),
            )
            return store.open_notice(
                "link", "speaker/speaker-150921001001", "box offline for 3 checks", time.time()
            )

    notice_id = await database.run(raise_problems)
    viewer, drafter = ConsoleClient(server), ConsoleClient(server)
    try:
        await viewer.login("viewer")
        await drafter.login("drafter")
        status, page = await viewer.get("/console/devices")
        assert "box offline for 3 checks" in page and "box did not answer" in page
        assert f"/console/notices/{notice_id}/ack" not in page  # viewers only read
        status, _ = await viewer.post(f"/console/notices/{notice_id}/ack", {})
        assert status == 403
        status, page = await drafter.post(f"/console/notices/{notice_id}/ack", {})
        assert status == 200 and "<td>drafter</td></tr>" in page
        status, _ = await drafter.post(f"/console/notices/{notice_id}/ack", {})
        assert status == 404
    finally:
        await viewer.close()
        await drafter.close()
    log = AuditLog(database)
    entries = await database.run(log.entries, action="notice")
    assert [(e.actor, e.subject) for e in entries] == [("console:drafter", str(notice_id))]


async def test_scheduled_test_reports(server: ConsoleServer) -> None:
    database = server.service.database
    store = SchedulerStore(database)

    def record_run() -> int:
        run_id = store.start_run("monthly-audible-test", "audible-test", "cron", None, time.time())
        outcomes = [
            TargetOutcome("speaker", "speaker-150921001001", "南村大喇叭", True),
            TargetOutcome("speaker", "speaker-150921001002", "北村大喇叭", False, "no answer"),
        ]
        store.finish_run(
            run_id, outcomes, state="failed", detail="1 target failed", now=time.time()
        )
        return run_id

    run_id = await database.run(record_run)
    client = ConsoleClient(server)
    try:
        await client.login("viewer")
        status, page = await client.get("/console/tests")
        assert status == 200 and "monthly-audible-test" in page and "1 target failed" in page
        status, page = await client.get(f"/console/tests/{run_id}")
        assert status == 200
        assert page.index("北村大喇叭") < page.index("南村大喇叭")  # failures first
        assert "no answer" in page
        status, _ = await client.get("/console/tests/999")
        assert status == 404
    finally:
        await client.close()
