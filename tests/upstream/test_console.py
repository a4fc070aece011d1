"""Upstream sources in the console, over the demo division list: the area filter by geocode and
by polygon, an officer approving what a review source brought, and the sources' health on the
devices page."""

from __future__ import annotations

import asyncio
from pathlib import Path

from broadcaster.cap.serialize import to_xml
from broadcaster.federationconfig import NeighbourConfig
from tests.console.support import ConsoleClient, console_config, console_server, demo_targets
from tests.core.support import RecordingChannel, make_alert, wait_for_deliveries
from tests.upstream.support import feed_server, with_sources

REGION = "region-token-1234"
CHANNELS = {"rec": {"type": "tests.core.support:RecordingChannel"}}
BEIJING = [(39.8, 116.3), (39.8, 116.5), (40.0, 116.5), (40.0, 116.3), (39.8, 116.3)]
ZHUOZI_SEAT = [(40.8, 112.4), (40.8, 112.7), (41.0, 112.7), (41.0, 112.4), (40.8, 112.4)]


async def test_review_in_the_console_and_health_on_the_devices_page(tmp_path: Path) -> None:
    RecordingChannel.sent.clear()
    async with feed_server(failure=503) as feed:
        sources = [
            {"name": "region", "mode": "push", "token": REGION, "policy": "review"},
            {"name": "datong", "mode": "poll", "url": f"{feed.base}/feed.atom"},
        ]
        base = console_config(tmp_path, CHANNELS, demo_targets("rec"), audio_preview=False)
        datong = NeighbourConfig.model_validate(
            {"name": "datong", "token": "datong-reads-here"}
            | {"push_url": "http://127.0.0.1:9/api/v1/alerts", "push_token": "ours-there"}
        )
        config = with_sources(base, *sources, neighbour=[datong])
        async with console_server(config) as running:
            service = running.service
            gate = service.upstream.gates["region"]
            # Our area is the demo city (the root of the division list).
            far = await gate.ingest(
                to_xml(make_alert("far", geocodes=[], polygon=BEIJING)), service.clock()
            )
            assert far.outcome == "outside-area"
            county = await gate.ingest(to_xml(make_alert("county-1")), service.clock())
            drawn = make_alert("drawn", geocodes=[], polygon=ZHUOZI_SEAT)
            near = await gate.ingest(to_xml(drawn), service.clock())
            assert (county.outcome, near.outcome) == ("pending", "pending")
            assert near.alert_id is not None
            client = ConsoleClient(running)
            try:
                await client.login("approver")
                status, page = await client.get("/console/approvals")
                assert status == 200 and near.alert_id in page and "upstream region" in page
                status, _ = await client.post(
                    f"/console/alerts/{near.alert_id}/approve", {"reason": "区域平台已核实"}
                )
                assert status == 200
                await wait_for_deliveries(
                    service,
                    near.alert_id,
                    lambda rows: bool(rows) and all(r["state"] == "confirmed" for r in rows),
                )
                assert service.upstream.health()["datong"].failures >= 1
                pushes = service.neighbours.health["datong"]
                async with asyncio.timeout(10):
                    while not pushes.failures:
                        await asyncio.sleep(0.02)
                status, page = await client.get("/console/devices")
            finally:
                await client.close()
    assert status == 200
    assert 'data-source="datong"' in page and 'data-source="region"' in page
    row = page.split('data-source="datong"')[1].split("</tr>")[0]
    assert "FAULT" in row and "HTTP 503" in row
    row = page.split('data-source="datong"')[2].split("</tr>")[0]
    assert "push to neighbour" in row and "FAULT" in row and "cannot push to 127.0.0.1:9" in row
    row = page.split('data-source="region"')[1].split("</tr>")[0]
    assert "OK" in row and "pending</span>: 2" in row and "outside-area</span>: 1" in row
