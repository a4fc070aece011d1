"""Element structure of a CAP document: which elements, how many, in which order.

This is the content model of the OASIS CAP 1.2 schema (``CAP-v1.2.xsd``, the sequences of
``alert``, ``info``, ``resource``, ``area`` and the ``valueName``/``value`` pairs) checked in code
so that every finding carries the element path and a rule id: ``required`` (missing),
``element-order`` (present but out of schema order), ``unexpected-element`` (not part of CAP
there, or a child inside a simple value), ``element-count`` (more than allowed). CAP 1.1 has
the same sequences except that ``resource/mimeType`` is optional. XML signatures
(``http://www.w3.org/2000/09/xmldsig#``) may follow the last CAP element of ``<alert>``.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from broadcaster.cap.problems import Problem

DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"
XENC_NS = "http://www.w3.org/2001/04/xmlenc#"
UNBOUNDED = 1 << 30


@dataclass(frozen=True)
class Slot:
    """One element of a sequence: its name and how often it may occur."""

    name: str
    min_occurs: int = 1
    max_occurs: int = 1

    @property
    def repeatable(self) -> bool:
        return self.max_occurs > 1


def _opt(name: str) -> Slot:
    return Slot(name, 0, 1)


def _many(name: str, min_occurs: int = 0) -> Slot:
    return Slot(name, min_occurs, UNBOUNDED)


_PAIR = (Slot("valueName"), Slot("value"))

SEQUENCES: dict[str, tuple[Slot, ...]] = {
    "alert": (
        Slot("identifier"),
        Slot("sender"),
        Slot("sent"),
        Slot("status"),
        Slot("msgType"),
        _opt("source"),
        Slot("scope"),
        _opt("restriction"),
        _opt("addresses"),
        _many("code"),
        _opt("note"),
        _opt("references"),
        _opt("incidents"),
        _many("info"),
    ),
    "info": (
        _opt("language"),
        _many("category", 1),
        Slot("event"),
        _many("responseType"),
        Slot("urgency"),
        Slot("severity"),
        Slot("certainty"),
        _opt("audience"),
        _many("eventCode"),
        _opt("effective"),
        _opt("onset"),
        _opt("expires"),
        _opt("senderName"),
        _opt("headline"),
        _opt("description"),
        _opt("instruction"),
        _opt("web"),
        _opt("contact"),
        _many("parameter"),
        _many("resource"),
        _many("area"),
    ),
    "resource": (
        Slot("resourceDesc"),
        Slot("mimeType"),
        _opt("size"),
        _opt("uri"),
        _opt("derefUri"),
        _opt("digest"),
    ),
    "area": (
        Slot("areaDesc"),
        _many("polygon"),
        _many("circle"),
        _many("geocode"),
        _opt("altitude"),
        _opt("ceiling"),
    ),
    "eventCode": _PAIR,
    "parameter": _PAIR,
    "geocode": _PAIR,
}

_CAP11_OVERRIDES = {
    "resource": tuple(
        _opt(slot.name) if slot.name == "mimeType" else slot for slot in SEQUENCES["resource"]
    )
}


_INDEXES = {
    name: {slot.name: position for position, slot in enumerate(sequence)}
    for name, sequence in SEQUENCES.items()
}


_REPEATABLE = {slot.name for sequence in SEQUENCES.values() for slot in sequence if slot.repeatable}


def element_path(element: etree._Element) -> str:
    """The path of ``element`` in the form Problems use: ``/alert/info[1]/urgency``."""
    steps = []
    node: etree._Element | None = element
    while node is not None:
        name = local_name(node)
        if name in _REPEATABLE:
            same = [
                sibling for sibling in node.itersiblings(preceding=True) if sibling.tag == node.tag
            ]
            name = f"{name}[{len(same) + 1}]"
        steps.append(name)
        node = node.getparent()
    return "/" + "/".join(reversed(steps))


def local_name(element: etree._Element) -> str:
    """The element name without its namespace."""
    return etree.QName(element).localname


def check_structure(root: etree._Element, namespace: str, *, cap11: bool = False) -> list[Problem]:
    """Every structural error below ``root`` (an ``<alert>`` in ``namespace``)."""
    problems: list[Problem] = []
    _check_attributes(root, "/alert", problems)
    _check_children(root, "alert", "/alert", namespace, cap11, problems)
    return problems


def _check_attributes(element: etree._Element, where: str, problems: list[Problem]) -> None:
    """CAP's elements carry no attributes (the schema declares none)."""
    if element.attrib:
        names = ", ".join(sorted(str(etree.QName(n).localname) for n in element.attrib))
        problems.append(
            Problem(where, "unexpected-attribute", f"{local_name(element)} has attributes: {names}")
        )


