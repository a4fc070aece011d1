"""Rules of CAP 1.2 that hold on the alert model (OASIS CAP 1.2 §3.2 data dictionary, §3.3.2
times, and the patterns of the stricter ``CAP-v1.2-extended.xsd``).

Every breach of the standard is an error, whether the official schema catches it (required
values, enumerations, coordinates in range) or only the text says it (identifier characters,
polygon shape, conditional restriction/addresses/references, expiry order, digest form ...).
One error is repairable without guessing and says so: an open polygon of three or more distinct
points is closed by repeating its first pair (:func:`close_polygons`). Recommendations of the
standard that are not followed (no ``expires``, no ``instruction`` in a warning) are warnings.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import math
import re
from datetime import datetime, timedelta
from enum import StrEnum

from broadcaster.cap.fields import FORBIDDEN_ID_CHARS
from broadcaster.cap.model import (
    Alert,
    Area,
    Category,
    Certainty,
    Info,
    MsgType,
    NamedValue,
    Polygon,
    Resource,
    ResponseType,
    Scope,
    Severity,
    Status,
    Urgency,
)
from broadcaster.cap.problems import Problem
from broadcaster.cap.reader import LANGUAGE_FORM
from broadcaster.cap.times import format_cap_time, is_strict_cap_time

HALF_EARTH_KM = 20_038.0
"""Half the Earth's equatorial circumference: a circle of larger radius covers it all."""

_SHA1_HEX = re.compile(r"[0-9a-fA-F]{40}")
_NO_AREA = 1e-12  # degrees squared, about a hundredth of a square metre
_XML_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


class _Checker:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def error(self, path: str, rule: str, message: str, repair: str | None = None) -> None:
        self.problems.append(Problem(path, rule, message, "error", repair))

    def warning(self, path: str, rule: str, message: str) -> None:
        self.problems.append(Problem(path, rule, message, "warning"))

    def text(self, path: str, value: object, *, required: bool = False) -> None:
        if value is None and not required:
            return
        if not isinstance(value, str):
            self.error(path, "type", f"{_name(path)} must be text, not {type(value).__name__}")
        elif required and not value.strip():
            self.error(path, "required", f"{_name(path)} is required and must not be empty")
        elif _XML_UNSAFE.search(value):
            self.error(path, "xml-chars", f"{_name(path)} contains characters XML cannot carry")

    def enum(self, path: str, value: object, kind: type[StrEnum]) -> None:
        words = {member.value for member in kind}
        if not isinstance(value, str) or value not in words:
            allowed = ", ".join(sorted(words))
            self.error(path, "enumeration", f"{_name(path)} {value!r} is not one of {allowed}")

    def time(self, path: str, value: object, *, required: bool = False) -> None:
        if value is None:
            if required:
                self.error(path, "required", f"{_name(path)} is required")
            return
        offset = value.utcoffset() if isinstance(value, datetime) else None
        if offset is None:
            self.error(path, "cap-time", f"{_name(path)} must be a timezone-aware date and time")
        elif offset % timedelta(minutes=1):
            self.error(path, "cap-time", f"{_name(path)} has a UTC offset with seconds")

    def number(self, path: str, value: object, *, minimum: float | None = None) -> bool:
        if value is None:
            return False
        if not isinstance(value, int | float) or isinstance(value, bool):
            self.error(path, "type", f"{_name(path)} must be a number")
            return False
        if not math.isfinite(value):
            self.error(path, "number", f"{_name(path)} must be a finite number")
            return False
        if minimum is not None and value < minimum:
            self.error(path, "number", f"{_name(path)} must not be below {minimum}")
            return False
        return True


def _name(path: str) -> str:
    return path.rsplit("/", 1)[-1].split("[")[0]


def validate_alert(alert: Alert) -> list[Problem]:
    """Every breach of CAP 1.2 in ``alert`` (errors) and every recommendation missed (warnings)."""
    checker = _Checker()
    _check_alert(checker, alert)
    for number, info in enumerate(alert.infos, start=1):
        _check_info(checker, info, f"/alert/info[{number}]", alert)
    return checker.problems


