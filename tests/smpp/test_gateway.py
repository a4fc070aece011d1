"""The SMPP client against the simulated SMSC over real loopback TCP: binds, long UCS-2
messages, receipts, throttling, dropped connections, refused binds and garbage."""

from __future__ import annotations

import asyncio
import socket

import pytest

from drivers.smpp.client import SmppClient
from drivers.smsgw.errors import (
    GatewayBindError,
    GatewayConnectionError,
    GatewayConnectionLostError,
    GatewayMessageError,
    GatewayThrottledError,
)
from drivers.smsgw.results import Receipt, ReceiptState
from drivers.smsgw.segments import join_payload
from drivers.smsgw.simulator import SmscFaults

from .conftest import SimulatorFactory, client_config

CHINESE = (
    "乌兰察布市气象台发布暴雨红色预警信号：预计未来三小时内集宁区、卓资县、凉城县将出现"
    "一百毫米以上降水，请立即停止户外活动，远离河道、山洪沟和低洼地带，转移到安全地点。"
    "如遇险情请拨打一一九或一一零。各乡镇、村委会请通过广播反复通知，"
    "组织危险区域群众撤离，并做好防汛物资和抢险队伍的准备工作。"
)


async def _collect(client: SmppClient, count: int) -> list[Receipt]:
    found: list[Receipt] = []
    async with asyncio.timeout(10):
        async for receipt in client.receipts():
            found.append(receipt)
            if len(found) == count:
                return found
    return found


async def test_three_segment_ucs2_message_is_delivered_and_every_receipt_matched(
    make_smsc: SimulatorFactory,
) -> None:
    smsc = await make_smsc()
    client = SmppClient(client_config(smsc.port))
    await client.start()
    try:
        submission = await client.submit("+8613800138000", CHINESE)
        receipts = await _collect(client, 3)
    finally:
        await client.close()
    assert len(submission.segments) == 3
    assert [s.sequence for s in submission.segments] == [1, 2, 3]
    texts = [
        join_payload(r.segment.payload, r.segment.udhi, r.segment.coding) for r in smsc.records
    ]
    assert "".join(text for text, _ in texts) == CHINESE
    assert {meta[1] for _, meta in texts} == {3} and [m[2] for _, m in texts] == [1, 2, 3]
    assert all(
        r.segment.destination == "8613800138000" and r.segment.coding == 8 for r in smsc.records
    )
    assert sorted(r.message_id for r in receipts) == sorted(submission.message_ids)
    for receipt in receipts:
        assert receipt.state is ReceiptState.DELIVERED
        assert receipt.segment is not None and receipt.segment.message_id == receipt.message_id
        assert receipt.destination == "+8613800138000"
    assert client.unmatched_receipts == 0


async def test_outcome_mix_reaches_the_client(make_smsc: SimulatorFactory) -> None:
    outcomes = {
        ReceiptState.DELIVERED: 1.0,
        ReceiptState.UNDELIVERABLE: 1.0,
        ReceiptState.EXPIRED: 1.0,
    }
    smsc = await make_smsc(outcomes=outcomes, seed=7)
    client = SmppClient(client_config(smsc.port))
    await client.start()
    try:
        submissions = await asyncio.gather(
            *(client.submit(f"86138000000{n:02d}", "test") for n in range(30))
        )
        receipts = await _collect(client, 30)
    finally:
        await client.close()
    sent = dict(smsc.receipts_sent)
    assert {r.message_id: r.state for r in receipts} == sent
    assert set(sent.values()) == set(outcomes)
    assert {r.segment.message_id for r in receipts if r.segment} == {
        s.message_ids[0] for s in submissions
    }


async def test_throttling_slows_but_loses_nothing(make_smsc: SimulatorFactory) -> None:
    smsc = await make_smsc(rate_per_second=50)
    client = SmppClient(client_config(smsc.port))
    await client.start()
    sent: list[str] = []

    async def send(number: int) -> None:
        for attempt in range(200):
            try:
                submission = await client.submit(f"8613900{number:06d}", "drill")
            except GatewayThrottledError:
                await asyncio.sleep(0.02 * (attempt + 1))
                continue
            sent.extend(submission.message_ids)
            return
        raise AssertionError("never accepted")

    started = asyncio.get_running_loop().time()
    try:
        await asyncio.gather(*(send(n) for n in range(100)))
    finally:
        await client.close()
    elapsed = asyncio.get_running_loop().time() - started
    assert smsc.throttled > 0
    assert sorted(sent) == sorted(r.message_id for r in smsc.records)
    assert len(smsc.records) == 100
    assert elapsed > 1.0  # 100 segments at 50/s (burst 50) take at least a second


async def test_client_rate_limit_keeps_under_the_gateway_limit(make_smsc: SimulatorFactory) -> None:
    smsc = await make_smsc(rate_per_second=40)
    client = SmppClient(client_config(smsc.port, rate_per_second=35))
    await client.start()
    try:
        await asyncio.gather(*(client.submit(f"86139{n:08d}", "x") for n in range(60)))
    finally:
        await client.close()
    assert smsc.throttled == 0 and len(smsc.records) == 60


async def test_dropped_connection_mid_window_tells_which_submits_were_answered(
    make_smsc: SimulatorFactory,
) -> None:
    smsc = await make_smsc(faults=SmscFaults(drop_after_answers=5))
    client = SmppClient(client_config(smsc.port, reconnect_min=5, reconnect_max=5))
    await client.start()
    try:
        outcomes = await asyncio.gather(
            *(client.submit(f"86137{n:08d}", "x") for n in range(12)), return_exceptions=True
        )
    finally:
        await client.close()
    answered = [o.message_ids[0] for o in outcomes if not isinstance(o, BaseException)]
    lost = [o for o in outcomes if isinstance(o, BaseException)]
    assert sorted(answered) == sorted(r.message_id for r in smsc.records)
    assert len(answered) == 5
    assert len(lost) == 7
    assert all(isinstance(error, GatewayConnectionError) for error in lost)
    assert any(isinstance(error, GatewayConnectionLostError) for error in lost)


