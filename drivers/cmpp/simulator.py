"""A simulated China Mobile ISMG speaking CMPP 2.0 or 3.0: the protocol side of
``drivers.smsgw.simulator``.

Reuses the production codec (``drivers.cmpp.pdu``). Checks CMPP_CONNECT's AuthenticatorSource
against the account's shared secret (Status 3 when it is wrong, 4 for a higher version) and
answers with AuthenticatorISMG; answers CMPP_SUBMIT with a Msg_Id (Result 8 over the window or
rate) and sends status reports as CMPP_DELIVER with Registered_Delivery 1.
"""

from __future__ import annotations

import itertools
from datetime import datetime

from drivers.cmpp import pdu
from drivers.cmpp.client import VERSIONS
from drivers.cmpp.status import RESULT_FLOW_CONTROL
from drivers.smsgw.results import STAT_WORDS, ReceiptState
from drivers.smsgw.simulator import (
    SmscFaults,
    SmscProtocol,
    SmscRecord,
    SmscSettings,
    SmscSimulator,
    SubmittedSegment,
)

GATEWAY_CODE = 0x01F4A


class CmppIsmgProtocol(SmscProtocol[pdu.CmppPdu]):
    """CMPP on the ISMG side, in one version."""

    header_length = pdu.HEADER_LENGTH

    def __init__(self, version: int) -> None:
        self.version = version
        self._smsc_sequence = itertools.count(1)

    def decode(self, frame: bytes) -> pdu.CmppPdu:
        return pdu.decode(frame, self.version)

    def encode(self, message: pdu.CmppPdu) -> bytes:
        return pdu.encode(message, self.version)

    def command_id(self, message: pdu.CmppPdu) -> int:
        return message.command_id

    def login(
        self, message: pdu.CmppPdu, accounts: dict[str, str], refuse: bool
    ) -> tuple[pdu.CmppPdu, str | None]:
        body = message.body
        if not isinstance(body, pdu.Connect):
            response = pdu.ConnectResp(1, b"\0" * 16, self.version)
            return pdu.CmppPdu(pdu.CONNECT_RESP, message.sequence, response), None
        secret = accounts.get(body.source_addr)
        expected = (
            pdu.authenticator_source(body.source_addr, secret, f"{body.timestamp:010d}")
            if secret is not None
            else None
        )
        status = 0
        if refuse:
            status = 5
        elif secret is None:
            status = 2
        elif body.authenticator != expected:
            status = 3
        elif body.version > self.version:
            status = 4
        authenticator = b"\0" * 16
        if secret is not None:
            authenticator = pdu.authenticator_ismg(status, body.authenticator, secret, self.version)
        response = pdu.ConnectResp(status, authenticator, self.version)
        account = body.source_addr if status == 0 else None
        return pdu.CmppPdu(pdu.CONNECT_RESP, message.sequence, response), account

    def submitted(self, message: pdu.CmppPdu) -> SubmittedSegment | None:
        body = message.body
        if message.command_id != pdu.SUBMIT or not isinstance(body, pdu.Submit):
            return None
        return SubmittedSegment(
            destination=body.dest_terminal_ids[0],
            payload=body.content,
            udhi=bool(body.tp_udhi),
            coding=body.msg_fmt,
            wants_receipt=body.registered_delivery == 1,
            validity=body.valid_time,
        )

    def new_message_id(self, serial: int) -> str:
        return str(pdu.msg_id(datetime.now(), GATEWAY_CODE, serial))

    def submit_response(
        self, message: pdu.CmppPdu, message_id: str | None, throttled: bool
    ) -> pdu.CmppPdu:
        if message_id is None:
            body = pdu.MsgIdResult(0, RESULT_FLOW_CONTROL)
        else:
            body = pdu.MsgIdResult(int(message_id), 0)
        return pdu.CmppPdu(pdu.SUBMIT_RESP, message.sequence, body)

    def other_response(self, message: pdu.CmppPdu) -> tuple[pdu.CmppPdu | None, bool]:
        if message.command_id == pdu.ACTIVE_TEST:
            return pdu.CmppPdu(pdu.ACTIVE_TEST_RESP, message.sequence, pdu.ActiveTestResp()), False
        if message.command_id == pdu.TERMINATE:
            return pdu.CmppPdu(pdu.TERMINATE_RESP, message.sequence), True
        return None, False

    def receipt(
        self, sequence: int, record: SmscRecord, state: ReceiptState, submitted: datetime
    ) -> pdu.CmppPdu:
        report = pdu.StatusReport(
            msg_id=int(record.message_id),
            stat=STAT_WORDS[state],
            submit_time=f"{submitted:%y%m%d%H%M}",
            done_time=f"{datetime.now():%y%m%d%H%M}",
            dest_terminal_id=record.segment.destination,
            smsc_sequence=next(self._smsc_sequence),
        )
        body = pdu.Deliver(
            msg_id=int(record.message_id),
            dest_id=record.account,
            src_terminal_id=record.segment.destination,
            content=pdu.encode_status_report(report, self.version),
            registered_delivery=1,
        )
        return pdu.CmppPdu(pdu.DELIVER, sequence, body)


def cmpp_simulator(
    settings: SmscSettings, faults: SmscFaults | None = None, version: str = "3.0"
) -> SmscSimulator[pdu.CmppPdu]:
    """A CMPP ISMG simulator speaking ``version`` (call ``start`` to listen)."""
    return SmscSimulator(CmppIsmgProtocol(VERSIONS[version]), settings, faults)
