"""The loudspeaker channel on its own (``simulate = true``: real agents over TCP on loopback):
the channel contract, replayed and expired commands, probes and health, bad configuration.

Signature, replay and expiry checks of the box itself are covered at the driver level in
tests/speaker/test_agent.py and tests/speaker/test_hub.py; here the channel's side: a retry
reuses the command id so it never plays twice, an expired delivery fails with the box's
reason, and a box holding another key is never played to (see also the MQTT test below).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from broadcaster.channel import (
    Channel,
    ChannelContext,
    Confirmation,
    ConfirmationOutcome,
    OutgoingDelivery,
    SendOutcome,
)
from broadcaster.delivery import Target
from broadcaster.errors import ChannelError, DeviceUnavailableError, TargetRejectedError
from broadcaster.testing.contract import ChannelContract, contract_delivery
from broadcaster.testing.targets import MemoryTargets
from channels.loudspeaker import LoudspeakerChannel, LoudspeakerChannelConfig
from tests.core.support import make_alert, wait_for_deliveries
from tests.loudspeaker.conftest import (
    FALLBACK,
    FALLBACK_CLIP,
    SECRET,
    speaker_system,
)

BOX = "box-150921001001"
TARGET = Target(
    id="spk-150921001001", channel="loudspeaker", name="村", division="150921001001", address=BOX
)


def lone_channel(tmp_path: Path, **settings: Any) -> LoudspeakerChannel:
    """A channel simulating the one box of its registry, with the stored clip on the box."""
    clips = tmp_path / "loudspeaker-loudspeaker" / "simulated" / "clips"
    clips.mkdir(parents=True)
    (clips / "generic").write_bytes(FALLBACK)
    config = LoudspeakerChannelConfig.model_validate(
        {
            "type": "loudspeaker",
            "master_secret": SECRET,
            "simulate": True,
            "simulated_play_seconds": 0.05,
            "repeat": 1,
            "clips": {"default": FALLBACK_CLIP},
        }
        | settings
    )
    context = ChannelContext(
        data_dir=tmp_path,
        sender_name="测试",
        public_url="http://127.0.0.1:1",
        targets=MemoryTargets([TARGET]),
    )
    return LoudspeakerChannel("loudspeaker", config, context)


@pytest.fixture
async def lone(tmp_path: Path) -> AsyncIterator[LoudspeakerChannel]:
    channel = lone_channel(tmp_path)
    await channel.start()
    try:
        await channel.wait_online([BOX], within_s=10)
        yield channel
    finally:
        await channel.stop()


async def next_final(channel: Channel) -> Confirmation:
    async for confirmation in channel.confirmations():
        if confirmation.outcome is not ConfirmationOutcome.PROGRESS:
            return confirmation
    raise AssertionError("confirmation stream ended")


class PlayedSink:
    """The simulated boxes' players: a delivery is seen once its box played a message."""

    def __init__(self, channel: LoudspeakerChannel) -> None:
        self.channel = channel

    async def received(self, delivery: OutgoingDelivery) -> bool:
        fleet = self.channel.fleet
        return fleet is not None and any(
            r.request.box_id == delivery.target.address for r in fleet.log.records
        )


class TestLoudspeakerChannelContract(ChannelContract):
    @pytest.fixture
    def channel(self, tmp_path: Path) -> LoudspeakerChannel:
        return lone_channel(tmp_path)

    @pytest.fixture
    def reachable_target(self) -> Target:
        return TARGET

    @pytest.fixture
    def delivery_sink(self, channel: LoudspeakerChannel) -> PlayedSink:
        return PlayedSink(channel)

    @pytest_asyncio.fixture
    async def permanent_failure(self, tmp_path: Path) -> AsyncIterator[tuple[Channel, Target]]:
        channel = lone_channel(tmp_path / "permanent")
        await channel.start()
        yield channel, replace(TARGET, id="spk-bad", address="not a box id!")
        await channel.stop()

    @pytest_asyncio.fixture
    async def transient_failure(self, tmp_path: Path) -> AsyncIterator[tuple[Channel, Target]]:
        channel = lone_channel(tmp_path / "transient")
        await channel.start()
        yield channel, replace(TARGET, id="spk-absent", address="box-absent")
        await channel.stop()


async def test_a_retried_delivery_plays_once(lone: LoudspeakerChannel) -> None:
    delivery = contract_delivery(TARGET, delivery_id=7)
    first = await lone.send(delivery)
    assert first.outcome is SendOutcome.ACCEPTED and first.provider_ref
    assert (await next_final(lone)).outcome is ConfirmationOutcome.CONFIRMED
    again = await lone.send(replace(delivery, attempt=2))
    assert again.provider_ref == first.provider_ref
    # The box answers the duplicate with its latest ack and does not play it again.
    assert (await next_final(lone)).outcome is ConfirmationOutcome.CONFIRMED
    assert lone.fleet is not None
    assert len(lone.fleet.log.completed(box_id=BOX)) == 1


