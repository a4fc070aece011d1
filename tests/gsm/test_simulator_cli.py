"""``broadcaster sim modem`` as integrators run it: a subprocess printing its device path."""

from __future__ import annotations

import asyncio
import signal
import sys

import pytest

from drivers.gsm import GsmModemPool, GsmPoolConfig, ReportStatus
from drivers.gsm.simulator_cli import build_parser

from .conftest import fast_config

NUMBER = "+8613800000009"


async def test_the_console_simulator_serves_a_driver_until_interrupted() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "drivers.gsm.simulator_cli",
        "--report-delay",
        "0",
        "--fail",
        NUMBER,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(10):
            first = (await process.stdout.readline()).decode()
            assert first.startswith("device: /dev/pts/")
            device = first.split(": ", 1)[1].strip()
            config = GsmPoolConfig((fast_config(device, status_reports=True),))
            async with GsmModemPool(config) as pool:
                submission = await pool.send(NUMBER, "drill", reference="r1")
                report = await anext(aiter(pool.reports()))
            received = (await process.stdout.readline()).decode()
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = await process.communicate()
    assert report.state is ReportStatus.FAILED and report.status == 0x46
    assert report.message_reference == submission.segments[0].message_reference
    assert f"to {NUMBER} part 1/1 GSM7: 'drill'" in received
    assert process.returncode == 0
    assert output.decode().strip() == "stopped: 1 segments received"


def test_bad_options_are_refused_with_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(["--cmgs-delay", "soon"])
    assert caught.value.code == 2
    assert "invalid float value: 'soon'" in capsys.readouterr().err


def test_fault_options_reach_the_simulator() -> None:
    options = build_parser().parse_args(
        ["--cms-error", "331", "--cms-error", "500", "--split-cds", "--temporary", NUMBER]
    )
    assert options.cms_error == [331, 500]
    assert options.split_cds and options.temporary == [NUMBER]
