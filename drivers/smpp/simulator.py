"""A simulated SMPP 3.4 SMSC: the protocol side of ``drivers.smsgw.simulator``.

Reuses the production codec (``drivers.smpp.pdu``). Binds with bind_transceiver only
(§4.1.5), checks system_id and password (ESME_RINVSYSID / ESME_RINVPASWD), answers submit_sm
with a hexadecimal message id or ESME_RTHROTTLED over the window or rate, and sends receipts
as deliver_sm with esm_class 0x04, the Appendix B text and the receipted_message_id and
message_state TLVs.
"""

from __future__ import annotations

from datetime import datetime

from drivers.smpp import pdu
from drivers.smpp.receipt import STATE_CODES, format_receipt_text
from drivers.smpp.status import (
    ESME_RBINDFAIL,
    ESME_RINVBNDSTS,
    ESME_RINVCMDID,
    ESME_RINVPASWD,
    ESME_RINVSYSID,
    ESME_RTHROTTLED,
)
from drivers.smsgw.results import ReceiptState
from drivers.smsgw.segments import join_payload
from drivers.smsgw.simulator import (
    SmscFaults,
    SmscProtocol,
    SmscRecord,
    SmscSettings,
    SmscSimulator,
    SubmittedSegment,
)


class SmppSmscProtocol(SmscProtocol[pdu.SmppPdu]):
    """SMPP 3.4 on the SMSC side."""

    header_length = pdu.HEADER_LENGTH

    def decode(self, frame: bytes) -> pdu.SmppPdu:
        return pdu.decode(frame)

    def encode(self, message: pdu.SmppPdu) -> bytes:
        return pdu.encode(message)

    def command_id(self, message: pdu.SmppPdu) -> int:
        return message.command_id

    def login(
        self, message: pdu.SmppPdu, accounts: dict[str, str], refuse: bool
    ) -> tuple[pdu.SmppPdu, str | None]:
        if message.command_id != pdu.BIND_TRANSCEIVER or not isinstance(message.body, pdu.BindBody):
            return pdu.SmppPdu(pdu.GENERIC_NACK, message.sequence, ESME_RINVBNDSTS), None
        body = message.body
        status = 0
        if refuse:
            status = ESME_RBINDFAIL
        elif body.system_id not in accounts:
            status = ESME_RINVSYSID
        elif accounts[body.system_id] != body.password:
            status = ESME_RINVPASWD
        if status:
            return pdu.SmppPdu(pdu.BIND_TRANSCEIVER_RESP, message.sequence, status), None
        response = pdu.BindRespBody(
            "SIMSMSC", (pdu.Tlv(pdu.TAG_SC_INTERFACE_VERSION, bytes((pdu.INTERFACE_VERSION,))),)
        )
        return pdu.SmppPdu(
            pdu.BIND_TRANSCEIVER_RESP, message.sequence, body=response
        ), body.system_id

    def submitted(self, message: pdu.SmppPdu) -> SubmittedSegment | None:
        if message.command_id != pdu.SUBMIT_SM or not isinstance(message.body, pdu.ShortMessage):
            return None
        body = message.body
        return SubmittedSegment(
            destination=body.destination_addr,
            payload=body.short_message,
            udhi=bool(body.esm_class & pdu.ESM_UDHI),
            coding=body.data_coding,
            wants_receipt=bool(body.registered_delivery & 0x03),
            validity=body.validity_period,
        )

    def new_message_id(self, serial: int) -> str:
        return f"{0x5A000000 + serial:x}"

    def submit_response(
        self, message: pdu.SmppPdu, message_id: str | None, throttled: bool
    ) -> pdu.SmppPdu:
        if message_id is None:
            return pdu.SmppPdu(pdu.SUBMIT_SM_RESP, message.sequence, ESME_RTHROTTLED)
        return pdu.SmppPdu(pdu.SUBMIT_SM_RESP, message.sequence, body=pdu.MessageIdBody(message_id))

    def other_response(self, message: pdu.SmppPdu) -> tuple[pdu.SmppPdu | None, bool]:
        if message.command_id == pdu.ENQUIRE_LINK:
            return pdu.SmppPdu(pdu.ENQUIRE_LINK_RESP, message.sequence), False
        if message.command_id == pdu.UNBIND:
            return pdu.SmppPdu(pdu.UNBIND_RESP, message.sequence), True
        return pdu.SmppPdu(pdu.GENERIC_NACK, message.sequence, ESME_RINVCMDID), False

    def receipt(
        self, sequence: int, record: SmscRecord, state: ReceiptState, submitted: datetime
    ) -> pdu.SmppPdu:
        segment = record.segment
        text, _ = join_payload(segment.payload, segment.udhi, segment.coding)
        error = "000" if state is ReceiptState.DELIVERED else "001"
        receipt_text = format_receipt_text(
            record.message_id,
            state,
            submitted,
            datetime.now(),
            error,
            text.encode("ascii", "replace").decode(),
        )
        body = pdu.ShortMessage(
            source_addr=segment.destination,
            destination_addr="",
            short_message=receipt_text.encode("ascii"),
            esm_class=pdu.ESM_DELIVERY_RECEIPT,
            tlvs=(
                pdu.Tlv(pdu.TAG_RECEIPTED_MESSAGE_ID, record.message_id.encode() + b"\0"),
                pdu.Tlv(pdu.TAG_MESSAGE_STATE, bytes((STATE_CODES[state],))),
            ),
        )
        return pdu.SmppPdu(pdu.DELIVER_SM, sequence, body=body)


def smpp_simulator(
    settings: SmscSettings, faults: SmscFaults | None = None
) -> SmscSimulator[pdu.SmppPdu]:
    """An SMPP SMSC simulator with the given behaviour (call ``start`` to listen)."""
    return SmscSimulator(SmppSmscProtocol(), settings, faults)
