"""UecpEncoderClient against the simulator over real TCP and a real pty (pyserial)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from drivers.rds import (
    AsciiEncoderClient,
    EncoderState,
    EwsPayload,
    RdsConfigError,
    RdsEncoderConfig,
    RdsEncoderSimulator,
    RdsLinkError,
    RdsRejectedError,
    RdsTimeoutError,
    RdsValueError,
    UecpEncoderClient,
    make_encoder_client,
)
from drivers.rds.uecp_elements import CommunicationMode, PsElement, encode_message
from drivers.rds.uecp_frame import AckCode, UecpFrame, encode_frame

from .conftest import fast_config

PS_ALERT = bytes.fromhex("FE 00 00 00 0B 02 00 00 41 4C 45 52 54 20 20 20 52 14 FF")
ACK_OK_SEQ0 = encode_frame(UecpFrame(0, 0, 0, bytes.fromhex("18 00")))


async def test_each_setter_changes_what_listeners_see(simulator: RdsEncoderSimulator) -> None:
    url = await simulator.start_tcp()
    async with UecpEncoderClient(fast_config(url)) as client:
        await client.set_ps("WARNING")
        assert simulator.state.ps == "WARNING "
        await client.set_rt("Flood warning for Jining district: move to high ground")
        assert simulator.state.rt == "Flood warning for Jining district: move to high ground"
        await client.set_pty(31)
        assert simulator.state.pty == 31
        await client.set_ta_tp(True, True)
        assert (simulator.state.ta, simulator.state.tp) == (True, True)
        await client.set_pi(0xC0DE)
        assert simulator.state.pi == 0xC0DE
        await client.send_ews(EwsPayload(1, 0x1234, 0x5678))
        assert simulator.ews_received == [EwsPayload(1, 0x1234, 0x5678)]
        assert client.snapshot().ps == "WARNING "
    assert simulator.faults.lose_answers == 0


async def test_apply_sends_one_frame_with_ta_dropped_first(simulator: RdsEncoderSimulator) -> None:
    url = await simulator.start_tcp()
    async with UecpEncoderClient(fast_config(url)) as client:
        await client.apply(EncoderState(pty=31, ta=True, tp=True, ps="ALERT"))
        assert simulator.history[-1].ta is True and simulator.history[-2].pty == 31
        before = len(simulator.encoder.sequences_received)
        await client.apply(EncoderState(ta=False, pty=3, ps="RADIO 1"))
        assert len(simulator.encoder.sequences_received) == before + 1
        # TA went down before anything else changed.
        first_change = simulator.history[-3]
        assert first_change.ta is False and first_change.pty == 31


async def test_lost_ack_is_retransmitted_with_the_same_sequence(
    simulator: RdsEncoderSimulator,
) -> None:
    url = await simulator.start_tcp()
    async with UecpEncoderClient(fast_config(url)) as client:
        simulator.faults.lose_answers = 1
        await client.set_ps("ALERT")
    handshake, *sequences = simulator.encoder.sequences_received
    assert handshake == 1 and sequences == [2, 2]
    assert simulator.state.ps == "ALERT   "


async def test_damaged_frame_is_refused_by_crc_and_recovered(
    simulator: RdsEncoderSimulator,
) -> None:
    url = await simulator.start_tcp()
    async with UecpEncoderClient(fast_config(url)) as client:
        simulator.faults.damage_frames = 1
        await client.set_pty(30)
    assert simulator.encoder.negative_answers == [AckCode.CRC_ERROR]
    assert simulator.state.pty == 30
    # The damaged frame never reached the state: only one PTY change happened.
    assert [s.pty for s in simulator.history] == [30]


async def test_negative_ack_is_a_permanent_rejection(simulator: RdsEncoderSimulator) -> None:
    url = await simulator.start_tcp()
    async with UecpEncoderClient(fast_config(url)) as client:
        simulator.faults.reject = 1
        simulator.faults.reject_code = AckCode.PARAMETER_OUT_OF_RANGE
        with pytest.raises(RdsRejectedError, match="PARAMETER_OUT_OF_RANGE") as caught:
            await client.set_ps("ALERT")
        assert caught.value.code == 6 and not caught.value.retryable
        assert simulator.state.ps == "BROADCST" and client.snapshot().ps is None
        await client.set_ps("ALERT")  # the link is still usable
        assert simulator.state.ps == "ALERT   "


async def test_silent_encoder_times_out_after_bounded_attempts(
    simulator: RdsEncoderSimulator,
) -> None:
    url = await simulator.start_tcp()
    async with UecpEncoderClient(fast_config(url, ack_timeout=0.1)) as client:
        simulator.faults.silent = True
        with pytest.raises(RdsTimeoutError, match="after 3 attempts") as caught:
            await client.set_ta_tp(True, True)
        assert caught.value.retryable and isinstance(caught.value, TimeoutError)


async def test_frames_for_another_encoder_are_ignored() -> None:
    async with RdsEncoderSimulator(site_address=5, encoder_address=2) as sim:
        url = await sim.start_tcp()
        async with UecpEncoderClient(fast_config(url, site_address=5, encoder_address=2)) as ok:
            await ok.set_pty(31)
        async with UecpEncoderClient(
            fast_config(url, site_address=5, encoder_address=3, ack_timeout=0.05, max_attempts=1)
        ) as other:
            with pytest.raises(RdsTimeoutError):
                await other.set_pty(0)
        assert sim.state.pty == 31


async def test_bad_values_are_refused_before_sending(simulator: RdsEncoderSimulator) -> None:
    url = await simulator.start_tcp()
    async with UecpEncoderClient(fast_config(url)) as client:
        with pytest.raises(RdsValueError, match="65 characters"):
            await client.set_rt("x" * 65)
        with pytest.raises(RdsValueError, match="outside the RDS character set"):
            await client.set_rt("暴雨红色预警")
        with pytest.raises(RdsValueError):
            await client.set_pty(32)
        await client.set_ps("STILL OK")
    assert simulator.encoder.sequences_received == [1, 2]  # handshake, PS
    assert [s.ps for s in simulator.history] == ["STILL OK"]


async def test_unreachable_encoder_is_a_clear_link_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = UecpEncoderClient(fast_config(f"socket://127.0.0.1:{port}"))
    with pytest.raises(
        RdsLinkError, match=f"cannot connect to encoder at socket://127.0.0.1:{port}"
    ):
        await client.connect()
    with pytest.raises(RdsLinkError, match="not connected"):
        await client.set_ps("X")
    assert not client.connected


async def test_missing_serial_device_is_a_clear_link_error() -> None:
    client = UecpEncoderClient(fast_config("/dev/rds-encoder-that-is-not-plugged-in"))
    with pytest.raises(RdsLinkError, match="cannot open encoder port /dev/rds-encoder"):
        await client.connect()
    assert not client.connected


async def test_link_lost_mid_command_fails_fast(simulator: RdsEncoderSimulator) -> None:
    url = await simulator.start_tcp()
    async with UecpEncoderClient(fast_config(url, ack_timeout=5.0)) as client:
        simulator.faults.lose_answers = 1
        command = asyncio.create_task(client.set_ps("LOST"))
        await simulator.wait_for(lambda s: s.ps == "LOST    ")
        await simulator.drop_connections()
        with pytest.raises(RdsLinkError):
            await asyncio.wait_for(command, 1.0)
        assert not client.connected


async def test_garbage_from_the_encoder_is_ignored(simulator: RdsEncoderSimulator) -> None:
    server_side: asyncio.Queue[asyncio.StreamWriter] = asyncio.Queue()

    async def fake_encoder(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server_side.put(writer)
        await reader.read(1024)
        writer.write(b"\x00\xfe\x01\x02\xff garbage \xfe\xfd\x07\xff" + ACK_OK_SEQ0[:-3])
        writer.write(encode_frame(UecpFrame(0, 0, 1, bytes.fromhex("18 00"))))
        await writer.drain()
        await reader.read(1024)
        writer.close()

    server = await asyncio.start_server(fake_encoder, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        config = fast_config(f"socket://127.0.0.1:{port}", bidirectional=False)
        async with UecpEncoderClient(config) as client:
            await client.set_pty(31)
            assert client.snapshot().pty == 31
    finally:
        server.close()
        (await server_side.get()).close()
        await server.wait_closed()


async def test_a_line_echoing_the_commands_back_acknowledges_nothing() -> None:
    handlers: list[asyncio.Task[None]] = []

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        current = asyncio.current_task()
        assert current is not None
        handlers.append(current)
        while data := await reader.read(4096):
            writer.write(data)  # a loopback: the controller's own frames come back
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        config = fast_config(f"socket://127.0.0.1:{port}", ack_timeout=0.1, max_attempts=2)
        async with UecpEncoderClient(config) as client:
            with pytest.raises(RdsTimeoutError, match="no acknowledgement"):
                await client.apply(EncoderState(pty=31, ps="ALERT", ta=True, tp=True))
            with pytest.raises(RdsTimeoutError, match="no acknowledgement"):
                await client.read_state()
            assert client.snapshot() == EncoderState()
    finally:
        server.close()
        await server.wait_closed()
        await asyncio.gather(*handlers)


async def test_simulator_answers_raw_frames_byte_exactly(simulator: RdsEncoderSimulator) -> None:
    url = await simulator.start_tcp()
    host, port = RdsEncoderConfig(url).host_port()
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(PS_ALERT)
        assert await reader.readexactly(len(ACK_OK_SEQ0)) == ACK_OK_SEQ0
        assert simulator.state.ps == "ALERT   "
        damaged = bytearray(encode_frame(UecpFrame(0, 0, 9, encode_message([PsElement("X")]))))
        damaged[6] ^= 0x20
        writer.write(bytes(damaged))
        nak = encode_frame(UecpFrame(0, 0, 9, bytes.fromhex("18 01 09")))
        assert await reader.readexactly(len(nak)) == nak
        assert simulator.state.ps == "ALERT   "
    finally:
        writer.close()
        await writer.wait_closed()


async def test_over_a_pty_with_pyserial(simulator: RdsEncoderSimulator) -> None:
    path = simulator.start_pty()
    client = make_encoder_client(fast_config(path, baudrate=115200))
    async with client:
        simulator.faults.lose_answers = 1
        await client.set_ps("PTY OK")
        await client.set_ta_tp(True, True)
    assert simulator.state.ps == "PTY OK  " and simulator.state.ta is True
    assert simulator.encoder.sequences_received == [1, 2, 2, 3]


async def test_ping_changes_nothing_and_detects_silence(simulator: RdsEncoderSimulator) -> None:
    url = await simulator.start_tcp()
    async with UecpEncoderClient(fast_config(url, ack_timeout=0.1)) as client:
        await client.ping()
        assert simulator.history == [] and len(simulator.encoder.sequences_received) == 2
        simulator.faults.silent = True
        with pytest.raises(RdsTimeoutError):
            await client.ping()


async def test_read_state_reports_what_is_on_air() -> None:
    on_air = EncoderState(
        pi=0xC3A1, ps="JINING", rt="Now playing: Morin khuur", ta=False, tp=False, pty=26
    )
    async with RdsEncoderSimulator(initial=on_air.validate()) as sim:
        url = await sim.start_tcp()
        async with UecpEncoderClient(fast_config(url)) as client:
            assert client.snapshot() == EncoderState()
            assert await client.read_state() == on_air.validate()
            assert client.snapshot() == on_air.validate()
            sim.faults.reject = 1
            sim.faults.reject_code = AckCode.MESSAGE_UNKNOWN
            with pytest.raises(RdsRejectedError, match="MESSAGE_UNKNOWN"):
                await client.read_state()
        assert sim.history == []


async def test_communication_mode_is_requested_on_connect() -> None:
    async with RdsEncoderSimulator() as sim:
        sim.encoder.communication_mode = CommunicationMode.UNIDIRECTIONAL
        url = await sim.start_tcp()
        quiet = fast_config(url, bidirectional=False, ack_timeout=0.05, max_attempts=1)
        async with UecpEncoderClient(quiet) as client:
            with pytest.raises(RdsTimeoutError):
                await client.set_pty(1)
        assert sim.state.pty == 1  # applied, but a unidirectional encoder never answers
        async with UecpEncoderClient(fast_config(url)) as client:
            await client.set_pty(2)
        assert sim.encoder.communication_mode is CommunicationMode.SPONTANEOUS_RESPONSE


def test_config_from_url_and_bad_config() -> None:
    config = RdsEncoderConfig.from_url("socket://10.0.0.7:4001?site=12&encoder=3&ack_timeout=0.5")
    assert (config.url, config.site_address, config.encoder_address) == (
        "socket://10.0.0.7:4001",
        12,
        3,
    )
    assert config.ack_timeout == 0.5 and config.host_port() == ("10.0.0.7", 4001)
    assert isinstance(make_encoder_client("/dev/ttyS1?dialect=ascii"), AsciiEncoderClient)
    for bad, message in [
        ("socket://host", "not socket://host:port"),
        ("socket://h:1?site=1024", "site_address"),
        ("socket://h:1?encoder=x", "encoder: 'x' is not a int"),
        ("socket://h:1?colour=red", "colour: unknown setting"),
        ("socket://h:1?dialect=morse", "dialect"),
        ("socket://h:1?attempts=0", "max_attempts"),
        ("socket://h:1?bidirectional=maybe", "bidirectional: 'maybe' is not a yes/no value"),
    ]:
        with pytest.raises(RdsConfigError, match=message):
            RdsEncoderConfig.from_url(bad)
