"""Pushing sources over a real socket: trust per source, review by a second officer, the area
filter, deduplication across sources, and an upstream Cancel stopping what is queued here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from broadcaster.cap import MsgType
from broadcaster.cap.serialize import to_json, to_xml
from broadcaster.config import Config
from tests.core.receiver import SECRET, WebhookReceiver
from tests.core.support import (
    OTHER_COUNTY,
    RecordingChannel,
    SlowChannel,
    make_alert,
    make_config,
    village_targets,
    wait_for_deliveries,
    wait_until_complete,
)
from tests.upstream.support import Signing, node, tampered, with_sources

CHANNELS = {"rec": {"type": "tests.core.support:RecordingChannel"}}
REGION, CITY = "region-token-1234", "hohhot-token-5678"


def _config(tmp_path: Path, *sources: dict[str, Any], **channels: Any) -> Config:
    RecordingChannel.sent.clear()
    base = make_config(tmp_path, channels or CHANNELS, village_targets("rec", 3))
    return with_sources(base, *sources)


async def test_a_signed_push_source_refuses_unsigned_and_tampered_documents(
    tmp_path: Path,
) -> None:
    region = Signing.make(tmp_path)
    source = {"name": "region", "mode": "push", "token": REGION, "require_signature": True}
    source["trusted_certificates"] = [str(region.cert_file)]
    async with node(_config(tmp_path, source)) as here:
        status, body = await here.push(REGION, to_xml(make_alert("unsigned")))
        assert status == 400 and body["outcome"] == "refused"
        assert body["problems"][0]["rule"] == "signature-required"
        status, body = await here.push(REGION, tampered(region.sign(make_alert("tampered"))))
        assert status == 400 and body["problems"][0]["rule"] == "signature-tampered"
        async with here.session.post(
            "/api/v1/alerts",
            json=to_json(make_alert("json-form")),
            headers={"Authorization": f"Bearer {REGION}"},
        ) as response:
            answer = await response.json()
            assert response.status == 400 and "must send signed CAP XML" in answer["error"]
        health = here.service.upstream.health()["region"]
        assert not health.ok and health.failures == 3
        assert await here.alert_count() == 0
        status, body = await here.push(REGION, region.sign(make_alert("signed")))
        assert status == 201 and body["outcome"] == "created" and body["state"] == "active"
        assert health.ok and health.last_success is not None
        record = await here.service.store.alerts.get(body["id"])
        assert record is not None and record["origin"] == "upstream:region"
        audit = await here.service.store.audit.entries()
        assert [e.action for e in reversed(audit) if e.actor == "upstream:region"] == [
            "upstream.refused",
            "upstream.refused",
            "upstream.refused",
            "upstream.created",
        ]


async def test_a_token_only_source_takes_unsigned_but_not_tampered(tmp_path: Path) -> None:
    region = Signing.make(tmp_path)
    source = {"name": "region", "mode": "push", "token": REGION}
    async with node(_config(tmp_path, source)) as here:
        status, body = await here.push(REGION, to_xml(make_alert("unsigned")))
        assert status == 201 and body["outcome"] == "created"
        status, body = await here.push(REGION, tampered(region.sign(make_alert("tampered"))))
        assert status == 400 and body["problems"][0]["rule"] == "signature-tampered"
        status, _ = await here.push("wrong-token", to_xml(make_alert("other")))
        assert status == 401
        async with here.session.post(
            "/api/v1/alerts",
            json=to_json(make_alert("json-form")),
            headers={"Authorization": f"Bearer {REGION}"},
        ) as response:
            assert response.status == 201 and (await response.json())["outcome"] == "created"
        assert await here.alert_count() == 2


async def test_a_source_token_can_only_submit(tmp_path: Path) -> None:
    source = {"name": "region", "mode": "push", "token": REGION, "policy": "review"}
    async with node(_config(tmp_path, source)) as here:
        _, body = await here.push(REGION, to_xml(make_alert("held")))
        alert_id = body["id"]
        for path in (f"/api/v1/alerts/{alert_id}", "/api/v1/approvals"):
            status, _ = await here.get(path, token=REGION)
            assert status == 403
        async with here.session.post(
            f"/api/v1/alerts/{alert_id}/approve",
            headers={"Authorization": f"Bearer {REGION}"},
            json={"reason": "mine"},
        ) as response:
            assert response.status == 403
        assert await here.state(alert_id) == "held"


async def test_review_holds_the_alert_until_an_officer_approves(tmp_path: Path) -> None:
    source = {"name": "region", "mode": "push", "token": REGION, "policy": "review"}
    async with node(_config(tmp_path, source)) as here:
        status, body = await here.push(REGION, to_xml(make_alert("review")))
        assert status == 201 and body["outcome"] == "pending" and body["state"] == "pending"
        alert_id = body["id"]
        pending = await here.service.store.alerts.pending_approvals()
        assert [(p["alert_id"], p["requested_by"]) for p in pending] == [
            (alert_id, "upstream:region")
        ]
        assert await here.service.store.deliveries.summary(alert_id) == {}
        assert RecordingChannel.sent == []
        # The same alert again from the source is the one waiting, not a second one.
        status, body = await here.push(REGION, to_xml(make_alert("review")))
        assert status == 200 and body["outcome"] == "duplicate" and body["id"] == alert_id
        result = await here.service.approve(alert_id, by="console:wang", reason="checked")
        assert result.planned == {"rec": 3}
        rows = await wait_for_deliveries(
            here.service, alert_id, lambda rows: all(r["state"] == "confirmed" for r in rows)
        )
        assert len(rows) == 3


async def test_alerts_outside_our_area_are_not_taken(tmp_path: Path) -> None:
    source = {"name": "region", "mode": "push", "token": REGION, "areas": ["150921"]}
    async with node(_config(tmp_path, source)) as here:
        status, body = await here.push(
            REGION, to_xml(make_alert("elsewhere", geocodes=[OTHER_COUNTY]))
        )
        assert status == 200 and body["outcome"] == "outside-area" and body["id"] is None
        # Inside the configured area but reaching none of our targets: not ours either.
        status, body = await here.push(
            REGION, to_xml(make_alert("no-targets", geocodes=["150921105000"]))
        )
        assert status == 200 and body["outcome"] == "outside-area"
        status, body = await here.push(REGION, to_xml(make_alert("ours")))
        assert status == 201
        assert await here.alert_count() == 1


async def test_dedup_and_an_upstream_cancel_from_another_source(tmp_path: Path) -> None:
    """The region sends an alert, a neighbour relays the same one (a duplicate), and the
    region's Cancel stops what is still queued here at once."""
    SlowChannel.started.clear()
    SlowChannel.delay = 0.1
    channels = {"rec": {"type": "tests.core.support:SlowChannel", "concurrency": 1}}
    sources = [
        {"name": "region", "mode": "push", "token": REGION},
        {"name": "hohhot", "mode": "push", "token": CITY, "policy": "review"},
    ]
    config = _config(tmp_path, *sources, **channels)
    config = config.model_copy(
        update={
            "registry": config.registry.model_copy(
                update={"targets": _targets(tmp_path, village_targets("rec", 40))}
            )
        }
    )
    warning = make_alert("storm", sender="region@example.cn")
    async with node(config) as here:
        status, first = await here.push(REGION, to_xml(warning))
        assert status == 201
        status, again = await here.push(CITY, to_xml(warning))
        assert status == 200 and again["outcome"] == "duplicate" and again["id"] == first["id"]
        await wait_for_deliveries(
            here.service, first["id"], lambda rows: any(r["state"] == "confirmed" for r in rows)
        )
        cancel = make_alert(
            "storm-cancel", msg_type=MsgType.CANCEL, references=[warning], sender=warning.sender
        )
        status, body = await here.push(REGION, to_xml(cancel))
        assert status == 201 and body["outcome"] == "created", body
        assert await here.state(first["id"]) == "cancelled"
        rows = await wait_for_deliveries(
            here.service,
            first["id"],
            lambda rows: not any(r["state"] in ("queued", "sending") for r in rows),
        )
        states = {r["state"] for r in rows}
        assert "cancelled" in states and "confirmed" in states
        assert len(SlowChannel.started) < 40


