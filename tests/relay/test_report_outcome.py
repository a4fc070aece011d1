"""What a county node's final report makes of the city's relay delivery, pushed to the city or
polled by it: confirmed only when the county confirmed at least one delivery; failed, saying
so, when every one failed or the county planned none; deliveries cancelled with the alert are
no failure. Real city and county services over real sockets (the county's devices behind a
webhook that refuses everything), and a county stand-in answering the city's polls."""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from broadcaster.audit import AuditLog
from broadcaster.cap.serialize import to_xml
from broadcaster.channel import ConfirmationOutcome
from broadcaster.federation.reports import polled_summary, report_outcome
from tests.core.support import make_alert, make_config, running, village_targets
from tests.relay.test_relay_answers import _serving
from tests.relay.test_reports import (
    OFFICER,
    Pair,
    _call,
    _relay_row,
    _service,
    federation,
)

CONFIRMED, FAILED, PROGRESS = (
    ConfirmationOutcome.CONFIRMED,
    ConfirmationOutcome.FAILED,
    ConfirmationOutcome.PROGRESS,
)


@pytest.mark.parametrize(
    ("summary", "complete", "outcome", "detail"),
    [
        ({"sms": {"confirmed": 1, "failed": 4}}, True, CONFIRMED, "sms: confirmed 1, failed 4"),
        ({"sms": {"retrying": 3}}, False, PROGRESS, "sms: retrying 3"),
        ({}, False, PROGRESS, "no deliveries"),
        ({"sms": {"failed": 12}}, True, FAILED, "no delivery confirmed (sms: failed 12)"),
        (
            {"sms": {"expired": 2}, "fm": {"failed": 1}},
            True,
            FAILED,
            "no delivery confirmed (fm: failed 1; sms: expired 2)",
        ),
        ({}, True, FAILED, "planned no delivery"),
        ({"sms": {}}, True, FAILED, "planned no delivery"),
        (
            {"sms": {"cancelled": 5}},
            True,
            CONFIRMED,
            "every delivery cancelled with the alert before it went out (sms: cancelled 5)",
        ),
        (
            {"sms": {"failed": 2, "cancelled": 3}},
            True,
            FAILED,
            "no delivery confirmed (sms: failed 2, cancelled 3)",
        ),
    ],
)
def test_a_report_confirms_only_what_the_county_confirmed(
    summary: dict[str, dict[str, int]],
    complete: bool,
    outcome: ConfirmationOutcome,
    detail: str,
) -> None:
    assert report_outcome("county node 150921", summary, complete) == (
        outcome,
        f"county node 150921: {detail}",
    )


def test_a_polled_summary_is_read_in_the_reported_form() -> None:
    # Complete at the county: an "accepted" is on a channel that confirms nothing.
    assert polled_summary({"log": {"accepted": 2, "failed": 1}, "sms": {"expired": 1}}) == {
        "log": {"confirmed": 2, "failed": 1},
        "sms": {"expired": 1},
    }
    assert polled_summary({}) == {}
    for garbage in (None, [1], {"log": 3}, {"log": {"failed": "3"}}, {"log": {"failed": True}}):
        assert polled_summary(garbage) is None, garbage


async def _refusing(request: web.Request) -> web.Response:
    """The county's devices: a webhook receiver that refuses every message for good."""
    return web.json_response({"error": "gone"}, status=410)


def _federation(
    tmp_path: Path, devices: list[dict[str, Any]], hook_port: int, *, push: bool
) -> AbstractAsyncContextManager[Pair]:
    """A city relaying to a county whose ``devices`` are behind the webhook on ``hook_port``;
    the county reports to the city when ``push``, else the city polls it every 0.2 s."""
    hook = {"type": "webhook", "url": f"http://127.0.0.1:{hook_port}/", "secret": "s" * 32}
    poll_seconds = 30 if push else 0.2
    return federation(tmp_path, {"hook": hook}, devices, push=push, poll_seconds=poll_seconds)


async def _relayed(pair: Pair, identifier: str, state: str) -> dict[str, Any]:
    """The city's relay delivery of a new alert once it is in ``state``."""
    alert = to_xml(make_alert(identifier))
    status, body = await _call(pair.city, "POST", "/api/v1/alerts", OFFICER, alert, "text/xml")
    assert status == 201, body
    return await _relay_row(pair, body["id"], state)


