"""The FM channel passes the channel contract suite against a simulated encoder, and checks
its configuration once, at load."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from pydantic import ValidationError

from broadcaster.channel import Channel, ChannelContext, OutgoingDelivery
from broadcaster.config import AudioConfig
from broadcaster.delivery import Target
from broadcaster.errors import ChannelError, DeviceTimeoutError, DeviceUnavailableError
from broadcaster.publisher import AudioPublisher
from broadcaster.testing.contract import ChannelContract, contract_delivery
from channels.fm import FmChannel, FmChannelConfig
from drivers.rds import RdsEncoderSimulator
from tests.fm.conftest import NORMAL, TRANSMITTER, fm_table


def _context(tmp_path: Path) -> ChannelContext:
    audio = AudioPublisher(tmp_path / "audio", AudioConfig(engine_order=("espeak-ng",)))
    return ChannelContext(
        data_dir=tmp_path, sender_name="测试", public_url="http://127.0.0.1:1", audio=audio
    )


def _channel(tmp_path: Path, table: dict[str, Any]) -> FmChannel:
    return FmChannel("fm", FmChannelConfig.model_validate(table), _context(tmp_path))


class PlayedSink:
    """The transmitter's audio input: a delivery is seen once its WAV file was played in."""

    def __init__(self, sink: Path) -> None:
        self.sink = sink

    async def received(self, delivery: OutgoingDelivery) -> bool:
        played = self.sink / f"{delivery.id}.wav"
        return played.exists() and played.stat().st_size > 0


class TestFmChannelContract(ChannelContract):
    @pytest_asyncio.fixture
    async def encoder_url(self) -> AsyncIterator[str]:
        async with RdsEncoderSimulator(initial=NORMAL) as sim:
            yield await sim.start_tcp()
            assert sim.state == NORMAL, "the channel left the encoder in alert state"

    @pytest.fixture
    def channel(self, tmp_path: Path, sink: Path, encoder_url: str) -> Channel:
        return _channel(tmp_path, fm_table(sink, {TRANSMITTER: encoder_url}))

    @pytest.fixture
    def reachable_target(self) -> Target:
        return Target(id="fm-150921", channel="fm", name="卓资县调频台", address=TRANSMITTER)

    @pytest.fixture
    def delivery_sink(self, sink: Path) -> PlayedSink:
        return PlayedSink(sink)

    @pytest_asyncio.fixture
    async def permanent_failure(
        self, tmp_path: Path, sink: Path, encoder_url: str
    ) -> AsyncIterator[tuple[Channel, Target]]:
        channel = _channel(tmp_path / "permanent", fm_table(sink, {TRANSMITTER: encoder_url}))
        await channel.start()
        yield channel, Target(id="fm-nowhere", channel="fm", name="no encoder", address="tx-x")
        await channel.stop()

    @pytest_asyncio.fixture
    async def transient_failure(
        self, tmp_path: Path, sink: Path
    ) -> AsyncIterator[tuple[Channel, Target]]:
        async with RdsEncoderSimulator() as sim:
            url = await sim.start_tcp()
            await sim.stop_tcp()  # nothing listens there any more
        channel = _channel(tmp_path / "transient", fm_table(sink, {"tx-gone": url}))
        await channel.start()
        yield channel, Target(id="fm-gone", channel="fm", name="gone", address="tx-gone")
        await channel.stop()


async def test_unreachable_encoder_is_retryable(tmp_path: Path, sink: Path) -> None:
    async with RdsEncoderSimulator() as sim:
        url = await sim.start_tcp()
        await sim.stop_tcp()
    channel = _channel(tmp_path, fm_table(sink, {TRANSMITTER: url}))
    await channel.start()
    target = Target(id="fm-150921", channel="fm", name="tx", address=TRANSMITTER)
    try:
        with pytest.raises(DeviceUnavailableError, match="transmitter tx-150921: cannot connect"):
            await channel.send(contract_delivery(target))
        probe = await channel.probe(target)
    finally:
        await channel.stop()
    assert not probe.ok and "cannot connect" in probe.detail


