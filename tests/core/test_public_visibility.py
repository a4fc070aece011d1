"""What the public sees, over a real socket with no token: alerts awaiting approval, rejected
or withdrawn ones and held messages answer exactly as an unknown id does on every public page
and in the CAP feed, whatever state they reach later; released ones are shown."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from broadcaster.api.app import make_app
from broadcaster.cap import MsgType, Status
from broadcaster.errors import ApprovalError
from broadcaster.service import BroadcasterService
from tests.core.support import make_alert, make_config, village_targets

CHANNELS = {"rec": {"type": "tests.core.support:RecordingChannel"}}
UNKNOWN = "a0000000000000000000"


@dataclass
class Site:
    session: aiohttp.ClientSession
    service: BroadcasterService

    async def get(self, path: str) -> tuple[int, bytes]:
        async with self.session.get(path) as response:
            return response.status, await response.read()

    async def draft(self, identifier: str, expires_in: float = 3600) -> str:
        """An alert an officer composed; it waits for a second one."""
        result = await self.service.submit(
            make_alert(identifier, headline=f"秘密草稿 {identifier}", expires_in=expires_in),
            origin="console:wang",
            requested_by="console:wang",
        )
        assert result.state == "pending"
        return result.alert_id

    async def listed(self) -> bytes:
        pages = [await self.get("/alerts"), await self.get("/feed.atom")]
        assert [status for status, _ in pages] == [200, 200]
        return b"".join(body for _, body in pages)


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    service = BroadcasterService(make_config(tmp_path, CHANNELS, village_targets("rec", 2)))
    server = TestServer(make_app(service))
    await server.start_server()
    try:
        async with aiohttp.ClientSession(base_url=str(server.make_url("/"))) as session:
            yield Site(session, service)
    finally:
        await server.close()


async def _answers(site: Site, alert_id: str) -> list[tuple[int, bytes]]:
    return [
        await site.get(f"/alerts/{alert_id}"),
        await site.get(f"/feed/alerts/{alert_id}.xml"),
    ]


async def test_unreleased_alerts_answer_as_unknown_ones(site: Site) -> None:
    service = site.service
    unknown = await _answers(site, UNKNOWN)
    assert [status for status, _ in unknown] == [404, 404]

    pending = await site.draft("pending")
    rejected = await site.draft("rejected")
    await service.reject(rejected, by="console:li", reason="wrong county")
    withdrawn = await site.draft("withdrawn")
    await service.reject(withdrawn, by="console:wang", reason="withdrawn by its author")
    expired = await site.draft("expired", expires_in=60)
    await service.database.run(service.alerts.expire_due, time.time() + 120)
    rejected_then_expired = await site.draft("rejected-expired", expires_in=60)
    await service.reject(rejected_then_expired, by="console:li", reason="no")
    await service.database.run(service.alerts.expire_due, time.time() + 120)
    cancelled = await site.draft("cancelled")
    await service.cancel(cancelled, reason="never mind", origin="api:duty")
    system = await service.submit(make_alert("system", status=Status.SYSTEM), origin="api:duty")
    hidden = {
        "pending": pending,
        "rejected": rejected,
        "withdrawn": withdrawn,
        "pending, then expired": expired,
        "rejected, then expired": rejected_then_expired,
        "pending, then cancelled": cancelled,
        "held System message": system.alert_id,
    }
    states = {
        name: (await service.database.run(service.alerts.get, alert_id))["state"]
        for name, alert_id in hidden.items()
    }
    assert set(states.values()) == {"held", "expired", "cancelled"}, states
    for name, alert_id in hidden.items():
        assert await _answers(site, alert_id) == unknown, name
    listed = await site.listed()
    assert "秘密草稿".encode() not in listed
    for alert_id in hidden.values():
        assert alert_id.encode() not in listed


async def test_released_alerts_are_shown_until_and_after_they_end(site: Site) -> None:
    service = site.service
    approved = await site.draft("approved")
    assert [status for status, _ in await _answers(site, approved)] == [404, 404]
    await service.approve(approved, by="console:li", reason="checked")
    direct = await service.submit(make_alert("direct"), origin="api:duty")
    for alert_id in (approved, direct.alert_id):
        assert [status for status, _ in await _answers(site, alert_id)] == [200, 200]
        assert alert_id.encode() in await site.listed()
    await service.cancel(direct.alert_id, reason="all clear", origin="api:duty")
    status, html = await site.get(f"/alerts/{direct.alert_id}")
    assert status == 200 and "This warning has been cancelled." in html.decode()


async def test_a_pending_alert_cancelled_meanwhile_can_no_longer_be_approved(
    site: Site,
) -> None:
    service = site.service
    cancelled = await site.draft("cancelled")
    await service.cancel(cancelled, reason="never mind", origin="api:duty")
    with pytest.raises(ApprovalError, match="cancelled"):
        await service.approve(cancelled, by="console:li", reason="ok")
    record = await service.database.run(service.alerts.get, cancelled)
    assert record["state"] == "cancelled" and record["approval"]["state"] == "pending"
    summary = await service.database.run(service.outbox.summary, cancelled)
    assert summary == {}
    assert await _answers(site, cancelled) == await _answers(site, UNKNOWN)


async def test_a_cancel_awaiting_approval_is_not_public_either(site: Site) -> None:
    service = site.service
    original = make_alert("flood")
    live = await service.submit(original, origin="api:duty")
    cancel = make_alert("flood-cancel", msg_type=MsgType.CANCEL, references=[original])
    pending = await service.submit(cancel, origin="console:wang", requested_by="console:wang")
    assert pending.state == "pending"
    assert await _answers(site, pending.alert_id) == await _answers(site, UNKNOWN)
    assert [status for status, _ in await _answers(site, live.alert_id)] == [200, 200]
