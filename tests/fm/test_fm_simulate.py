"""``simulate = true``: transmitters without an encoder are served by in-process simulators
(the demo), through the real core service, and the default player writes files in real time."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from broadcaster.testing.contract import channel_context
from channels.fm import FmChannel, FmChannelConfig
from tests.core.support import COUNTY, OTHER_COUNTY, make_alert, running, wait_until_complete
from tests.fm.conftest import NORMAL, fm_config, fm_table, fm_target, wav_facts


async def test_simulated_transmitters_air_the_alert(tmp_path: Path, sink: Path) -> None:
    table = fm_table(sink, {}, simulate=True)
    del table["station"]  # read back from the simulated encoders
    targets = [fm_target(), fm_target("fm-150922", "tx-150922", OTHER_COUNTY)]
    async with running(fm_config(tmp_path, table, targets)) as service:
        alert = make_alert("fm-sim", geocodes=(COUNTY, OTHER_COUNTY))
        result = await service.submit(alert, origin="test")
        summary = await wait_until_complete(service, result.alert_id, timeout=30)
        channel = service.channels["fm"]
        assert isinstance(channel, FmChannel)
        simulators = channel.simulators()
    assert summary == {"fm": {"confirmed": 2}}
    assert sorted(simulators) == ["tx-150921", "tx-150922"]
    for simulator in simulators.values():
        assert any(s.ta and s.pty == 31 for s in simulator.history)
        assert simulator.state == NORMAL
        assert simulator.tcp_address is not None
        with pytest.raises(ConnectionRefusedError):  # the channel stopped its simulators
            await asyncio.open_connection(*simulator.tcp_address)
    assert len(list(sink.glob("*.wav"))) == 2
    assert all(wav_facts(played)[0] == 48000 for played in sink.glob("*.wav"))


async def test_simulate_without_a_player_plays_into_files_in_real_time(tmp_path: Path) -> None:
    config = FmChannelConfig.model_validate({"type": "fm", "simulate": True})
    channel = FmChannel("fm", config, channel_context(tmp_path))
    argv = channel.player.arguments(Path("/a.wav"), transmitter="tx-1", delivery=7)
    assert argv[:1] == ["ffmpeg"] and "-re" in argv and "/a.wav" in argv
    assert argv[-1] == str(tmp_path / "fm-fm" / "played" / "7-tx-1.wav")
    explicit = FmChannelConfig.model_validate(
        {"type": "fm", "simulate": True, "player": ["aplay", "{file}"]}
    )
    assert FmChannel("fm", explicit, channel_context(tmp_path)).player.command == (
        "aplay",
        "{file}",
    )
