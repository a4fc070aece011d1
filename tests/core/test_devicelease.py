"""A device under a lease: opened on one node only, taken over when its holder stops, closed
when the lease is lost, and refused with a retryable error on the other nodes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from broadcaster.devicelease import LeasedDevice
from broadcaster.errors import DeviceUnavailableError
from broadcaster.store.db import Database
from broadcaster.store.records import DeviceLeases

LEASE = 0.6


class Modem:
    """What a node did with its device: the open and close calls, in order."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def open(self) -> None:
        self.calls.append("open")

    async def close(self) -> None:
        self.calls.append("close")


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[tuple[Database, Database]]:
    a, b = Database(tmp_path / "s.db"), Database(tmp_path / "s.db")
    for db, name in ((a, "node-a"), (b, "node-b")):
        db.node, db.lease_seconds = name, LEASE
    yield a, b
    a.close()
    b.close()


def device(db: Database, modem: Modem) -> LeasedDevice:
    leases = DeviceLeases(lambda: db, "sms")
    return LeasedDevice(
        leases, "modem-pool", open_device=modem.open, close_device=modem.close, what="the pool"
    )


async def wait_for(check: object, timeout: float = 3.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():  # type: ignore[operator]
            await asyncio.sleep(0.02)


async def test_one_node_holds_the_device_and_the_other_takes_over(
    nodes: tuple[Database, Database],
) -> None:
    a, b = nodes
    modem_a, modem_b = Modem(), Modem()
    on_a, on_b = device(a, modem_a), device(b, modem_b)
    await on_a.start()
    await on_b.start()
    try:
        assert on_a.held and not on_b.held and modem_b.calls == []
        assert on_b.elsewhere == "node-a" and on_a.elsewhere is None
        with pytest.raises(DeviceUnavailableError, match="used by node node-a") as refused:
            await on_b.check()
        assert refused.value.retry_after == pytest.approx(LEASE / 3)
        await asyncio.sleep(LEASE * 1.5)  # renewed all along: still a's
        assert on_a.held and not on_b.held
        await on_a.stop()
        assert modem_a.calls == ["open", "close"]
        await wait_for(lambda: on_b.held)
        assert modem_b.calls == ["open"] and on_b.elsewhere is None
        await on_b.check()
    finally:
        await on_a.stop()
        await on_b.stop()


async def test_a_lost_lease_closes_the_device(nodes: tuple[Database, Database]) -> None:
    a, _ = nodes
    modem = Modem()
    on_a = device(a, modem)
    await on_a.start()
    try:
        a.call(a.conn.execute, "UPDATE device_leases SET node = 'node-c', until = 9e9")
        await wait_for(lambda: not on_a.held)
        assert modem.calls == ["open", "close"] and on_a.elsewhere == "node-c"
        with pytest.raises(DeviceUnavailableError, match="node-c"):
            await on_a.check()
    finally:
        await on_a.stop()
    assert modem.calls == ["open", "close"]


async def test_without_leases_the_device_is_just_opened_and_closed() -> None:
    modem = Modem()
    alone = LeasedDevice(
        None, "modem-pool", open_device=modem.open, close_device=modem.close, what="the pool"
    )
    await alone.start()
    await alone.check()
    await alone.stop()
    assert modem.calls == ["open", "close"]