async def test_a_county_whose_every_delivery_failed_fails_the_relay_delivery(
    tmp_path: Path,
) -> None:
    devices = village_targets("hook", 4)
    async with (
        _serving(_refusing) as hook,
        _federation(tmp_path, devices, hook, push=True) as pair,
    ):
        row = await _relayed(pair, "all-failed-1", "failed")
        city = _service(pair.city)
        entries = await city.database.run(AuditLog(city.database).entries, limit=100)
    assert row["last_error"] == "county node 150921: no delivery confirmed (hook: failed 4)"
    assert row["report"]["complete"] is True
    assert row["report"]["summary"] == {"hook": {"failed": 4}}
    (final,) = [e for e in entries if e.action == "node.report.final"]
    assert final.detail["outcome"] == "failed"
    assert final.detail["summary"] == {"hook": {"failed": 4}}


async def test_a_county_that_planned_no_delivery_fails_the_relay_delivery(tmp_path: Path) -> None:
    async with (
        _serving(_refusing) as hook,
        _federation(tmp_path, [], hook, push=True) as pair,
    ):
        row = await _relayed(pair, "none-planned-1", "failed")
    assert row["last_error"] == "county node 150921: planned no delivery"
    assert row["report"]["complete"] is True and row["report"]["summary"] == {}


async def test_a_polled_county_whose_every_delivery_failed_fails_the_relay_delivery(
    tmp_path: Path,
) -> None:
    devices = village_targets("hook", 3)
    async with (
        _serving(_refusing) as hook,
        _federation(tmp_path, devices, hook, push=False) as pair,
    ):
        row = await _relayed(pair, "all-failed-2", "failed")
    assert row["last_error"].endswith("county node: no delivery confirmed (hook: failed 3)")
    assert row.get("report") is None  # nothing was pushed: the poll alone ended it


async def test_a_polled_county_s_cancelled_deliveries_are_no_failure(tmp_path: Path) -> None:
    """A stand-in county: it accepts every alert and answers the city's polls with the
    summary the test gives each alert (not complete until then)."""
    answers: dict[str, dict[str, Any]] = {}

    async def county(request: web.Request) -> web.Response:
        await request.read()
        if request.method == "POST":
            return web.json_response({"id": "county-id", "created": True}, status=201)
        alert_id = request.path.split("/")[4]
        return web.json_response(answers.get(alert_id, {"complete": False, "summary": {}}))

    async with _serving(county) as port:
        node = {"division": "150921", "url": f"http://127.0.0.1:{port}", "token": "t" * 20}
        relay = {"type": "relay", "poll_seconds": 0.2, "nodes": [node]}
        async with running(make_config(tmp_path, {"relay": relay}, [])) as city:
            ids = {}
            for identifier, summary in (
                ("cancelled-1", {"log": {"cancelled": 5}}),
                ("unreadable-1", {"log": "five"}),
                ("partly-1", {"log": {"accepted": 1, "failed": 4}}),
            ):
                result = await city.submit(to_xml(make_alert(identifier)), origin="test")
                ids[identifier] = result.alert_id
                answers[result.alert_id] = {"complete": True, "summary": summary}
            rows = {}
            for _ in range(200):
                for identifier, alert_id in ids.items():
                    rows[identifier] = (await city.store.deliveries.deliveries(alert_id))[0]
                if all(rows[i]["state"] == "confirmed" for i in ("cancelled-1", "partly-1")):
                    break
                await asyncio.sleep(0.05)
            details = {
                identifier: [
                    e["detail"] for e in await city.store.deliveries.events(rows[identifier]["id"])
                ]
                for identifier in ("cancelled-1", "partly-1")
            }
            await asyncio.sleep(0.5)  # more polls of the unreadable answer
            unreadable = (await city.store.deliveries.deliveries(ids["unreadable-1"]))[0]
    assert rows["cancelled-1"]["state"] == "confirmed"
    assert details["cancelled-1"][-1].endswith(
        "county node: every delivery cancelled with the alert before it went out (log: cancelled 5)"
    )
    assert rows["partly-1"]["state"] == "confirmed"
    assert details["partly-1"][-1].endswith("county node: log: confirmed 1, failed 4")
    # Counts it cannot read tell nothing of what the county did: the delivery waits.
    assert unreadable["state"] == "accepted"
