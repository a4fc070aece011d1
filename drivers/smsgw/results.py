"""What the SMS-gateway drivers hand back: segments, submissions and delivery receipts.

A submission is one text to one number; it becomes one or more segments, each with the
message id the gateway gave it. A receipt names a message id and is matched to its segment.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


def gateway_time(value: str | None) -> datetime | None:
    """A receipt's ``YYMMDDhhmm`` or ``YYMMDDhhmmss`` time (SMPP 3.4 Appendix B, CMPP
    Submit_time / Done_time) as a datetime, None if it is not one. Two-digit years read as
    ``strptime``'s ``%y`` does (69-99: 1900s); parsed by hand, as thousands a second arrive."""
    if value is None or len(value) not in (10, 12) or not value.isdigit():
        return None
    year = int(value[0:2])
    try:
        return datetime(
            year + (1900 if year >= 69 else 2000),
            int(value[2:4]),
            int(value[4:6]),
            int(value[6:8]),
            int(value[8:10]),
            int(value[10:12] or 0),
        )
    except ValueError:
        return None


class ReceiptState(enum.Enum):
    """The final (or interim) state a receipt reports for one segment."""

    DELIVERED = "delivered"
    UNDELIVERABLE = "undeliverable"
    EXPIRED = "expired"
    REJECTED = "rejected"
    DELETED = "deleted"
    ENROUTE = "enroute"
    ACCEPTED = "accepted"
    UNKNOWN = "unknown"

    @property
    def final(self) -> bool:
        """True when the gateway will send no further receipt for the segment."""
        return self not in (ReceiptState.ENROUTE, ReceiptState.ACCEPTED)


# The seven-letter stat words of SMPP 3.4 Appendix B receipts, which CMPP status reports
# (Stat) use too.
STATS = {
    "ENROUTE": ReceiptState.ENROUTE,
    "DELIVRD": ReceiptState.DELIVERED,
    "EXPIRED": ReceiptState.EXPIRED,
    "DELETED": ReceiptState.DELETED,
    "UNDELIV": ReceiptState.UNDELIVERABLE,
    "ACCEPTD": ReceiptState.ACCEPTED,
    "UNKNOWN": ReceiptState.UNKNOWN,
    "REJECTD": ReceiptState.REJECTED,
}
STAT_WORDS = {state: word for word, state in STATS.items()}


@dataclass(frozen=True, slots=True)
class EncodedSegment:
    """One segment ready for a submit: user data (UDH included) and how it is coded."""

    payload: bytes
    data_coding: int
    udhi: bool
    reference: int
    sequence: int
    total: int


@dataclass(frozen=True, slots=True)
class SegmentResult:
    """One accepted segment: the gateway's message id and the bind that took it."""

    message_id: str
    sequence: int
    total: int
    bind: str


@dataclass(frozen=True, slots=True)
class Submission:
    """A text accepted for one number: one SegmentResult per segment, in order."""

    destination: str
    segments: tuple[SegmentResult, ...]

    @property
    def message_ids(self) -> tuple[str, ...]:
        """The message id of each segment, in segment order."""
        return tuple(segment.message_id for segment in self.segments)


@dataclass(frozen=True, slots=True)
class Receipt:
    """A delivery receipt as the gateway sent it, and the segment it was matched to.

    ``segment`` and ``destination`` are None when no submission of this client carries the id
    (a receipt for an earlier run, or one the gateway made up).
    """

    message_id: str
    state: ReceiptState
    stat: str
    error: str
    submitted: datetime | None
    done: datetime | None
    segment: SegmentResult | None = None
    destination: str | None = None
