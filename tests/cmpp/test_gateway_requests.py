"""The CMPP client and what an ISMG may send it besides answers and status reports, over real
loopback TCP: a command the client does not know is ignored (CMPP defines no negative answer)
and the connection stays up; a response that answers no request of its kind is ignored;
CMPP_TERMINATE is answered before the connection closes (§7.4.2)."""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator, Callable

import pytest

from drivers.cmpp import pdu
from drivers.cmpp.client import VERSIONS, CmppClient

from ..smsgw.leaks import assert_no_driver_tasks
from ..smsgw.scripted import ScriptedGateway
from .test_gateway import config

QUERY = 0x00000006  # CMPP_QUERY: a request this client never expects from the ISMG
CANCEL_RESP = 0x80000007

Ismg = ScriptedGateway[pdu.CmppPdu]


def frame(command_id: int, sequence: int, body: bytes = b"") -> bytes:
    return struct.pack(">III", 12 + len(body), command_id, sequence) + body


def connected(message: pdu.CmppPdu, version: int) -> bytes:
    """CMPP_CONNECT_RESP accepting the client (the test account's secret is s3cret)."""
    assert isinstance(message.body, pdu.Connect)
    authenticator = pdu.authenticator_ismg(0, message.body.authenticator, "s3cret", version)
    body = pdu.ConnectResp(0, authenticator, version)
    return pdu.encode(pdu.CmppPdu(pdu.CONNECT_RESP, message.sequence, body), version)


@pytest.fixture
async def make_scripted() -> AsyncIterator[Callable[..., Ismg]]:
    started: list[Ismg] = []

    def factory(version: int, answer: Callable[[pdu.CmppPdu], list[bytes]]) -> Ismg:
        ismg = ScriptedGateway(pdu.HEADER_LENGTH, lambda f: pdu.decode(f, version), answer)
        started.append(ismg)
        return ismg

    yield factory
    for ismg in started:
        await ismg.stop()
    await assert_no_driver_tasks()


@pytest.mark.parametrize("version", ["2.0", "3.0"])
async def test_an_unknown_command_and_stray_responses_leave_the_connection_up(
    make_scripted: Callable[..., Ismg], version: str
) -> None:
    number = VERSIONS[version]

    def answer(message: pdu.CmppPdu) -> list[bytes]:
        sequence = message.sequence
        if message.command_id == pdu.CONNECT:
            return [connected(message, number)]
        if message.command_id == pdu.TERMINATE:
            return [pdu.encode(pdu.CmppPdu(pdu.TERMINATE_RESP, sequence), number)]
        if message.command_id != pdu.SUBMIT:
            return []
        accepted = pdu.CmppPdu(pdu.SUBMIT_RESP, sequence, pdu.MsgIdResult(42, 0))
        return [
            frame(QUERY, 901, b"20260101" + b"\0" * 19),
            frame(CANCEL_RESP, sequence, b"\0"),  # an unknown response on the submit's number
            pdu.encode(pdu.CmppPdu(pdu.ACTIVE_TEST_RESP, sequence, pdu.ActiveTestResp()), number),
            pdu.encode(accepted, number),
        ]

    ismg = make_scripted(number, answer)
    await ismg.start()
    client = CmppClient(config(ismg.port, version))
    await client.start()
    try:
        submission = await client.submit("+8613800000001", "测试")
        assert client.binds_up == 1
    finally:
        await client.close()
    assert submission.message_ids == ("42",)
    assert ismg.connections == 1 and client.bind_count == 1
    assert [m.command_id for m in ismg.received] == [pdu.CONNECT, pdu.SUBMIT, pdu.TERMINATE]


async def test_the_ismgs_terminate_is_answered_before_the_connection_closes(
    make_scripted: Callable[..., Ismg],
) -> None:
    number = VERSIONS["3.0"]

    def answer(message: pdu.CmppPdu) -> list[bytes]:
        if message.command_id != pdu.CONNECT:
            return []
        return [connected(message, number), pdu.encode(pdu.CmppPdu(pdu.TERMINATE, 77), number)]

    ismg = make_scripted(number, answer)
    await ismg.start()
    client = CmppClient(config(ismg.port, "3.0", reconnect_min=30.0, reconnect_max=30.0))
    await client.start(wait=0)  # the connection ends at once: nothing to wait for
    try:
        await ismg.wait_for(lambda got: any(m.command_id == pdu.TERMINATE_RESP for m in got))
    finally:
        await client.close()
    answers = [m for m in ismg.received if m.command_id == pdu.TERMINATE_RESP]
    assert [m.sequence for m in answers] == [77]
