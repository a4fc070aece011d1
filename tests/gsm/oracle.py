"""Independent PDU decoders for the GSM tests: smspdudecoder first, python-gsmmodem-new second."""

from __future__ import annotations

from io import StringIO
from typing import Any

from gsmmodem.pdu import decodeSmsPdu
from smspdudecoder.fields import SMSSubmit


def independent(pdu_hex: str) -> dict[str, Any]:
    decoded: dict[str, Any] = SMSSubmit.decode(StringIO(pdu_hex))
    return decoded


def independent_text(pdu_hex: str) -> str:
    """The text of one SUBMIT as independent decoders read it.

    smspdudecoder slices GSM-7 text by septet count after joining escape pairs, so with
    extension characters a padding septet leaks out as a trailing '@'; for GSM-7 the text is
    taken from python-gsmmodem-new's decoder (which mishandles surrogate pairs, so UCS-2 comes
    from smspdudecoder) and smspdudecoder must agree on everything before the padding.
    """
    decoded = independent(pdu_hex)
    text: str = decoded["user_data"]["data"]
    if decoded["dcs"]["encoding"] == "ucs2":
        return text
    other: str = decodeSmsPdu(pdu_hex)["text"]
    assert text.startswith(other) and set(text[len(other) :]) <= {"@"}
    return other
