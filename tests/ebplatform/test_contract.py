"""The ebplatform channel passes the channel contract against a simulated county platform whose
state is polled (the contract runs the channel without the server's inbound endpoint)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
import pytest_asyncio

from broadcaster.channel import Channel, OutgoingDelivery
from broadcaster.delivery import Target
from broadcaster.errors import ChannelError
from broadcaster.testing.contract import ChannelContract, channel_context
from channels.ebplatform import EbPlatformChannel
from channels.ebplatform.config import EbPlatformChannelConfig
from drivers.ebd import EbdType, Ebm
from drivers.ebd.simulator import EbdPlatformSimulator
from tests.ebplatform.conftest import ZHUOZI, Pki, channel_table, county_platforms, free_port


def _channel(tmp_path: Path, pki: Pki, url: str) -> EbPlatformChannel:
    table = channel_table(pki, {"zhuozi": url}, state_poll_seconds=0.05, timeout_seconds=2.0)
    config = EbPlatformChannelConfig.model_validate(table)
    return EbPlatformChannel("eb", config, channel_context(tmp_path))


def _target(address: str = "zhuozi") -> Target:
    return Target(id="eb:zhuozi", channel="eb", name="卓资县平台", address=address, division=ZHUOZI)


class PlatformSink:
    """The county platform: a delivery is seen once an EBM with its title arrived."""

    def __init__(self, sim: EbdPlatformSimulator) -> None:
        self.sim = sim

    async def received(self, delivery: OutgoingDelivery) -> bool:
        title = delivery.message.rendition.texts[0].title
        bodies = [ebd.body for ebd in self.sim.received_of(EbdType.EBM)]
        return any(isinstance(body, Ebm) and body.title == title for body in bodies)


class TestEbPlatformContract(ChannelContract):
    @pytest_asyncio.fixture
    async def platform(self, pki: Pki) -> AsyncIterator[EbdPlatformSimulator]:
        nowhere = f"http://127.0.0.1:{free_port()}/ebd"
        behaviour = {"state_delay": 0.02, "state_inline": True, "state_url": nowhere}
        async with county_platforms(pki, **behaviour) as sims:
            yield sims["zhuozi"]

    @pytest.fixture
    def channel(self, tmp_path: Path, pki: Pki, platform: EbdPlatformSimulator) -> Channel:
        return _channel(tmp_path, pki, platform.url)

    @pytest.fixture
    def reachable_target(self) -> Target:
        return _target()

    @pytest.fixture
    def delivery_sink(self, platform: EbdPlatformSimulator) -> PlatformSink:
        return PlatformSink(platform)

    @pytest_asyncio.fixture
    async def permanent_failure(self, channel: Channel) -> AsyncIterator[tuple[Channel, Target]]:
        await channel.start()
        yield channel, _target("no-such-peer")
        await channel.stop()

    @pytest_asyncio.fixture
    async def transient_failure(
        self, tmp_path: Path, pki: Pki
    ) -> AsyncIterator[tuple[Channel, Target]]:
        channel = _channel(tmp_path / "down", pki, f"http://127.0.0.1:{free_port()}/ebd")
        await channel.start()
        yield channel, _target()
        await channel.stop()


async def test_an_unreadable_earlier_ledger_stops_the_start_with_its_path(
    tmp_path: Path, pki: Pki
) -> None:
    channel = _channel(tmp_path, pki, f"http://127.0.0.1:{free_port()}/ebd")
    earlier = tmp_path / "ebplatform-eb" / "ledger.db"
    earlier.parent.mkdir()
    earlier.write_bytes(b"not a database at all" * 10)
    with pytest.raises(ChannelError, match=r"ledger\.db cannot be taken"):
        await channel.start()
    await channel.stop()
    assert earlier.exists()  # left for a person to look at


async def test_without_the_store_records_the_channel_does_not_start(
    tmp_path: Path, pki: Pki
) -> None:
    table = channel_table(pki, {"zhuozi": f"http://127.0.0.1:{free_port()}/ebd"})
    config = EbPlatformChannelConfig.model_validate(table)
    context = replace(channel_context(tmp_path), records=None)
    channel = EbPlatformChannel("eb", config, context)
    with pytest.raises(ChannelError, match="needs the store's channel records"):
        await channel.start()
    await channel.stop()
