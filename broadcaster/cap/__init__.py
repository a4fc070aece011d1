"""CAP 1.2 (OASIS Common Alerting Protocol): model, parsing, validation, output and signatures.

``parse_cap`` reads CAP 1.2 and 1.1 documents safely into an :class:`Alert`, refusing every
CAP error (``strict``) or accepting repairable ones repaired (``repair``); ``validate_alert``
checks an alert against the standard; ``to_xml``/``to_json``/``from_json``
write and read it; ``verify_signature``/``AlertSigner`` handle enveloped XML signatures.
"""

from broadcaster.cap.model import (
    Alert,
    Area,
    Category,
    Certainty,
    Circle,
    Info,
    MsgType,
    NamedValue,
    Polygon,
    Reference,
    Resource,
    ResponseType,
    Scope,
    Severity,
    Status,
    Urgency,
)
from broadcaster.cap.parse import ParsedCap, parse_cap
from broadcaster.cap.problems import Problem
from broadcaster.cap.serialize import from_json, to_json, to_xml
from broadcaster.cap.signature import AlertSigner, SignatureReport, verify_signature
from broadcaster.cap.times import format_cap_time, parse_cap_time
from broadcaster.cap.validate import validate_alert

__all__ = [
    "Alert",
    "AlertSigner",
    "Area",
    "Category",
    "Certainty",
    "Circle",
    "Info",
    "MsgType",
    "NamedValue",
    "ParsedCap",
    "Polygon",
    "Problem",
    "Reference",
    "Resource",
    "ResponseType",
    "Scope",
    "Severity",
    "SignatureReport",
    "Status",
    "Urgency",
    "format_cap_time",
    "from_json",
    "parse_cap",
    "parse_cap_time",
    "to_json",
    "to_xml",
    "validate_alert",
    "verify_signature",
]
