"""A city plans none of its own devices in a county it relays to; with ``fallback = "direct"``
it delivers to them itself once that county node stays unreachable, counted from the first
failure even across a restart of the city, and says so on the relay delivery, in the board's
target list and in the audit log; meanwhile the node shows as an unreachable device."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from broadcaster.audit import AuditLog
from broadcaster.cap.serialize import to_xml
from broadcaster.config import Config
from broadcaster.console.devices import device_rows
from broadcaster.service import BroadcasterService
from tests.core.support import make_alert, make_config, running, village_targets
from tests.relay.test_relay_contract import closed_port

ZHUOZI, LIANGCHENG = "150921000000", "150925000000"


def _city(tmp_path: Path, fallback: str, after: str = "1s") -> Config:
    relay = {
        "type": "relay",
        "fallback": fallback,
        "fallback_after": after,
        "nodes": [
            {"division": "150921", "url": f"http://127.0.0.1:{closed_port()}", "token": "t" * 20}
        ],
    }
    targets = village_targets("log", 5, ZHUOZI) + village_targets("log", 3, LIANGCHENG)
    return make_config(tmp_path, {"relay": relay, "log": {"type": "log"}}, targets)


async def _deliveries(service: BroadcasterService, alert_id: str) -> list[dict[str, object]]:
    return await service.store.deliveries.deliveries(alert_id)


async def _settled(service: BroadcasterService, alert_id: str, relay_state: str) -> list[dict]:  # type: ignore[type-arg]
    for _ in range(300):
        rows = await _deliveries(service, alert_id)
        relay = [r for r in rows if r["channel"] == "relay"]
        logs = [r for r in rows if r["channel"] == "log"]
        if relay[0]["state"] == relay_state and all(r["state"] == "confirmed" for r in logs):
            return rows
        await asyncio.sleep(0.05)
    raise AssertionError(rows)


async def _between_attempts(service: BroadcasterService, alert_id: str) -> list[dict]:  # type: ignore[type-arg]
    """The deliveries once the relay waits for its next attempt: a retry in flight shows as
    ``sending`` for as long as the refused connection takes."""
    for _ in range(100):
        rows = await _deliveries(service, alert_id)
        if rows[0]["state"] != "sending":
            return rows
        await asyncio.sleep(0.02)
    raise AssertionError(rows)


async def test_the_city_delivers_itself_when_the_county_stays_unreachable(tmp_path: Path) -> None:
    async with running(_city(tmp_path, "direct")) as city:
        alert = make_alert("fallback-1", geocodes=(ZHUOZI, LIANGCHENG))
        result = await city.submit(to_xml(alert), origin="test")
        assert result.planned == {"relay": 1, "log": 3}, "卓资县's own devices are the county's"
        rows = await _settled(city, result.alert_id, "failed")
        relay = next(r for r in rows if r["channel"] == "relay")
        error = str(relay["last_error"])
        assert "county node unreachable for" in error
        assert "delivers to the county's devices itself (log 5)" in error
        direct = [
            r for r in rows if r["channel"] == "log" and r["target_id"].startswith("log-150921")
        ]
        assert len(direct) == 5 and {r["state"] for r in direct} == {"confirmed"}
        log = AuditLog(city.database)
        entries = await city.database.run(log.entries, limit=100)
        fallback = [e for e in entries if e.action == "relay.fallback"]
        assert len(fallback) == 1 and fallback[0].subject == result.alert_id
        assert fallback[0].detail["planned"] == {"log": 5}


async def test_without_fallback_the_county_devices_stay_the_county_nodes(tmp_path: Path) -> None:
    async with running(_city(tmp_path, "none")) as city:
        alert = make_alert("fallback-2", geocodes=(ZHUOZI,), expires_in=3)
        result = await city.submit(to_xml(alert), origin="test")
        assert result.planned == {"relay": 1}
        await asyncio.sleep(1.5)
        rows = await _between_attempts(city, result.alert_id)
        assert [r["channel"] for r in rows] == ["relay"]
        assert rows[0]["state"] == "queued" and "unreachable" in str(rows[0]["last_error"])
        devices = (await city.health())["relay"].devices
        assert devices["150921"]["state"] == "unreachable"
        (row,) = device_rows(devices, time.time())
        assert row["ok"] is False and "unreachable" in str(row["known"]["last_error"])


async def test_a_cancel_reaches_the_devices_the_city_warned_in_the_county(tmp_path: Path) -> None:
    async with running(_city(tmp_path, "direct")) as city:
        alert = make_alert("fallback-3", geocodes=(ZHUOZI, LIANGCHENG))
        result = await city.submit(to_xml(alert), origin="test")
        await _settled(city, result.alert_id, "failed")
        cancel = await city.cancel(result.alert_id, reason="lifted", origin="test")
        # Every device that gave the warning, 卓资县's five the city warned itself included,
        # and the county node, which may have it from elsewhere.
        assert cancel.planned == {"relay": 1, "log": 8}


async def test_a_restart_of_the_city_does_not_put_the_fallback_off(tmp_path: Path) -> None:
    config = _city(tmp_path, "direct", after="4s")
    submitted = time.time()
    async with running(config) as city:
        alert = make_alert("fallback-4", geocodes=(ZHUOZI,))
        result = await city.submit(to_xml(alert), origin="test")
        await asyncio.sleep(submitted + 3 - time.time())
        rows = await _deliveries(city, result.alert_id)
        assert [r["channel"] for r in rows] == ["relay"] and rows[0]["state"] != "failed"
        assert "unreachable" in str(rows[0]["last_error"])
    restarted = time.time()
    async with running(config) as city:
        devices = (await city.health())["relay"].devices
        assert devices["150921"]["state"] == "unreachable"
        assert submitted <= devices["150921"]["since"] < submitted + 1
        rows = await _settled(city, result.alert_id, "failed")
        fell_back = time.time()
        entries = await city.database.run(AuditLog(city.database).entries, limit=100)
    # Four seconds from the first failure, before the restart: not four from the restart.
    assert fell_back - restarted < 2.5, fell_back - restarted
    relay = next(r for r in rows if r["channel"] == "relay")
    assert "delivers to the county's devices itself (log 5)" in str(relay["last_error"])
    assert len([e for e in entries if e.action == "relay.fallback"]) == 1
