"""``broadcaster sim smsc`` as integrators run it: a subprocess on a loopback port that our
clients bind to, for SMPP and for CMPP."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys

import pytest

from drivers.cmpp.client import CmppClient, CmppClientConfig
from drivers.smpp.client import SmppClient, SmppClientConfig
from drivers.smsgw.client import GatewayClient
from drivers.smsgw.results import ReceiptState
from drivers.smsgw.simulator_cli import build_parser, main


def _client(protocol: str, port: int) -> GatewayClient:
    if protocol == "smpp":
        return SmppClient(SmppClientConfig("127.0.0.1", port, "ops", "pw", connect_timeout=3))
    return CmppClient(CmppClientConfig("127.0.0.1", port, "901234", "pw", version="2.0"))


@pytest.mark.parametrize("protocol", ["smpp", "cmpp"])
async def test_console_simulator_serves_a_client_until_interrupted(protocol: str) -> None:
    account = "ops:pw" if protocol == "smpp" else "901234:pw"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "drivers.smsgw.simulator_cli", "--protocol", protocol,
        "--cmpp-version", "2.0", "--port", "0", "--account", account,
        "--receipt-delay", "0", "--outcome", "expired",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        async with asyncio.timeout(15):
            first = (await process.stdout.readline()).decode()
            assert first.startswith("listening: 127.0.0.1:")
            client = _client(protocol, int(first.rsplit(":", 1)[1]))
            await client.start()
            try:
                submission = await client.submit("+8613800138000", "演练")
                receipt = await anext(aiter(client.receipts()))
            finally:
                await client.close()
            accepted = (await process.stdout.readline()).decode()
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = await process.communicate()
    assert receipt.state is ReceiptState.EXPIRED
    assert receipt.message_id == submission.message_ids[0]
    assert f"accepted {submission.message_ids[0]}" in accepted
    assert "to 8613800138000 part 1/1: '演练'" in accepted
    assert process.returncode == 0
    assert output.decode().strip() == "stopped: 1 segments accepted, 1 receipts sent, 0 throttled"


def test_bad_options_are_refused_with_usage(capsys: pytest.CaptureFixture[str]) -> None:
    for bad in (["--account", "nocolon"], ["--outcome", "lost"], ["--protocol", "ucp"]):
        with pytest.raises(SystemExit) as caught:
            build_parser().parse_args(bad)
        assert caught.value.code == 2
    assert "is not NAME:SECRET" in capsys.readouterr().err


def test_a_busy_port_is_one_error_line(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["--port", str(port)]) == 1
    error = capsys.readouterr().err
    assert error.startswith(f"cannot listen on 127.0.0.1:{port}:") and "Traceback" not in error