async def test_a_line_echoing_the_commands_back_never_puts_an_alert_on_air(
    tmp_path: Path, sink: Path
) -> None:
    handlers: list[asyncio.Task[Any]] = []

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        current = asyncio.current_task()
        assert current is not None
        handlers.append(current)
        while data := await reader.read(4096):
            writer.write(data)  # no encoder: the controller's own frames come back
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    url = f"socket://127.0.0.1:{port}?ack_timeout=0.1&attempts=2"
    channel = _channel(tmp_path, fm_table(sink, {TRANSMITTER: url}))
    await channel.start()
    target = Target(id="fm-150921", channel="fm", name="tx", address=TRANSMITTER)
    try:
        with pytest.raises(DeviceTimeoutError, match="no acknowledgement"):  # retried
            await channel.send(contract_delivery(target))
    finally:
        await channel.stop()
        server.close()
        await server.wait_closed()
        await asyncio.gather(*handlers)
    assert not list(sink.glob("*.wav")), "nothing was played"


async def test_missing_player_program_stops_the_channel_starting(
    tmp_path: Path, sink: Path
) -> None:
    table = fm_table(sink, {}) | {"player": ["no-such-player-program", "{file}"]}
    with pytest.raises(ChannelError, match="'no-such-player-program' is not installed"):
        await _channel(tmp_path, table).start()


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"station": {"ps": "乌兰察布"}}, "outside the RDS character set"),
        ({"station": {"ps": "TOO LONG NAME"}}, "at most 8 fit"),
        ({"ps": {"actual": "ALARM^"}}, "outside the RDS character set"),
        ({"rt_fallback": {"default": "X" * 50}}, "at most 44 fit"),
        ({"encoders": {TRANSMITTER: "socket://nowhere"}}, "bad encoder URL"),
        ({"encoders": {TRANSMITTER: "socket://h:1?volume=3"}}, "unknown setting"),
        ({"player": ["aplay", "-D", "hw:1"]}, "must contain {file}"),
        ({"station": {"pty": 31}}, "less than or equal to 29"),
        ({"same": {"originator": "XYZ"}}, "originator"),
    ],
)
def test_bad_configuration_is_refused_with_its_key(
    sink: Path, change: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ValidationError, match=problem.replace("{", r"\{")):
        FmChannelConfig.model_validate(fm_table(sink, {}) | change)


def test_transmitters_take_station_defaults_and_their_own_settings(sink: Path) -> None:
    config = FmChannelConfig.model_validate(
        fm_table(
            sink,
            {
                "tx-a": "socket://127.0.0.1:4001?site=3",
                "tx-b": {"url": "/dev/ttyUSB0?dialect=ascii", "ps": "HUADE FM"},
            },
        )
    )
    a, b = config.transmitter("tx-a"), config.transmitter("tx-b")
    assert a is not None and a.ps == "BROADCST" and a.pty == 3
    assert b is not None and b.ps == "HUADE FM" and b.pty == 3 and b.url.startswith("/dev/")
    assert config.transmitter("socket://10.0.0.9:4001") is not None
    assert config.transmitter("tx-unknown") is None


async def test_probe_checks_the_encoder_without_touching_the_air(
    tmp_path: Path, sink: Path
) -> None:
    async with RdsEncoderSimulator(initial=NORMAL) as sim:
        url = await sim.start_tcp() + "?ack_timeout=0.2"
        channel = _channel(tmp_path, fm_table(sink, {TRANSMITTER: url}))
        await channel.start()
        target = Target(id="fm-150921", channel="fm", name="tx", address=TRANSMITTER)
        try:
            probe = await channel.probe(target)
            sim.faults.silent = True
            silent = await channel.probe(target)
            health = await channel.health()
        finally:
            await channel.stop()
        history = list(sim.history)
    assert probe.ok and probe.detail == "encoder acknowledged"
    assert not silent.ok and "no acknowledgement" in silent.detail
    assert not health.ok and health.devices[TRANSMITTER]["connected"] is True
    assert history == [], "a probe changed what is on air"
