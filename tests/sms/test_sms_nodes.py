"""Two nodes sharing a store: the modem pool is opened by the lease holder only, the other
node's sends are refusals naming the holder (and it says the holder sends every SMS), and it
opens the pool once the holder stops."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from broadcaster.channel import ChannelContext
from broadcaster.delivery import Target
from broadcaster.errors import DeviceElsewhereError
from broadcaster.store.db import Database
from broadcaster.store.records import ChannelRecords, DeviceLeases
from broadcaster.testing.contract import contract_delivery
from channels.sms import SmsChannel
from channels.sms.config import SmsChannelConfig

TABLE = {"type": "sms", "simulate": True, "simulated_modems": 1}


def node(tmp_path: Path, database: Database, name: str) -> SmsChannel:
    context = ChannelContext(
        data_dir=tmp_path / name,
        sender_name="测试",
        public_url="http://127.0.0.1:1",
        leases=DeviceLeases(lambda: database, "sms"),
        records=ChannelRecords(lambda: database, "sms"),
    )
    return SmsChannel("sms", SmsChannelConfig.model_validate(TABLE), context)


async def test_the_modem_pool_is_open_on_one_node_at_a_time(tmp_path: Path) -> None:
    a, b = Database(tmp_path / "s.db"), Database(tmp_path / "s.db")
    a.node, b.node = "node-a", "node-b"
    a.lease_seconds = b.lease_seconds = 0.6
    first, second = node(tmp_path, a, "a"), node(tmp_path, b, "b")
    await first.start()
    await second.start()
    try:
        assert len(first.simulators) == 1 and second.simulators == ()
        health = await second.health()
        assert health.ok and "used by another node" in health.detail
        assert second.sends_elsewhere() == "node-a" and first.sends_elsewhere() is None
        with pytest.raises(DeviceElsewhereError, match="used by node node-a") as refused:
            await second.send(contract_delivery(Target(id="t", channel="sms", name="T")))
        assert refused.value.node == "node-a"
        await first.stop()
        async with asyncio.timeout(5):
            while not second.simulators:
                await asyncio.sleep(0.05)
        assert len(second.simulators) == 1 and second.sends_elsewhere() is None
    finally:
        await first.stop()
        await second.stop()
        a.close()
        b.close()
