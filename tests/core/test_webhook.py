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


async def test_a_target_receiver_failing_does_not_fail_the_channel(tmp_path: Path) -> None:
    """A target that names its own receiver owns that receiver's failures (on the delivery and
    per receiver in the health's devices); the channel's health follows its own ``url``."""
    main, own = WebhookReceiver(), WebhookReceiver()
    servers = [TestServer(main.app()), TestServer(own.app())]
    for server in servers:
        await server.start_server()
    main_url, own_url = (str(s.make_url("")).rstrip("/") for s in servers)
    try:
        plain = {"id": "plain", "channel": "hook", "name": "plain", "division": "150921001001"}
        targets = [*_targets(own_url, ["refuses"]), plain]
        own.script = {"refuses": [400]}
        main.script = {"in": [200, 400]}
        config = make_config(tmp_path, _channels(url=f"{main_url}/in?key=k3y"), targets)
        async with running(config) as service:
            channel = service.channels["hook"]
            first = await service.submit(make_alert("hook-1"), origin="test")
            summary = await wait_until_complete(service, first.alert_id)
            assert summary == {"hook": {"confirmed": 1, "failed": 1}}
            health = await channel.health()
            own_host, main_host = own_url[7:], main_url[7:]
            assert health.ok and "1 of 2 receivers failing" in health.detail
            assert "HTTP 400" in health.devices[own_host]["last_error"]
            assert health.devices[main_host] | {"updated_at": 0} == {
                "sent": 1,
                "failed": 0,
                "last_error": "",
                "updated_at": 0,
            }
            assert "k3y" not in str(health)

            second = await service.submit(make_alert("hook-2"), origin="test")
            await wait_until_complete(service, second.alert_id)
            health = await channel.health()
            assert not health.ok and "HTTP 400" in health.detail
    finally:
        for server in servers:
            await server.close()
