"""The on-air alert sequence against the simulator: every step, cancel, lost links."""

from __future__ import annotations

import asyncio

import pytest

from drivers.rds import (
    AlertContent,
    AlertSequence,
    AlertStep,
    AsciiEncoderClient,
    EncoderState,
    RdsEncoderClient,
    RdsEncoderSimulator,
    RdsLinkError,
    RdsValueError,
    UecpEncoderClient,
)
from drivers.rds.simulator_device import DEFAULT_STATION

from .conftest import fast_config

NORMAL = DEFAULT_STATION  # PI C201, PS "BROADCST", RT "", TA off, TP on, PTY 3
CONTENT = AlertContent(ps="ALERT", rt="Flood warning: leave the river banks now")


async def no_audio() -> None:
    return None


def client_for(url: str, dialect: str = "uecp", **settings: object) -> RdsEncoderClient:
    config = fast_config(url, dialect=dialect, normal_state=NORMAL, **settings)
    return AsciiEncoderClient(config) if dialect == "ascii" else UecpEncoderClient(config)


async def run_checked(sim: RdsEncoderSimulator, client: RdsEncoderClient, test: bool) -> None:
    seen: list[AlertStep] = []
    alarm = 30 if test else 31

    async def check(step: AlertStep) -> None:
        seen.append(step)
        state = sim.state
        if step is AlertStep.RAISED:
            assert (state.ta, state.tp, state.pty) == (True, True, alarm)
            assert state.ps == NORMAL.ps
        elif step is AlertStep.TEXT:
            assert state.ps == "ALERT   " and state.rt == CONTENT.rt
            assert (state.ta, state.pty) == (True, alarm)
        elif step is AlertStep.PLAYED:
            assert state.ta is True
        else:
            assert state == NORMAL

    async def play() -> None:
        assert sim.state.ta is True and sim.state.rt == CONTENT.rt

    content = AlertContent(CONTENT.ps, CONTENT.rt, test=test)
    async with client:
        await AlertSequence(client, content, on_step=check).run(play)
        assert client.pending_restore is None
    assert seen == list(AlertStep)


@pytest.mark.parametrize("dialect", ["uecp", "ascii"])
async def test_whole_sequence_and_restore(dialect: str) -> None:
    async with RdsEncoderSimulator(dialect=dialect, initial=NORMAL) as sim:
        url = await sim.start_tcp()
        await run_checked(sim, client_for(url, dialect), test=False)
        assert sim.state == NORMAL
        # TA was up only between the raise and the restore, and dropped before PS/RT/PTY.
        ta_flags = [s.ta for s in sim.history]
        assert ta_flags[0] is not True and ta_flags.count(True) > 0
        first_down = ta_flags.index(False, ta_flags.index(True))
        assert sim.history[first_down].ps == "ALERT   "


async def test_restores_the_live_state_read_back_from_the_encoder() -> None:
    live = NORMAL.merged(EncoderState(rt="Now playing: Khorchin folk songs", tp=False))
    async with RdsEncoderSimulator(initial=live) as sim:
        url = await sim.start_tcp()
        async with client_for(url) as client:
            await client.read_state()
            await AlertSequence(client, CONTENT).run(no_audio)
        assert sim.state == live and True in [s.ta for s in sim.history]


async def test_test_alert_uses_pty_30(simulator: RdsEncoderSimulator) -> None:
    url = await simulator.start_tcp()
    await run_checked(simulator, client_for(url), test=True)
    assert 31 not in [s.pty for s in simulator.history]
    assert 30 in [s.pty for s in simulator.history]


async def test_retransmission_and_crc_recovery_inside_an_alert(
    simulator: RdsEncoderSimulator,
) -> None:
    url = await simulator.start_tcp()
    simulator.faults.lose_answers = 1
    simulator.faults.damage_frames = 1
    await run_checked(simulator, client_for(url, bidirectional=False), test=False)
    assert simulator.encoder.negative_answers == [1]
    # Step 1 took three sends of frame 1: damaged (refused), answer lost, acknowledged.
    assert simulator.encoder.sequences_received == [1, 1, 2, 3]


async def test_cancel_mid_playback_drops_ta_within_a_second(
    simulator: RdsEncoderSimulator,
) -> None:
    url = await simulator.start_tcp()
    playing = asyncio.Event()

    async def play() -> None:
        playing.set()
        await asyncio.Event().wait()  # a long warning, never finishing by itself

    async with client_for(url) as client:
        run = asyncio.create_task(AlertSequence(client, CONTENT).run(play))
        await playing.wait()
        assert simulator.state.ta is True
        loop = asyncio.get_running_loop()
        cancelled_at = loop.time()
        run.cancel()
        state = await simulator.wait_for(lambda s: s.ta is False, within=1.0)
        assert loop.time() - cancelled_at < 1.0
        with pytest.raises(asyncio.CancelledError):
            await run
        assert state.ta is False
        assert simulator.state == NORMAL


