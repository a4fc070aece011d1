"""The CMPP client against the simulated ISMG over real loopback TCP, in CMPP 2.0 and 3.0:
authenticated connect, long UCS-2 and GBK messages, status reports matched, flow control
(Result 8), refused connects and a connection dropped mid-window."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from drivers.cmpp.client import CmppBind, CmppClient, CmppClientConfig
from drivers.cmpp.simulator import cmpp_simulator
from drivers.smsgw.errors import GatewayBindError, GatewayConnectionError, GatewayThrottledError
from drivers.smsgw.results import Receipt, ReceiptState
from drivers.smsgw.segments import join_payload
from drivers.smsgw.simulator import SmscFaults, SmscSettings, SmscSimulator

from ..smsgw.leaks import assert_no_driver_tasks

TEXT = "乌兰察布市应急管理局提醒：" + "强降雨即将来临，请远离河道和低洼地带，注意防范山洪。" * 6
Factory = Callable[..., Awaitable[SmscSimulator[Any]]]


@pytest.fixture
async def make_ismg() -> AsyncIterator[Factory]:
    started: list[SmscSimulator[Any]] = []

    async def factory(version: str, faults: SmscFaults | None = None, **settings: Any) -> Any:
        settings.setdefault("accounts", {"901234": "s3cret"})
        settings.setdefault("receipt_delay", 0.05)
        simulator = cmpp_simulator(SmscSettings(**settings), faults, version=version)
        await simulator.start()
        started.append(simulator)
        return simulator

    yield factory
    for simulator in started:
        await simulator.stop()
    await assert_no_driver_tasks()


def config(port: int, version: str, **settings: Any) -> CmppClientConfig:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "sp_id": "901234",
        "shared_secret": "s3cret",
        "service_id": "WARN",
        "src_id": "10657001",
        "version": version,
        "request_timeout": 3.0,
        "connect_timeout": 3.0,
        "reconnect_min": 0.05,
        "reconnect_max": 0.2,
    }
    values.update(settings)
    return CmppClientConfig(**values)


async def _receipts(client: CmppClient, count: int) -> list[Receipt]:
    found: list[Receipt] = []
    async with asyncio.timeout(10):
        async for receipt in client.receipts():
            found.append(receipt)
            if len(found) == count:
                break
    return found


@pytest.mark.parametrize("version", ["2.0", "3.0"])
@pytest.mark.parametrize(("coding", "fmt"), [("ucs2", 8), ("gbk", 15)])
async def test_long_message_arrives_and_every_report_is_matched(
    make_ismg: Factory, version: str, coding: str, fmt: int
) -> None:
    ismg = await make_ismg(version)
    client = CmppClient(config(ismg.port, version, coding=coding))
    await client.start()
    try:
        submission = await client.submit("+8613800138000", TEXT)
        receipts = await _receipts(client, len(submission.segments))
    finally:
        await client.close()
    assert len(submission.segments) == 3
    parts = [
        join_payload(r.segment.payload, r.segment.udhi, r.segment.coding) for r in ismg.records
    ]
    assert "".join(text for text, _ in parts) == TEXT
    assert all(r.segment.coding == fmt and r.segment.udhi for r in ismg.records)
    assert [meta[2] for _, meta in parts] == list(range(1, len(parts) + 1))
    assert sorted(r.message_id for r in receipts) == sorted(submission.message_ids)
    assert all(r.state is ReceiptState.DELIVERED and r.stat == "DELIVRD" for r in receipts)
    assert all(r.destination == "+8613800138000" and r.segment is not None for r in receipts)


async def test_outcome_mix_and_flow_control(make_ismg: Factory) -> None:
    outcomes = {ReceiptState.UNDELIVERABLE: 1.0, ReceiptState.EXPIRED: 1.0}
    ismg = await make_ismg("3.0", rate_per_second=40, outcomes=outcomes, seed=3)
    client = CmppClient(config(ismg.port, "3.0"))
    await client.start()
    ids: list[str] = []

    async def send(number: int) -> None:
        for attempt in range(200):
            try:
                ids.extend((await client.submit(f"1380013{number:04d}", "演练")).message_ids)
                return
            except GatewayThrottledError as exc:
                assert exc.code == 8
                await asyncio.sleep(0.02 * (attempt + 1))
        raise AssertionError("never accepted")

    try:
        await asyncio.gather(*(send(n) for n in range(80)))
        receipts = await _receipts(client, 80)
    finally:
        await client.close()
    assert ismg.throttled > 0
    assert sorted(ids) == sorted(r.message_id for r in ismg.records)
    assert {r.message_id: r.state for r in receipts} == dict(ismg.receipts_sent)
    assert {r.stat for r in receipts} == {"UNDELIV", "EXPIRED"}


@pytest.mark.parametrize(("secret", "status"), [("wrong", 3), ("s3cret", 4)])
async def test_refused_connect_is_a_bind_error(
    make_ismg: Factory, secret: str, status: int
) -> None:
    ismg = await make_ismg("2.0")
    bind = CmppBind("b", config(ismg.port, "3.0", shared_secret=secret), lambda _: None)
    with pytest.raises(GatewayBindError) as caught:
        await bind.open("127.0.0.1", ismg.port)
    assert caught.value.code == status
    assert ismg.binds == 0


async def test_dropped_connection_mid_window(make_ismg: Factory) -> None:
    ismg = await make_ismg("3.0", faults=SmscFaults(drop_after_answers=4, answer_delay=0.05))
    client = CmppClient(config(ismg.port, "3.0", reconnect_min=5, reconnect_max=5))
    await client.start()
    try:
        outcomes = await asyncio.gather(
            *(client.submit(f"1370000{n:04d}", "x") for n in range(10)), return_exceptions=True
        )
    finally:
        await client.close()
    answered = sorted(o.message_ids[0] for o in outcomes if not isinstance(o, BaseException))
    assert answered == sorted(r.message_id for r in ismg.records) and len(answered) == 4
    failed = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(failed) == 6 and all(isinstance(e, GatewayConnectionError) for e in failed)


async def test_keepalive_active_test_is_answered(make_ismg: Factory) -> None:
    ismg = await make_ismg("2.0")
    client = CmppClient(config(ismg.port, "2.0", keepalive_interval=0.05, binds=2))
    await client.start()
    try:
        await asyncio.sleep(0.4)
        assert client.binds_up == 2 and client.bind_count == 2
    finally:
        await client.close()


@pytest.mark.parametrize("version", ["2.0", "3.0"])
async def test_each_submit_is_valid_until_the_callers_time(
    make_ismg: Factory, version: str
) -> None:
    ismg = await make_ismg(version)
    client = CmppClient(config(ismg.port, version))
    await client.start()
    try:
        start = time.time()
        await client.submit("8613600000001", "x", valid_until=start + 3_600)
        await client.submit("8613600000002", "x", valid_until=start + 10)  # nearly expired
        await client.submit("8613600000003", "x")
    finally:
        await client.close()
    hour, soon, unset = (record.segment.validity for record in ismg.records)
    assert abs(valid_time_moment(hour) - (start + 3_600)) < 2
    assert abs(valid_time_moment(soon) - (start + 300)) < 2  # at least five minutes
    assert unset == ""  # the ISMG's default, as before


def valid_time_moment(value: str) -> float:
    """A ValId_Time (``YYMMDDhhmmsstnnp``, offset in quarter hours) read by hand."""
    quarters = int(value[13:15]) * (1 if value[15] == "+" else -1)
    zone = timezone(timedelta(minutes=15 * quarters))
    local = datetime.strptime(value[:12], "%y%m%d%H%M%S").replace(tzinfo=zone)
    return local.timestamp() + int(value[12]) / 10
