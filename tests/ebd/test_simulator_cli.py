"""``broadcaster sim ebplatform`` as a real subprocess: listens, answers, reports, stops."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import pytest

from drivers.ebd import ConnectionCheck, EbdRefusedError, result_of
from drivers.ebd.simulator import EbdPlatformSimulator
from drivers.ebd.simulator_cli import main
from drivers.ebd.testing import PlatformIdentity
from drivers.ebd.xmlsafe import beijing_now


async def read_line(stream: asyncio.StreamReader) -> str:
    return (await asyncio.wait_for(stream.readline(), 20)).decode().strip()


async def test_simulator_command_answers_and_reports(city: PlatformIdentity) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "drivers.ebd.simulator_cli", "--listen", "127.0.0.1:0",
        "--refuse", "5",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        assert (await read_line(process.stdout)).startswith("identity ")
        assert await read_line(process.stdout) == "signatures are not checked (no --trust given)"
        listening = await read_line(process.stdout)
        assert listening.startswith("listening http://127.0.0.1:")
        url = listening.removeprefix("listening ")
        async with EbdPlatformSimulator(city.ebrid, city.signer(), None) as us:
            reply = await us.send(url, ConnectionCheck(beijing_now()))
            with pytest.raises(EbdRefusedError):
                result_of(reply.ebd, reply.ebd.related_ebdid or "")
        line = await read_line(process.stdout)
        assert line.startswith("received ConnectionCheck 10" + city.ebrid)
    finally:
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 20) == 0


def test_bad_options_are_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--ebrid", "123"]) == 2
    assert "--ebrid" in capsys.readouterr().err
    assert main(["--listen", "nowhere"]) == 2
    assert "HOST:PORT" in capsys.readouterr().err
    key = tmp_path / "key.pem"
    key.write_text("x")
    key.chmod(0o644)
    assert main(["--key", str(key), "--cert-id", "010203040506"]) == 2
    assert "chmod 600" in capsys.readouterr().err
    assert main(["--state-outcome", "9"]) == 2
    assert "bad option" in capsys.readouterr().err
