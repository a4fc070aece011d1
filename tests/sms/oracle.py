"""The independent oracle of the SMS tests: smspdudecoder reads what the simulated network got.

Each segment's recipient, concatenation reference, part number and text come from smspdudecoder
alone (not from the production codec). smspdudecoder slices GSM-7 text by septet count after
joining escape pairs, so a text with extension characters (``[``, ``€``) can show the padding
septet as a trailing ``@``; only then is that one character dropped.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from io import StringIO
from typing import Any

from smspdudecoder.fields import SMSSubmit

from drivers.gsm.codec import GSM7_EXTENSION
from drivers.gsm.simulator_network import NetworkRecord


def decode(pdu_hex: str) -> dict[str, Any]:
    decoded: dict[str, Any] = SMSSubmit.decode(StringIO(pdu_hex))
    return decoded


def _text(decoded: dict[str, Any]) -> str:
    text: str = decoded["user_data"]["data"]
    escaped = any(char in GSM7_EXTENSION for char in text)
    if decoded["dcs"]["encoding"] != "ucs2" and escaped and text.endswith("@"):
        return text[:-1]
    return text


def received_messages(records: Sequence[NetworkRecord]) -> dict[str, list[str]]:
    """Per recipient number (with +), the messages it received, parts joined in order."""
    parts: dict[tuple[str, int], dict[int, str]] = defaultdict(dict)
    totals: dict[tuple[str, int], int] = {}
    for index, record in enumerate(records):
        decoded = decode(record.pdu_hex)
        number = "+" + decoded["recipient"]["number"]
        header = decoded["user_data"].get("header")
        if header:
            concat = header["elements"][0]["data"]
            key = (number, concat["reference"])
            totals[key] = concat["parts_count"]
            parts[key][concat["part_number"]] = _text(decoded)
        else:
            key = (number, -1 - index)  # a single-part message stands alone
            totals[key] = 1
            parts[key][1] = _text(decoded)
    messages: dict[str, list[str]] = defaultdict(list)
    for (number, _), pieces in parts.items():
        assert sorted(pieces) == list(range(1, len(pieces) + 1))
        messages[number].append("".join(pieces[n] for n in sorted(pieces)))
    assert all(len(parts[key]) == total for key, total in totals.items())
    return dict(messages)


def encodings(records: Sequence[NetworkRecord]) -> dict[str, set[str]]:
    """Per recipient number, the data codings smspdudecoder saw (``gsm`` or ``ucs2``)."""
    found: dict[str, set[str]] = defaultdict(set)
    for record in records:
        decoded = decode(record.pdu_hex)
        found["+" + decoded["recipient"]["number"]].add(decoded["dcs"]["encoding"])
    return dict(found)