async def test_an_expired_delivery_fails_with_the_box_reason(lone: LoudspeakerChannel) -> None:
    delivery = replace(contract_delivery(TARGET, delivery_id=8), expires_at=time.time() - 5)
    await lone.send(delivery)
    final = await next_final(lone)
    assert final == Confirmation(8, ConfirmationOutcome.FAILED, f"box {BOX} failed: expired")
    assert lone.fleet is not None and lone.fleet.log.records == []


async def test_probe_and_health_follow_the_heartbeat(lone: LoudspeakerChannel) -> None:
    probe = await lone.probe(TARGET)
    assert probe.ok and "online over tcp" in probe.detail
    health = await lone.health()
    assert health.ok and health.devices[BOX]["online"] is True
    assert lone.fleet is not None
    stopped = time.time()
    await lone.fleet.box(BOX).stop()
    await lone.wait_online([BOX], within_s=10, online=False)
    offline = await lone.probe(TARGET)
    assert not offline.ok
    # When the box was last heard: its last message came before it stopped.
    heard = datetime.fromisoformat(offline.detail.rpartition("last heard ")[2].rstrip(")"))
    assert stopped - 60 < heard.timestamp() <= time.time()
    health = await lone.health()
    assert not health.ok and "offline: " + BOX in health.detail
    with pytest.raises(DeviceUnavailableError):
        await lone.send(contract_delivery(TARGET, delivery_id=9))


async def test_a_target_with_a_bad_transport_is_rejected(lone: LoudspeakerChannel) -> None:
    target = replace(TARGET, id="spk-x", address="box-x", params={"transport": "carrier-pigeon"})
    with pytest.raises(TargetRejectedError, match="unknown transport"):
        await lone.send(contract_delivery(target, delivery_id=10))


async def test_bad_settings_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="master_secret"):
        LoudspeakerChannelConfig.model_validate({"type": "loudspeaker", "simulate": True})
    (tmp_path / "keys.json").write_text('{"box-1": "zz"}')
    channel = lone_channel(tmp_path, key_file="keys.json")
    with pytest.raises(ChannelError, match="key of box 'box-1' is not hex"):
        await channel.start()
    assert channel.hub is None


async def test_a_box_holding_another_key_is_never_played_to(tmp_path: Path) -> None:
    wrong = {"box-150921001001": "00" * 32}
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "keys.json").write_text(json.dumps(wrong))
    impostor = frozenset({"box-150921001001"})
    async with speaker_system(tmp_path, "mqtt", key_file="keys.json", impostors=impostor) as system:
        # Its signed hello does not verify, so the box is never shown online.
        assert system.channel.hub is not None
        assert "box-150921001001" not in system.channel.hub.online_boxes()
        alert = make_alert("wrong-key")
        result = await system.service.submit(alert, origin="test")
        others = system.county_boxes - {"box-150921001001"}
        await system.fleet.log.wait_for(
            lambda _: set(system.played(f"{alert.sender},{alert.identifier}")) == others, 20
        )
        assert system.channel.hub is not None
        assert system.channel.hub.stats.messages_rejected >= 1
        rows = await wait_for_deliveries(
            system.service,
            result.alert_id,
            lambda rows: sum(r["state"] == "confirmed" for r in rows) == 2,
        )
        states = {r["target_id"]: r["state"] for r in rows}
        assert states.pop("spk-150921001001") == "accepted"
        assert set(states.values()) == {"confirmed"}
        assert "box-150921001001" not in system.played(f"{alert.sender},{alert.identifier}")


async def test_start_warns_when_the_process_may_open_fewer_files_than_its_boxes_need(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import channels.loudspeaker.roster as module

    channel = lone_channel(tmp_path)
    needed = 2 + module.FILES_SPARE  # the one box's download and its TCP connection
    for allowed, warned in ((needed - 1, True), (needed, False)):
        monkeypatch.setattr(module.resource, "getrlimit", lambda _, n=allowed: (n, n))
        caplog.clear()
        await channel.start()
        await channel.stop()
        said = [r.getMessage() for r in caplog.records if "open files" in r.getMessage()]
        if warned:
            assert said == [
                f"channel loudspeaker: an alert to every box may need {needed} open files"
                f" (boxes: 1; a download each, a connection each over TCP), but this process"
                f" may open only {allowed}: the boxes beyond would stay silent; raise"
                " LimitNOFILE in the server's unit (systemd/broadcaster.service sets 1048576)"
            ]
        else:
            assert said == []