async def test_client_binds_again_after_a_drop(make_smsc: SimulatorFactory) -> None:
    smsc = await make_smsc(faults=SmscFaults(drop_after_answers=1))
    client = SmppClient(client_config(smsc.port))
    await client.start()
    try:
        await client.submit("8613700000001", "one")
        with pytest.raises(GatewayConnectionError):
            await client.submit("8613700000002", "two")
        smsc.faults.drop_after_answers = None
        submission = await client.submit("8613700000003", "three")
    finally:
        await client.close()
    assert submission.message_ids[0] == smsc.records[-1].message_id
    assert client.bind_count == 2


async def test_several_binds_share_the_load(make_smsc: SimulatorFactory) -> None:
    smsc = await make_smsc(faults=SmscFaults(answer_delay=0.05))
    client = SmppClient(client_config(smsc.port, binds=3, window=4))
    await client.start()
    try:
        await client.wait_binds_up(3, 5)
        submissions = await asyncio.gather(
            *(client.submit(f"86135{n:08d}", "x") for n in range(24))
        )
    finally:
        await client.close()
    used = {s.segments[0].bind for s in submissions}
    assert used == {"bind1", "bind2", "bind3"}
    assert smsc.throttled == 0  # the window of 4 per bind was never exceeded


async def test_wrong_password_is_a_permanent_bind_error(make_smsc: SimulatorFactory) -> None:
    smsc = await make_smsc()
    client = SmppClient(client_config(smsc.port, password="wrong"))
    with pytest.raises(GatewayBindError, match="ESME_RINVPASWD"):
        await client.start(wait=0.5)
    assert client.binds_up == 0
    from drivers.smpp.client import SmppBind

    bind = SmppBind("b", client_config(smsc.port, password="wrong"), lambda _: None)
    with pytest.raises(GatewayBindError, match="ESME_RINVPASWD"):
        await bind.open("127.0.0.1", smsc.port)
    assert not bind.is_open


async def test_garbage_drops_the_bind_and_outstanding_submits_fail(
    make_smsc: SimulatorFactory,
) -> None:
    smsc = await make_smsc(faults=SmscFaults(garbage_after_answers=0))
    client = SmppClient(client_config(smsc.port))
    await client.start()
    try:
        with pytest.raises(GatewayConnectionLostError):
            await client.submit("8613600000000", "x")
    finally:
        await client.close()
    assert smsc.records == []


async def test_lost_receipts_leave_segments_unconfirmed(make_smsc: SimulatorFactory) -> None:
    smsc = await make_smsc(faults=SmscFaults(lose_receipts=1.0))
    client = SmppClient(client_config(smsc.port))
    await client.start()
    try:
        await client.submit("8613600000001", "x")
        await asyncio.sleep(0.3)
    finally:
        await client.close()
    assert smsc.receipts_sent == [] and client.tracked_segments == 1


async def test_tracking_is_bounded_and_the_oldest_segment_is_forgotten(
    make_smsc: SimulatorFactory,
) -> None:
    smsc = await make_smsc(receipt_delay=0.2)
    client = SmppClient(client_config(smsc.port))
    client.tracked_limit = 2
    await client.start()
    try:
        first, second, third = [
            (await client.submit(f"861360000001{n}", "x")).message_ids[0] for n in range(3)
        ]
        assert client.tracked_segments == 2
        receipts = await _collect(client, 2)
        async with asyncio.timeout(5):
            while client.unmatched_receipts == 0:
                await asyncio.sleep(0.01)
    finally:
        await client.close()
    assert sorted(r.message_id for r in receipts) == sorted([second, third])
    assert client.unmatched_receipts == 1 and client.tracked_segments == 0
    assert first not in {r.message_id for r in receipts}


async def test_slow_answers_time_out_as_retryable(make_smsc: SimulatorFactory) -> None:
    smsc = await make_smsc(faults=SmscFaults(answer_delay=1.0))
    client = SmppClient(client_config(smsc.port, request_timeout=0.2))
    await client.start()
    try:
        with pytest.raises(TimeoutError):
            await client.submit("8613600000002", "x")
    finally:
        await client.close()


async def test_keepalive_is_answered(make_smsc: SimulatorFactory) -> None:
    smsc = await make_smsc()
    client = SmppClient(client_config(smsc.port, keepalive_interval=0.05))
    await client.start()
    try:
        await asyncio.sleep(0.4)
        assert client.binds_up == 1 and client.bind_count == 1
    finally:
        await client.close()


async def test_bad_text_is_refused_before_sending(make_smsc: SimulatorFactory) -> None:
    smsc = await make_smsc()
    client = SmppClient(client_config(smsc.port, max_segments=2))
    await client.start()
    try:
        with pytest.raises(GatewayMessageError):
            await client.submit("8613600000003", "")
        with pytest.raises(GatewayMessageError, match="at most 2"):
            await client.submit("8613600000003", CHINESE)
    finally:
        await client.close()
    assert smsc.records == []


async def test_no_gateway_listening_is_a_retryable_connection_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = SmppClient(client_config(port))
    with pytest.raises(GatewayConnectionError) as caught:
        await client.start(wait=0.3)
    assert not isinstance(caught.value, GatewayBindError)
    assert client.bind_count == 0
