"""EAS SAME encoder: header, attention signal and end-of-message as AFSK audio.

Follows 47 CFR §11.31: 520 5/6 bit/s, mark (1) 2083 1/3 Hz, space (0) 1562.5 Hz, continuous
phase; each character is 7-bit ASCII sent least significant bit first with an eighth bit of 0;
every burst starts with a preamble of sixteen 0xAB bytes. The header
``ZCZC-ORG-EEE-PSSCCC(-PSSCCC…)+TTTT-JJJHHMM-LLLLLLLL-`` is sent three times with one-second
gaps, then the two-tone attention signal (853 + 960 Hz, 8–25 s), the message, and the
end-of-message ``NNNN`` three times.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from audio.errors import SameHeaderError
from audio.pcm import MASTER_RATE, Samples, silence
from audio.signals import PEAK, two_tone

BAUD = 520.0 + 5.0 / 6.0
MARK_HZ = 2083.0 + 1.0 / 3.0
SPACE_HZ = 1562.5
PREAMBLE = bytes([0xAB] * 16)
EOM = "NNNN"
BURST_GAP_S = 1.0
ORIGINATORS = frozenset({"EAS", "CIV", "WXR", "PEP"})
MAX_LOCATIONS = 31

_HEADER = re.compile(
    r"ZCZC-(?P<org>[A-Z]{3})-(?P<event>[A-Z?]{3})-(?P<locations>\d{6}(?:-\d{6})*)"
    r"\+(?P<purge>\d{4})-(?P<issued>\d{7})-(?P<station>[\x20-\x2c\x2e-\x7e]{8})-"
)


@dataclass(frozen=True)
class SameHeader:
    """A parsed and validated SAME header."""

    originator: str
    event: str
    locations: tuple[str, ...]
    purge: str
    issued: str
    station: str

    @property
    def text(self) -> str:
        """The header exactly as transmitted."""
        codes = "-".join(self.locations)
        return (
            f"ZCZC-{self.originator}-{self.event}-{codes}+{self.purge}-"
            f"{self.issued}-{self.station}-"
        )


def parse_header(text: str) -> SameHeader:
    """Validate ``text`` against §11.31(c); raise ``SameHeaderError`` naming the bad field."""
    match = _HEADER.fullmatch(text)
    if match is None:
        raise SameHeaderError(
            f"not a SAME header: {text!r} "
            "(expected ZCZC-ORG-EEE-PSSCCC[-PSSCCC…]+TTTT-JJJHHMM-LLLLLLLL-)"
        )
    org, purge, issued = match["org"], match["purge"], match["issued"]
    locations = tuple(match["locations"].split("-"))
    if org not in ORIGINATORS:
        raise SameHeaderError(f"originator {org!r} is not one of {sorted(ORIGINATORS)}")
    if len(locations) > MAX_LOCATIONS:
        raise SameHeaderError(f"{len(locations)} location codes; at most {MAX_LOCATIONS}")
    if purge[2:] not in {"00", "15", "30", "45"} or purge == "0000":
        raise SameHeaderError(f"purge time {purge!r} must be HHMM in 15-minute steps")
    day, hour, minute = int(issued[:3]), int(issued[3:5]), int(issued[5:])
    if not (1 <= day <= 366 and hour < 24 and minute < 60):
        raise SameHeaderError(f"issue time {issued!r} must be JJJHHMM (day 001-366, UTC)")
    return SameHeader(org, match["event"], locations, purge, issued, match["station"])


def afsk(payload: bytes, rate: int = MASTER_RATE) -> Samples:
    """Modulate preamble + ``payload`` as continuous-phase AFSK at ``rate`` Hz."""
    if any(b & 0x80 for b in payload):
        raise SameHeaderError("SAME carries 7-bit ASCII only")
    data = np.frombuffer(PREAMBLE + payload, dtype=np.uint8)
    bits = np.unpackbits(data, bitorder="little")
    n_samples = int(np.ceil(len(bits) * rate / BAUD))
    bit_index = np.minimum((np.arange(n_samples) * BAUD / rate).astype(np.int64), len(bits) - 1)
    freq = np.where(bits[bit_index] == 1, MARK_HZ, SPACE_HZ)
    phase = 2 * np.pi * np.cumsum(freq) / rate
    return (np.sin(phase) * PEAK).astype(np.float32)


def _three_bursts(payload: bytes, rate: int) -> Samples:
    burst = afsk(payload, rate)
    gap = silence(BURST_GAP_S, rate)
    return np.concatenate([burst, gap, burst, gap, burst, gap])


def header_bursts(header: str, rate: int = MASTER_RATE) -> Samples:
    """The validated header three times, each followed by a one-second gap."""
    return _three_bursts(parse_header(header).text.encode("ascii"), rate)


def eom_bursts(rate: int = MASTER_RATE) -> Samples:
    """The end-of-message ``NNNN`` three times, each followed by a one-second gap."""
    return _three_bursts(EOM.encode("ascii"), rate)


def same_message(
    header: str,
    message: Samples | None = None,
    attention_s: float = 8.0,
    rate: int = MASTER_RATE,
) -> Samples:
    """Header ×3, attention signal, optional message audio, EOM ×3."""
    if not 8.0 <= attention_s <= 25.0:
        raise SameHeaderError(f"attention signal must last 8-25 s, got {attention_s}")
    parts = [header_bursts(header, rate), two_tone(attention_s, rate), silence(1.0, rate)]
    if message is not None and len(message):
        parts += [message.astype(np.float32), silence(1.0, rate)]
    parts.append(eom_bursts(rate))
    return np.concatenate(parts).astype(np.float32)
