"""The webhook channel against a real HTTP receiver: statuses, Retry-After, timeouts, HMAC."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from tests.core.receiver import SECRET, WebhookReceiver
from tests.core.support import make_alert, make_config, running, wait_until_complete


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[WebhookReceiver, str]]:
    state = WebhookReceiver()
    server = TestServer(state.app())
    await server.start_server()
    yield state, str(server.make_url("")).rstrip("/")
    await server.close()


def _targets(base: str, names: list[str]) -> list[dict[str, object]]:
    return [
        {
            "id": n,
            "channel": "hook",
            "name": n,
            "division": "150921001001",
            "address": f"{base}/{n}",
        }
        for n in names
    ]


def _channels(**extra: object) -> dict[str, dict[str, object]]:
    return {"hook": {"type": "webhook", "secret": SECRET.decode(), "timeout_seconds": 0.5} | extra}


async def test_status_codes_map_to_confirm_retry_and_fail(tmp_path: Path, receiver) -> None:  # type: ignore[no-untyped-def]
    state, base = receiver
    state.script = {"ok": [201], "flaky": [503, 502, 200], "gone": [410], "bad": [400]}
    targets = _targets(base, ["ok", "flaky", "gone", "bad"])
    async with running(make_config(tmp_path, _channels(), targets)) as service:
        result = await service.submit(make_alert(), origin="test")
        summary = await wait_until_complete(service, result.alert_id)
        assert summary == {"hook": {"confirmed": 2, "failed": 2}}
        rows = {
            r["target_id"]: r
            for r in await service.database.run(service.outbox.deliveries, result.alert_id)
        }
    assert rows["flaky"]["attempts"] == 3 and rows["flaky"]["state"] == "confirmed"
    assert rows["gone"]["attempts"] == 1 and "410" in rows["gone"]["last_error"]
    assert state.bad_signatures == 0
    keys = [r["key"] for r in state.received if r["path"] == "flaky"]
    assert len(keys) == 3 and len(set(keys)) == 1  # one idempotency key across retries
    body = state.received[0]["body"]
    assert body["alert"]["identifier"] == "test-1" and body["texts"][0]["title"]


async def test_retry_after_is_honoured(tmp_path: Path, receiver) -> None:  # type: ignore[no-untyped-def]
    state, base = receiver
    state.script = {"busy": [429, 200]}
    state.retry_after = "1"
    async with running(make_config(tmp_path, _channels(), _targets(base, ["busy"]))) as service:
        result = await service.submit(make_alert(), origin="test")
        started = time.monotonic()
        assert await wait_until_complete(service, result.alert_id) == {"hook": {"confirmed": 1}}
        assert time.monotonic() - started >= 0.9


async def test_timeouts_are_retried(tmp_path: Path, receiver) -> None:  # type: ignore[no-untyped-def]
    state, base = receiver
    state.delay = 0.8  # longer than the channel's 0.5 s timeout
    async with running(make_config(tmp_path, _channels(), _targets(base, ["slow"]))) as service:
        result = await service.submit(make_alert(), origin="test")
        rows = []
        for _ in range(100):
            rows = await service.database.run(service.outbox.deliveries, result.alert_id)
            if rows[0]["attempts"] >= 2:
                break
            await __import__("asyncio").sleep(0.05)
        assert rows[0]["attempts"] >= 2 and "no answer" in rows[0]["last_error"]
        state.delay = 0
        assert await wait_until_complete(service, result.alert_id) == {"hook": {"confirmed": 1}}


async def test_unreachable_receiver_is_retried_not_failed(tmp_path: Path) -> None:
    targets = [
        {
            "id": "x",
            "channel": "hook",
            "name": "x",
            "division": "150921001001",
            "address": "http://127.0.0.1:9/none",
        }
    ]
    async with running(make_config(tmp_path, _channels(), targets)) as service:
        result = await service.submit(make_alert(expires_in=2), origin="test")
        summary = await wait_until_complete(service, result.alert_id, timeout=10)
        assert summary == {"hook": {"expired": 1}}
        rows = await service.database.run(service.outbox.deliveries, result.alert_id)
        assert rows[0]["attempts"] >= 2
