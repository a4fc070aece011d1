"""Text forms of CAP's structured string values (CAP 1.2 §3.2.1 ``references``, §3.2.4 ``polygon``
and ``circle``, and the ``xs:decimal`` numbers of ``altitude``/``ceiling``).

Readers raise :class:`ValueError` with a sentence saying what is wrong; the parser turns that
into a Problem with the element path. Writers produce the canonical form: single spaces between
pairs, ``lat,lon`` order, numbers without exponents.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

from broadcaster.cap.model import Circle, Polygon, Reference

FORBIDDEN_ID_CHARS = re.compile(r"[\s,<&]")
_DECIMAL_FORM = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)"
_DECIMAL = re.compile(_DECIMAL_FORM)
_PAIR_LIST = re.compile(
    rf"\s*{_DECIMAL_FORM},{_DECIMAL_FORM}(?:\s+{_DECIMAL_FORM},{_DECIMAL_FORM})*\s*"
)


def read_decimal(text: str) -> float:
    """Read an ``xs:decimal`` (no exponent, no NaN) as a finite float."""
    value = text.strip()
    if not _DECIMAL.fullmatch(value):
        raise ValueError(f"{value!r} is not a decimal number")
    return float(value)


def write_decimal(number: float) -> str:
    """Write a finite float in ``xs:decimal`` form, as short as round-trips exactly."""
    if not math.isfinite(number):
        raise ValueError(f"{number!r} is not a finite number")
    text = repr(float(number))
    if "e" in text:
        # Expand the exponent digit for digit: the shortest repr round-trips, so this does too.
        text = format(Decimal(text), "f")
    return text


def _read_pair(token: str) -> tuple[float, float]:
    parts = token.split(",")
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"{token!r} is not a 'lat,lon' pair")
    return read_decimal(parts[0]), read_decimal(parts[1])


def read_polygon(text: str) -> Polygon:
    """Read whitespace-separated ``lat,lon`` pairs; shape rules are left to the validator."""
    if _PAIR_LIST.fullmatch(text):
        # Checked as a whole by one regular expression: float() alone would accept
        # "inf", "1e5" or "1_0", which are not xs:decimal.
        numbers = text.replace(",", " ").split()
        return Polygon(
            points=tuple(zip(map(float, numbers[::2]), map(float, numbers[1::2]), strict=True))
        )
    tokens = text.split()
    if not tokens:
        raise ValueError("the polygon is empty")
    return Polygon(points=tuple(_read_pair(token) for token in tokens))


def write_polygon(polygon: Polygon) -> str:
    """Write a polygon as CAP does: ``lat,lon`` pairs separated by single spaces."""
    return " ".join(f"{write_decimal(lat)},{write_decimal(lon)}" for lat, lon in polygon.points)


def read_circle(text: str) -> Circle:
    """Read ``lat,lon radius`` (radius in kilometres)."""
    tokens = text.split()
    if len(tokens) != 2:
        raise ValueError(f"{text.strip()!r} is not of the form 'lat,lon radius'")
    lat, lon = _read_pair(tokens[0])
    return Circle(lat=lat, lon=lon, radius_km=read_decimal(tokens[1]))


def write_circle(circle: Circle) -> str:
    """Write a circle as ``lat,lon radius``."""
    return (
        f"{write_decimal(circle.lat)},{write_decimal(circle.lon)} {write_decimal(circle.radius_km)}"
    )


def read_references(text: str) -> list[Reference]:
    """Read space-separated ``sender,identifier,sent`` triplets, ``sent`` kept verbatim."""
    tokens = text.split()
    if not tokens:
        raise ValueError("references is empty; it must list sender,identifier,sent triplets")
    references = []
    for token in tokens:
        parts = token.split(",")
        if len(parts) != 3 or not all(parts):
            raise ValueError(f"{token!r} is not a 'sender,identifier,sent' triplet")
        references.append(Reference(sender=parts[0], identifier=parts[1], sent=parts[2]))
    return references


def write_references(references: list[Reference]) -> str:
    """Write triplets separated by single spaces."""
    return " ".join(str(reference) for reference in references)
