"""``POST /api/v1/alerts/preview`` over a real socket: the same body and token as a submit,
nothing stored, and per channel the content its deliveries then report (the deliveries API)
and the receivers counted in the channel's unit; checked for the log and webhook channels
against the file and the HTTP receiver."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from broadcaster.api.app import make_app
from broadcaster.cap.serialize import to_json, to_xml
from broadcaster.channel import ChannelPreview
from broadcaster.service import BroadcasterService
from tests.core.previewing import PreviewedAndSent, assert_sent_as_previewed
from tests.core.receiver import SECRET, WebhookReceiver
from tests.core.support import make_alert, make_config, village_targets

TOKEN = "preview-token-0123456789"
XML = {"Content-Type": "application/cap+xml"}


@pytest.fixture
async def api(
    tmp_path: Path,
) -> AsyncIterator[tuple[aiohttp.ClientSession, BroadcasterService, WebhookReceiver]]:
    receiver = WebhookReceiver()
    hook_server = TestServer(receiver.app(), host="127.0.0.1")
    await hook_server.start_server()
    base = str(hook_server.make_url("")).rstrip("/")
    hooks = [
        {"id": f"node-{n}", "channel": "hook", "name": f"旗县节点{n}", "address": f"{base}/n{n}"}
        | {"division": "150921001001"}
        for n in range(2)
    ]
    channels = {
        "log": {"type": "log"},
        "hook": {"type": "webhook", "secret": SECRET.decode()},
    }
    config = make_config(tmp_path, channels, [*village_targets("log", 5), *hooks])
    tokens = config.api.model_validate({"tokens": [{"name": "ci", "token": TOKEN}]})
    service = BroadcasterService(config.model_copy(update={"api": tokens}))
    server = TestServer(make_app(service), host="127.0.0.1")
    await server.start_server()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(base_url=str(server.make_url("/")), headers=headers) as s:
        yield s, service, receiver
    await server.close()
    await hook_server.close()


def _preview(doc: dict[str, Any]) -> ChannelPreview:
    return ChannelPreview(
        title=doc["title"],
        unit=doc["unit"],
        targets=doc["targets"],
        contents=tuple(doc["contents"]),
        notes=tuple(doc["notes"]),
    )


async def _deliveries(session: aiohttp.ClientSession, alert_id: str) -> dict[str, Any]:
    for _ in range(200):
        async with session.get(f"/api/v1/alerts/{alert_id}/deliveries") as response:
            body: dict[str, Any] = await response.json()
        if body["complete"]:
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(body)


async def test_preview_then_submit_log_and_webhook_send_what_was_previewed(api) -> None:  # type: ignore[no-untyped-def]
    session, service, receiver = api
    alert = make_alert("api-preview")
    english = replace(alert.infos[0], language="en", headline="Blizzard warning")
    alert = replace(alert, infos=[alert.infos[0], english])
    xml = to_xml(alert)
    async with session.post("/api/v1/alerts/preview", data=xml, headers=XML) as response:
        assert response.status == 200
        previews = (await response.json())["channels"]
    assert sorted(previews) == ["hook", "log"]
    assert (previews["log"]["unit"], previews["log"]["targets"]) == ("targets", 5)
    assert (previews["hook"]["unit"], previews["hook"]["targets"]) == ("endpoints", 2)
    async with session.post("/api/v1/alerts", data=xml, headers=XML) as response:
        alert_id = (await response.json())["id"]
    body = await _deliveries(session, alert_id)
    assert body["summary"] == {"hook": {"confirmed": 2}, "log": {"confirmed": 5}}
    for channel in ("log", "hook"):
        rows = [d for d in body["deliveries"] if d["channel"] == channel]
        assert_sent_as_previewed(PreviewedAndSent(_preview(previews[channel]), {}, rows))
    (log_content,) = previews["log"]["contents"]
    assert [t["language"] for t in log_content["texts"]] == ["zh-CN"]
    lines = (service.config.server.data_dir / "deliveries.jsonl").read_text(encoding="utf-8")
    written = [json.loads(line) for line in lines.splitlines()]
    assert len(written) == 5 and all(w["texts"] == log_content["texts"] for w in written)
    (hook_content,) = previews["hook"]["contents"]
    assert len(receiver.received) == 2
    assert all(r["body"]["texts"] == hook_content["texts"] for r in receiver.received)


async def test_preview_stores_nothing_and_refuses_what_a_submit_refuses(api) -> None:  # type: ignore[no-untyped-def]
    session, service, _ = api
    form = to_json(make_alert("api-preview-json"))
    async with session.post("/api/v1/alerts/preview?channels=log", json=form) as response:
        assert response.status == 200
        assert list((await response.json())["channels"]) == ["log"]
    stored = await service.database.run(
        service.database.query, "SELECT count(*) AS n FROM alerts", ()
    )
    assert stored == [{"n": 0}]
    async with session.post("/api/v1/alerts/preview", data=b"<alert/>", headers=XML) as response:
        assert response.status == 400
        assert (await response.json())["problems"]
    async with session.post("/api/v1/alerts/preview?channels=nope", json=form) as response:
        assert response.status == 400
        assert "nope" in (await response.json())["error"]
    async with session.post(
        "/api/v1/alerts/preview", json=form, headers={"Authorization": "Bearer wrong"}
    ) as response:
        assert response.status == 401
    async with session.post(
        "/api/v1/alerts/preview", data=b"x", headers={"Content-Type": "text/plain"}
    ) as response:
        assert response.status == 415
