"""Text codecs and segmentation for SMS: GSM 7-bit default alphabet, UCS-2, concatenation.

Pure functions shared by the driver and the simulator. Follows 3GPP TS 23.038 §6.2.1 (GSM 7-bit
default alphabet and its extension table, septet packing) and TS 23.040 §9.2.3.24.1
(concatenated short messages, 8-bit reference: UDH ``05 00 03 <ref> <total> <seq>``).

Limits: a single GSM-7 message holds 160 septets (153 when concatenated: the 6-octet header
takes 7 septets), a single UCS-2 message 70 UTF-16 code units (67 when concatenated). A
character from the extension table costs two septets and is never split across segments; a
character outside the Basic Multilingual Plane (𠮷, emoji) costs two UTF-16 units (a surrogate
pair) and is never split either.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from drivers.gsm.errors import GsmInvalidTextError, GsmMessageTooLongError, GsmProtocolError

GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_ESCAPE = 0x1B
GSM7_EXTENSION = {
    "\f": 0x0A,
    "^": 0x14,
    "{": 0x28,
    "}": 0x29,
    "\\": 0x2F,
    "[": 0x3C,
    "~": 0x3D,
    "]": 0x3E,
    "|": 0x40,
    "€": 0x65,
}
_BASIC_INDEX = {char: index for index, char in enumerate(GSM7_BASIC) if index != GSM7_ESCAPE}
_EXTENSION_CHAR = {code: char for char, code in GSM7_EXTENSION.items()}

GSM7_SINGLE_SEPTETS = 160
GSM7_PART_SEPTETS = 153
UCS2_SINGLE_UNITS = 70
UCS2_PART_UNITS = 67
MAX_SEGMENTS = 255
CONCAT_UDH_LENGTH = 6  # UDHL octet + IEI 00 + IEDL 03 + ref + total + seq


class SmsEncoding(enum.Enum):
    """The data coding of a message: TP-DCS ``00`` or ``08`` (TS 23.038 §4)."""

    GSM7 = 0x00
    UCS2 = 0x08


@dataclass(frozen=True, slots=True)
class SegmentText:
    """One segment of a message before PDU encoding: its text and its place in the message."""

    text: str
    encoding: SmsEncoding
    sequence: int
    total: int


def gsm7_char_septets(char: str) -> tuple[int, ...] | None:
    """The septets of one character (two for the extension table), or None if not in GSM-7."""
    basic = _BASIC_INDEX.get(char)
    if basic is not None:
        return (basic,)
    extension = GSM7_EXTENSION.get(char)
    if extension is not None:
        return (GSM7_ESCAPE, extension)
    return None


def encode_gsm7(text: str) -> list[int] | None:
    """The septets of ``text`` in the GSM 7-bit alphabet, or None if a character is missing."""
    septets: list[int] = []
    for char in text:
        encoded = gsm7_char_septets(char)
        if encoded is None:
            return None
        septets.extend(encoded)
    return septets


def decode_gsm7(septets: Sequence[int]) -> str:
    """Text of a sequence of septets; an unknown extension code decodes as a space (23.038)."""
    chars: list[str] = []
    escaped = False
    for septet in septets:
        if escaped:
            chars.append(_EXTENSION_CHAR.get(septet, " "))
            escaped = False
        elif septet == GSM7_ESCAPE:
            escaped = True
        else:
            chars.append(GSM7_BASIC[septet & 0x7F])
    return "".join(chars)


def pack_septets(septets: Sequence[int], fill_bits: int = 0) -> bytes:
    """Pack septets LSB first into octets, after ``fill_bits`` zero bits (23.038 §6.1.2.1)."""
    accumulator = 0
    bit_count = fill_bits
    for septet in septets:
        accumulator |= (septet & 0x7F) << bit_count
        bit_count += 7
    return accumulator.to_bytes((bit_count + 7) // 8, "little")


def unpack_septets(data: bytes, count: int, fill_bits: int = 0) -> list[int]:
    """Unpack ``count`` septets from octets, skipping ``fill_bits`` leading bits."""
    if fill_bits + 7 * count > 8 * len(data):
        raise GsmProtocolError(f"user data holds fewer than {count} septets")
    accumulator = int.from_bytes(data, "little") >> fill_bits
    return [(accumulator >> (7 * index)) & 0x7F for index in range(count)]


def encode_ucs2(text: str) -> bytes:
    """UTF-16 big-endian code units: characters outside the BMP become surrogate pairs."""
    return text.encode("utf-16-be")


def decode_ucs2(data: bytes) -> str:
    """Text of UTF-16 big-endian user data; a broken surrogate pair is a protocol error."""
    if len(data) % 2:
        raise GsmProtocolError("UCS-2 user data has an odd number of octets")
    try:
        return data.decode("utf-16-be")
    except UnicodeDecodeError as exc:
        raise GsmProtocolError(f"UCS-2 user data is not valid UTF-16: {exc}") from exc


def choose_encoding(text: str) -> SmsEncoding:
    """GSM-7 when every character is in the default alphabet or its extension, else UCS-2."""
    return SmsEncoding.GSM7 if encode_gsm7(text) is not None else SmsEncoding.UCS2


def _split_gsm7(text: str) -> list[str]:
    septet_total = len(encode_gsm7(text) or ())
    if septet_total <= GSM7_SINGLE_SEPTETS:
        return [text]
    parts: list[str] = []
    current: list[str] = []
    used = 0
    for char in text:
        cost = len(gsm7_char_septets(char) or ())
        if used + cost > GSM7_PART_SEPTETS:
            parts.append("".join(current))
            current, used = [], 0
        current.append(char)
        used += cost
    parts.append("".join(current))
    return parts


def _split_ucs2(text: str) -> list[str]:
    unit_total = len(encode_ucs2(text)) // 2
    if unit_total <= UCS2_SINGLE_UNITS:
        return [text]
    parts: list[str] = []
    current: list[str] = []
    used = 0
    for char in text:
        cost = 2 if ord(char) > 0xFFFF else 1
        if used + cost > UCS2_PART_UNITS:
            parts.append("".join(current))
            current, used = [], 0
        current.append(char)
        used += cost
    parts.append("".join(current))
    return parts


def _check_encodable(text: str) -> None:
    lone = next((c for c in text if 0xD800 <= ord(c) <= 0xDFFF), None)
    if lone is not None:
        raise GsmInvalidTextError(f"text holds an unpaired surrogate U+{ord(lone):04X}")


def split_text(text: str, max_segments: int = MAX_SEGMENTS) -> list[SegmentText]:
    """Split ``text`` into the segments a phone will join back, in order.

    Raises GsmMessageTooLongError when the text is empty or needs more than ``max_segments``.
    """
    if not text:
        raise GsmMessageTooLongError("an SMS needs at least one character of text")
    _check_encodable(text)
    encoding = choose_encoding(text)
    parts = _split_gsm7(text) if encoding is SmsEncoding.GSM7 else _split_ucs2(text)
    limit = min(max_segments, MAX_SEGMENTS)
    if len(parts) > limit:
        raise GsmMessageTooLongError(
            f"text of {len(text)} characters needs {len(parts)} {encoding.name} segments;"
            f" at most {limit} allowed"
        )
    return [
        SegmentText(text=part, encoding=encoding, sequence=index + 1, total=len(parts))
        for index, part in enumerate(parts)
    ]


def segment_count(text: str) -> int:
    """How many segments ``text`` takes (for segment budgets); 0 for empty text.

    Raises GsmInvalidTextError for text no SMS can carry.
    """
    if not text:
        return 0
    _check_encodable(text)
    encoding = choose_encoding(text)
    return len(_split_gsm7(text) if encoding is SmsEncoding.GSM7 else _split_ucs2(text))


def concat_header(reference: int, total: int, sequence: int) -> bytes:
    """The user data header of one part of a concatenated message, UDHL octet included."""
    return bytes((0x05, 0x00, 0x03, reference & 0xFF, total, sequence))
