"""Packet identifiers (2.3.1): round-robin, a wait when all are taken, cancelled callers keep
their identifier until its acknowledgement, and a lost connection fails everyone."""

from __future__ import annotations

import asyncio

import pytest

from drivers.mqtt import MqttConnectionError
from drivers.mqtt.inflight import PacketIdPool


async def test_identifiers_wrap_after_65535_and_skip_those_in_flight() -> None:
    pool = PacketIdPool()
    first, _ = await pool.reserve()
    assert first == 1
    for expected in range(2, 65536):
        packet_id, _ = await pool.reserve()
        assert packet_id == expected
        if packet_id != 3:
            assert pool.complete(packet_id, None)
    assert len(pool) == 2
    wrapped, _ = await pool.reserve()
    assert wrapped == 2
    after, _ = await pool.reserve()
    assert after == 4


async def test_a_caller_waits_for_a_free_identifier() -> None:
    pool = PacketIdPool(limit=3)
    futures = dict([await pool.reserve() for _ in range(3)])
    fourth = asyncio.ensure_future(pool.reserve())
    done, _ = await asyncio.wait([fourth], timeout=0.05)
    assert not done
    assert pool.complete(2, "acked")
    assert futures[2].result() == "acked"
    packet_id, _ = await asyncio.wait_for(fourth, 1)
    assert packet_id == 4
    assert len(pool) == 3
    assert not pool.complete(2000, None)


async def test_a_cancelled_caller_keeps_its_identifier_until_acknowledged() -> None:
    pool = PacketIdPool()
    packet_id, future = await pool.reserve()
    future.cancel()
    other, _ = await pool.reserve()
    assert other != packet_id
    assert pool.complete(packet_id, None)
    assert len(pool) == 1


async def test_a_lost_connection_fails_requests_and_waiters() -> None:
    pool = PacketIdPool(limit=1)
    _, in_flight = await pool.reserve()
    waiting = asyncio.ensure_future(pool.reserve())
    await asyncio.sleep(0)
    pool.fail_all(MqttConnectionError("lost"))
    with pytest.raises(MqttConnectionError, match="lost"):
        await in_flight
    with pytest.raises(MqttConnectionError, match="lost"):
        await waiting
    assert len(pool) == 0
