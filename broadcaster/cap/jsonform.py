"""Reading the JSON form of an alert (the form :func:`broadcaster.cap.serialize.to_json` writes).

Keys are CAP 1.2 element names (OASIS CAP 1.2 §3.2): ``identifier``, ``msgType``, ``info`` (a
list), ``area``, ``polygon`` (list of ``"lat,lon lat,lon ..."`` strings), ``circle``, ``geocode``
(list of ``{"valueName", "value"}``), ``eventCode``, ``parameter``, ``resource``; times are CAP
time strings and ``references`` is the CAP triplet string. Every shape or value error becomes a
Problem whose path uses the same element names as the XML (``/alert/info[1]/urgency``), and the
alert is then checked with the model rules; an error raises :class:`broadcaster.errors.CapError`
unless the ``repair`` policy is asked for and every error is repairable (as for XML).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from broadcaster.cap import fields
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
from broadcaster.cap.problems import IntakePolicy, Problem, settle
from broadcaster.cap.times import read_cap_time
from broadcaster.cap.validate import close_polygons, validate_alert

E = TypeVar("E", bound=StrEnum)
T = TypeVar("T")

_KEYS = {
    "alert": {
        "identifier", "sender", "sent", "status", "msgType", "source", "scope", "restriction",
        "addresses", "code", "note", "references", "incidents", "info",
    },
    "info": {
        "language", "category", "event", "responseType", "urgency", "severity", "certainty",
        "audience", "eventCode", "effective", "onset", "expires", "senderName", "headline",
        "description", "instruction", "web", "contact", "parameter", "resource", "area",
    },
    "resource": {"resourceDesc", "mimeType", "size", "uri", "derefUri", "digest"},
    "area": {"areaDesc", "polygon", "circle", "geocode", "altitude", "ceiling"},
    "pair": {"valueName", "value"},
}  # fmt: skip
_PLACEHOLDER_TIME = datetime(1970, 1, 1, tzinfo=UTC)


def from_json(doc: Mapping[str, Any]) -> Alert:
    """The alert described by ``doc``; raises :class:`CapError` naming every bad element."""
    return read_json(doc, policy="strict")[0]


def read_json(
    doc: Mapping[str, Any], *, policy: IntakePolicy
) -> tuple[Alert, list[Problem], list[Problem]]:
    """The alert described by ``doc`` with its warnings and repairs, as :func:`parse_cap` does.

    Raises :class:`CapError` naming every problem when an error refuses it under ``policy``.
    """
    reader = _JsonReader()
    alert = reader.alert(doc)
    problems = reader.problems + validate_alert(alert)
    warnings, repairs = settle(problems, policy=policy, what="JSON alert")
    return (close_polygons(alert) if repairs else alert), warnings, repairs


class _JsonReader:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def error(self, path: str, rule: str, message: str) -> None:
        self.problems.append(Problem(path, rule, message))

    def alert(self, doc: object) -> Alert:
        obj = self.mapping(doc, "/alert", "alert")
        path = "/alert"
        references = []
        text = self.text(obj, path, "references")
        if text is not None:
            try:
                references = fields.read_references(text)
            except ValueError as exc:
                self.error(f"{path}/references", "references-form", str(exc))
        return Alert(
            identifier=self.text(obj, path, "identifier", required=True) or "",
            sender=self.text(obj, path, "sender", required=True) or "",
            sent=self.time(obj, path, "sent", required=True) or _PLACEHOLDER_TIME,
            status=self.enum(obj, path, "status", Status, Status.ACTUAL),
            msg_type=self.enum(obj, path, "msgType", MsgType, MsgType.ALERT),
            scope=self.enum(obj, path, "scope", Scope, Scope.PUBLIC),
            source=self.text(obj, path, "source"),
            restriction=self.text(obj, path, "restriction"),
            addresses=self.text(obj, path, "addresses"),
            codes=self.each(obj, path, "code", lambda value, where: self.string(value, where)),
            note=self.text(obj, path, "note"),
            references=references,
            incidents=self.text(obj, path, "incidents"),
            infos=self.each(obj, path, "info", self.info),
        )

    def info(self, value: object, path: str) -> Info:
        obj = self.mapping(value, path, "info")
        return Info(
            language=self.text(obj, path, "language") or "en-US",
            categories=self.each(obj, path, "category", self.enum_item(Category)),
            event=self.text(obj, path, "event", required=True) or "",
            response_types=self.each(obj, path, "responseType", self.enum_item(ResponseType)),
            urgency=self.enum(obj, path, "urgency", Urgency, Urgency.UNKNOWN),
            severity=self.enum(obj, path, "severity", Severity, Severity.UNKNOWN),
            certainty=self.enum(obj, path, "certainty", Certainty, Certainty.UNKNOWN),
            audience=self.text(obj, path, "audience"),
            event_codes=self.each(obj, path, "eventCode", self.pair),
            effective=self.time(obj, path, "effective"),
            onset=self.time(obj, path, "onset"),
            expires=self.time(obj, path, "expires"),
            sender_name=self.text(obj, path, "senderName"),
            headline=self.text(obj, path, "headline"),
            description=self.text(obj, path, "description"),
            instruction=self.text(obj, path, "instruction"),
            web=self.text(obj, path, "web"),
            contact=self.text(obj, path, "contact"),
            parameters=self.each(obj, path, "parameter", self.pair),
            resources=self.each(obj, path, "resource", self.resource),
            areas=self.each(obj, path, "area", self.area),
        )

    def resource(self, value: object, path: str) -> Resource:
        obj = self.mapping(value, path, "resource")
        size = obj.get("size")
        if size is not None and (not isinstance(size, int) or isinstance(size, bool)):
            self.error(f"{path}/size", "number", "size must be a whole number of bytes")
            size = None
        return Resource(
            resource_desc=self.text(obj, path, "resourceDesc", required=True) or "",
            mime_type=self.text(obj, path, "mimeType", required=True) or "",
            size=size,
            uri=self.text(obj, path, "uri"),
            deref_uri=self.text(obj, path, "derefUri"),
            digest=self.text(obj, path, "digest"),
        )

    def area(self, value: object, path: str) -> Area:
        obj = self.mapping(value, path, "area")
        polygons = self.each(obj, path, "polygon", self.converted(fields.read_polygon, "polygon"))
        circles = self.each(obj, path, "circle", self.converted(fields.read_circle, "circle"))
        return Area(
            area_desc=self.text(obj, path, "areaDesc", required=True) or "",
            polygons=[polygon for polygon in polygons if polygon is not None],
            circles=[circle for circle in circles if circle is not None],
            geocodes=self.each(obj, path, "geocode", self.pair),
            altitude=self.decimal(obj, path, "altitude"),
            ceiling=self.decimal(obj, path, "ceiling"),
        )

    def pair(self, value: object, path: str) -> NamedValue:
        obj = self.mapping(value, path, "pair")
        return NamedValue(
            value_name=self.text(obj, path, "valueName", required=True) or "",
            value=self.text(obj, path, "value", required=True) or "",
        )

    def mapping(self, value: object, path: str, kind: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            self.error(path, "type", f"{kind} must be an object with CAP element names as keys")
            return {}
        for key in sorted(set(value) - _KEYS[kind]):
            self.error(f"{path}/{key}", "unexpected-element", f"{key} is not a CAP element here")
        return value

    def each(
        self, obj: Mapping[str, Any], path: str, name: str, read: Callable[[object, str], T]
    ) -> list[T]:
        values = obj.get(name)
        if values is None:
            return []
        if not isinstance(values, list):
            self.error(f"{path}/{name}", "type", f"{name} must be a list")
            return []
        return [read(value, f"{path}/{name}[{n}]") for n, value in enumerate(values, start=1)]

    def string(self, value: object, path: str) -> str:
        if isinstance(value, str):
            return value
        self.error(path, "type", f"{path.rsplit('/', 1)[-1]} must be a string")
        return ""

    def text(
        self, obj: Mapping[str, Any], path: str, name: str, *, required: bool = False
    ) -> str | None:
        if name not in obj or obj[name] is None:
            if required:
                self.error(f"{path}/{name}", "required", f"{name} is required")
            return None
        return self.string(obj[name], f"{path}/{name}")

    def time(
        self, obj: Mapping[str, Any], path: str, name: str, *, required: bool = False
    ) -> datetime | None:
        text = self.text(obj, path, name, required=required)
        if text is None:
            return None
        try:
            value, fault = read_cap_time(text)
        except ValueError as exc:
            self.error(f"{path}/{name}", "cap-time", f"{name}: {exc}")
            return None
        if fault is not None:
            where = f"{path}/{name}"
            self.problems.append(
                Problem(where, "cap-time", f"{name}: {fault.message}", repair=fault.repair)
            )
        return value

    def decimal(self, obj: Mapping[str, Any], path: str, name: str) -> float | None:
        value = obj.get(name)
        if value is None:
            return None
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        self.error(f"{path}/{name}", "number", f"{name} must be a number")
        return None

    def enum(self, obj: Mapping[str, Any], path: str, name: str, kind: type[E], fallback: E) -> E:
        if name not in obj:
            self.error(f"{path}/{name}", "required", f"{name} is required")
            return fallback
        return self.enum_item(kind)(obj[name], f"{path}/{name}") or fallback

    def enum_item(self, kind: type[E]) -> Callable[[object, str], E]:
        def read(value: object, path: str) -> E:
            try:
                if not isinstance(value, str):
                    raise ValueError(value)
                return kind(value.strip())
            except ValueError:
                allowed = ", ".join(member.value for member in kind)
                name = path.rsplit("/", 1)[-1].split("[")[0]
                self.error(path, "enumeration", f"{name} {value!r} is not one of {allowed}")
                return next(iter(kind))

        return read

    def converted(self, read: Callable[[str], T], name: str) -> Callable[[object, str], T | None]:
        def convert(value: object, path: str) -> T | None:
            try:
                return read(self.string(value, path))
            except ValueError as exc:
                self.error(path, f"{name}-form", f"{name}: {exc}")
                return None

        return convert
