"""The RDS basic character set: Unicode text to and from the bytes PS and RT carry.

Follows the basic code table of EN 50067:1998 Annex E (carried over into IEC 62106),
cross-checked against two public implementations of it (the redsea decoder and python-uecp;
facts only, no code taken).
It is ASCII-like but not ASCII: position 0x24 is the currency sign ``¤`` (the dollar sign
sits at 0xAB), 0x5E is a horizontal bar, 0x60 a double vertical line and 0x7E an overline;
``^``, ``` ` ``` and ``~`` have no code at all. Positions 0x80..0xFE hold accented Latin
letters, a few Greek letters and symbols. Chinese and Mongolian script are outside the set:
they need enhanced RadioText, which this module does not produce.

Text that does not fit raises :class:`~drivers.rds.errors.RdsValueError` naming the first
offending character and its position, so nothing half-encoded ever reaches an encoder.
"""

from __future__ import annotations

from drivers.rds.errors import RdsValueError

PS_LENGTH = 8
RT_MAX_LENGTH = 64

# One string per row of sixteen codes, starting at 0x20; a space stands for an unassigned
# position only at 0x7F and 0xFF, which are skipped below.
_ROWS = (
    " !\"#¤%&'()*+,-./",
    "0123456789:;<=>?",
    "@ABCDEFGHIJKLMNO",
    "PQRSTUVWXYZ[\\]―_",
    "‖abcdefghijklmno",
    "pqrstuvwxyz{|}¯ ",
    "áàéèíìóòúùÑÇŞß¡Ĳ",
    "âäêëîïôöûüñçşğıĳ",
    "ªα©‰Ğěňőπ€£$←↑→↓",
    "º¹²³±İńűµ¿÷°¼½¾§",
    "ÁÀÉÈÍÌÓÒÚÙŘČŠŽÐĿ",
    "ÂÄÊËÎÏÔÖÛÜřčšžđŀ",
    "ÃÅÆŒŷÝÕØÞŊŔĆŚŹŦð",
    "ãåæœŵýõøþŋŕćśźŧ ",
)
_UNASSIGNED = frozenset({0x7F, 0xFF})

DECODE_TABLE: dict[int, str] = {
    0x20 + row * 16 + col: char
    for row, line in enumerate(_ROWS)
    for col, char in enumerate(line)
    if 0x20 + row * 16 + col not in _UNASSIGNED
}
ENCODE_TABLE: dict[str, int] = {char: code for code, char in DECODE_TABLE.items()}


def encode_rds_text(text: str, *, field: str = "text") -> bytes:
    """Encode ``text`` in the RDS basic character set; RdsValueError names a stray character."""
    out = bytearray()
    for position, char in enumerate(text):
        code = ENCODE_TABLE.get(char)
        if code is None:
            raise RdsValueError(
                f"{field}: character {char!r} (U+{ord(char):04X}) at position {position} "
                "is outside the RDS character set"
            )
        out.append(code)
    return bytes(out)


def decode_rds_text(data: bytes, *, field: str = "text") -> str:
    """Decode bytes in the RDS basic character set; raise RdsValueError on an unassigned code."""
    chars = []
    for position, code in enumerate(data):
        char = DECODE_TABLE.get(code)
        if char is None:
            raise RdsValueError(
                f"{field}: byte 0x{code:02X} at position {position} is not an RDS character"
            )
        chars.append(char)
    return "".join(chars)


def is_rds_text(text: str) -> bool:
    """True when every character of ``text`` has a code in the RDS basic character set."""
    return all(char in ENCODE_TABLE for char in text)


def encode_ps(ps: str) -> bytes:
    """The 8 bytes of a programme service name: at most 8 characters, padded with spaces."""
    if len(ps) > PS_LENGTH:
        raise RdsValueError(f"PS {ps!r} has {len(ps)} characters; at most {PS_LENGTH} fit")
    return encode_rds_text(ps.ljust(PS_LENGTH), field="PS")


def encode_rt(rt: str) -> bytes:
    """The bytes of a RadioText: at most 64 characters of the RDS set."""
    if len(rt) > RT_MAX_LENGTH:
        raise RdsValueError(f"RT has {len(rt)} characters; at most {RT_MAX_LENGTH} fit")
    return encode_rds_text(rt, field="RT")
