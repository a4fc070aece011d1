"""A county holding a relayed alert for its officer never reports it complete: the city keeps
the relay delivery unconfirmed until the county has sent it, then shows what the county did
(over real sockets, as ``test_reports``)."""

from __future__ import annotations

import asyncio

from broadcaster.cap.serialize import to_xml
from tests.core.support import make_alert
from tests.relay.test_reports import OFFICER, RELAY, Pair, _call, _relay_row, _service, pair

__all__ = ["pair"]  # the fixture, used by name


async def test_an_alert_awaiting_the_county_s_approval_is_not_shown_delivered(
    pair: Pair,
) -> None:
    warning = make_alert("nmg-review-1", sender="nmg.emergency@example.cn")
    county = _service(pair.county)
    # The county took it from the region's feed for review: it waits for an officer there.
    taken = await county.submit(warning, origin="upstream:region", requested_by="upstream:region")
    assert taken.created and taken.state == "pending"
    status, body = await _call(
        pair.city, "POST", "/api/v1/alerts", OFFICER, to_xml(warning), "application/cap+xml"
    )
    assert status == 201, body
    await asyncio.sleep(1.5)  # three of the county's report rounds
    row = await _relay_row(pair, body["id"], "accepted")
    assert row.get("report") is None or row["report"]["complete"] is False
    _, county_view = await _call(
        pair.county,
        "GET",
        f"/api/v1/alerts/{taken.alert_id}/deliveries",
        RELAY,
        b"",
        "text/plain",
    )
    assert county_view["complete"] is False  # what the city's poll reads
    # Approved there, it goes out, and the county's real outcome reaches the city.
    await county.approve(taken.alert_id, by="console:officer2", reason="ok")
    row = await _relay_row(pair, body["id"], "confirmed")
    assert row["report"]["summary"] == {"log": {"confirmed": 5}}
    assert row["report"]["complete"] is True
