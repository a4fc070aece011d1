"""``broadcaster sim rds`` as a real subprocess: listens, applies, prints, stops on Ctrl-C."""

from __future__ import annotations

import asyncio
import signal
import sys

from drivers.rds import UecpEncoderClient
from drivers.rds.simulator_cli import main

from .conftest import fast_config


async def read_line(stream: asyncio.StreamReader) -> str:
    return (await asyncio.wait_for(stream.readline(), 10)).decode().strip()


async def test_simulator_command_serves_tcp_and_pty() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "drivers.rds.simulator_cli",
        "--tcp",
        "127.0.0.1:0",
        "--pty",
        "--lose-answers",
        "1",
        "--unidirectional",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        tcp_line = await read_line(process.stdout)
        pty_line = await read_line(process.stdout)
        assert tcp_line.startswith("listening socket://127.0.0.1:")
        assert pty_line.startswith("listening /dev/pts/")
        assert await read_line(process.stdout) == (
            "state PI=C201 PS='BROADCST' RT='' TA=False TP=True PTY=3"
        )
        url = tcp_line.removeprefix("listening ")
        async with UecpEncoderClient(fast_config(url)) as client:
            await client.set_pty(30)  # the handshake's answer was lost and retransmitted
        assert await read_line(process.stdout) == (
            "state PI=C201 PS='BROADCST' RT='' TA=False TP=True PTY=30"
        )
        async with UecpEncoderClient(fast_config(pty_line.removeprefix("listening "))) as client:
            await client.set_ps("VIA PTY")
        assert "PS='VIA PTY '" in await read_line(process.stdout)
    finally:
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 10) == 0


def test_bad_options_exit_2(capsys: object) -> None:
    assert main(["--dialect", "morse"]) == 2
    assert main(["--no-tcp"]) == 2
    assert main(["--site", "5000", "--tcp", "127.0.0.1:0"]) == 2
    assert main(["--ps", "洪水", "--tcp", "127.0.0.1:0"]) == 2