@pytest.mark.parametrize("policy", ["auto", "review"])
async def test_a_cancel_through_another_source_waits_for_an_officer(
    tmp_path: Path, policy: str
) -> None:
    """A source cannot lift a warning another source brought by writing its sender's name:
    unsigned, such a Cancel waits for an officer under either policy, then stops the warning."""
    sources = [
        {"name": "region", "mode": "push", "token": REGION},
        {"name": "hohhot", "mode": "push", "token": CITY, "policy": policy},
    ]
    async with node(_config(tmp_path, *sources)) as here:
        warning = make_alert("storm", sender="region@example.cn")
        _, first = await here.push(REGION, to_xml(warning))
        for name, sender in (("spoof", "other@example.cn"), ("relayed", warning.sender)):
            cancel = make_alert(name, msg_type=MsgType.CANCEL, references=[warning], sender=sender)
            status, body = await here.push(CITY, to_xml(cancel))
            assert status == 201 and body["outcome"] == "pending"
            assert await here.state(first["id"]) == "active"
        await here.service.approve(body["id"], by="console:wang", reason="region confirmed")
        assert await here.state(first["id"]) == "cancelled"


async def test_a_signed_cancel_through_another_source_applies_at_once(tmp_path: Path) -> None:
    region = Signing.make(tmp_path)
    sources = [
        {"name": "region", "mode": "push", "token": REGION},
        {"name": "hohhot", "mode": "push", "token": CITY, "policy": "review"}
        | {"require_signature": True, "trusted_certificates": [str(region.cert_file)]},
    ]
    async with node(_config(tmp_path, *sources)) as here:
        warning = make_alert("storm", sender="region@example.cn")
        _, first = await here.push(REGION, region.sign(warning))
        cancel = make_alert(
            "lifted", msg_type=MsgType.CANCEL, references=[warning], sender=warning.sender
        )
        status, body = await here.push(CITY, region.sign(cancel))
        assert status == 201 and body["outcome"] == "created"
        assert await here.state(first["id"]) == "cancelled"


