"""Turn a structurally checked CAP element tree into the :mod:`broadcaster.cap.model`.

Value rules of the OASIS CAP 1.2 schema and data dictionary (§3.2) are applied here, each
finding a Problem with the element path: ``enumeration`` (not a CAP word), ``required`` (an
enumerated or time value left empty), ``cap-time`` (§3.3.2), ``number``, ``language``
(``xs:language``), ``references-form``, ``polygon-form`` and ``circle-form``. CAP 1.1 input
(§ "Changes from 1.1" of CAP 1.2) is mapped onto 1.2: ``VeryLikely`` certainty becomes Likely and
a resource without ``mimeType`` gets ``application/octet-stream``, each with a warning. A ``Z`` or
a fraction of a second in a time, and ``VeryLikely`` in a CAP 1.2 document, are errors that are
read repaired (:mod:`broadcaster.cap.times`).
Where a value is unusable a placeholder keeps the model buildable so later checks still run;
the caller rejects the document because an error was recorded.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import TypeVar

from lxml import etree

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
from broadcaster.cap.problems import Problem
from broadcaster.cap.times import read_cap_time

E = TypeVar("E", bound=StrEnum)
T = TypeVar("T")

LANGUAGE_FORM = re.compile(r"[a-zA-Z]{1,8}(-[a-zA-Z0-9]{1,8})*")
_INTEGER = re.compile(r"[+-]?[0-9]+")
_PLACEHOLDER_TIME = datetime(1970, 1, 1, tzinfo=UTC)
_DEPRECATED_CERTAINTY = {"VeryLikely", "Very Likely"}
_CAP11_DEFAULT_MIME = "application/octet-stream"


class CapTreeReader:
    """Reads one ``<alert>`` element; ``problems`` collects what was found on the way."""

    def __init__(self, namespace: str, *, cap11: bool) -> None:
        self.namespace = namespace
        self.cap11 = cap11
        self.problems: list[Problem] = []
        self._children: dict[int, tuple[etree._Element, dict[str, list[etree._Element]]]] = {}

    def read_alert(self, root: etree._Element) -> Alert:
        """The alert in ``root``, with placeholders where values were unusable."""
        path = "/alert"
        references = []
        for where, element in self._all(root, path, "references", repeatable=False):
            try:
                references = fields.read_references(_text(element))
            except ValueError as exc:
                self._error(where, "references-form", str(exc))
        return Alert(
            identifier=self._token(root, path, "identifier") or "",
            sender=self._token(root, path, "sender") or "",
            sent=self._time(root, path, "sent") or _PLACEHOLDER_TIME,
            status=self._enum(root, path, "status", Status, Status.ACTUAL),
            msg_type=self._enum(root, path, "msgType", MsgType, MsgType.ALERT),
            scope=self._enum(root, path, "scope", Scope, Scope.PUBLIC),
            source=self._free_text(root, path, "source"),
            restriction=self._free_text(root, path, "restriction"),
            addresses=self._free_text(root, path, "addresses"),
            codes=[_text(el).strip() for _, el in self._all(root, path, "code", repeatable=True)],
            note=self._free_text(root, path, "note"),
            references=references,
            incidents=self._free_text(root, path, "incidents"),
            infos=[self._info(el, where) for where, el in self._all(root, path, "info", True)],
        )

    def _info(self, element: etree._Element, path: str) -> Info:
        language = self._token(element, path, "language")
        if language is not None and not LANGUAGE_FORM.fullmatch(language):
            self._error(f"{path}/language", "language", f"{language!r} is not a language tag")
        return Info(
            language=language or "en-US",
            categories=self._enums(element, path, "category", Category),
            event=self._required_text(element, path, "event"),
            response_types=self._enums(element, path, "responseType", ResponseType),
            urgency=self._enum(element, path, "urgency", Urgency, Urgency.UNKNOWN),
            severity=self._enum(element, path, "severity", Severity, Severity.UNKNOWN),
            certainty=self._certainty(element, path),
            audience=self._free_text(element, path, "audience"),
            event_codes=self._pairs(element, path, "eventCode"),
            effective=self._time(element, path, "effective"),
            onset=self._time(element, path, "onset"),
            expires=self._time(element, path, "expires"),
            sender_name=self._free_text(element, path, "senderName"),
            headline=self._free_text(element, path, "headline"),
            description=self._free_text(element, path, "description"),
            instruction=self._free_text(element, path, "instruction"),
            web=self._token(element, path, "web"),
            contact=self._free_text(element, path, "contact"),
            parameters=self._pairs(element, path, "parameter"),
            resources=[
                self._resource(el, where)
                for where, el in self._all(element, path, "resource", True)
            ],
            areas=[self._area(el, where) for where, el in self._all(element, path, "area", True)],
        )

    def _resource(self, element: etree._Element, path: str) -> Resource:
        mime_type = self._token(element, path, "mimeType")
        if mime_type is None and self.cap11:
            mime_type = _CAP11_DEFAULT_MIME
            self.problems.append(
                Problem(
                    f"{path}/mimeType",
                    "cap11-conversion",
                    f"CAP 1.1 resource without mimeType; {_CAP11_DEFAULT_MIME} assumed for 1.2",
                    "warning",
                )
            )
        return Resource(
            resource_desc=self._required_text(element, path, "resourceDesc"),
            mime_type=mime_type or "",
            size=self._number(element, path, "size", _read_integer),
            uri=self._token(element, path, "uri"),
            deref_uri=self._token(element, path, "derefUri"),
            digest=self._token(element, path, "digest"),
        )

    def _area(self, element: etree._Element, path: str) -> Area:
        area = Area(area_desc=self._required_text(element, path, "areaDesc"))
        for where, polygon in self._all(element, path, "polygon", repeatable=True):
            try:
                area.polygons.append(fields.read_polygon(_text(polygon)))
            except ValueError as exc:
                self._error(where, "polygon-form", f"polygon: {exc}")
        for where, circle in self._all(element, path, "circle", repeatable=True):
            try:
                area.circles.append(fields.read_circle(_text(circle)))
            except ValueError as exc:
                self._error(where, "circle-form", f"circle: {exc}")
        area.geocodes = self._pairs(element, path, "geocode")
        area.altitude = self._number(element, path, "altitude", fields.read_decimal)
        area.ceiling = self._number(element, path, "ceiling", fields.read_decimal)
        return area

    def _certainty(self, element: etree._Element, path: str) -> Certainty:
        for where, child in self._all(element, path, "certainty", repeatable=False):
            if _text(child).strip() in _DEPRECATED_CERTAINTY:
                self.problems.append(_very_likely(where, cap11=self.cap11))
                return Certainty.LIKELY
        return self._enum(element, path, "certainty", Certainty, Certainty.UNKNOWN)

    def _all(
        self, parent: etree._Element, path: str, name: str, repeatable: bool
    ) -> list[tuple[str, etree._Element]]:
        found = self._grouped(parent).get(name, [])
        if not repeatable:
            return [(f"{path}/{name}", element) for element in found[:1]]
        return [(f"{path}/{name}[{n}]", element) for n, element in enumerate(found, start=1)]

    def _grouped(self, parent: etree._Element) -> dict[str, list[etree._Element]]:
        # One pass over the children instead of a search per field; the cache also keeps
        # each element proxy alive so that the identity key stays valid.
        key = id(parent)
        cached = self._children.get(key)
        if cached is None or cached[0] is not parent:
            groups: dict[str, list[etree._Element]] = {}
            prefix = f"{{{self.namespace}}}"
            for child in parent.iterchildren(tag=etree.Element):
                tag = child.tag
                if isinstance(tag, str) and tag.startswith(prefix):
                    groups.setdefault(tag[len(prefix) :], []).append(child)
            cached = (parent, groups)
            self._children[key] = cached
        return cached[1]

    def _token(self, parent: etree._Element, path: str, name: str) -> str | None:
        for _, element in self._all(parent, path, name, repeatable=False):
            return _text(element).strip() or None
        return None

    def _free_text(self, parent: etree._Element, path: str, name: str) -> str | None:
        for _, element in self._all(parent, path, name, repeatable=False):
            text = _text(element)
            return text if text.strip() else None
        return None

    def _required_text(self, parent: etree._Element, path: str, name: str) -> str:
        for _, element in self._all(parent, path, name, repeatable=False):
            return _text(element)
        return ""

    def _pairs(self, parent: etree._Element, path: str, name: str) -> list[NamedValue]:
        return [
            NamedValue(
                value_name=self._required_text(element, where, "valueName"),
                value=self._required_text(element, where, "value"),
            )
            for where, element in self._all(parent, path, name, repeatable=True)
        ]

    def _time(self, parent: etree._Element, path: str, name: str) -> datetime | None:
        for where, element in self._all(parent, path, name, repeatable=False):
            try:
                value, fault = read_cap_time(_text(element))
            except ValueError as exc:
                self._error(where, "cap-time", f"{name}: {exc}")
                return None
            if fault is not None:
                self.problems.append(
                    Problem(where, "cap-time", f"{name}: {fault.message}", repair=fault.repair)
                )
            return value
        return None

    def _number(
        self, parent: etree._Element, path: str, name: str, read: Callable[[str], T]
    ) -> T | None:
        for where, element in self._all(parent, path, name, repeatable=False):
            try:
                return read(_text(element))
            except ValueError as exc:
                self._error(where, "number", f"{name}: {exc}")
        return None

    def _enum(self, parent: etree._Element, path: str, name: str, kind: type[E], fallback: E) -> E:
        for where, element in self._all(parent, path, name, repeatable=False):
            return self._enum_value(where, name, _text(element), kind) or fallback
        return fallback

    def _enums(self, parent: etree._Element, path: str, name: str, kind: type[E]) -> list[E]:
        values = []
        for where, element in self._all(parent, path, name, repeatable=True):
            value = self._enum_value(where, name, _text(element), kind)
            if value is not None:
                values.append(value)
        return values

    def _enum_value(self, where: str, name: str, text: str, kind: type[E]) -> E | None:
        word = text.strip()
        allowed = ", ".join(member.value for member in kind)
        if not word:
            self._error(where, "required", f"{name} is empty; it must be one of {allowed}")
            return None
        try:
            return kind(word)
        except ValueError:
            self._error(where, "enumeration", f"{name} {word!r} is not one of {allowed}")
            return None

    def _error(self, path: str, rule: str, message: str) -> None:
        self.problems.append(Problem(path, rule, message))


def _very_likely(where: str, *, cap11: bool) -> Problem:
    """CAP 1.1 deprecated "Very Likely" and said to read it as Likely; CAP 1.2 dropped the word."""
    if cap11:
        message = "certainty VeryLikely is deprecated since CAP 1.1; read as Likely"
        return Problem(where, "deprecated-value", message, "warning")
    message = "certainty VeryLikely is not a CAP 1.2 value"
    return Problem(where, "enumeration", message, repair="read as Likely, as CAP 1.1 defined it")


def _text(element: etree._Element) -> str:
    return element.text or ""


def _read_integer(text: str) -> int:
    value = text.strip()
    if not _INTEGER.fullmatch(value):
        raise ValueError(f"{value!r} is not a whole number")
    return int(value)
