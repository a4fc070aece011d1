"""What the officers are told an alert will reach is what approval plans: the compose preview
and the approver's "Would reach" count the targets intake hands the channels, so a Cancel
counts every target its alert reached, and the city's own devices in a county the alert is
relayed to are not counted (the county delivers there). Real HTTP on loopback."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import aiohttp

from broadcaster.cap import MsgType
from broadcaster.cap.serialize import to_xml
from broadcaster.service import BroadcasterService
from tests.console.support import (
    ConsoleClient,
    compose_form,
    console_config,
    console_server,
    demo_targets,
)
from tests.core.support import make_alert
from tests.relay.test_relay_contract import closed_port

SPEAKERS = {"speaker": {"type": "tests.console.support:BoxChannel"}}


def would_reach(board: str) -> dict[str, int]:
    """The approver's "Would reach" line: a count per channel."""
    found = re.search(r'<p id="planned">(.*?)</p>', board, re.S)
    assert found is not None, "no planned line on the board"
    text = re.sub(r"<[^>]+>", " ", found.group(1)).split(":", 1)[1]
    return {part.split()[0]: int(part.split()[-1]) for part in text.split("·") if part.strip()}


async def planned(service: BroadcasterService, alert_id: str) -> dict[str, int]:
    """The deliveries approval planned, counted per channel."""
    rows = await service.store.deliveries.deliveries(alert_id)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["channel"]] = counts.get(row["channel"], 0) + 1
    return counts


async def test_a_held_cancel_shows_every_target_its_alert_reached(tmp_path: Path) -> None:
    targets = demo_targets("speaker")
    config = console_config(tmp_path, SPEAKERS, targets, audio_preview=False)
    async with console_server(config) as srv:
        admin, approver = ConsoleClient(srv), ConsoleClient(srv)
        try:
            await admin.login("admin")
            await admin.get("/console/tokens")
            await approver.login("approver")
            await approver.get("/console/")
            _, page = await admin.post(
                "/console/tokens", {"name": "field", "requires_approval": "on"}
            )
            found = re.search(r"(bct_[A-Za-z0-9_-]{43})", page)
            assert found is not None
            field, trusted = found.group(1), (tmp_path / "data" / "api-token").read_text().strip()
            original = make_alert("orig-1")
            cancel = make_alert(
                "cancel-1",
                msg_type=MsgType.CANCEL,
                geocodes=(targets[0]["division"],),  # one village named, as a sender might
                references=[original],
            )
            api = str(srv.server.make_url("/api/v1/alerts"))
            async with aiohttp.ClientSession() as session:
                for token, alert in ((trusted, original), (field, cancel)):
                    headers = {
                        "Authorization": f"Bearer {token}",
                        "Content-Type": "application/cap+xml",
                    }
                    async with session.post(api, data=to_xml(alert), headers=headers) as r:
                        assert r.status == 201, await r.text()
                        answer = await r.json()
                    if alert is original:
                        original_id = answer["id"]
                        for _ in range(200):
                            rows = await srv.service.store.deliveries.deliveries(original_id)
                            if rows and all(row["state"] == "confirmed" for row in rows):
                                break
                            await asyncio.sleep(0.05)
            assert answer["state"] == "pending"
            reached = len(await srv.service.store.deliveries.deliveries(original_id))
            _, board = await approver.get(f"/console/alerts/{answer['id']}")
            shown = would_reach(board)
            status, _ = await approver.post(
                f"/console/alerts/{answer['id']}/approve", {"reason": ""}
            )
            assert status == 200
            assert shown == {"speaker": reached} == await planned(srv.service, answer["id"])
            assert reached > 1
        finally:
            await admin.close()
            await approver.close()


async def test_devices_a_relayed_county_serves_are_not_counted(tmp_path: Path) -> None:
    relay = {
        "type": "relay",
        "nodes": [
            {"division": "150921", "url": f"http://127.0.0.1:{closed_port()}", "token": "t" * 20}
        ],
    }
    channels = SPEAKERS | {"relay": relay}
    config = console_config(tmp_path, channels, demo_targets("speaker"), audio_preview=False)
    async with console_server(config) as srv:
        drafter, approver = ConsoleClient(srv), ConsoleClient(srv)
        try:
            await drafter.login("drafter")
            await drafter.get("/console/")
            await approver.login("approver")
            await approver.get("/console/")
            form = compose_form(channels=("speaker", "relay"))
            status, body = await drafter.post(
                "/console/compose/preview", form, headers={"Accept": "application/json"}
            )
            assert status == 200, body
            preview = json.loads(body)["channels"]
            await drafter.post("/console/compose", form)
            found = re.search(r"/console/alerts/(a[0-9a-f]+)", drafter.last_path)
            assert found is not None
            alert_id = found.group(1)
            _, board = await approver.get(f"/console/alerts/{alert_id}")
            shown = would_reach(board)
            status, _ = await approver.post(f"/console/alerts/{alert_id}/approve", {"reason": "ok"})
            assert status == 200
            sent = await planned(srv.service, alert_id)
            assert preview["speaker"]["targets"] == sent.get("speaker", 0) == shown["speaker"]
            assert preview["relay"]["targets"] == sent["relay"] == shown["relay"] == 1
        finally:
            await drafter.close()
            await approver.close()
