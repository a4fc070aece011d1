"""AsciiEncoderClient against the simulator's ASCII dialect over TCP and a pty."""

from __future__ import annotations

import asyncio

import pytest

from drivers.rds import (
    AsciiEncoderClient,
    EncoderState,
    EwsPayload,
    RdsEncoderConfig,
    RdsEncoderSimulator,
    RdsRejectedError,
    RdsTimeoutError,
    RdsUnsupportedError,
)
from drivers.rds.ascii_client import ascii_command, ascii_parts

from .conftest import fast_config


def test_command_lines() -> None:
    assert ascii_command(EncoderState(ps="ALERT")) == b"PS=ALERT\r"
    assert ascii_command(EncoderState(rt="Cost $5")) == b"RT1=Cost \xab5\r"
    assert ascii_command(EncoderState(pi=0xC201)) == b"PI=C201\r"
    assert ascii_command(EncoderState(pty=31)) == b"PTY=31\r"
    assert ascii_command(EncoderState(ta=True)) == b"TA=1\r"
    assert ascii_command(EncoderState(tp=False)) == b"TP=0\r"
    raising = ascii_parts(EncoderState(ta=True, tp=True, pty=31))
    assert raising == [EncoderState(pty=31), EncoderState(ta=True), EncoderState(tp=True)]
    dropping = ascii_parts(EncoderState(ta=False, pty=3))
    assert dropping == [EncoderState(ta=False), EncoderState(pty=3)]


async def test_setters_over_tcp(ascii_simulator: RdsEncoderSimulator) -> None:
    url = await ascii_simulator.start_tcp()
    async with AsciiEncoderClient(fast_config(url, dialect="ascii")) as client:
        await client.set_ps("ALARM")
        await client.set_rt("Blizzard: stay indoors, 25°C below zero")
        await client.set_pty(30)
        await client.set_ta_tp(True, True)
        await client.set_pi(0xC0DE)
        with pytest.raises(RdsUnsupportedError):
            await client.send_ews(EwsPayload(0, 0, 0))
        with pytest.raises(RdsUnsupportedError):
            await client.ping()
        with pytest.raises(RdsUnsupportedError):
            await client.read_state()
    state = ascii_simulator.state
    assert state == EncoderState(
        pi=0xC0DE,
        ps="ALARM   ",
        rt="Blizzard: stay indoors, 25°C below zero",
        ta=True,
        tp=True,
        pty=30,
    )


async def test_replies_map_to_the_error_tree(ascii_simulator: RdsEncoderSimulator) -> None:
    url = await ascii_simulator.start_tcp()
    async with AsciiEncoderClient(fast_config(url, dialect="ascii", ack_timeout=0.1)) as client:
        ascii_simulator.faults.reject = 1
        with pytest.raises(RdsRejectedError, match="refused the argument") as caught:
            await client.set_pty(5)
        assert caught.value.code == "-"
        ascii_simulator.faults.lose_answers = 1
        await client.set_pty(6)  # lost reply: retransmitted, then acknowledged
        assert ascii_simulator.state.pty == 6
        ascii_simulator.faults.silent = True
        with pytest.raises(RdsTimeoutError):
            await client.set_pty(7)


async def test_unknown_and_partial_replies(ascii_simulator: RdsEncoderSimulator) -> None:
    url = await ascii_simulator.start_tcp()
    host, port = RdsEncoderConfig(url).host_port()
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(b"DPS=scrolling\rPS=123456789\rTA=2\r\nPTY=31\n")
        replies = [await reader.readline() for _ in range(4)]
    finally:
        writer.close()
        await writer.wait_closed()
    assert replies == [b"!\r\n", b"/\r\n", b"-\r\n", b"+\r\n"]
    assert ascii_simulator.state.ps == "12345678" and ascii_simulator.state.pty == 31
    assert ascii_simulator.encoder.negative_answers == ["!", "-"]


async def test_echo_and_noise_from_the_encoder_are_ignored() -> None:
    async def noisy_encoder(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        command = await reader.readuntil(b"\r")
        writer.write(command + b"\n\xff\x00garbage\r\n\r\n+\r\n")  # echo, noise, then "+"
        await writer.drain()
        await reader.read(1)
        writer.close()

    server = await asyncio.start_server(noisy_encoder, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        config = fast_config(f"socket://127.0.0.1:{port}", dialect="ascii")
        async with AsciiEncoderClient(config) as client:
            await client.set_pty(31)
            assert client.snapshot().pty == 31
    finally:
        server.close()
        await server.wait_closed()


async def test_over_a_pty(ascii_simulator: RdsEncoderSimulator) -> None:
    path = ascii_simulator.start_pty()
    async with AsciiEncoderClient(fast_config(path, dialect="ascii")) as client:
        await client.apply(EncoderState(ps="PTY", ta=False, tp=True))
    assert ascii_simulator.state.ps == "PTY     " and ascii_simulator.state.ta is False
