"""Safe, namespace- and order-tolerant reading of EBD XML files, and the one fixed writing form.

Reading refuses a DOCTYPE (so no entity expansion, no external DTD), never touches the network,
caps the file size, and finds children by local name so that a namespace prefix or a different
element order does not matter. Errors name the element path. Writing gives UTF-8 without a BOM,
an XML declaration and no namespace, as the deployed platforms do.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from enum import IntEnum
from typing import TypeVar

from lxml import etree

from drivers.ebd.codes import TIME_FORMAT
from drivers.ebd.errors import EbdFormatError

MAX_XML_BYTES = 4 * 1024 * 1024
BEIJING = timezone(timedelta(hours=8))
_Code = TypeVar("_Code", bound=IntEnum)

_PARSER = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    dtd_validation=False,
    huge_tree=False,
    remove_comments=True,
    remove_pis=True,
)


def parse_xml(data: bytes, what: str) -> etree._Element:
    """Parse ``data`` as one XML document named ``what`` in errors; refuse DTDs and huge files."""
    if len(data) > MAX_XML_BYTES:
        raise EbdFormatError(f"{len(data)} bytes is over the {MAX_XML_BYTES} limit", what)
    if b"<!DOCTYPE" in data.upper() or b"<!ENTITY" in data.upper():
        raise EbdFormatError("a DOCTYPE or entity declaration is not allowed", what)
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as error:
        raise EbdFormatError(f"not well-formed XML ({error})", what) from error
    # A DOCTYPE in an encoding the byte check cannot see (UTF-16) is caught here.
    if getattr(root.getroottree().docinfo, "doctype", ""):
        raise EbdFormatError("a DOCTYPE is not allowed", what)
    return root


def local(element: etree._Element) -> str:
    """The element's name without any namespace."""
    return etree.QName(element).localname


def child(parent: etree._Element, name: str) -> etree._Element | None:
    """The first child called ``name`` in any namespace, or None."""
    for element in parent:
        if isinstance(element.tag, str) and local(element) == name:
            return element
    return None


def children(parent: etree._Element, name: str) -> list[etree._Element]:
    """Every child called ``name`` in any namespace, in document order."""
    return [e for e in parent if isinstance(e.tag, str) and local(e) == name]


def text(parent: etree._Element, path: str, where: str) -> str | None:
    """The stripped text at ``path`` (``A/B``) below ``parent``, or None when absent or empty."""
    element: etree._Element | None = parent
    for name in path.split("/"):
        element = child(element, name) if element is not None else None
    if element is None:
        return None
    if len(element):
        raise EbdFormatError("must hold text, not elements", f"{where}/{path}")
    value = (element.text or "").strip()
    return value or None


def required(parent: etree._Element, path: str, where: str) -> str:
    """The text at ``path``; a missing element is ResultCode 3 (content missing)."""
    value = text(parent, path, where)
    if value is None:
        raise EbdFormatError("is missing", f"{where}/{path}", result_code=3)
    return value


def read_time(value: str, element: str) -> datetime:
    """Parse ``YYYY-MM-DD HH:MM:SS`` (Beijing local time, no zone)."""
    try:
        return datetime.strptime(value, TIME_FORMAT)
    except ValueError as error:
        raise EbdFormatError(f"{value!r} is not YYYY-MM-DD HH:MM:SS", element) from error


def write_time(value: datetime) -> str:
    """Format a time as on the wire; an aware time is converted to Beijing time first."""
    if value.tzinfo is not None:
        value = value.astimezone(BEIJING)
    return value.strftime(TIME_FORMAT)


def beijing_now() -> datetime:
    """The current Beijing local time, without zone, to the second."""
    return datetime.now(UTC).astimezone(BEIJING).replace(tzinfo=None, microsecond=0)


def read_int(value: str, element: str) -> int:
    """Parse a decimal integer, naming the element when it is not one."""
    if not (value.isascii() and value.isdigit()) or len(value) > 9:
        raise EbdFormatError(f"{value!r} is not a number", element)
    return int(value)


def read_code(kind: type[_Code], value: str, element: str) -> _Code:
    """Parse a value of the code table ``kind``, naming the element when it is not one."""
    try:
        return kind(read_int(value, element))
    except ValueError as error:
        raise EbdFormatError(f"{value!r} is not a known code", element) from error


def add(parent: etree._Element, name: str, value: str | None = None) -> etree._Element:
    """Append a child element with optional text and return it."""
    element = etree.SubElement(parent, name)
    if value is not None:
        try:
            element.text = value
        except ValueError as error:  # control characters XML 1.0 cannot carry
            raise EbdFormatError(f"{value!r} has characters XML cannot carry", name) from error
    return element


def serialize(root: etree._Element) -> bytes:
    """The one writing form: UTF-8, no BOM, XML declaration, indented."""
    etree.indent(root, space="  ")
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8")) + b"\n"
