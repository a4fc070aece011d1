"""Split a text into gateway segments of at most 140 octets, with a concatenation UDH.

UCS-2 (UTF-16BE) and GBK are supported. A single segment holds 140 octets of user data; a
segment of a longer message holds 134 after the 6-octet header of TS 23.040 §9.2.3.24.1
(built by ``drivers.gsm.codec.concat_header``). A character is never split across segments:
neither a UTF-16 surrogate pair nor a two-octet GBK character.
"""

from __future__ import annotations

import enum
import itertools
from dataclasses import replace

from drivers.gsm.codec import CONCAT_UDH_LENGTH, MAX_SEGMENTS, concat_header
from drivers.smsgw.errors import GatewayMessageError
from drivers.smsgw.results import EncodedSegment

USER_DATA_OCTETS = 140
PART_OCTETS = USER_DATA_OCTETS - CONCAT_UDH_LENGTH


class TextCoding(enum.Enum):
    """A text coding with its data_coding (SMPP) / Msg_Fmt (CMPP) value."""

    UCS2 = 8
    GBK = 15

    @property
    def codec(self) -> str:
        """The Python codec name for this coding."""
        return "utf-16-be" if self is TextCoding.UCS2 else "gbk"


_references = itertools.count(1)


def next_reference() -> int:
    """A concatenation reference (1-255), different for each long message in a row."""
    return (next(_references) - 1) % 255 + 1


def _encode(text: str, coding: TextCoding) -> list[bytes]:
    try:
        return [char.encode(coding.codec) for char in text]
    except UnicodeEncodeError as exc:
        raise GatewayMessageError(
            f"text cannot be coded as {coding.name}: {text[exc.start : exc.end]!r}"
        ) from exc


def _parts(chars: list[bytes]) -> list[bytes]:
    if sum(len(c) for c in chars) <= USER_DATA_OCTETS:
        return [b"".join(chars)]
    parts: list[bytes] = []
    current = b""
    for char in chars:
        if len(current) + len(char) > PART_OCTETS:
            parts.append(current)
            current = b""
        current += char
    parts.append(current)
    return parts


def count_segments(text: str, coding: TextCoding) -> int:
    """How many segments ``split_message`` makes of ``text`` (no limit applied)."""
    return len(_parts(_encode(text, coding))) if text else 0


def with_reference(segment: EncodedSegment, reference: int) -> EncodedSegment:
    """``segment`` under another concatenation reference: a part sent again after a failure
    keeps the reference of the parts the gateway already took, so the phone joins them."""
    if not segment.udhi:
        return segment
    payload = concat_header(reference, segment.total, segment.sequence)
    payload += segment.payload[CONCAT_UDH_LENGTH:]
    return replace(segment, payload=payload, reference=reference)


def split_message(
    text: str, coding: TextCoding, max_segments: int = MAX_SEGMENTS
) -> list[EncodedSegment]:
    """The segments of ``text``; GatewayMessageError if empty, uncodable or too long."""
    if not text:
        raise GatewayMessageError("an SMS needs at least one character of text")
    parts = _parts(_encode(text, coding))
    if len(parts) == 1:
        return [EncodedSegment(parts[0], coding.value, False, 0, 1, 1)]
    limit = min(max_segments, MAX_SEGMENTS)
    if len(parts) > limit:
        raise GatewayMessageError(
            f"text of {len(text)} characters needs {len(parts)} segments; at most {limit} allowed"
        )
    reference = next_reference()
    total = len(parts)
    return [
        EncodedSegment(
            concat_header(reference, total, index + 1) + part,
            coding.value,
            True,
            reference,
            index + 1,
            total,
        )
        for index, part in enumerate(parts)
    ]


def join_payload(payload: bytes, udhi: bool, coding: int) -> tuple[str, tuple[int, int, int]]:
    """Text of one received segment and its (reference, total, sequence); (0, 1, 1) if single.

    Used by the simulators to reassemble what a client sent.
    """
    meta = (0, 1, 1)
    if udhi and payload:
        header_length = payload[0] + 1
        header = payload[:header_length]
        if len(header) >= 6 and header[1] == 0x00 and header[2] == 0x03:
            meta = (header[3], header[4], header[5])
        payload = payload[header_length:]
    name = TextCoding(coding).codec if coding in (8, 15) else "latin-1"
    return payload.decode(name, errors="replace"), meta
