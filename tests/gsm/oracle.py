"""The independent PDU decoder for the GSM tests: smspdudecoder, with its one slicing bug undone.

smspdudecoder slices GSM-7 text by septet count after joining escape pairs, so when a segment
holds extension characters, padding septets leak out as trailing characters ('@'). The true
septet count comes from TP-UDL, read here from the PDU header; characters are dropped from the
end until their septet cost (smspdudecoder's own extension table: two septets each) fits.
"""

from __future__ import annotations

from io import StringIO
from typing import Any

from smspdudecoder.codecs import GSM
from smspdudecoder.fields import SMSSubmit

_VP_OCTETS = {0: 0, 1: 7, 2: 1, 3: 7}


def independent(pdu_hex: str) -> dict[str, Any]:
    decoded: dict[str, Any] = SMSSubmit.decode(StringIO(pdu_hex))
    return decoded


def _user_data_length(pdu_hex: str) -> int:
    data = bytes.fromhex(pdu_hex)
    offset = 1 + data[0]  # SMSC address
    first = data[offset]
    digits = data[offset + 2]
    offset += 2 + 2 + (digits + 1) // 2  # first octet, TP-MR, address length and type, digits
    offset += 2 + _VP_OCTETS[(first >> 3) & 0x03]  # TP-PID, TP-DCS, TP-VP
    return data[offset]


def independent_text(pdu_hex: str) -> str:
    """The text of one SMS-SUBMIT as smspdudecoder reads it."""
    decoded = independent(pdu_hex)
    text: str = decoded["user_data"]["data"]
    if decoded["dcs"]["encoding"] != "gsm":
        return text
    header = decoded["user_data"]["header"]
    header_septets = ((header["length"] + 1) * 8 + 6) // 7 if header else 0
    septets = _user_data_length(pdu_hex) - header_septets

    def cost(chars: str) -> int:
        return sum(2 if c in GSM.ALPHABET_EXT_INV else 1 for c in chars)

    while cost(text) > septets:
        text = text[:-1]
    return text