async def test_a_cancel_signed_by_another_key_than_the_warning_s_waits(tmp_path: Path) -> None:
    """A signature proves the key, not the sender: a source signing with its own key cannot
    lift a warning another source brought (unsigned, or signed by another key) at once."""
    region, hohhot = Signing.make(tmp_path), Signing.make(tmp_path, "hohhot")
    trusted = [str(region.cert_file), str(hohhot.cert_file)]
    sources = [
        {"name": "region", "mode": "push", "token": REGION},
        {"name": "hohhot", "mode": "push", "token": CITY}
        | {"require_signature": True, "trusted_certificates": trusted},
    ]
    async with node(_config(tmp_path, *sources)) as here:
        unsigned = make_alert("storm", sender="region@example.cn")
        signed = make_alert("gale", sender="region@example.cn")
        _, first = await here.push(REGION, to_xml(unsigned))
        _, second = await here.push(REGION, region.sign(signed))
        for warning in (unsigned, signed):
            cancel = make_alert(
                f"lift-{warning.identifier}",
                msg_type=MsgType.CANCEL,
                references=[warning],
                sender=warning.sender,
            )
            status, body = await here.push(CITY, hohhot.sign(cancel))
            assert status == 201 and body["outcome"] == "pending"
        assert await here.state(first["id"]) == "active"
        assert await here.state(second["id"]) == "active"


async def test_an_alert_in_this_nodes_own_name_is_never_taken(tmp_path: Path) -> None:
    source = {"name": "region", "mode": "push", "token": REGION}
    async with node(_config(tmp_path, source)) as here:
        ours = await here.service.submit(make_alert("ours", sender="city@example.cn"), origin="t")
        status, body = await here.push(REGION, to_xml(make_alert("fake", sender="city@example.cn")))
        assert status == 400 and "own name" in body["error"]
        # Our own alert coming back through a neighbour is the duplicate it is.
        raw = await here.service.store.alerts.raw_xml(ours.alert_id)
        assert raw is not None
        status, body = await here.push(REGION, raw)
        assert status == 200 and body["outcome"] == "duplicate" and body["id"] == ours.alert_id
        assert await here.alert_count() == 1


def _targets(tmp_path: Path, targets: list[dict[str, Any]]) -> Path:
    path = tmp_path / "many-targets.json"
    path.write_text(json.dumps(targets, ensure_ascii=False), encoding="utf-8")
    return path


async def test_an_upstream_cancel_reaches_the_county_nodes_through_the_relay_path(
    tmp_path: Path,
) -> None:
    """County nodes hang off a webhook channel: the region's warning reaches them, and so
    does the region's Cancel, to the same county nodes."""
    county = WebhookReceiver()
    server = TestServer(county.app(), host="127.0.0.1")
    await server.start_server()
    try:
        base = str(server.make_url("")).rstrip("/")
        counties = [
            {"id": f"county-{n}", "channel": "relay", "name": n, "division": division}
            | {"address": f"{base}/{n}"}
            for n, division in (("zhuozi", "150921000000"), ("huade", "150922000000"))
        ]
        channels = {"relay": {"type": "webhook", "secret": SECRET.decode()}}
        source = {"name": "region", "mode": "push", "token": REGION}
        config = with_sources(make_config(tmp_path, channels, counties), source)
        warning = make_alert("storm", sender="region@example.cn")
        async with node(config) as here:
            _, first = await here.push(REGION, to_xml(warning))
            await wait_until_complete(here.service, first["id"])
            cancel = make_alert(
                "storm-lifted", msg_type=MsgType.CANCEL, references=[warning], sender=warning.sender
            )
            status, body = await here.push(REGION, to_xml(cancel))
            assert status == 201 and body["outcome"] == "created"
            await wait_until_complete(here.service, body["id"])
    finally:
        await server.close()
    received = [(r["path"], r["body"]["alert"]["msgType"]) for r in county.received]
    assert received == [("zhuozi", "Alert"), ("zhuozi", "Cancel")]


async def test_an_update_from_the_source_supersedes_its_alert(tmp_path: Path) -> None:
    sources = [
        {"name": "region", "mode": "push", "token": REGION},
        {"name": "hohhot", "mode": "push", "token": CITY},
    ]
    async with node(_config(tmp_path, *sources)) as here:
        warning = make_alert("storm", sender="region@example.cn")
        _, first = await here.push(REGION, to_xml(warning))
        # Relayed by the neighbour first: the same alert, then the region's Update of it.
        status, again = await here.push(CITY, to_xml(warning))
        assert status == 200 and again["id"] == first["id"]
        update = make_alert(
            "storm-2", msg_type=MsgType.UPDATE, references=[warning], sender=warning.sender
        )
        status, body = await here.push(REGION, to_xml(update))
        assert status == 201 and body["outcome"] == "created" and body["state"] == "active"
        assert await here.state(first["id"]) == "superseded"
        record = await here.service.store.alerts.get(body["id"])
        assert record is not None and record["references"][0]["alert_id"] == first["id"]