async def test_failing_play_hook_still_restores(simulator: RdsEncoderSimulator) -> None:
    url = await simulator.start_tcp()

    async def play() -> None:
        raise OSError("audio device vanished")

    async with client_for(url) as client:
        sequence = AlertSequence(client, CONTENT)
        with pytest.raises(OSError, match="audio device vanished"):
            await sequence.run(play)
        assert sequence.steps_done == [AlertStep.RAISED, AlertStep.TEXT, AlertStep.RESTORED]
    assert simulator.state == NORMAL


async def test_link_dropped_mid_alert_is_restored_on_reconnect(
    simulator: RdsEncoderSimulator,
) -> None:
    url = await simulator.start_tcp()

    async def play() -> None:
        await simulator.drop_connections()  # the link breaks while the warning plays

    async with client_for(url) as client:
        await AlertSequence(client, CONTENT, reconnect_delay=0.01).run(play)
        assert client.connected and client.pending_restore is None
    assert simulator.state == NORMAL


async def test_encoder_down_mid_alert_restores_when_it_comes_back(
    simulator: RdsEncoderSimulator,
) -> None:
    url = await simulator.start_tcp()
    assert simulator.tcp_address is not None
    port = simulator.tcp_address[1]

    async def play() -> None:
        await simulator.stop_tcp()  # the encoder becomes unreachable mid-alert

    client = client_for(url)
    async with client:
        sequence = AlertSequence(client, CONTENT, reconnect_attempts=1, reconnect_delay=0.01)
        with pytest.raises(RdsLinkError):
            await sequence.run(play)
        assert sequence.steps_done == [AlertStep.RAISED, AlertStep.TEXT, AlertStep.PLAYED]
        assert simulator.state.ta is True  # nothing could reach the encoder
        assert client.pending_restore is not None
        await simulator.start_tcp(port=port)
        await client.connect()  # the next connection restores before anything else
        assert simulator.state == NORMAL and client.pending_restore is None


async def test_play_failure_and_unreachable_encoder_report_both(
    simulator: RdsEncoderSimulator,
) -> None:
    url = await simulator.start_tcp()

    async def play() -> None:
        await simulator.stop_tcp()
        raise OSError("player crashed")

    async with client_for(url) as client:
        sequence = AlertSequence(client, CONTENT, reconnect_attempts=0)
        with pytest.raises(OSError, match="player crashed") as caught:
            await sequence.run(play)
    assert any("restoring the encoder failed too" in note for note in caught.value.__notes__)
    assert AlertStep.RESTORED not in sequence.steps_done


async def test_bad_alert_text_changes_nothing(simulator: RdsEncoderSimulator) -> None:
    url = await simulator.start_tcp()
    played = False

    async def play() -> None:
        nonlocal played
        played = True

    async with client_for(url) as client:
        for content, message in [
            (AlertContent("ALERT", "x" * 65), "65 characters"),
            (AlertContent("ALERT", "内蒙古乌兰察布暴雪预警"), "outside the RDS character set"),
            (AlertContent("TOO LONG PS", "ok"), "at most 8"),
        ]:
            with pytest.raises(RdsValueError, match=message):
                await AlertSequence(client, content).run(play)
        assert client.pending_restore is None
    assert not played and simulator.history == [] and simulator.state == NORMAL


async def test_unreachable_encoder_gives_a_clear_error() -> None:
    async with RdsEncoderSimulator() as sim:
        url = await sim.start_tcp()
        await sim.stop_tcp()
    client = client_for(url)
    with pytest.raises(RdsLinkError, match="cannot connect to encoder"):
        await AlertSequence(client, CONTENT).run(no_audio)
    assert not client.connected and client.pending_restore is None


async def test_one_unreachable_encoder_does_not_stop_another(
    simulator: RdsEncoderSimulator,
) -> None:
    url = await simulator.start_tcp()
    async with RdsEncoderSimulator() as gone:
        dead_url = await gone.start_tcp()
        await gone.stop_tcp()
    alive, dead = client_for(url), client_for(dead_url)
    try:
        results = await asyncio.gather(
            AlertSequence(alive, CONTENT).run(no_audio),
            AlertSequence(dead, CONTENT).run(no_audio),
            return_exceptions=True,
        )
    finally:
        await alive.close()
    assert results[0] is None
    assert isinstance(results[1], RdsLinkError) and "cannot connect" in str(results[1])
    assert simulator.state == NORMAL and True in [s.ta for s in simulator.history]


def test_snapshot_starts_from_the_configured_normal_state() -> None:
    client = client_for("socket://127.0.0.1:9")
    assert client.snapshot() == EncoderState(
        pi=0xC201, ps="BROADCST", rt="", ta=False, tp=True, pty=3
    )