def close_polygons(alert: Alert) -> Alert:
    """Close every repairable open polygon of ``alert`` in place, repeating its first pair."""
    for info in alert.infos:
        for area in info.areas:
            area.polygons = [
                Polygon((*p.points, p.points[0])) if _closable(list(p.points)) else p
                for p in area.polygons
            ]
    return alert


def _check_alert(checker: _Checker, alert: Alert) -> None:
    identity: tuple[tuple[str, str], ...] = (
        ("identifier", alert.identifier),
        ("sender", alert.sender),
    )
    for name, value in identity:
        path = f"/alert/{name}"
        checker.text(path, value, required=True)
        if isinstance(value, str) and value.strip() and FORBIDDEN_ID_CHARS.search(value):
            checker.error(
                path,
                f"{name}-chars",
                f"{name} {value!r} contains a space, comma, '<' or '&', which CAP forbids",
            )
    checker.time("/alert/sent", alert.sent, required=True)
    checker.enum("/alert/status", alert.status, Status)
    checker.enum("/alert/msgType", alert.msg_type, MsgType)
    checker.enum("/alert/scope", alert.scope, Scope)
    optional: tuple[tuple[str, str | None], ...] = (
        ("source", alert.source),
        ("restriction", alert.restriction),
        ("addresses", alert.addresses),
        ("note", alert.note),
        ("incidents", alert.incidents),
    )
    for name, text in optional:
        checker.text(f"/alert/{name}", text)
    for number, code in enumerate(alert.codes, start=1):
        checker.text(f"/alert/code[{number}]", code, required=True)
    if alert.scope == Scope.RESTRICTED and not (alert.restriction or "").strip():
        checker.error(
            "/alert/restriction", "restriction-required", "scope Restricted needs a restriction"
        )
    if alert.scope == Scope.PRIVATE and not (alert.addresses or "").strip():
        checker.error("/alert/addresses", "addresses-required", "scope Private needs addresses")
    _check_references(checker, alert)


def _check_references(checker: _Checker, alert: Alert) -> None:
    path = "/alert/references"
    if not alert.references:
        message = f"{alert.msg_type} messages must list the messages they refer to in references"
        if alert.msg_type in (MsgType.UPDATE, MsgType.CANCEL, MsgType.ACK, MsgType.ERROR):
            checker.error(path, "references-required", message)
        return
    for reference in alert.references:
        parts = (reference.sender, reference.identifier, reference.sent)
        if not all(
            isinstance(part, str) and part and not FORBIDDEN_ID_CHARS.search(part) for part in parts
        ):
            checker.error(
                path,
                "references-form",
                f"{reference} is not a sender,identifier,sent triplet without spaces or commas",
            )
        elif not is_strict_cap_time(reference.sent):
            checker.error(
                path, "references-form", f"{reference}: sent {reference.sent!r} is not a CAP time"
            )
        elif (reference.sender, reference.identifier) == (alert.sender, alert.identifier):
            checker.error(
                path,
                "references-self",
                f"{reference} refers to this message's own identifier; "
                f"an {alert.msg_type} needs a new identifier",
            )


def _check_info(checker: _Checker, info: Info, path: str, alert: Alert) -> None:
    if not isinstance(info.language, str) or not LANGUAGE_FORM.fullmatch(info.language):
        checker.error(f"{path}/language", "language", f"{info.language!r} is not a language tag")
    if not info.categories:
        checker.error(f"{path}/category[1]", "required", "info needs at least one category")
    for number, category in enumerate(info.categories, start=1):
        checker.enum(f"{path}/category[{number}]", category, Category)
    checker.text(f"{path}/event", info.event, required=True)
    for number, response in enumerate(info.response_types, start=1):
        checker.enum(f"{path}/responseType[{number}]", response, ResponseType)
    checker.enum(f"{path}/urgency", info.urgency, Urgency)
    checker.enum(f"{path}/severity", info.severity, Severity)
    checker.enum(f"{path}/certainty", info.certainty, Certainty)
    for name, value in (
        ("audience", info.audience),
        ("senderName", info.sender_name),
        ("headline", info.headline),
        ("description", info.description),
        ("instruction", info.instruction),
        ("web", info.web),
        ("contact", info.contact),
    ):
        checker.text(f"{path}/{name}", value)
    _check_pairs(checker, f"{path}/eventCode", info.event_codes)
    _check_pairs(checker, f"{path}/parameter", info.parameters)
    checker.time(f"{path}/effective", info.effective)
    checker.time(f"{path}/onset", info.onset)
    checker.time(f"{path}/expires", info.expires)
    _check_expiry(checker, info, path, alert.sent)
    if alert.msg_type in (MsgType.ALERT, MsgType.UPDATE):
        _check_recommended(checker, info, path)
    for number, resource in enumerate(info.resources, start=1):
        _check_resource(checker, resource, f"{path}/resource[{number}]")
    for number, area in enumerate(info.areas, start=1):
        _check_area(checker, area, f"{path}/area[{number}]")


