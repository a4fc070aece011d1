"""Numbers too large for the store in the API's paths and queries (delivery, run and notice
ids, ``offset``): each is answered 400 or 404 with a JSON error, never 500."""

from __future__ import annotations

from broadcaster.cap.serialize import to_xml
from tests.core.support import make_alert
from tests.web.conftest import Site

HUGE = "9" * 30


async def _stored_alert(site: Site) -> str:
    headers = {"Content-Type": "application/cap+xml"}
    async with site.api.post(
        "/api/v1/alerts", data=to_xml(make_alert()), headers=headers
    ) as response:
        assert response.status == 201, await response.text()
        return str((await response.json())["id"])


async def test_numbers_too_large_for_the_store_are_refused_not_failed(site: Site) -> None:
    alert_id = await _stored_alert(site)
    expected = {
        ("GET", f"/api/v1/alerts/{alert_id}/deliveries?offset={HUGE}"): 400,
        ("GET", f"/api/v1/deliveries/{HUGE}/events"): 404,
        ("GET", f"/api/v1/deliveries/-{HUGE}/events"): 404,
        ("GET", f"/api/v1/schedule-runs/{HUGE}"): 404,
        ("GET", f"/api/v1/schedule-runs/-{HUGE}"): 404,
        ("POST", f"/api/v1/notices/{HUGE}/ack"): 404,
    }
    answers = {}
    for method, path in expected:
        async with site.api.request(method, path) as response:
            answers[method, path] = response.status
            assert "error" in await response.json(), path
    assert answers == expected
    async with site.api.get(f"/api/v1/alerts/{alert_id}/deliveries?offset=1000000000") as response:
        assert response.status == 200
        assert (await response.json())["deliveries"] == []
