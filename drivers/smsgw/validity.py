"""How long a gateway keeps a segment it could not deliver yet: until the alert expires.

An SMSC holds a segment for a phone that is off or out of coverage for the submit's validity
(SMPP 3.4 §4.4.1 validity_period, CMPP §7.4.3.1 ValId_Time); without one it keeps it for its
own default, a day or more. A warning must not reach a phone after its alert expired or was
cancelled, so each submit carries the time left until the alert expires, never less than
``MIN_VALIDITY`` (the shortest TP-VP a network keeps, TS 23.040 §9.2.3.12.1: an SMSC refuses or
rounds up less) and never more than a validity the operator configured.
"""

from __future__ import annotations

MIN_VALIDITY = 300.0
"""Seconds a segment is kept at least, however close its alert's expiry."""


def validity_left(valid_until: float, now: float, longest: float | None = None) -> float:
    """Seconds from ``now`` until ``valid_until`` (``time.time()`` values), at most
    ``longest`` (None: no limit) and at least ``MIN_VALIDITY``."""
    left = valid_until - now
    if longest is not None:
        left = min(left, longest)
    return max(MIN_VALIDITY, left)