def _check_expiry(checker: _Checker, info: Info, path: str, sent: datetime) -> None:
    """An info that expires before it takes effect (``effective``, else ``sent``) reaches no one."""
    expires = info.expires
    if not _comparable(expires):
        return
    assert expires is not None
    name, start = ("effective", info.effective) if info.effective is not None else ("sent", sent)
    if _comparable(start) and expires <= start:
        checker.error(
            f"{path}/expires",
            "expires-after-effective",
            f"expires {format_cap_time(expires)} is not later than {name} "
            f"{format_cap_time(start)}: the warning would never be in force",
        )
    elif _comparable(info.onset) and expires <= info.onset:  # type: ignore[operator]
        checker.warning(
            f"{path}/expires",
            "expires-before-onset",
            "expires is not later than onset: the warning ends before the hazard begins",
        )


def _check_recommended(checker: _Checker, info: Info, path: str) -> None:
    if info.expires is None:
        checker.warning(
            f"{path}/expires",
            "expires-recommended",
            "no expires: receivers apply their own default lifetime to this warning",
        )
    if not (info.instruction or "").strip():
        checker.warning(
            f"{path}/instruction",
            "instruction-recommended",
            "no instruction: the warning does not tell people what to do",
        )


def _comparable(value: object) -> bool:
    return isinstance(value, datetime) and value.utcoffset() is not None


def _check_pairs(checker: _Checker, path: str, pairs: list[NamedValue]) -> None:
    for number, pair in enumerate(pairs, start=1):
        checker.text(f"{path}[{number}]/valueName", pair.value_name)
        checker.text(f"{path}[{number}]/value", pair.value)
        if isinstance(pair.value_name, str) and not pair.value_name.strip():
            checker.warning(
                f"{path}[{number}]/valueName", "required", "valueName should name the value"
            )


def _check_resource(checker: _Checker, resource: Resource, path: str) -> None:
    checker.text(f"{path}/resourceDesc", resource.resource_desc)
    if isinstance(resource.resource_desc, str) and not resource.resource_desc.strip():
        checker.error(f"{path}/resourceDesc", "required", "resourceDesc must describe the resource")
    checker.text(f"{path}/mimeType", resource.mime_type, required=True)
    if resource.size is not None and not isinstance(resource.size, int):
        checker.error(f"{path}/size", "type", "size must be a whole number of bytes")
    else:
        checker.number(f"{path}/size", resource.size, minimum=0)
    for name, value in (
        ("uri", resource.uri),
        ("derefUri", resource.deref_uri),
        ("digest", resource.digest),
    ):
        checker.text(f"{path}/{name}", value)
    if isinstance(resource.digest, str) and not _SHA1_HEX.fullmatch(resource.digest):
        checker.error(f"{path}/digest", "digest-form", "digest must be a SHA-1 in hex")
    if isinstance(resource.deref_uri, str) and not _is_base64(resource.deref_uri):
        checker.error(f"{path}/derefUri", "deref-form", "derefUri must hold base64 data")