def _stray_text(parent: etree._Element, path: str, name: str, problems: list[Problem]) -> None:
    """Text beside the elements of ``parent``, which holds elements only."""
    pieces = [parent.text, *(child.tail for child in parent)]
    stray = " ".join(p.strip() for p in pieces if p and p.strip())
    if stray:
        problems.append(
            Problem(
                path, "unexpected-text", f"{name} holds elements only, not text: {stray[:40]!r}"
            )
        )


def _sequence(name: str, cap11: bool) -> tuple[Slot, ...]:
    if cap11 and name in _CAP11_OVERRIDES:
        return _CAP11_OVERRIDES[name]
    return SEQUENCES[name]


def _check_children(
    parent: etree._Element,
    name: str,
    path: str,
    namespace: str,
    cap11: bool,
    problems: list[Problem],
) -> None:
    sequence = _sequence(name, cap11)
    index_of = _INDEXES[name]
    counts = [0] * len(sequence)
    position = 0
    signature_seen = False
    prefix = f"{{{namespace}}}"
    _stray_text(parent, path, name, problems)
    for child in parent.iterchildren(tag=etree.Element):
        tag = str(child.tag)
        child_name = tag[len(prefix) :] if tag.startswith(prefix) else ""
        if child_name not in index_of:
            qname = etree.QName(child)
            if name == "alert" and qname.namespace in (DSIG_NS, XENC_NS):
                signature_seen = True
            else:
                problems.append(_unexpected(f"{path}/{qname.localname}", child, name, namespace))
            continue
        where = f"{path}/{child_name}"
        slot_index = index_of[child_name]
        slot = sequence[slot_index]
        counts[slot_index] += 1
        if slot.repeatable:
            where = f"{where}[{counts[slot_index]}]"
        if signature_seen:
            problems.append(
                Problem(
                    where,
                    "element-order",
                    f"{child_name} follows the signature, which must come last",
                )
            )
        elif slot_index < position:
            problems.append(
                Problem(
                    where,
                    "element-order",
                    f"{child_name} is out of order: CAP puts it before {sequence[position].name}",
                )
            )
        else:
            _report_missing(sequence, counts, position, slot_index, path, problems)
            position = slot_index
        _check_attributes(child, where, problems)
        if counts[slot_index] > slot.max_occurs:
            problems.append(
                Problem(where, "element-count", f"{child_name} may appear only once in {name}")
            )
        if child_name in SEQUENCES:
            _check_children(child, child_name, where, namespace, cap11, problems)
        elif len(child):
            problems.append(
                Problem(
                    f"{where}/{local_name(child[0])}",
                    "unexpected-element",
                    f"{child_name} holds a plain value; it cannot contain elements",
                )
            )
    _report_missing(sequence, counts, position, len(sequence), path, problems)


def _report_missing(
    sequence: tuple[Slot, ...],
    counts: list[int],
    start: int,
    stop: int,
    path: str,
    problems: list[Problem],
) -> None:
    for slot_index in range(start, stop):
        slot = sequence[slot_index]
        if counts[slot_index] < slot.min_occurs:
            where = f"{path}/{slot.name}" + ("[1]" if slot.repeatable else "")
            problems.append(
                Problem(where, "required", f"{slot.name} is required in {path.rsplit('/', 1)[-1]}")
            )


def _unexpected(where: str, child: etree._Element, parent_name: str, namespace: str) -> Problem:
    qname = etree.QName(child)
    names = {slot.name for slot in SEQUENCES[parent_name]}
    if qname.namespace != namespace and qname.localname in names:
        detail = f"is in namespace {qname.namespace or 'none'}, not {namespace}"
    else:
        detail = f"is not a CAP element inside {parent_name}"
    return Problem(where, "unexpected-element", f"{qname.localname} {detail}")
