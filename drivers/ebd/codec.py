"""EBD XML files (``EBDB_<EBDID>.xml``) to and from plain values (GD/J 083-2018 §EBD).

The envelope is EBDVersion, EBDID, EBDType, SRC(EBRID, URL?), DEST(EBRID?), EBDTime,
RelatedEBD(EBDID)? and one body element named like the EBDType. Writing emits that order and the
2018 element order of each body (an EBM's repeated ``Dispatch`` after ``MsgContent``);
reading accepts any order, any namespace, and the 2016 forms seen in the field
(``SRC/EBEID``, ``SentTime``, 36-digit heartbeat ids). Bodies other than the envelope and the
EBM live in ``drivers.ebd.codec_reports``.
"""

from __future__ import annotations

from lxml import etree

from drivers.ebd import codec_reports as reports
from drivers.ebd.codes import (
    AuxiliaryType,
    EbdType,
    MsgType,
    Severity,
    check_area_codes,
    check_ebdid,
    check_ebmid,
    check_ebrid,
    check_event_type,
)
from drivers.ebd.errors import EbdFormatError
from drivers.ebd.model import Auxiliary, Body, Dispatch, Ebd, Ebm
from drivers.ebd.xmlsafe import (
    add,
    child,
    children,
    parse_xml,
    read_code,
    read_int,
    read_time,
    required,
    serialize,
    text,
    write_time,
)


def write_ebd(ebd: Ebd) -> bytes:
    """The bytes of ``EBDB_<EBDID>.xml`` for ``ebd``, in the one fixed form."""
    check_ebdid(ebd.ebdid)
    check_ebrid(ebd.src_ebrid, "SRC/EBRID")
    root = etree.Element("EBD")
    add(root, "EBDVersion", ebd.version)
    add(root, "EBDID", ebd.ebdid)
    add(root, "EBDType", ebd.ebd_type.value)
    src = add(root, "SRC")
    add(src, "EBRID", ebd.src_ebrid)
    if ebd.src_url:
        add(src, "URL", ebd.src_url)
    dest = add(root, "DEST")
    if ebd.dest_ebrid:
        add(dest, "EBRID", check_ebrid(ebd.dest_ebrid, "DEST/EBRID"))
    add(root, "EBDTime", write_time(ebd.time))
    if ebd.related_ebdid:
        add(add(root, "RelatedEBD"), "EBDID", check_ebdid(ebd.related_ebdid, "RelatedEBD/EBDID"))
    body = add(root, ebd.ebd_type.value)
    if isinstance(ebd.body, Ebm):
        _write_ebm(body, ebd.body)
    else:
        reports.write_body(body, ebd.body)
    return serialize(root)


def read_ebd(data: bytes) -> Ebd:
    """Parse the bytes of an ``EBDB`` file; raise ``EbdFormatError`` naming the element."""
    root = parse_xml(data, "EBD")
    if etree.QName(root).localname != "EBD":
        raise EbdFormatError(f"root element is <{etree.QName(root).localname}>", "EBD")
    kind_text = required(root, "EBDType", "EBD")
    try:
        kind = EbdType(kind_text)
    except ValueError as error:
        raise EbdFormatError(f"unknown type {kind_text!r}", "EBD/EBDType") from error
    ebdid = check_ebdid(required(root, "EBDID", "EBD"), "EBD/EBDID")
    src = child(root, "SRC")
    if src is None:
        raise EbdFormatError("is missing", "EBD/SRC", result_code=3)
    src_ebrid = text(src, "EBRID", "EBD/SRC") or required(src, "EBEID", "EBD/SRC")
    dest = child(root, "DEST")
    dest_ebrid = None if dest is None else text(dest, "EBRID", "EBD/DEST")
    related = text(root, "RelatedEBD/EBDID", "EBD")
    body_element = child(root, kind.value)
    if body_element is None:
        raise EbdFormatError(f"no <{kind.value}> body", f"EBD/{kind.value}", result_code=3)
    body: Body = (
        _read_ebm(body_element) if kind is EbdType.EBM else reports.read_body(kind, body_element)
    )
    return Ebd(
        ebdid=ebdid,
        src_ebrid=check_ebrid(src_ebrid, "EBD/SRC/EBRID"),
        time=read_time(required(root, "EBDTime", "EBD"), "EBD/EBDTime"),
        body=body,
        dest_ebrid=check_ebrid(dest_ebrid, "EBD/DEST/EBRID") if dest_ebrid else None,
        src_url=text(src, "URL", "EBD/SRC"),
        related_ebdid=check_ebdid(related, "EBD/RelatedEBD/EBDID") if related else None,
        version=required(root, "EBDVersion", "EBD"),
    )