def _is_base64(text: str) -> bool:
    try:
        base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _check_area(checker: _Checker, area: Area, path: str) -> None:
    checker.text(f"{path}/areaDesc", area.area_desc)
    if isinstance(area.area_desc, str) and not area.area_desc.strip():
        checker.error(f"{path}/areaDesc", "required", "areaDesc must describe the area")
    for number, polygon in enumerate(area.polygons, start=1):
        where = f"{path}/polygon[{number}]"
        points = list(polygon.points)
        outside = _first_outside(points)
        if outside is not None:
            _coordinate_ok(checker, where, *outside)
        else:
            _check_polygon_shape(checker, where, points)
    for number, circle in enumerate(area.circles, start=1):
        where = f"{path}/circle[{number}]"
        if _coordinate_ok(checker, where, circle.lat, circle.lon) and not (
            _finite(circle.radius_km) and circle.radius_km >= 0
        ):
            checker.error(where, "circle-form", "circle radius must be a non-negative number")
        elif _finite(circle.radius_km) and circle.radius_km > HALF_EARTH_KM:
            checker.error(
                where,
                "circle-form",
                f"circle radius {circle.radius_km:g} km is more than half the Earth's"
                f" circumference ({HALF_EARTH_KM:g} km): a mistaken unit would reach everyone",
            )
    _check_pairs(checker, f"{path}/geocode", area.geocodes)
    has_altitude = checker.number(f"{path}/altitude", area.altitude)
    if checker.number(f"{path}/ceiling", area.ceiling):
        if not has_altitude:
            checker.error(f"{path}/ceiling", "ceiling-altitude", "ceiling needs an altitude")
        elif area.ceiling < area.altitude:  # type: ignore[operator]
            checker.error(f"{path}/ceiling", "ceiling-altitude", "ceiling is below altitude")


def _check_polygon_shape(checker: _Checker, where: str, points: list[tuple[float, float]]) -> None:
    """CAP 1.2 §3.2.4: at least 4 pairs, the first and last the same; it must enclose an area."""
    if points and points[0] != points[-1]:
        if _closable(points):
            checker.error(
                where,
                "polygon-closed",
                "polygon's first and last pairs differ",
                repair=f"closed by repeating the first pair {points[0][0]},{points[0][1]}",
            )
            return
        checker.error(
            where,
            "polygon-closed",
            f"polygon is open and has {len(set(points))} distinct points; it encloses no area",
        )
    elif len(points) < 4:
        checker.error(
            where,
            "polygon-min-points",
            f"polygon has {len(points)} pairs and {len(set(points))} distinct points; "
            "at least 4 pairs enclosing an area are needed",
        )
    elif abs(_area_of(points)) < _NO_AREA:
        checker.error(where, "polygon-area", "polygon's points are on one line; no area")


def _closable(points: list[tuple[float, float]]) -> bool:
    """An open ring that, closed, encloses an area: closing it is the only reading."""
    return (
        bool(points) and points[0] != points[-1] and abs(_area_of([*points, points[0]])) >= _NO_AREA
    )


def _area_of(ring: list[tuple[float, float]]) -> float:
    """Twice the signed area of a closed ring (shoelace formula, in degrees squared)."""
    return sum(a[0] * b[1] - b[0] * a[1] for a, b in itertools.pairwise(ring))


def _first_outside(points: list[tuple[float, float]]) -> tuple[object, object] | None:
    """The first pair not in WGS 84 range (NaN and non-numbers included), or None."""
    try:
        return next(
            (
                (lat, lon)
                for lat, lon in points
                if not (-90 <= lat <= 90 and -180 <= lon <= 180) or type(lat) is bool
            ),
            None,
        )
    except TypeError:
        return next((lat, lon) for lat, lon in points if not (_finite(lat) and _finite(lon)))


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _coordinate_ok(checker: _Checker, path: str, lat: object, lon: object) -> bool:
    if not (_finite(lat) and _finite(lon)):
        checker.error(
            path, "coordinate-range", f"{_name(path)} has a coordinate that is not a number"
        )
        return False
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):  # type: ignore[operator]
        checker.error(
            path,
            "coordinate-range",
            f"{_name(path)} point {lat},{lon} is outside WGS 84 (lat ±90, lon ±180)",
        )
        return False
    return True
