"""smpplib, an independent SMPP client, binds to our simulated SMSC, submits and gets its
delivery receipt: the simulator speaks SMPP 3.4 as a third party reads it."""

from __future__ import annotations

import asyncio
from typing import Any

import smpplib.client
import smpplib.exceptions

from drivers.smsgw.segments import join_payload

from .conftest import SimulatorFactory


def _smpplib_session(port: int, password: str) -> dict[str, list[Any]]:
    seen: dict[str, list[Any]] = {"sent": [], "received": []}
    client = smpplib.client.Client("127.0.0.1", port, timeout=5, allow_unknown_opt_params=True)
    client.set_message_sent_handler(lambda pdu: seen["sent"].append(pdu.message_id))
    client.set_message_received_handler(lambda pdu: seen["received"].append(pdu))
    client.connect()
    try:
        client.bind_transceiver(system_id="warn", password=password)
        client.send_message(
            source_addr="12110",
            destination_addr="8613800138000",
            dest_addr_ton=1,
            dest_addr_npi=1,
            short_message="地震预警".encode("utf-16-be"),
            data_coding=8,
            registered_delivery=1,
        )
        while not seen["received"]:
            client.read_once()
        client.unbind()
    finally:
        client.disconnect()
    return seen


async def test_smpplib_binds_submits_and_gets_its_receipt(make_smsc: SimulatorFactory) -> None:
    smsc = await make_smsc()
    seen = await asyncio.to_thread(_smpplib_session, smsc.port, "secret")
    [record] = smsc.records
    assert join_payload(record.segment.payload, False, 8)[0] == "地震预警"
    assert seen["sent"] == [record.message_id.encode()]
    [receipt] = seen["received"]
    assert receipt.receipted_message_id == record.message_id.encode()
    assert receipt.message_state == 2
    assert b"stat:DELIVRD" in receipt.short_message


async def test_smpplib_with_a_wrong_password_is_refused(make_smsc: SimulatorFactory) -> None:
    smsc = await make_smsc()
    try:
        await asyncio.to_thread(_smpplib_session, smsc.port, "nope")
    except smpplib.exceptions.PDUError as exc:
        assert exc.args[1] == 0x0E  # ESME_RINVPASWD
    else:
        raise AssertionError("bind with a wrong password was accepted")
    assert smsc.records == [] and smsc.binds == 0
