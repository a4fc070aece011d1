"""The SMPP client and what an SMSC may send it besides answers and receipts, over real
loopback TCP: requests the client does not know (alert_notification, data_sm) are answered
generic_nack with ESME_RINVCMDID (SMPP 3.4 §4.3) and the bind stays up; responses that answer
no request of theirs are ignored; the SMSC's unbind is answered before the connection closes
(§4.2)."""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator, Callable

import pytest

from drivers.smpp import pdu
from drivers.smpp.client import SmppClient
from drivers.smpp.status import ESME_RINVCMDID

from ..smsgw.leaks import assert_no_driver_tasks
from ..smsgw.scripted import ScriptedGateway
from .conftest import client_config

ALERT_NOTIFICATION = 0x00000102
DATA_SM = 0x00000103
DATA_SM_RESP = 0x80000103

Smsc = ScriptedGateway[pdu.SmppPdu]


def frame(command_id: int, sequence: int, body: bytes = b"", status: int = 0) -> bytes:
    return struct.pack(">IIII", 16 + len(body), command_id, status, sequence) + body


def alert_notification(sequence: int) -> bytes:
    """§4.12.1: source_addr_ton, _npi, source_addr, esme_addr_ton, _npi, esme_addr."""
    return frame(ALERT_NOTIFICATION, sequence, b"\x01\x018613800000001\0\x01\x0112110\0")


def data_sm(sequence: int) -> bytes:
    """§4.7.1 with a message_payload TLV: a mobile-originated message in data_sm form."""
    body = b"\0\x01\x018613800000001\0\x00\x0012110\0\x00\x00\x00"
    return frame(DATA_SM, sequence, body + struct.pack(">HH", 0x0424, 2) + b"ok")


def bind_and_submit(
    before_answer: Callable[[int], list[bytes]],
) -> Callable[[pdu.SmppPdu], list[bytes]]:
    """An SMSC answer: binds, answers submit_sm with message id 42 after the frames
    ``before_answer(sequence of the submit)``, answers unbind."""

    def answer(message: pdu.SmppPdu) -> list[bytes]:
        sequence = message.sequence
        if message.command_id == pdu.BIND_TRANSCEIVER:
            body = pdu.BindRespBody("smsc")
            return [pdu.encode(pdu.SmppPdu(pdu.BIND_TRANSCEIVER_RESP, sequence, body=body))]
        if message.command_id == pdu.SUBMIT_SM:
            resp = pdu.SmppPdu(pdu.SUBMIT_SM_RESP, sequence, body=pdu.MessageIdBody("42"))
            return [*before_answer(sequence), pdu.encode(resp)]
        if message.command_id == pdu.UNBIND:
            return [pdu.encode(pdu.SmppPdu(pdu.UNBIND_RESP, sequence))]
        return []

    return answer


@pytest.fixture
async def make_scripted() -> AsyncIterator[Callable[..., Smsc]]:
    started: list[Smsc] = []

    def factory(answer: Callable[[pdu.SmppPdu], list[bytes]]) -> Smsc:
        smsc = ScriptedGateway(pdu.HEADER_LENGTH, pdu.decode, answer)
        started.append(smsc)
        return smsc

    yield factory
    for smsc in started:
        await smsc.stop()
    await assert_no_driver_tasks()


async def test_unknown_requests_get_generic_nack_and_the_bind_stays_up(
    make_scripted: Callable[..., Smsc],
) -> None:
    smsc = make_scripted(bind_and_submit(lambda _: [alert_notification(901), data_sm(902)]))
    await smsc.start()
    client = SmppClient(client_config(smsc.port))
    await client.start()
    try:
        submission = await client.submit("+8613800000001", "test")
        await smsc.wait_for(lambda got: sum(m.command_id == pdu.GENERIC_NACK for m in got) == 2)
        assert client.binds_up == 1
    finally:
        await client.close()
    assert submission.message_ids == ("42",)
    nacks = [m for m in smsc.received if m.command_id == pdu.GENERIC_NACK]
    assert [(m.sequence, m.status) for m in nacks] == [
        (901, ESME_RINVCMDID),
        (902, ESME_RINVCMDID),
    ]
    assert smsc.connections == 1 and client.bind_count == 1


async def test_responses_that_answer_no_request_of_theirs_are_ignored(
    make_scripted: Callable[..., Smsc],
) -> None:
    def stray(sequence: int) -> list[bytes]:
        # an unknown response id, then a known one of another kind, both on the submit's number
        return [frame(DATA_SM_RESP, sequence, b"7\0"), frame(pdu.ENQUIRE_LINK_RESP, sequence)]

    smsc = make_scripted(bind_and_submit(stray))
    await smsc.start()
    client = SmppClient(client_config(smsc.port))
    await client.start()
    try:
        submission = await client.submit("+8613800000001", "test")
        assert client.binds_up == 1
    finally:
        await client.close()
    assert submission.message_ids == ("42",)
    assert smsc.connections == 1


async def test_the_smscs_unbind_is_answered_before_the_connection_closes(
    make_scripted: Callable[..., Smsc],
) -> None:
    def answer(message: pdu.SmppPdu) -> list[bytes]:
        if message.command_id != pdu.BIND_TRANSCEIVER:
            return []
        body = pdu.BindRespBody("smsc")
        bound = pdu.encode(pdu.SmppPdu(pdu.BIND_TRANSCEIVER_RESP, message.sequence, body=body))
        return [bound, pdu.encode(pdu.SmppPdu(pdu.UNBIND, 77))]

    smsc = make_scripted(answer)
    await smsc.start()
    client = SmppClient(client_config(smsc.port, reconnect_min=30.0, reconnect_max=30.0))
    await client.start(wait=0)  # the bind ends at once: nothing to wait for
    try:
        await smsc.wait_for(lambda got: any(m.command_id == pdu.UNBIND_RESP for m in got))
    finally:
        await client.close()
    answers = [m for m in smsc.received if m.command_id == pdu.UNBIND_RESP]
    assert [m.sequence for m in answers] == [77]
