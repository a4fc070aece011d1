"""Writing alerts: CAP 1.2 XML (OASIS CAP 1.2 §3.4 schema, element order of ``CAP-v1.2.xsd``)
and a JSON form that uses the CAP element names as keys.

Output is strict: :func:`to_xml` refuses an alert with any CAP 1.2 error (repairable ones
too), checks the built tree against the OASIS schema shipped in ``schema/CAP-v1.2.xsd``, and raises
:class:`broadcaster.errors.CapError` instead of writing anything non-conformant. Times are
written as CAP times (``-00:00`` for UTC, whole seconds); geometry as ``lat,lon`` pairs. With an
:class:`~broadcaster.cap.signature.AlertSigner` the document gets an enveloped XML signature as
the last child of ``<alert>``. The JSON form (:func:`to_json`) mirrors the XML: repeatable
elements are lists, ``polygon``/``circle``/``references`` keep their CAP text form;
:func:`from_json` reads it back.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from lxml import etree

from broadcaster.cap import fields
from broadcaster.cap.jsonform import from_json
from broadcaster.cap.model import Alert, Area, Info, NamedValue, Resource
from broadcaster.cap.parse import CAP12_NS
from broadcaster.cap.problems import Problem, errors_of, summarize
from broadcaster.cap.structure import element_path
from broadcaster.cap.times import format_cap_time
from broadcaster.cap.validate import validate_alert
from broadcaster.errors import CapError

if TYPE_CHECKING:
    from broadcaster.cap.signature import AlertSigner

__all__ = ["from_json", "to_json", "to_xml"]

_Entries = list[tuple[str, Any]]
_EMPTY_ALERT = f'<alert xmlns="{CAP12_NS}"/>'.encode()
_SCHEMA_FILE = Path(__file__).with_name("schema") / "CAP-v1.2.xsd"
_schemas = threading.local()


def to_xml(alert: Alert, *, signer: AlertSigner | None = None) -> bytes:
    """The alert as a CAP 1.2 document in UTF-8; raises :class:`CapError` if it is invalid."""
    problems = validate_alert(alert)
    if errors_of(problems):
        raise CapError(f"alert cannot be written as CAP 1.2: {summarize(problems)}", problems)
    root = etree.fromstring(_EMPTY_ALERT)
    _append(root, _alert_entries(alert))
    _check_against_schema(root)
    if signer is not None:
        root = signer.sign(root)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _oasis_schema() -> etree.XMLSchema:
    # lxml validators are not shared between threads: one per thread, loaded on first use.
    schema: etree.XMLSchema | None = getattr(_schemas, "oasis", None)
    if schema is None:
        schema = etree.XMLSchema(etree.parse(str(_SCHEMA_FILE)))
        _schemas.oasis = schema
    return schema


def _check_against_schema(root: etree._Element) -> None:
    """Second line of defence: what passed the strict rules must also pass the OASIS schema."""
    schema = _oasis_schema()
    if schema.validate(root):
        return
    tree = root.getroottree()
    problems = []
    for entry in cast(Iterable[Any], schema.error_log):
        found = tree.xpath(entry.path) if entry.path else []
        first = found[0] if isinstance(found, list) and found else None
        where = element_path(first) if isinstance(first, etree._Element) else "/alert"
        problems.append(Problem(where, "schema", f"OASIS CAP 1.2 schema: {entry.message}"))
    raise CapError(f"alert cannot be written as CAP 1.2: {summarize(problems)}", problems)


def to_json(alert: Alert) -> dict[str, Any]:
    """The alert as a JSON-ready dict keyed by CAP element names, absent values left out."""
    return _as_dict(_alert_entries(alert))


def _as_dict(entries: _Entries) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for name, value in entries:
        if isinstance(value, list):
            document[name] = [_as_dict(item) if isinstance(item, list) else item for item in value]
        else:
            document[name] = value
    return document


def _append(parent: etree._Element, entries: _Entries) -> None:
    for name, value in entries:
        items = value if isinstance(value, list) and name in _REPEATED else [value]
        for item in items:
            child = etree.SubElement(parent, f"{{{CAP12_NS}}}{name}")
            if isinstance(item, list):
                _append(child, item)
            else:
                child.text = item if isinstance(item, str) else _number_text(item)


_REPEATED = {
    "code",
    "info",
    "category",
    "responseType",
    "eventCode",
    "parameter",
    "resource",
    "area",
    "polygon",
    "circle",
    "geocode",
}


def _number_text(value: int | float) -> str:
    return str(value) if isinstance(value, int) else fields.write_decimal(value)


def _optional(entries: _Entries, name: str, value: object) -> None:
    if value is not None:
        entries.append((name, value))


def _repeated(entries: _Entries, name: str, values: list[Any]) -> None:
    if values:
        entries.append((name, values))


def _alert_entries(alert: Alert) -> _Entries:
    entries: _Entries = [
        ("identifier", alert.identifier),
        ("sender", alert.sender),
        ("sent", format_cap_time(alert.sent)),
        ("status", str(alert.status)),
        ("msgType", str(alert.msg_type)),
    ]
    _optional(entries, "source", alert.source)
    entries.append(("scope", str(alert.scope)))
    _optional(entries, "restriction", alert.restriction)
    _optional(entries, "addresses", alert.addresses)
    _repeated(entries, "code", list(alert.codes))
    _optional(entries, "note", alert.note)
    if alert.references:
        entries.append(("references", fields.write_references(alert.references)))
    _optional(entries, "incidents", alert.incidents)
    _repeated(entries, "info", [_info_entries(info) for info in alert.infos])
    return entries


def _info_entries(info: Info) -> _Entries:
    entries: _Entries = [
        ("language", info.language),
        ("category", [str(category) for category in info.categories]),
        ("event", info.event),
    ]
    _repeated(entries, "responseType", [str(response) for response in info.response_types])
    entries += [
        ("urgency", str(info.urgency)),
        ("severity", str(info.severity)),
        ("certainty", str(info.certainty)),
    ]
    _optional(entries, "audience", info.audience)
    _repeated(entries, "eventCode", [_pair_entries(pair) for pair in info.event_codes])
    for name, moment in (
        ("effective", info.effective),
        ("onset", info.onset),
        ("expires", info.expires),
    ):
        if moment is not None:
            entries.append((name, format_cap_time(moment)))
    for name, text in (
        ("senderName", info.sender_name),
        ("headline", info.headline),
        ("description", info.description),
        ("instruction", info.instruction),
        ("web", info.web),
        ("contact", info.contact),
    ):
        _optional(entries, name, text)
    _repeated(entries, "parameter", [_pair_entries(pair) for pair in info.parameters])
    _repeated(entries, "resource", [_resource_entries(resource) for resource in info.resources])
    _repeated(entries, "area", [_area_entries(area) for area in info.areas])
    return entries


def _pair_entries(pair: NamedValue) -> _Entries:
    return [("valueName", pair.value_name), ("value", pair.value)]


def _resource_entries(resource: Resource) -> _Entries:
    entries: _Entries = [
        ("resourceDesc", resource.resource_desc),
        ("mimeType", resource.mime_type),
    ]
    _optional(entries, "size", resource.size)
    _optional(entries, "uri", resource.uri)
    _optional(entries, "derefUri", resource.deref_uri)
    _optional(entries, "digest", resource.digest)
    return entries


def _area_entries(area: Area) -> _Entries:
    entries: _Entries = [("areaDesc", area.area_desc)]
    _repeated(entries, "polygon", [fields.write_polygon(polygon) for polygon in area.polygons])
    _repeated(entries, "circle", [fields.write_circle(circle) for circle in area.circles])
    _repeated(entries, "geocode", [_pair_entries(pair) for pair in area.geocodes])
    _optional(entries, "altitude", area.altitude)
    _optional(entries, "ceiling", area.ceiling)
    return entries
