"""Rules of CAP 1.2 that hold on the alert model (OASIS CAP 1.2 §3.2 data dictionary, §3.3.2
times, and the patterns of the stricter ``CAP-v1.2-extended.xsd``).

Two kinds of rule: those of the official schema and the core of the standard (required values,
enumerations, Update/Cancel references, coordinates in range, mimeType) are always errors.
Rules that real feeds break while still passing the official schema (identifier characters,
polygon shape, conditional restriction/addresses, expiry order, digest form ...) are warnings
when ``strict`` is false, as on intake, and errors when it is true, as on output.
"""

from __future__ import annotations

import base64
import binascii
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
    Resource,
    ResponseType,
    Scope,
    Severity,
    Status,
    Urgency,
)
from broadcaster.cap.problems import Problem, ProblemSeverity
from broadcaster.cap.reader import LANGUAGE_FORM
from broadcaster.cap.times import is_strict_cap_time

_SHA1_HEX = re.compile(r"[0-9a-fA-F]{40}")
_XML_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


class _Checker:
    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.problems: list[Problem] = []

    def error(self, path: str, rule: str, message: str) -> None:
        self.problems.append(Problem(path, rule, message, "error"))

    def tolerated(self, path: str, rule: str, message: str) -> None:
        severity: ProblemSeverity = "error" if self.strict else "warning"
        self.problems.append(Problem(path, rule, message, severity))

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


def validate_alert(alert: Alert, *, strict: bool) -> list[Problem]:
    """Every problem of ``alert``; tolerant findings are warnings unless ``strict``."""
    checker = _Checker(strict)
    _check_alert(checker, alert)
    for number, info in enumerate(alert.infos, start=1):
        _check_info(checker, info, f"/alert/info[{number}]", alert.sent)
    return checker.problems


def _check_alert(checker: _Checker, alert: Alert) -> None:
    identity: tuple[tuple[str, str], ...] = (
        ("identifier", alert.identifier),
        ("sender", alert.sender),
    )
    for name, value in identity:
        path = f"/alert/{name}"
        checker.text(path, value, required=True)
        if isinstance(value, str) and value.strip() and FORBIDDEN_ID_CHARS.search(value):
            checker.tolerated(
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
        checker.tolerated(
            "/alert/restriction", "restriction-required", "scope Restricted needs a restriction"
        )
    if alert.scope == Scope.PRIVATE and not (alert.addresses or "").strip():
        checker.tolerated("/alert/addresses", "addresses-required", "scope Private needs addresses")
    _check_references(checker, alert)


def _check_references(checker: _Checker, alert: Alert) -> None:
    path = "/alert/references"
    if not alert.references:
        message = f"{alert.msg_type} messages must list the messages they refer to in references"
        if alert.msg_type in (MsgType.UPDATE, MsgType.CANCEL):
            checker.error(path, "references-required", message)
        elif alert.msg_type in (MsgType.ACK, MsgType.ERROR):
            checker.tolerated(path, "references-required", message)
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
            checker.tolerated(
                path, "references-form", f"{reference}: sent {reference.sent!r} is not a CAP time"
            )
        elif (reference.sender, reference.identifier) == (alert.sender, alert.identifier):
            checker.tolerated(
                path,
                "references-self",
                f"{reference} refers to this message's own identifier; "
                f"an {alert.msg_type} needs a new identifier",
            )


def _check_info(checker: _Checker, info: Info, path: str, sent: datetime) -> None:
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
    _check_expiry(checker, info, path, sent)
    for number, resource in enumerate(info.resources, start=1):
        _check_resource(checker, resource, f"{path}/resource[{number}]")
    for number, area in enumerate(info.areas, start=1):
        _check_area(checker, area, f"{path}/area[{number}]")


def _check_expiry(checker: _Checker, info: Info, path: str, sent: datetime) -> None:
    expires = info.expires
    if not _comparable(expires):
        return
    assert expires is not None
    starts: tuple[tuple[str, datetime | None], ...] = (
        ("effective", info.effective),
        ("onset", info.onset),
        ("sent", sent),
    )
    for name, start in starts:
        if start is not None and _comparable(start) and expires <= start:
            checker.tolerated(
                f"{path}/expires",
                "expires-after-effective",
                f"expires must be later than {name}",
            )
            return


def _comparable(value: object) -> bool:
    return isinstance(value, datetime) and value.utcoffset() is not None


def _check_pairs(checker: _Checker, path: str, pairs: list[NamedValue]) -> None:
    for number, pair in enumerate(pairs, start=1):
        checker.text(f"{path}[{number}]/valueName", pair.value_name)
        checker.text(f"{path}[{number}]/value", pair.value)
        if isinstance(pair.value_name, str) and not pair.value_name.strip():
            checker.tolerated(
                f"{path}[{number}]/valueName", "required", "valueName should name the value"
            )


def _check_resource(checker: _Checker, resource: Resource, path: str) -> None:
    checker.text(f"{path}/resourceDesc", resource.resource_desc)
    if isinstance(resource.resource_desc, str) and not resource.resource_desc.strip():
        checker.tolerated(f"{path}/resourceDesc", "required", "resourceDesc should describe it")
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
        checker.tolerated(f"{path}/digest", "digest-form", "digest should be a SHA-1 in hex")
    if isinstance(resource.deref_uri, str) and not _is_base64(resource.deref_uri):
        checker.tolerated(f"{path}/derefUri", "deref-form", "derefUri should hold base64 data")


def _is_base64(text: str) -> bool:
    try:
        base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _check_area(checker: _Checker, area: Area, path: str) -> None:
    checker.text(f"{path}/areaDesc", area.area_desc)
    if isinstance(area.area_desc, str) and not area.area_desc.strip():
        checker.tolerated(f"{path}/areaDesc", "required", "areaDesc should describe the area")
    for number, polygon in enumerate(area.polygons, start=1):
        where = f"{path}/polygon[{number}]"
        points = list(polygon.points)
        outside = _first_outside(points)
        if outside is not None:
            _coordinate_ok(checker, where, *outside)
        if len(points) < 4:
            checker.tolerated(
                where, "polygon-min-points", f"polygon has {len(points)} pairs; at least 4 needed"
            )
        elif points[0] != points[-1]:
            checker.tolerated(where, "polygon-closed", "polygon's first and last pairs differ")
    for number, circle in enumerate(area.circles, start=1):
        where = f"{path}/circle[{number}]"
        if _coordinate_ok(checker, where, circle.lat, circle.lon) and not (
            _finite(circle.radius_km) and circle.radius_km >= 0
        ):
            checker.error(where, "circle-form", "circle radius must be a non-negative number")
    _check_pairs(checker, f"{path}/geocode", area.geocodes)
    has_altitude = checker.number(f"{path}/altitude", area.altitude)
    if checker.number(f"{path}/ceiling", area.ceiling):
        if not has_altitude:
            checker.tolerated(f"{path}/ceiling", "ceiling-altitude", "ceiling needs an altitude")
        elif area.ceiling < area.altitude:  # type: ignore[operator]
            checker.tolerated(f"{path}/ceiling", "ceiling-altitude", "ceiling is below altitude")


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