def _write_ebm(body: etree._Element, ebm: Ebm) -> None:
    add(body, "EBMVersion", ebm.version)
    add(body, "EBMID", check_ebmid(ebm.ebmid))
    if ebm.related_ebmid or ebm.related_ebiid:
        related = add(body, "RelatedInfo")
        if ebm.related_ebmid:
            add(related, "EBMID", check_ebmid(ebm.related_ebmid, "RelatedInfo/EBMID"))
        if ebm.related_ebiid:
            add(related, "EBIID", ebm.related_ebiid)
    basic = add(body, "MsgBasicInfo")
    add(basic, "MsgType", str(int(ebm.msg_type)))
    add(basic, "SenderName", ebm.sender_name)
    add(basic, "SenderCode", ebm.sender_code)
    add(basic, "SendTime", write_time(ebm.send_time))
    add(basic, "EventType", check_event_type(ebm.event_type))
    add(basic, "Severity", str(int(ebm.severity)))
    add(basic, "StartTime", write_time(ebm.start_time))
    add(basic, "EndTime", write_time(ebm.end_time))
    content = add(body, "MsgContent")
    add(content, "LanguageCode", ebm.language)
    add(content, "MsgTitle", ebm.title)
    add(content, "MsgDesc", ebm.description)
    add(content, "AreaCode", ",".join(check_area_codes(",".join(ebm.area_codes))))
    if ebm.program_num:
        add(content, "ProgramNum", ebm.program_num)
    for auxiliary in ebm.auxiliaries:
        element = add(content, "Auxiliary")
        add(element, "AuxiliaryType", str(int(auxiliary.type)))
        add(element, "AuxiliaryDesc", auxiliary.desc)
        if auxiliary.size is not None:
            add(element, "Size", str(auxiliary.size))
        if auxiliary.digest:
            add(element, "Digest", auxiliary.digest)
    for dispatch in ebm.dispatches:
        _write_dispatch(add(body, "Dispatch"), dispatch)


def _write_dispatch(element: etree._Element, dispatch: Dispatch) -> None:
    if dispatch.language:
        add(element, "LanguageCode", dispatch.language)
    for name, ebrid in (
        ("EBRPS", dispatch.ebrps),
        ("EBRST", dispatch.ebrst),
        ("EBRAS", dispatch.ebras),
    ):
        if ebrid:
            add(add(element, name), "EBRID", check_ebrid(ebrid, f"Dispatch/{name}/EBRID"))
    if dispatch.brd_sys_type or dispatch.brd_sys_info:
        system = add(element, "EBRBS")
        if dispatch.brd_sys_type:
            add(system, "BrdSysType", dispatch.brd_sys_type)
        if dispatch.brd_sys_info:
            add(system, "BrdSysInfo", dispatch.brd_sys_info)


def _read_dispatch(element: etree._Element, where: str) -> Dispatch:
    ids = {}
    for name in ("EBRPS", "EBRST", "EBRAS"):
        value = text(element, f"{name}/EBRID", where)
        ids[name] = check_ebrid(value, f"{where}/{name}/EBRID") if value else None
    return Dispatch(
        language=text(element, "LanguageCode", where),
        ebrps=ids["EBRPS"],
        ebrst=ids["EBRST"],
        ebras=ids["EBRAS"],
        brd_sys_type=text(element, "EBRBS/BrdSysType", where),
        brd_sys_info=text(element, "EBRBS/BrdSysInfo", where),
    )


def _read_ebm(body: etree._Element) -> Ebm:
    where = "EBD/EBM"
    basic = child(body, "MsgBasicInfo")
    content = child(body, "MsgContent")
    if basic is None or content is None:
        missing = "MsgBasicInfo" if basic is None else "MsgContent"
        raise EbdFormatError("is missing", f"{where}/{missing}", result_code=3)
    b, c = f"{where}/MsgBasicInfo", f"{where}/MsgContent"
    send_time = text(basic, "SendTime", b) or required(basic, "SentTime", b)
    auxiliaries = []
    for element in children(content, "Auxiliary"):
        a = f"{c}/Auxiliary"
        size = text(element, "Size", a)
        auxiliaries.append(
            Auxiliary(
                type=read_code(AuxiliaryType, required(element, "AuxiliaryType", a), a + "/Type"),
                desc=required(element, "AuxiliaryDesc", a),
                size=read_int(size, f"{a}/Size") if size else None,
                digest=text(element, "Digest", a),
            )
        )
    related_ebmid = text(body, "RelatedInfo/EBMID", where)
    return Ebm(
        ebmid=check_ebmid(required(body, "EBMID", where), f"{where}/EBMID"),
        msg_type=read_code(MsgType, required(basic, "MsgType", b), f"{b}/MsgType"),
        sender_name=required(basic, "SenderName", b),
        sender_code=required(basic, "SenderCode", b),
        send_time=read_time(send_time, f"{b}/SendTime"),
        event_type=check_event_type(required(basic, "EventType", b), f"{b}/EventType"),
        severity=read_code(Severity, required(basic, "Severity", b), f"{b}/Severity"),
        start_time=read_time(required(basic, "StartTime", b), f"{b}/StartTime"),
        end_time=read_time(required(basic, "EndTime", b), f"{b}/EndTime"),
        title=required(content, "MsgTitle", c),
        description=required(content, "MsgDesc", c),
        area_codes=check_area_codes(required(content, "AreaCode", c), f"{c}/AreaCode"),
        language=text(content, "LanguageCode", c) or "zho",
        version=text(body, "EBMVersion", where) or "1",
        related_ebmid=check_ebmid(related_ebmid, f"{where}/RelatedInfo/EBMID")
        if related_ebmid
        else None,
        related_ebiid=text(body, "RelatedInfo/EBIID", where),
        program_num=text(content, "ProgramNum", c),
        auxiliaries=tuple(auxiliaries),
        dispatches=tuple(
            _read_dispatch(e, f"{where}/Dispatch") for e in children(body, "Dispatch")
        ),
    )
