"""The console over a real socket: login, CSRF, lockout, rate limit, roles, the two-person rule,
preview, board, Cancel and Update, and the audit trail of all of it."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from broadcaster.audit import AuditLog
from tests.console.support import (
    PASSWORDS,
    ConsoleClient,
    ConsoleServer,
    compose_form,
    console_config,
    console_server,
    demo_targets,
)
from tests.core.support import make_alert

CHANNELS = {"speaker": {"type": "tests.console.support:BoxChannel"}}
_ALERT_URL = re.compile(r"/console/alerts/(a[0-9a-f]+)")


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ConsoleServer]:
    config = console_config(
        tmp_path,
        CHANNELS,
        demo_targets("speaker"),
        lockout_after=3,
        login_attempts_per_minute=50,
        audio_preview=False,
    )
    async with console_server(config) as running:
        yield running


@pytest.fixture
async def officer(server: ConsoleServer) -> AsyncIterator[ConsoleClient]:
    client = ConsoleClient(server)
    yield client
    await client.close()


async def _audit(server: ConsoleServer, **filters: str) -> list[tuple[str, str, str]]:
    log = AuditLog(server.service.database)
    entries = await server.service.database.run(log.entries, limit=1000, **filters)
    return [(e.actor, e.action, e.subject) for e in reversed(entries)]


@pytest.fixture
async def officers(server: ConsoleServer) -> AsyncIterator[tuple[ConsoleClient, ConsoleClient]]:
    """A drafter and an approver, each logged in from a session of their own."""
    drafter, approver = ConsoleClient(server), ConsoleClient(server)
    try:
        await drafter.login("drafter")
        await approver.login("approver")
        yield drafter, approver
    finally:
        await drafter.close()
        await approver.close()


async def _submit(client: ConsoleClient, **form: str) -> str:
    status, page = await client.post("/console/compose", compose_form(**form))  # type: ignore[arg-type]
    assert status == 200, page
    found = _ALERT_URL.fullmatch(client.last_path)
    assert found, page
    return found.group(1)


async def _alert(server: ConsoleServer, alert_id: str) -> dict:  # type: ignore[type-arg]
    record = await server.service.database.run(server.service.alerts.get, alert_id)
    assert record is not None
    return record


async def test_pages_need_a_login_and_logins_are_audited(officer: ConsoleClient) -> None:
    status, page = await officer.get("/console/devices")
    assert status == 200 and 'id="login-form"' in page  # redirected to the login page
    status, page = await officer.login("drafter")
    assert status == 200 and 'id="officer-name"' in page
    status, page = await officer.get("/console/devices")
    assert status == 200 and "speaker" in page
    assert ("console:drafter", "login", "drafter") in await _audit(officer.server)


async def test_forms_without_a_valid_csrf_token_are_refused(officer: ConsoleClient) -> None:
    await officer.login("drafter")
    for token in (None, "forged-token"):
        form = compose_form()
        if token:
            form.append(("csrf_token", token))
        status, page = await officer.post("/console/compose", form, csrf=False)
        assert status == 403
        assert "form has expired" in page
    assert (
        await officer.server.service.database.run(
            officer.server.service.database.query, "SELECT id FROM alerts"
        )
        == []
    )
    assert [a for _, a, _ in await _audit(officer.server)].count("csrf.refused") == 2
    # The login form needs its own token too.
    other = ConsoleClient(officer.server)
    try:
        status, page = await other.post(
            "/console/login",
            {"username": "drafter", "password": PASSWORDS["drafter"], "csrf_token": "x"},
            csrf=False,
        )
        assert status == 403 and 'id="officer-name"' not in page
    finally:
        await other.close()


async def test_a_viewer_cannot_send_approve_or_cancel(server: ConsoleServer) -> None:
    drafter, approver, viewer = (ConsoleClient(server) for _ in range(3))
    try:
        await drafter.login("drafter")
        await approver.login("approver")
        await viewer.login("viewer")
        alert_id = await _submit(drafter)
        status, _ = await viewer.get("/console/compose")
        assert status == 403
        status, _ = await viewer.post("/console/compose", compose_form(headline="viewer"))
        assert status == 403
        status, _ = await viewer.post(f"/console/alerts/{alert_id}/approve", {"reason": "ok"})
        assert status == 403
        assert (await _alert(server, alert_id))["state"] == "held"
        await approver.post(f"/console/alerts/{alert_id}/approve", {"reason": "checked"})
        status, _ = await viewer.post(f"/console/alerts/{alert_id}/cancel", {"reason": "no"})
        assert status == 403
        assert (await _alert(server, alert_id))["state"] == "active"
        alerts = await server.service.database.run(
            server.service.database.query, "SELECT headline FROM alerts"
        )
        assert [a["headline"] for a in alerts] == ["卓资县暴雪橙色预警"]
    finally:
        for client in (drafter, approver, viewer):
            await client.close()


async def test_two_person_rule_then_delivery_completes(server: ConsoleServer) -> None:
    author, other = ConsoleClient(server), ConsoleClient(server)
    try:
        await author.login("approver")  # an approver who wrote the alert
        await other.login("drafter")
        alert_id = await _submit(author)
        record = await _alert(server, alert_id)
        assert record["state"] == "held" and record["origin"] == "console:approver"
        assert record["approval"]["requested_by"] == "console:approver"
        status, page = await other.get(f"/console/alerts/{alert_id}")
        assert 'id="content" open' in page  # the approver reads what will be sent
        assert f"speaker</span> {len(demo_targets('speaker'))}</b>" in page  # and sees where
        assert page.count('<circle id="d-speaker-') == len(demo_targets("speaker"))
        assert "减少不必要的户外活动" in page and "卓资县" in page
        # The author cannot approve their own alert, even as an approver.
        status, page = await author.post(f"/console/alerts/{alert_id}/approve", {"reason": "x"})
        assert status == 403 and "second officer" in page
        # A drafter cannot approve at all.
        status, _ = await other.post(f"/console/alerts/{alert_id}/approve", {"reason": "ok"})
        assert status == 403
        assert (await _alert(server, alert_id))["state"] == "held"
        await other.close()
        other = ConsoleClient(server)
        await other.login("admin")
        status, page = await other.post(f"/console/alerts/{alert_id}/approve", {"reason": "ok"})
        assert status == 200 and 'id="counts"' in page
        snapshot = await _wait_complete(server, alert_id)
        assert snapshot["summary"] == {"speaker": {"confirmed": len(demo_targets("speaker"))}}
        actions = await _audit(server, subject=alert_id)
        assert ("console:approver", "alert.draft", alert_id) in actions
        assert ("console:approver", "alert.approve.refused", alert_id) in actions
        assert ("console:admin", "alert.approve", alert_id) in actions
        assert ("console:admin", "alert.send", alert_id) in actions
    finally:
        await author.close()
        await other.close()


async def _wait_complete(server: ConsoleServer, alert_id: str) -> dict:  # type: ignore[type-arg]
    from broadcaster.console.board import _snapshot

    changed = asyncio.Event()
    unsubscribe = server.service.subscribe(changed.set)
    try:
        async with asyncio.timeout(10):
            while True:
                changed.clear()
                snapshot = await server.service.database.run(_snapshot, server.service, alert_id)
                if snapshot["complete"]:
                    return snapshot
                await changed.wait()
    finally:
        unsubscribe()


async def test_single_officer_severity_needs_a_reason(tmp_path: Path) -> None:
    config = console_config(tmp_path, CHANNELS, demo_targets("speaker"), audio_preview=False)
    approval = config.approval.model_validate({"single_officer_severities": ["Extreme"]})
    config = config.model_copy(update={"approval": approval})
    async with console_server(config) as running:
        client = ConsoleClient(running)
        try:
            await client.login("approver")
            alert_id = await _submit(client, severity="Extreme", headline="卓资县暴雪红色预警")
            status, page = await client.post(f"/console/alerts/{alert_id}/approve", {"reason": ""})
            assert status == 403 and "reason" in page
            status, _ = await client.post(
                f"/console/alerts/{alert_id}/approve", {"reason": "通信中断，值班员单人发布"}
            )
            assert status == 200
            assert (await _alert(running, alert_id))["state"] == "active"
            severe = await _submit(client, headline="卓资县暴雪橙色预警")
            status, _ = await client.post(f"/console/alerts/{severe}/approve", {"reason": "x"})
            assert status == 403
        finally:
            await client.close()


async def test_compose_times_are_entered_in_the_deployment_zone(officer: ConsoleClient) -> None:
    await officer.login("drafter")
    status, page = await officer.get("/console/compose")
    assert status == 200
    assert 'name="tz_offset" id="tz_offset" value="480"' in page  # Asia/Shanghai, by default
    assert "<small>UTC+08:00</small>" in page


async def test_preview_shows_segments_targets_and_field_problems(officer: ConsoleClient) -> None:
    await officer.login("drafter")
    form = compose_form(headline="卓资县暴雪橙色预警" * 8)
    headers = {"Accept": "application/json", "X-CSRF-Token": officer.csrf}
    status, text = await officer.post("/console/compose/preview", form, csrf=False, headers=headers)
    assert status == 200
    body = json.loads(text)
    assert body["ok"] is True and body["problems"] == []
    speaker = body["channels"]["speaker"]
    assert (speaker["targets"], speaker["unit"]) == (len(demo_targets("speaker")), "targets")
    assert speaker["unit_name"] == {"zh": "个目标", "en": "targets"}
    assert speaker["title"] == "卓资县暴雪橙色预警" * 8
    (content,) = speaker["contents"]
    assert [t["headline"] for t in content["texts"]] == ["卓资县暴雪橙色预警" * 8]
    form = compose_form(headline="", divisions=(), status="Exercise")
    status, text = await officer.post("/console/compose/preview", form, csrf=False, headers=headers)
    body = json.loads(text)
    assert body["ok"] is False
    paths = {p["path"] for p in body["problems"]}
    assert {"zh-CN.headline", "division"} <= paths
    assert body["marker"] == "【演练】"
    # A post with problems re-shows the form with them, and stores nothing.
    status, page = await officer.post("/console/compose", form)
    assert status == 400 and "the headline is required" in page
    assert await _audit(officer.server, action="alert") == []


async def test_cancel_and_update_from_the_board(
    server: ConsoleServer,
    officers: tuple[ConsoleClient, ConsoleClient],
) -> None:
    drafter, approver = officers
    alert_id = await _submit(drafter)
    await approver.post(f"/console/alerts/{alert_id}/approve", {"reason": "ok"})
    await _wait_complete(server, alert_id)
    status, page = await drafter.get(f"/console/alerts/{alert_id}/update")
    assert status == 200 and alert_id in page
    update_id = await _submit(drafter, headline="卓资县暴雪橙色预警（更新）", update_of=alert_id)
    update = await _alert(server, update_id)
    assert update["msg_type"] == "Update" and update["state"] == "held"
    assert [r["alert_id"] for r in update["references"]] == [alert_id]
    await approver.post(f"/console/alerts/{update_id}/approve", {"reason": "ok"})
    assert (await _alert(server, alert_id))["state"] == "superseded"
    status, _ = await drafter.post(f"/console/alerts/{update_id}/cancel", {"reason": ""})
    assert status == 400
    status, page = await drafter.post(
        f"/console/alerts/{update_id}/cancel", {"reason": "降雪已停止"}
    )
    assert status == 200
    assert (await _alert(server, update_id))["state"] == "cancelled"
    followers = await server.service.database.run(
        server.service.database.query,
        "SELECT a.msg_type, a.state FROM alert_references r JOIN alerts a"
        " ON a.id = r.alert_id WHERE r.ref_alert_id = ?",
        (update_id,),
    )
    assert followers == [{"msg_type": "Cancel", "state": "active"}]
    actions = [a for _, a, _ in await _audit(server, action="alert")]
    assert actions.count("alert.update") == 1 and actions.count("alert.cancel") == 1


async def test_board_stream_and_target_lists(officers: tuple[ConsoleClient, ConsoleClient]) -> None:
    drafter, approver = officers
    alert_id = await _submit(drafter)
    await approver.post(f"/console/alerts/{alert_id}/approve", {"reason": "ok"})
    headers = {"Accept": "text/event-stream"}
    async with drafter.session.get(
        f"/console/alerts/{alert_id}/stream", headers=headers
    ) as response:
        assert response.headers["Content-Type"] == "text/event-stream"
        async with asyncio.timeout(10):
            while True:
                line = (await response.content.readline()).decode()
                if line.startswith("data: "):
                    snapshot = json.loads(line[6:])
                    if snapshot["complete"]:
                        break
    assert snapshot["alert_state"] == "active"
    assert set(snapshot["states"].values()) == {"confirmed"}
    status, text = await drafter.get(
        f"/console/alerts/{alert_id}/deliveries?filter=confirmed",
        headers={"Accept": "application/json"},
    )
    rows = json.loads(text)["deliveries"]
    assert status == 200 and len(rows) == len(demo_targets("speaker"))
    status, text = await drafter.get(
        f"/console/deliveries/{rows[0]['id']}/events", headers={"Accept": "application/json"}
    )
    assert [e["to_state"] for e in json.loads(text)["events"]] == [
        "queued",
        "sending",
        "accepted",
        "confirmed",
    ]
    status, _ = await drafter.get(f"/console/alerts/{alert_id}/deliveries?filter=bogus")
    assert status == 400
    status, page = await drafter.get("/console/?q=暴雪")
    assert alert_id in page
    status, page = await drafter.get("/console/?q=暴雪&offset=100")
    assert status == 200 and alert_id not in page and "Newer" in page


async def test_reject_needs_a_reason_and_is_never_sent(
    server: ConsoleServer,
    officers: tuple[ConsoleClient, ConsoleClient],
) -> None:
    drafter, approver = officers
    alert_id = await _submit(drafter)
    status, _ = await approver.post(f"/console/alerts/{alert_id}/reject", {"reason": ""})
    assert status == 403
    status, page = await approver.post(f"/console/alerts/{alert_id}/reject", {"reason": "区域选错"})
    assert status == 200 and 'id="approval-state" data-state="rejected">' in page
    deliveries = await server.service.database.run(
        server.service.database.query, "SELECT id FROM deliveries"
    )
    assert deliveries == []
    status, page = await drafter.get("/console/?state=rejected")
    assert alert_id in page
    assert ("console:approver", "alert.reject", alert_id) in await _audit(server)


async def test_a_polygon_drawn_on_the_map_selects_the_targets_inside(
    officer: ConsoleClient,
) -> None:
    await officer.login("drafter")
    targets = demo_targets("speaker")
    lats = sorted(t["lat"] for t in targets)
    middle = lats[len(lats) // 2]
    # From the median village northwards, across the whole county (lat,lon corners).
    polygon = f"{middle},111.0 {middle},114.0 43.0,114.0 43.0,111.0"
    form = [*compose_form(divisions=()), ("polygon", polygon)]
    headers = {"Accept": "application/json", "X-CSRF-Token": officer.csrf}
    status, text = await officer.post("/console/compose/preview", form, csrf=False, headers=headers)
    body = json.loads(text)
    assert status == 200 and body["ok"], body["problems"]
    inside = sum(1 for t in targets if t["lat"] >= middle)  # the edge counts as inside
    assert 0 < body["channels"]["speaker"]["targets"] == inside < len(targets)
    status, text = await officer.post(
        "/console/compose/area", [("polygon", polygon)], csrf=False, headers=headers
    )
    assert status == 200 and json.loads(text)["name"].endswith("部分地区")
    form = [*compose_form(divisions=()), ("polygon", "41.0,112.0 41.1,112.1")]
    status, text = await officer.post("/console/compose/preview", form, csrf=False, headers=headers)
    assert "three corners" in text


async def test_the_author_withdraws_a_pending_alert(server: ConsoleServer) -> None:
    author, other = ConsoleClient(server), ConsoleClient(server)
    try:
        await author.login("drafter")
        await other.login("approver")
        alert_id = await _submit(author)
        status, page = await author.get(f"/console/alerts/{alert_id}")
        assert 'id="withdraw"' in page
        status, _ = await other.post(f"/console/alerts/{alert_id}/withdraw", {"reason": "x"})
        assert status == 403
        status, page = await author.post(
            f"/console/alerts/{alert_id}/withdraw", {"reason": "写错了"}
        )
        assert status == 200 and 'id="approval-state" data-state="rejected">' in page
        status, _ = await author.post(f"/console/alerts/{alert_id}/withdraw", {})
        assert status == 409
        status, _ = await other.post(f"/console/alerts/{alert_id}/approve", {"reason": "ok"})
        assert status == 403
    finally:
        await author.close()
        await other.close()
    assert ("console:drafter", "alert.withdraw", alert_id) in await _audit(server)


async def test_a_console_session_does_not_reach_the_api(
    server: ConsoleServer, officers: tuple[ConsoleClient, ConsoleClient]
) -> None:
    """Scheduled broadcasts and API approvals need an API token: a drafter (or an approver)
    presenting their console session there, cookie and CSRF token included, gets 401, and
    the console's own test pages only read."""
    drafter, approver = officers
    alert_id = await _submit(approver)
    attempts = [
        ("POST", "/api/v1/schedules", {"name": "drill", "kind": "exercise", "cron": "* * * * *"}),
        ("PATCH", "/api/v1/schedules/drill", {"enabled": True}),
        ("DELETE", "/api/v1/schedules/drill", None),
        ("POST", "/api/v1/schedules/drill/run", None),
        ("POST", f"/api/v1/alerts/{alert_id}/approve", {"reason": "mine"}),
        ("POST", f"/api/v1/alerts/{alert_id}/cancel", {"reason": "mine"}),
    ]
    for client in (drafter, approver):
        cookie = next(c.value for c in client.session.cookie_jar if c.key == "bc_session")
        headers = {"Cookie": f"bc_session={cookie}", "X-CSRF-Token": client.csrf}
        for method, path, body in attempts:
            async with client.session.request(method, path, json=body, headers=headers) as r:
                assert r.status == 401, (method, path)
    status, _ = await drafter.post("/console/tests", {})
    assert status == 405
    schedules = await server.service.store.schedules.schedules()
    assert schedules == []
    assert (await _alert(server, alert_id))["state"] == "held"


async def test_an_area_without_targets_is_refused_or_shown_as_reaching_no_one(
    officers: tuple[ConsoleClient, ConsoleClient],
) -> None:
    drafter, _ = officers
    service = drafter.server.service
    other_county = "150922000000"  # 化德县: a real division, but no target of this registry
    form = compose_form(divisions=(other_county,))
    status, page = await drafter.post("/console/compose", form)  # type: ignore[arg-type]
    assert status == 400 and "selects no target on speaker" in page
    assert _ALERT_URL.fullmatch(drafter.last_path) is None
    assert await service.database.run(service.alerts.pending_approvals) == []
    alert = make_alert("elsewhere", geocodes=(other_county,))
    result = await service.submit(alert, origin="test", channels=["speaker"], allow_empty=True)
    assert result.state == "reaches no one"
    status, page = await drafter.get(f"/console/alerts/{result.alert_id}")
    assert status == 200
    assert '<span class="badge state-reaches-no-one" data-state="reaches no one">' in page
    assert "无接收对象" in page
