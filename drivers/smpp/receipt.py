"""SMPP delivery receipts: the text of SMPP 3.4 Appendix B and the §5.3.2 TLVs.

A deliver_sm whose esm_class message type is 0x04 (SMSC delivery receipt, §5.2.12) carries
``id:<id> sub:<n> dlvrd:<n> submit date:<YYMMDDhhmm> done date:<YYMMDDhhmm> stat:<state>
err:<code> text:<first 20 chars>`` in short_message, and/or the TLVs receipted_message_id
(0x001E) and message_state (0x0427, §5.3.2.35). The TLVs win when both are present.
"""

from __future__ import annotations

import re
from datetime import datetime

from drivers.smpp.pdu import (
    TAG_MESSAGE_STATE,
    TAG_RECEIPTED_MESSAGE_ID,
    ShortMessage,
)
from drivers.smsgw.errors import GatewayProtocolError
from drivers.smsgw.results import STAT_WORDS, STATS, Receipt, ReceiptState, gateway_time

# §5.3.2.35 message_state values
MESSAGE_STATES = {
    1: ReceiptState.ENROUTE,
    2: ReceiptState.DELIVERED,
    3: ReceiptState.EXPIRED,
    4: ReceiptState.DELETED,
    5: ReceiptState.UNDELIVERABLE,
    6: ReceiptState.ACCEPTED,
    7: ReceiptState.UNKNOWN,
    8: ReceiptState.REJECTED,
}
STATE_CODES = {state: code for code, state in MESSAGE_STATES.items()}

_LAYOUT = re.compile(
    r"id:(\S*) sub:(\S*) dlvrd:(\S*) submit date:(\S*) done date:(\S*) stat:(\S*) err:(\S*)",
    re.IGNORECASE,
)
_LAYOUT_NAMES = ("id", "sub", "dlvrd", "submit date", "done date", "stat", "err")
_FIELD = re.compile(
    r"(id|sub|dlvrd|submit date|done date|stat|err):(\S*)|text:(.*)", re.IGNORECASE | re.DOTALL
)


def _fields(text: str) -> dict[str, str]:
    """The receipt text's fields by lower-case name (the first of each): in one match for the
    text as Appendix B lays it out, field by field for any other order."""
    laid_out = _LAYOUT.match(text)
    if laid_out is not None:
        return dict(zip(_LAYOUT_NAMES, laid_out.groups(), strict=True))
    fields: dict[str, str] = {}
    for match in _FIELD.finditer(text):
        if match.group(1):
            fields.setdefault(match.group(1).lower(), match.group(2))
    return fields


def format_receipt_text(
    message_id: str,
    state: ReceiptState,
    submitted: datetime,
    done: datetime,
    error: str = "000",
    text: str = "",
) -> str:
    """The Appendix B receipt text (the simulator sends it)."""
    delivered = "001" if state is ReceiptState.DELIVERED else "000"
    return (
        f"id:{message_id} sub:001 dlvrd:{delivered} submit date:{submitted:%y%m%d%H%M}"
        f" done date:{done:%y%m%d%H%M} stat:{STAT_WORDS[state]} err:{error} text:{text[:20]}"
    )


def parse_receipt(body: ShortMessage) -> Receipt:
    """The receipt in a receipt deliver_sm; GatewayProtocolError if it names no message id."""
    text = body.short_message.decode("latin-1")
    fields = _fields(text)
    tlv_id = body.tlv(TAG_RECEIPTED_MESSAGE_ID)
    message_id = tlv_id.rstrip(b"\0").decode("ascii", "replace") if tlv_id else fields.get("id")
    if not message_id:
        raise GatewayProtocolError("delivery receipt without a message id")
    stat = fields.get("stat", "").upper()
    state = STATS.get(stat, ReceiptState.UNKNOWN)
    tlv_state = body.tlv(TAG_MESSAGE_STATE)
    if tlv_state and len(tlv_state) == 1:
        state = MESSAGE_STATES.get(tlv_state[0], ReceiptState.UNKNOWN)
        stat = stat or STAT_WORDS[state]
    return Receipt(
        message_id=message_id,
        state=state,
        stat=stat,
        error=fields.get("err", ""),
        submitted=gateway_time(fields.get("submit date")),
        done=gateway_time(fields.get("done date")),
    )
