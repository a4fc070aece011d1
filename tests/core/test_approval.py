"""The two-person rule: pending alerts send nothing until a second officer approves them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from broadcaster.api.app import make_app
from broadcaster.cap import MsgType, Severity
from broadcaster.cap.serialize import to_xml
from broadcaster.config import ApprovalConfig
from broadcaster.errors import ApprovalError
from broadcaster.service import BroadcasterService
from tests.core.support import (
    DUTY_TOKEN,
    FEED_TOKEN,
    RecordingChannel,
    make_alert,
    make_config,
    running,
    village_targets,
    wait_until_complete,
    with_api_tokens,
)

CHANNELS = {"rec": {"type": "tests.core.support:RecordingChannel"}}


async def test_pending_alert_waits_for_a_second_officer(tmp_path: Path) -> None:
    RecordingChannel.sent.clear()
    async with running(make_config(tmp_path, CHANNELS, village_targets("rec", 5))) as service:
        result = await service.submit(make_alert(), origin="console", requested_by="wang")
        assert result.state == "pending" and result.planned == {}
        await asyncio.sleep(0.2)
        assert RecordingChannel.sent == []
        with pytest.raises(ApprovalError, match="second officer"):
            await service.approve(result.alert_id, by="wang", reason="urgent")
        approved = await service.approve(result.alert_id, by="li", reason="checked")
        assert approved.planned == {"rec": 5}
        assert await wait_until_complete(service, result.alert_id) == {"rec": {"confirmed": 5}}
        record = await service.database.run(service.alerts.get, result.alert_id)
        assert record["approval"]["decided_by"] == "li"
        assert [e["event"] for e in record["events"]] == ["accepted", "approved"]
        with pytest.raises(ApprovalError, match="not awaiting"):
            await service.approve(result.alert_id, by="zhao")


async def test_rejected_alert_is_never_sent(tmp_path: Path) -> None:
    RecordingChannel.sent.clear()
    async with running(make_config(tmp_path, CHANNELS, village_targets("rec", 5))) as service:
        result = await service.submit(make_alert(), origin="console", requested_by="wang")
        with pytest.raises(ApprovalError, match="reason"):
            await service.reject(result.alert_id, by="li", reason=" ")
        await service.reject(result.alert_id, by="li", reason="wrong county")
        with pytest.raises(ApprovalError):
            await service.approve(result.alert_id, by="zhao", reason="")
        await asyncio.sleep(0.2)
    assert RecordingChannel.sent == []


async def test_single_officer_severities_need_a_reason(tmp_path: Path) -> None:
    config = make_config(tmp_path, CHANNELS, village_targets("rec", 2))
    config = config.model_copy(
        update={"approval": ApprovalConfig(single_officer_severities=["Extreme"])}
    )
    async with running(config) as service:
        severe = await service.submit(make_alert("s"), origin="c", requested_by="wang")
        with pytest.raises(ApprovalError):
            await service.approve(severe.alert_id, by="wang", reason="flood now")
        extreme = await service.submit(
            make_alert("e", severity=Severity.EXTREME), origin="c", requested_by="wang"
        )
        with pytest.raises(ApprovalError, match="reason"):
            await service.approve(extreme.alert_id, by="wang", reason="")
        done = await service.approve(extreme.alert_id, by="wang", reason="dam breach, alone")
        assert done.planned == {"rec": 2}


async def test_a_pending_cancel_does_not_cancel_until_approved(tmp_path: Path) -> None:
    async with running(make_config(tmp_path, CHANNELS, village_targets("rec", 3))) as service:
        original = make_alert("orig", effective_in=3000)
        first = await service.submit(original, origin="api")
        cancel = make_alert("cancel", msg_type=MsgType.CANCEL, references=[original])
        pending = await service.submit(cancel, origin="console", requested_by="wang")
        assert pending.state == "pending"
        record = await service.database.run(service.alerts.get, first.alert_id)
        assert record["state"] == "active"
        await service.approve(pending.alert_id, by="li")
        record = await service.database.run(service.alerts.get, first.alert_id)
        assert record["state"] == "cancelled"


async def test_api_clients_that_require_approval(tmp_path: Path) -> None:
    config = make_config(tmp_path, CHANNELS, village_targets("rec", 2))
    service = BroadcasterService(with_api_tokens(config, FEED_TOKEN, DUTY_TOKEN))
    server = TestServer(make_app(service))
    await server.start_server()
    try:
        async with aiohttp.ClientSession(base_url=str(server.make_url("/"))) as session:
            feed = {"Authorization": "Bearer feed-token-123"}
            duty = {"Authorization": "Bearer duty-token-456"}
            async with session.post(
                "/api/v1/alerts",
                data=to_xml(make_alert()),
                headers=feed | {"Content-Type": "application/cap+xml"},
            ) as r:
                body = await r.json()
                assert r.status == 201 and body["state"] == "pending"
            async with session.get("/api/v1/approvals", headers=duty) as r:
                assert [a["alert_id"] for a in await r.json()] == [body["id"]]
            async with session.post(f"/api/v1/alerts/{body['id']}/approve", headers=feed) as r:
                assert r.status == 403
            async with session.post(
                f"/api/v1/alerts/{body['id']}/approve", json={"reason": "ok"}, headers=duty
            ) as r:
                assert r.status == 200 and (await r.json())["planned"] == {"rec": 2}
    finally:
        await server.close()


async def test_console_issued_tokens_authenticate_and_api_actions_are_audited(
    tmp_path: Path,
) -> None:
    from broadcaster.audit import AuditLog
    from broadcaster.auth.tokens import ApiTokenStore

    config = make_config(tmp_path, CHANNELS, village_targets("rec", 2))
    config = config.model_copy(
        update={"api": config.api.model_validate({"tokens": [{"name": "duty", "token": "d-1"}]})}
    )
    service = BroadcasterService(config)
    server = TestServer(make_app(service))
    await server.start_server()
    try:
        store = ApiTokenStore(service.database)
        token, _grant = await store.create("county", created_by="admin", requires_approval=True)
        async with aiohttp.ClientSession(base_url=str(server.make_url("/"))) as session:
            county = {"Authorization": f"Bearer {token}"}
            async with session.post(
                "/api/v1/alerts",
                data=to_xml(make_alert()),
                headers=county | {"Content-Type": "application/cap+xml"},
            ) as r:
                body = await r.json()
                assert r.status == 201 and body["state"] == "pending"
            async with session.post(
                f"/api/v1/alerts/{body['id']}/approve",
                json={"reason": "checked"},
                headers={"Authorization": "Bearer d-1"},
            ) as r:
                assert r.status == 200
            grants = await store.all()
            await store.revoke(grants[0].id, by="admin")
            async with session.get("/api/v1/approvals", headers=county) as r:
                assert r.status == 401
        entries = await service.database.run(AuditLog(service.database).entries, limit=50)
        actions = {(e.actor, e.action) for e in entries}
        assert ("api:token:county", "alert.draft") in actions
        assert ("api:duty", "alert.approve") in actions
        assert token not in str(entries)
    finally:
        await server.close()
