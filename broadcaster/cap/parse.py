"""Safe, tolerant reading of CAP 1.2 and CAP 1.1 documents into the alert model.

Safety first (CAP 1.2 §3.3.1 requires well-formed XML, nothing more): the size is checked
before any parsing; a document type declaration (DOCTYPE, entity declarations) is refused
outright, so no entity is expanded, no DTD loaded, no local file read and no connection
opened; the lxml parser is also configured with entity resolution, DTD loading and network
access off, as a second wall. Then the document is checked in three passes, each reporting
Problems with element paths: structure (:mod:`broadcaster.cap.structure`, the schema content
model), values (:mod:`broadcaster.cap.reader`) and model rules
(:func:`broadcaster.cap.validate.validate_alert`). Under the ``strict`` policy any error rejects
the document with :class:`broadcaster.errors.CapError` carrying every Problem; under ``repair``
only an error that cannot be repaired does, and the alert comes back repaired with the list of
repairs. Warnings travel with the accepted alert.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal, NoReturn

from lxml import etree

from broadcaster.cap.model import Alert
from broadcaster.cap.problems import IntakePolicy, Problem, settle
from broadcaster.cap.reader import CapTreeReader
from broadcaster.cap.structure import check_structure
from broadcaster.cap.validate import close_polygons, validate_alert
from broadcaster.errors import CapError

CAP12_NS = "urn:oasis:names:tc:emergency:cap:1.2"
CAP11_NS = "urn:oasis:names:tc:emergency:cap:1.1"
DEFAULT_MAX_BYTES = 1_048_576

CapVersion = Literal["1.1", "1.2"]
_VERSIONS: dict[str, CapVersion] = {CAP12_NS: "1.2", CAP11_NS: "1.1"}
_DTD_MARK = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_WIDE_ENCODINGS = (
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
    (b"<\x00", "utf-16-le"),
    (b"\x00<", "utf-16-be"),
)
_DECLARATION = re.compile(r"\A\s*<\?xml[^>]*\?>")


@dataclass
class ParsedCap:
    """An accepted CAP document: the alert, its CAP version, warnings, repairs and the bytes read.

    ``repairs`` are the errors the alert was repaired of (empty under the ``strict`` policy);
    ``raw`` is the document verbatim, unrepaired.
    """

    alert: Alert
    version: CapVersion
    problems: list[Problem] = field(default_factory=list)
    raw: bytes = b""
    repairs: list[Problem] = field(default_factory=list)


def parse_cap(
    data: bytes | str, *, max_bytes: int = DEFAULT_MAX_BYTES, policy: IntakePolicy = "strict"
) -> ParsedCap:
    """Read one CAP 1.2 or 1.1 document; raise :class:`CapError` listing every problem found.

    ``bytes`` are decoded as their XML declaration says (UTF-8 by default); a ``str`` is taken
    as already decoded, whatever its declaration claims. ``policy`` says whether a document
    whose only errors are repairable is accepted, repaired (``repair``), or refused.
    """
    raw = _as_bytes(data)
    if len(raw) > max_bytes:
        _reject(
            Problem(
                "/", "size-limit", f"the document has {len(raw)} bytes; the limit is {max_bytes}"
            )
        )
    root = _load(raw)
    version = _version_of(root)
    namespace = CAP11_NS if version == "1.1" else CAP12_NS
    problems = check_structure(root, namespace, cap11=version == "1.1")
    reader = CapTreeReader(namespace, cap11=version == "1.1")
    alert = reader.read_alert(root)
    problems += reader.problems
    problems += validate_alert(alert)
    warnings, repairs = settle(_unique(problems), policy=policy, what="CAP document")
    return ParsedCap(
        alert=close_polygons(alert) if repairs else alert,
        version=version,
        problems=warnings,
        raw=raw,
        repairs=repairs,
    )


def _as_bytes(data: bytes | str) -> bytes:
    if isinstance(data, bytes):
        return data
    return _DECLARATION.sub('<?xml version="1.0" encoding="UTF-8"?>', data, count=1).encode()


class _RefuseExternalResolver(etree.Resolver):
    """Refuses every external DTD or entity the parser would load, whatever its URL."""

    def resolve(self, system_url: str, public_id: str, context: object = None) -> NoReturn:
        problem = Problem(
            "/", "xml-dtd-forbidden", f"the document refers to {system_url!r}; refused unread"
        )
        raise CapError(f"CAP document rejected: {problem}", [problem])


def safe_parser(*, keep_layout: bool = False, remove_blank_text: bool = False) -> etree.XMLParser:
    """An lxml parser that expands no entity and loads no DTD, file or URL.

    Comments and processing instructions are dropped unless ``keep_layout`` is set (signature
    checks need them: they are part of the signed canonical form).
    """
    parser = etree.XMLParser(
        resolve_entities=False,
        load_dtd=False,
        no_network=True,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=not keep_layout,
        remove_pis=not keep_layout,
        remove_blank_text=remove_blank_text,
        collect_ids=False,
    )
    parser.resolvers.add(_RefuseExternalResolver())
    return parser


def declares_dtd(raw: bytes) -> bool:
    """True when ``raw`` holds a DOCTYPE or entity declaration (UTF-8/16/32 alike)."""
    if _DTD_MARK.search(raw):
        return True
    head = raw[:4]
    for bom, codec in _WIDE_ENCODINGS:
        if head.startswith(bom):
            return _DTD_MARK.search(raw.decode(codec, errors="replace").encode()) is not None
    return False


def _load(raw: bytes) -> etree._Element:
    if declares_dtd(raw):
        _reject(_dtd_problem())
    try:
        root = etree.fromstring(raw, safe_parser())
    except etree.XMLSyntaxError as exc:
        _reject(Problem("/", "xml-wellformed", f"the document is not well-formed XML: {exc}"))
    except ValueError as exc:
        _reject(Problem("/", "xml-wellformed", f"the document cannot be read as XML: {exc}"))
    docinfo = root.getroottree().docinfo
    if docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        _reject(_dtd_problem())
    return root


def _dtd_problem() -> Problem:
    return Problem(
        "/",
        "xml-dtd-forbidden",
        "the document declares a DOCTYPE or entities; CAP needs none and they are refused",
    )


def _version_of(root: etree._Element) -> CapVersion:
    qname = etree.QName(root)
    version = _VERSIONS.get(qname.namespace or "")
    if qname.localname != "alert" or version is None:
        _reject(
            Problem(
                f"/{qname.localname}",
                "namespace",
                f"the root element is {{{qname.namespace or ''}}}{qname.localname}; expected "
                f"alert in {CAP12_NS} (or {CAP11_NS})",
            )
        )
    return version


def _reject(problem: Problem) -> NoReturn:
    raise CapError(f"CAP document rejected: {problem}", [problem])


def _unique(problems: list[Problem]) -> list[Problem]:
    seen: set[tuple[str, str, str]] = set()
    unique = []
    for problem in problems:
        key = (problem.path, problem.rule, problem.severity)
        if key not in seen:
            seen.add(key)
            unique.append(problem)
    return unique
