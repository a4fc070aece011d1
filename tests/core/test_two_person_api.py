"""The two-person rule over the API: a token whose alerts need approval cannot be the second
party, cannot cancel alone and cannot change or run scheduled broadcasts; every such action,
allowed or refused, is in the audit log. Each test replays an attack over a real socket."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from broadcaster.api.app import make_app
from broadcaster.audit import AuditLog
from broadcaster.auth.tokens import ApiTokenStore
from broadcaster.cap import MsgType, Status
from broadcaster.cap.serialize import to_xml
from broadcaster.errors import ApprovalError
from broadcaster.service import BroadcasterService
from tests.core.support import (
    DUTY_TOKEN,
    FEED_TOKEN,
    RecordingChannel,
    make_alert,
    make_config,
    village_targets,
    wait_until_complete,
    with_api_tokens,
)

CHANNELS = {"rec": {"type": "tests.core.support:RecordingChannel"}}
FEED = {"Authorization": f"Bearer {FEED_TOKEN['token']}"}  # its alerts need approval
DUTY = {"Authorization": f"Bearer {DUTY_TOKEN['token']}"}  # a trusted second party
CAP_XML = {"Content-Type": "application/cap+xml"}
EVACUATE = {
    "name": "drill",
    "kind": "exercise",
    "cron": "0 3 1 1 *",
    "headline": "请立即撤离 Evacuate now",
    "channels": ["rec"],
    "geocodes": ["150921"],
}


@dataclass
class Api:
    session: aiohttp.ClientSession
    service: BroadcasterService
    issued: dict[str, str]  # the console-issued token that needs approval

    async def post(self, path: str, headers: dict[str, str], **kwargs: Any) -> tuple[int, Any]:
        async with self.session.post(path, headers=headers, **kwargs) as r:
            return r.status, await r.json(content_type=None)

    async def submit(self, headers: dict[str, str], identifier: str, **alert: Any) -> Any:
        status, body = await self.post(
            "/api/v1/alerts", headers | CAP_XML, data=to_xml(make_alert(identifier, **alert))
        )
        assert status == 201, body
        return body

    async def record(self, alert_id: str) -> dict[str, Any]:
        found = await self.service.database.run(self.service.alerts.get, alert_id)
        assert found is not None
        return found

    async def audit(self) -> list[tuple[str, str, str]]:
        log = AuditLog(self.service.database)
        entries = await self.service.database.run(log.entries, limit=1000)
        return [(e.actor, e.action, e.subject) for e in reversed(entries)]


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    RecordingChannel.sent.clear()
    config = make_config(tmp_path, CHANNELS, village_targets("rec", 4))
    service = BroadcasterService(with_api_tokens(config, FEED_TOKEN, DUTY_TOKEN))
    server = TestServer(make_app(service))
    await server.start_server()
    try:
        token, _grant = await ApiTokenStore(service.database).create(
            "county", created_by="admin", requires_approval=True
        )
        async with aiohttp.ClientSession(base_url=str(server.make_url("/"))) as session:
            yield Api(session, service, {"Authorization": f"Bearer {token}"})
    finally:
        await server.close()


async def test_a_token_that_needs_approval_approves_and_rejects_nothing(api: Api) -> None:
    own = await api.submit(FEED, "own")
    other_client = await api.submit(api.issued, "county-1")
    console = await api.service.submit(
        make_alert("console-1"), origin="console:wang", requested_by="console:wang"
    )
    pending = [own["id"], other_client["id"], console.alert_id]
    for alert_id in pending:
        for decision in ("approve", "reject"):
            for headers in (FEED, api.issued):
                status, body = await api.post(
                    f"/api/v1/alerts/{alert_id}/{decision}", headers, json={"reason": "ok"}
                )
                assert status == 403, body
                assert "need approval" in body["error"]
    for alert_id in pending:
        record = await api.record(alert_id)
        assert record["state"] == "held" and record["approval"]["state"] == "pending"
    await asyncio.sleep(0.2)
    assert RecordingChannel.sent == []
    refused = [(actor, action) for actor, action, subject in await api.audit() if subject]
    for actor in ("api:feed", "api:token:county"):
        assert refused.count((actor, "alert.approve.refused")) == 3
        assert refused.count((actor, "alert.reject.refused")) == 3
    # The trusted client is a second party.
    status, body = await api.post(
        f"/api/v1/alerts/{console.alert_id}/approve", DUTY, json={"reason": "checked"}
    )
    assert status == 200 and body["planned"] == {"rec": 4}
    assert ("api:duty", "alert.approve", console.alert_id) in await api.audit()


async def test_a_cancel_from_such_a_token_waits_for_a_second_party(api: Api) -> None:
    live = await api.submit(DUTY, "live")
    assert await wait_until_complete(api.service, live["id"]) == {"rec": {"confirmed": 4}}
    status, body = await api.post(f"/api/v1/alerts/{live['id']}/cancel", FEED, json={})
    assert status == 201 and body["state"] == "pending"
    cancel_id = body["id"]
    assert (await api.record(live["id"]))["state"] == "active"
    assert (await api.record(cancel_id))["approval"]["requested_by"] == "api:feed"
    status, _ = await api.post(f"/api/v1/alerts/{cancel_id}/approve", FEED)
    assert status == 403
    assert (await api.record(live["id"]))["state"] == "active"
    status, _ = await api.post(f"/api/v1/alerts/{cancel_id}/approve", DUTY, json={"reason": "ok"})
    assert status == 200
    assert (await api.record(live["id"]))["state"] == "cancelled"
    entries = await api.audit()
    assert ("api:feed", "alert.cancel.draft", live["id"]) in entries
    assert ("api:feed", "alert.approve.refused", cancel_id) in entries
    # A trusted client's cancel takes effect at once, and a refused one is recorded too.
    other = await api.submit(DUTY, "other")
    status, _ = await api.post(f"/api/v1/alerts/{other['id']}/cancel", DUTY, json={})
    assert status == 201 and (await api.record(other["id"]))["state"] == "cancelled"
    status, _ = await api.post(f"/api/v1/alerts/{other['id']}/cancel", DUTY, json={})
    assert status == 409
    entries = await api.audit()
    assert ("api:duty", "alert.cancel", other["id"]) in entries
    assert ("api:duty", "alert.cancel.refused", other["id"]) in entries


async def test_such_a_token_cannot_block_a_cancel_by_taking_its_name_first(api: Api) -> None:
    # Drafts need no approval; under the names the server would give its Cancel for the next
    # seconds (the server's sender, the alert's identifier and the time) they would make that
    # Cancel look like a document stored already.
    live = await api.submit(DUTY, "false-alarm")
    now = int(time.time())
    for second in range(now, now + 5):
        await api.submit(
            FEED,
            f"false-alarm.cancel.{second}",
            sender="city@example.cn",
            sent=datetime.fromtimestamp(second, UTC),
            status=Status.DRAFT,
        )
    status, body = await api.post(f"/api/v1/alerts/{live['id']}/cancel", DUTY, json={})
    assert status == 201 and body["created"], body
    assert (await api.record(live["id"]))["state"] == "cancelled"


@pytest.mark.parametrize("status", [Status.SYSTEM, Status.ACTUAL])
@pytest.mark.parametrize("msg_type", [MsgType.CANCEL, MsgType.UPDATE])
async def test_a_cancel_or_update_document_from_such_a_token_waits_too(
    api: Api, status: Status, msg_type: MsgType
) -> None:
    original = make_alert("flood")
    live = await api.submit(DUTY, "flood")
    reference = {"status": status, "msg_type": msg_type, "references": [original]}
    # A System message is never broadcast, but would still cancel or supersede what it names.
    body = await api.submit(FEED, "takedown", **reference)
    assert body["state"] == "pending"
    assert (await api.record(live["id"]))["state"] == "active"
    status_code, _ = await api.post(
        f"/api/v1/alerts/{body['id']}/reject", DUTY, json={"reason": "not ours"}
    )
    assert status_code == 200
    assert (await api.record(live["id"]))["state"] == "active"


async def test_approving_a_system_cancel_cancels_without_broadcasting_it(api: Api) -> None:
    original = make_alert("flood")
    live = await api.submit(DUTY, "flood")
    assert await wait_until_complete(api.service, live["id"]) == {"rec": {"confirmed": 4}}
    sent = len(RecordingChannel.sent)
    reference = {"status": Status.SYSTEM, "msg_type": MsgType.CANCEL, "references": [original]}
    pending = await api.submit(FEED, "system-cancel", **reference)
    status, body = await api.post(
        f"/api/v1/alerts/{pending['id']}/approve", DUTY, json={"reason": "ok"}
    )
    assert status == 200 and body["state"] == "held" and body["planned"] == {}
    assert (await api.record(live["id"]))["state"] == "cancelled"
    assert (await api.record(pending["id"]))["state"] == "held"
    await asyncio.sleep(0.2)
    assert len(RecordingChannel.sent) == sent


async def test_such_a_token_cannot_create_change_delete_or_run_schedules(api: Api) -> None:
    for headers in (FEED, api.issued):
        status, body = await api.post("/api/v1/schedules", headers, json=EVACUATE)
        assert status == 403, body
    status, body = await api.post("/api/v1/schedules", DUTY, json=EVACUATE | {"name": "daily"})
    assert status == 201, body
    for method, path, json_body in (
        ("PATCH", "/api/v1/schedules/daily", {"cron": "* * * * *"}),
        ("DELETE", "/api/v1/schedules/daily", None),
        ("POST", "/api/v1/schedules/daily/run", None),
    ):
        async with api.session.request(method, path, headers=FEED, json=json_body) as r:
            assert r.status == 403, await r.text()
    async with api.session.get("/api/v1/schedules", headers=FEED) as r:
        schedules = (await r.json())["schedules"]
    assert [(s["name"], s["definition"]["cron"]) for s in schedules] == [("daily", "0 3 1 1 *")]
    async with api.session.get("/api/v1/schedule-runs", headers=DUTY) as r:
        assert (await r.json())["runs"] == []
    await asyncio.sleep(0.2)
    assert RecordingChannel.sent == []
    entries = await api.audit()
    refused = {(actor, action) for actor, action, _subject in entries}
    for action in ("create", "update", "delete", "run"):
        assert ("api:feed", f"schedule.{action}.refused") in refused
    assert ("api:token:county", "schedule.create.refused", "") in entries
    assert ("api:duty", "schedule.create", "daily") in entries
    # The trusted client's own changes and runs are recorded as well.
    async with api.session.patch(
        "/api/v1/schedules/daily", headers=DUTY, json={"enabled": False}
    ) as r:
        assert r.status == 200
    status, body = await api.post("/api/v1/schedules/daily/run", DUTY)
    assert status == 202
    async with api.session.delete("/api/v1/schedules/daily", headers=DUTY) as r:
        assert r.status == 200
    status, _ = await api.post("/api/v1/schedules/nope/run", DUTY)
    assert status == 404
    entries = await api.audit()
    for action in ("update", "run", "delete"):
        assert ("api:duty", f"schedule.{action}", "daily") in entries
    assert ("api:duty", "schedule.run.refused", "nope") in entries


async def _issue(api: Api, name: str, by: str, *, requires_approval: bool) -> dict[str, str]:
    token, _grant = await ApiTokenStore(api.service.database).create(
        name, created_by=by, requires_approval=requires_approval
    )
    return {"Authorization": f"Bearer {token}"}


async def test_a_token_cannot_decide_an_alert_its_issuing_officer_asked_for(api: Api) -> None:
    wangs_own = await _issue(api, "wang-own", "console:wang", requires_approval=False)
    wangs_feed = await _issue(api, "wang-feed", "console:wang", requires_approval=True)
    lis = await _issue(api, "li-duty", "console:li", requires_approval=False)
    composed = await api.service.submit(
        make_alert("console-2"), origin="console:wang", requested_by="console:wang"
    )
    through_feed = await api.submit(wangs_feed, "wang-feed-1")
    for alert_id in (composed.alert_id, through_feed["id"]):
        for decision in ("approve", "reject"):
            status, body = await api.post(
                f"/api/v1/alerts/{alert_id}/{decision}", wangs_own, json={"reason": "ok"}
            )
            assert status == 403, body
            assert "issued by the officer who asked" in body["error"]
        record = await api.record(alert_id)
        assert record["state"] == "held" and record["approval"]["state"] == "pending"
    await asyncio.sleep(0.2)
    assert RecordingChannel.sent == []
    entries = await api.audit()
    for alert_id in (composed.alert_id, through_feed["id"]):
        for decision in ("approve", "reject"):
            assert ("api:token:wang-own", f"alert.{decision}.refused", alert_id) in entries
    # A token another officer issued, and one from the configuration, are second parties.
    status, body = await api.post(
        f"/api/v1/alerts/{composed.alert_id}/approve", lis, json={"reason": "checked"}
    )
    assert status == 200 and body["planned"] == {"rec": 4}
    status, body = await api.post(
        f"/api/v1/alerts/{through_feed['id']}/reject", DUTY, json={"reason": "not ours"}
    )
    assert status == 200, body
    entries = await api.audit()
    assert ("api:token:li-duty", "alert.approve", composed.alert_id) in entries
    assert ("api:duty", "alert.reject", through_feed["id"]) in entries
    # Wang's own token decides what someone else asked for.
    other = await api.service.submit(
        make_alert("console-3"), origin="console:li", requested_by="console:li"
    )
    status, body = await api.post(
        f"/api/v1/alerts/{other.alert_id}/reject", wangs_own, json={"reason": "duplicate"}
    )
    assert status == 200, body


async def test_acknowledging_a_notice_is_audited_and_refused_to_a_first_party(api: Api) -> None:
    notice = await api.service.store.schedules.open_notice(
        "link", "rec/v1", "box silent", api.service.clock()
    )
    assert notice is not None
    for headers in (FEED, api.issued):
        status, body = await api.post(f"/api/v1/notices/{notice}/ack", headers)
        assert status == 403, body
    async with api.session.get("/api/v1/notices?open=1", headers=DUTY) as r:
        listed = (await r.json())["notices"]
    assert [(n["id"], n["acknowledged_at"]) for n in listed] == [(notice, None)]
    status, body = await api.post(f"/api/v1/notices/{notice}/ack", DUTY)
    assert status == 200 and body == {"acknowledged": notice}
    status, body = await api.post(f"/api/v1/notices/{notice}/ack", DUTY)
    assert status == 404, body
    status, body = await api.post("/api/v1/notices/x1/ack", DUTY)
    assert status == 404, body
    entries = await api.audit()
    assert ("api:feed", "notice.ack.refused", str(notice)) in entries
    assert ("api:token:county", "notice.ack.refused", str(notice)) in entries
    assert entries.count(("api:duty", "notice.ack", str(notice))) == 1
    assert ("api:duty", "notice.ack.refused", str(notice)) in entries
    assert ("api:duty", "notice.ack.refused", "x1") in entries


async def test_an_officer_cannot_decide_what_their_own_token_asked_for(api: Api) -> None:
    wangs_feed = await _issue(api, "wang-feed-2", "console:wang", requires_approval=True)
    through_feed = await api.submit(wangs_feed, "wang-feed-2")
    for decide in (api.service.approve, api.service.reject):
        with pytest.raises(ApprovalError, match="API token you issued"):
            await decide(through_feed["id"], by="console:wang", reason="mine")
    record = await api.record(through_feed["id"])
    assert record["state"] == "held" and record["approval"]["state"] == "pending"
    result = await api.service.approve(through_feed["id"], by="console:li", reason="checked")
    assert result.planned == {"rec": 4}


async def test_a_held_submission_is_audited_as_stored_not_sent(api: Api) -> None:
    draft = await api.submit(DUTY, "just-a-draft", status=Status.DRAFT)
    live = await api.submit(DUTY, "live-one")
    entries = await api.audit()
    assert ("api:duty", "alert.store", draft["id"]) in entries
    assert ("api:duty", "alert.send", live["id"]) in entries
    assert ("api:duty", "alert.send", draft["id"]) not in entries
