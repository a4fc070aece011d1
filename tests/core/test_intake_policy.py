"""Intake verdicts through the HTTP API: repair versus strict, and alerts that reach no one.

A document whose only CAP errors are repairable is stored repaired under ``repair`` (the raw XML
verbatim, each repair in the answer, the alert's events and the audit log) and refused under
``strict``; an unrepairable error is always a 400; an area that selects no target is a 422 at
submission (also for alerts that wait for approval) unless ``?allow_empty=1``.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from broadcaster.api.app import make_app
from broadcaster.audit import AuditLog
from broadcaster.cap.serialize import to_json, to_xml
from broadcaster.cap.times import format_cap_time
from broadcaster.errors import CapError, UnreachableAreaError
from broadcaster.service import BroadcasterService
from tests.conftest import REPO
from tests.core.support import COUNTY_SEAT, make_alert, make_config, running, village_targets

TOKENS = {"lenient": "lenient-token-0123456789", "strict": "strict-token-0123456789"}
APPROVAL_TOKEN = "approval-token-0123456789"
LAT, LON = COUNTY_SEAT
RING = ((LAT - 0.01, LON - 0.01), (LAT + 0.2, LON - 0.01), (LAT + 0.2, LON + 0.2))
XML = {"Content-Type": "application/cap+xml"}

Api = tuple[aiohttp.ClientSession, BroadcasterService]


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    config = make_config(tmp_path, {"log": {"type": "log"}}, village_targets("log", 12))
    tokens = [
        {"name": "lenient", "token": TOKENS["lenient"]},
        {"name": "strict", "token": TOKENS["strict"], "intake": "strict"},
        {"name": "officer", "token": APPROVAL_TOKEN, "requires_approval": True},
    ]
    config = config.model_copy(update={"api": config.api.model_validate({"tokens": tokens})})
    service = BroadcasterService(config)
    server = TestServer(make_app(service))
    await server.start_server()
    async with aiohttp.ClientSession(base_url=str(server.make_url("/"))) as session:
        yield session, service
    await server.close()


def _auth(client: str) -> dict[str, str]:
    token = APPROVAL_TOKEN if client == "officer" else TOKENS[client]
    return {"Authorization": f"Bearer {token}", **XML}


def repairable_xml(identifier: str) -> bytes:
    """A valid alert made invalid in two repairable ways: ``Z`` plus a fraction, an open ring."""
    closed = [*RING, RING[0]]
    text = to_xml(make_alert(identifier, geocodes=(), polygon=closed)).decode()
    text = re.sub(r"-00:00</sent>", ".250Z</sent>", text, count=1)
    ring = " ".join(f"{lat},{lon}" for lat, lon in closed)
    opened = " ".join(f"{lat},{lon}" for lat, lon in RING)
    assert ring in text
    return text.replace(ring, opened).encode()


async def _stored(service: BroadcasterService) -> int:
    return int(
        await service.database.run(
            lambda: service.database.conn.execute("SELECT count(*) FROM alerts").fetchone()[0]
        )
    )


async def _post(
    session: aiohttp.ClientSession, data: bytes, client: str = "lenient", query: str = ""
) -> tuple[int, dict[str, Any]]:
    async with session.post(f"/api/v1/alerts{query}", data=data, headers=_auth(client)) as r:
        return r.status, await r.json()


async def test_repairable_document_is_stored_repaired_and_each_repair_listed(api: Api) -> None:
    session, service = api
    data = repairable_xml("repair-1")
    status, body = await _post(session, data)
    assert status == 201, body
    assert [(r["path"], r["rule"], r["repairable"]) for r in body["repairs"]] == [
        ("/alert/sent", "cap-time", True),
        ("/alert/info[1]/area[1]/polygon[1]", "polygon-closed", True),
    ]
    assert "'Z' read as -00:00 and the fraction of a second dropped" in body["repairs"][0]["repair"]
    assert body["planned"] == {"log": 12} and body["state"] == "active"
    async with session.get(f"/api/v1/alerts/{body['id']}/cap", headers=_auth("lenient")) as r:
        assert await r.read() == data  # the document as received, unrepaired
    async with session.get(f"/api/v1/alerts/{body['id']}", headers=_auth("lenient")) as r:
        record = await r.json()
    assert record["sent"].endswith("-00:00")
    repairs = [e["detail"] for e in record["events"] if e["event"] == "repair"]
    assert len(repairs) == 2 and "(repairable: closed by repeating the first pair" in repairs[1]
    document = await service.database.run(service.alerts.document, body["id"])
    assert document is not None
    points = document["info"][0]["area"][0]["polygon"][0].split()
    assert points[0] == points[-1] and len(points) == 4
    audit = AuditLog(service.database)
    (entry,) = await service.database.run(lambda: audit.entries(action="alert.send"))
    assert entry.subject == body["id"] and len(entry.detail["repairs"]) == 2
    status, again = await _post(session, data)
    assert (status, again["id"], len(again["repairs"])) == (200, body["id"], 2)


async def test_strict_token_refuses_repairable_document_and_stores_nothing(api: Api) -> None:
    session, service = api
    status, body = await _post(session, repairable_xml("repair-2"), client="strict")
    assert status == 400, body
    found = {(p["rule"], p["repairable"]) for p in body["problems"]}
    assert found == {("cap-time", True), ("polygon-closed", True)}
    assert "(repairable: " in body["error"]
    assert await _stored(service) == 0


async def test_strict_intake_configured_for_everyone(tmp_path: Path) -> None:
    config = make_config(tmp_path, {"log": {"type": "log"}}, village_targets("log", 3))
    config = config.model_copy(update={"cap": config.cap.model_validate({"intake": "strict"})})
    service = BroadcasterService(config)
    await service.start()
    try:
        with pytest.raises(CapError, match="CAP document rejected") as caught:
            await service.submit(repairable_xml("repair-3"), origin="test")
        assert {p.rule for p in caught.value.problems} == {"cap-time", "polygon-closed"}
        repaired = await service.submit(repairable_xml("repair-3"), origin="t", policy="repair")
        assert repaired.created and len(repaired.repairs) == 2
    finally:
        await service.stop()


async def test_unrepairable_errors_are_400_under_repair(api: Api) -> None:
    session, service = api
    spaced = to_xml(make_alert("with-space")).replace(b"with-space", b"with space")
    status, body = await _post(session, spaced)
    assert status == 400
    assert [(p["rule"], p["repairable"]) for p in body["problems"]] == [("identifier-chars", False)]
    # expires before effective: the alert would never be in force.
    alert = make_alert("backwards", effective_in=7200, expires_in=10800)
    expires, effective = alert.infos[0].expires, alert.infos[0].effective
    assert expires is not None and effective is not None
    earlier = format_cap_time(effective - timedelta(hours=1))
    text = to_xml(alert).replace(format_cap_time(expires).encode(), earlier.encode())
    status, body = await _post(session, text)
    assert status == 400
    (problem,) = [p for p in body["problems"] if p["severity"] == "error"]
    assert (problem["path"], problem["rule"], problem["repairable"]) == (
        "/alert/info[1]/expires",
        "expires-after-effective",
        False,
    )
    assert "is not later than effective" in problem["message"]
    assert await _stored(service) == 0


@pytest.mark.parametrize(
    ("area", "named"),
    [
        ({"geocodes": ("999",)}, "geocodes CPEAS Geographic Code=999"),
        ({"geocodes": ("110101000000",)}, "geocodes CPEAS Geographic Code=110101000000"),
        (
            {
                "geocodes": (),
                "polygon": [(39.9, 116.3), (40.0, 116.3), (40.0, 116.5), (39.9, 116.3)],
            },
            "polygon within lat 39.9..40, lon 116.3..116.5",
        ),
    ],
)
async def test_area_reaching_no_one_is_422_naming_it(
    api: Api, area: dict[str, Any], named: str
) -> None:
    session, service = api
    for client in ("lenient", "officer"):  # planning waits for approval; the refusal does not
        status, body = await _post(session, to_xml(make_alert("nowhere", **area)), client)
        assert status == 422, body
        (problem,) = body["problems"]
        assert problem["path"] == "/alert/info[1]/area[1]"
        assert problem["rule"] == "area-reaches-no-one"
        assert problem["message"] == f"area '卓资县' ({named}) selects no target on log"
    assert await _stored(service) == 0
    async with session.get("/api/v1/approvals", headers=_auth("lenient")) as r:
        assert await r.json() == []


async def test_allow_empty_accepts_an_alert_that_reaches_no_one_and_says_so(api: Api) -> None:
    session, service = api
    xml = to_xml(make_alert("nowhere", geocodes=("999",)))
    status, body = await _post(session, xml, query="?allow_empty=1")
    assert status == 201, body
    assert (body["state"], body["planned"]) == ("reaches no one", {})
    assert [w["rule"] for w in body["warnings"]] == ["division-code", "area-reaches-no-one"]
    async with session.get(f"/api/v1/alerts/{body['id']}", headers=_auth("lenient")) as r:
        record = await r.json()
    assert record["reaches_no_one"] is True
    assert any(e["event"] == "reaches-no-one" and "999" in e["detail"] for e in record["events"])
    status, again = await _post(session, xml)
    assert (status, again["state"]) == (200, "reaches no one")
    reached = await service.database.run(service.alerts.get, body["id"])
    assert reached is not None and reached["state"] == "active"


async def test_json_form_gets_the_same_verdicts(api: Api) -> None:
    session, service = api
    document = to_json(make_alert("json-z"))
    document["sent"] = document["sent"].replace("-00:00", "Z")
    for client, status in (("strict", 400), ("lenient", 201)):
        headers = {"Authorization": _auth(client)["Authorization"]}
        async with session.post("/api/v1/alerts", json=document, headers=headers) as r:
            body = await r.json()
            assert r.status == status, body
    assert [(p["path"], p["repair"]) for p in body["repairs"]] == [
        ("/alert/sent", f"'Z' read as -00:00: {document['sent'].replace('Z', '-00:00')}")
    ]
    assert await _stored(service) == 1


async def test_on_the_ulanqab_demo_registry_beijing_and_999_reach_no_one(tmp_path: Path) -> None:
    demo = json.loads((REPO / "config" / "demo" / "targets.json").read_text(encoding="utf-8"))
    channels = {name: {"type": "log"} for name in ("log", "sms", "fm", "loudspeaker")}
    async with running(make_config(tmp_path, channels, demo)) as service:
        for code in ("110101000000", "999"):  # 北京市东城区; no division at all
            with pytest.raises(UnreachableAreaError) as caught:
                await service.submit(make_alert(f"nowhere-{code}", geocodes=(code,)), origin="t")
            (problem,) = caught.value.problems
            assert f"CPEAS Geographic Code={code}" in problem.message
            assert problem.message.endswith("selects no target on log, sms, fm, loudspeaker")
        reached = await service.submit(make_alert("zhuozi"), origin="t")
        assert reached.state == "active" and set(reached.planned) == set(channels)
        assert await _stored(service) == 1
