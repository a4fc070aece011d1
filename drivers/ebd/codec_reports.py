"""EBD bodies other than the EBM: receipts, heartbeats, state and resource reports.

Element names and order follow the 2018 platforms (GD/J 083-2018): ``EBDResponse`` (ResultCode,
ResultDesc), ``ConnectionCheck`` (RptTime), ``EBMStateRequest`` (EBM/EBMID),
``EBMStateResponse`` (RptTime, EBM/EBMID, BrdStateCode, BrdStateDesc, Coverage?),
``OMDRequest`` (OMDType, Params?), ``EBRPSInfo`` (Params?, EBRPS*), ``EBRSTInfo`` (Params?,
EBRST*: the EBRPS fields without URL), ``EBRASInfo`` / ``EBRDTInfo`` (EBRAS* / EBRDT*: RptTime,
RptType, RelatedEBRPS?, RelatedEBRST? (adapters), EBRID, EBRName, Longitude, Latitude, URL?
(adapters)) and ``EBRxxState`` (EBRxx*).
Reading tolerates any order and ignores elements this system does not use (``ResBrdInfo``).
"""

from __future__ import annotations

from datetime import datetime

from lxml import etree

from drivers.ebd.codes import (
    OMD_TYPES,
    BrdStateCode,
    EbdType,
    ResourceStateCode,
    ResultCode,
    check_area_codes,
    check_ebmid,
    check_ebrid,
)
from drivers.ebd.errors import EbdFormatError
from drivers.ebd.model import (
    Body,
    ConnectionCheck,
    Coverage,
    DeviceEntry,
    DeviceInfo,
    EbdResponse,
    Ebm,
    EbmStateRequest,
    EbmStateResponse,
    OmdRequest,
    PlatformEntry,
    PlatformInfo,
    ResourceState,
    ResourceStateEntry,
)
from drivers.ebd.xmlsafe import (
    add,
    child,
    children,
    read_code,
    read_time,
    required,
    text,
    write_time,
)

_INFO_ITEMS = {EbdType.EBRPS_INFO: "EBRPS", EbdType.EBRST_INFO: "EBRST"}
_DEVICE_ITEMS = {EbdType.EBRAS_INFO: "EBRAS", EbdType.EBRDT_INFO: "EBRDT"}
_STATE_ITEMS = {
    EbdType.EBRPS_STATE: "EBRPS",
    EbdType.EBRAS_STATE: "EBRAS",
    EbdType.EBRBS_STATE: "EBRBS",
    EbdType.EBRDT_STATE: "EBRDT",
}


def write_body(element: etree._Element, body: Body) -> None:
    """Fill the body ``element`` (already named after the EBDType) from ``body``."""
    if isinstance(body, EbdResponse):
        add(element, "ResultCode", str(int(body.result_code)))
        add(element, "ResultDesc", body.result_desc)
    elif isinstance(body, ConnectionCheck):
        add(element, "RptTime", write_time(body.rpt_time))
    elif isinstance(body, EbmStateRequest):
        add(add(element, "EBM"), "EBMID", check_ebmid(body.ebmid))
    elif isinstance(body, EbmStateResponse):
        _write_state_response(element, body)
    elif isinstance(body, OmdRequest):
        if body.omd_type not in OMD_TYPES:
            raise EbdFormatError(f"{body.omd_type!r} is not a report type", "OMDRequest/OMDType")
        add(element, "OMDType", body.omd_type)
        _write_params(element, body.rpt_start_time, body.rpt_end_time, body.rpt_type)
    elif isinstance(body, PlatformInfo):
        _write_params(element, None, None, body.rpt_type)
        info_item = _INFO_ITEMS[body.kind]
        for entry in body.entries:
            _write_platform(add(element, info_item), entry, with_url=info_item == "EBRPS")
    elif isinstance(body, DeviceInfo):
        device_item = _DEVICE_ITEMS[body.kind]
        for device in body.entries:
            _write_device(add(element, device_item), device, adapter=device_item == "EBRAS")
    elif isinstance(body, ResourceState):
        for item in body.entries:
            state = add(element, _STATE_ITEMS[body.kind])
            add(state, "RptTime", write_time(item.rpt_time))
            add(state, "EBRID", check_ebrid(item.ebrid))
            add(state, "StateCode", str(int(item.state)))
            add(state, "StateDesc", item.state_desc)
    elif isinstance(body, Ebm):  # written by drivers.ebd.codec
        raise TypeError("an EBM body is written by drivers.ebd.codec")


def _write_params(
    element: etree._Element, start: datetime | None, end: datetime | None, rpt_type: str
) -> None:
    params = add(element, "Params")
    add(params, "RptStartTime", write_time(start) if start else "")
    add(params, "RptEndTime", write_time(end) if end else "")
    add(params, "RptType", rpt_type)


def _write_state_response(element: etree._Element, body: EbmStateResponse) -> None:
    add(element, "RptTime", write_time(body.rpt_time))
    add(add(element, "EBM"), "EBMID", check_ebmid(body.ebmid))
    add(element, "BrdStateCode", str(int(body.state)))
    add(element, "BrdStateDesc", body.state_desc)
    if body.coverage is not None:
        coverage = add(element, "Coverage")
        add(coverage, "CoverageRate", body.coverage.rate)
        add(coverage, "AreaCode", ",".join(body.coverage.area_codes))
        add(coverage, "ResBrdStat", body.coverage.res_brd_stat)


def _write_platform(element: etree._Element, entry: PlatformEntry, *, with_url: bool) -> None:
    add(element, "RptTime", write_time(entry.rpt_time))
    add(element, "RptType", entry.rpt_type)
    if entry.parent_ebrid:
        add(add(element, "RelatedEBRPS"), "EBRID", check_ebrid(entry.parent_ebrid))
    add(element, "EBRID", check_ebrid(entry.ebrid))
    add(element, "EBRName", entry.name)
    add(element, "Address", entry.address)
    add(element, "Contact", entry.contact)
    add(element, "PhoneNumber", entry.phone)
    add(element, "Longitude", entry.longitude)
    add(element, "Latitude", entry.latitude)
    if with_url:
        add(element, "URL", entry.url)


def _write_device(element: etree._Element, entry: DeviceEntry, *, adapter: bool) -> None:
    add(element, "RptTime", write_time(entry.rpt_time))
    add(element, "RptType", entry.rpt_type)
    if entry.parent_ebrps:
        add(add(element, "RelatedEBRPS"), "EBRID", check_ebrid(entry.parent_ebrps))
    if adapter and entry.parent_ebrst:
        add(add(element, "RelatedEBRST"), "EBRID", check_ebrid(entry.parent_ebrst))
    add(element, "EBRID", check_ebrid(entry.ebrid))
    add(element, "EBRName", entry.name)
    add(element, "Longitude", entry.longitude)
    add(element, "Latitude", entry.latitude)
    if adapter and entry.url:
        add(element, "URL", entry.url)


def _read_device(element: etree._Element, w: str) -> DeviceEntry:
    parents = {}
    for name in ("RelatedEBRPS", "RelatedEBRST"):
        value = text(element, f"{name}/EBRID", w)
        parents[name] = check_ebrid(value, f"{w}/{name}/EBRID") if value else None
    return DeviceEntry(
        rpt_time=read_time(required(element, "RptTime", w), f"{w}/RptTime"),
        ebrid=check_ebrid(required(element, "EBRID", w), f"{w}/EBRID"),
        name=required(element, "EBRName", w),
        rpt_type=text(element, "RptType", w) or "Sync",
        parent_ebrps=parents["RelatedEBRPS"],
        parent_ebrst=parents["RelatedEBRST"],
        longitude=text(element, "Longitude", w) or "",
        latitude=text(element, "Latitude", w) or "",
        url=text(element, "URL", w) or "",
    )


def read_body(kind: EbdType, element: etree._Element) -> Body:
    """The body value of an ``EBDType`` other than EBM; raise naming the element."""
    w = f"EBD/{kind.value}"
    if kind is EbdType.EBD_RESPONSE:
        code = read_code(ResultCode, required(element, "ResultCode", w), f"{w}/ResultCode")
        return EbdResponse(code, text(element, "ResultDesc", w) or "")
    if kind is EbdType.CONNECTION_CHECK:
        return ConnectionCheck(read_time(required(element, "RptTime", w), f"{w}/RptTime"))
    if kind is EbdType.EBM_STATE_REQUEST:
        return EbmStateRequest(check_ebmid(required(element, "EBM/EBMID", w), f"{w}/EBM/EBMID"))
    if kind is EbdType.EBM_STATE_RESPONSE:
        return _read_state_response(element, w)
    if kind is EbdType.OMD_REQUEST:
        omd_type = required(element, "OMDType", w)
        if omd_type not in OMD_TYPES:
            raise EbdFormatError(f"{omd_type!r} is not a report type", f"{w}/OMDType")
        start = text(element, "Params/RptStartTime", w)
        end = text(element, "Params/RptEndTime", w)
        return OmdRequest(
            omd_type=omd_type,
            rpt_start_time=read_time(start, f"{w}/Params/RptStartTime") if start else None,
            rpt_end_time=read_time(end, f"{w}/Params/RptEndTime") if end else None,
            rpt_type=text(element, "Params/RptType", w) or "Full",
        )
    if kind in _INFO_ITEMS:
        info_item = _INFO_ITEMS[kind]
        entries = tuple(_read_platform(e, f"{w}/{info_item}") for e in children(element, info_item))
        return PlatformInfo(entries, text(element, "Params/RptType", w) or "Full", kind)
    if kind in _DEVICE_ITEMS:
        device_item = _DEVICE_ITEMS[kind]
        devices = children(element, device_item)
        return DeviceInfo(kind, tuple(_read_device(e, f"{w}/{device_item}") for e in devices))
    if kind in _STATE_ITEMS:
        name = _STATE_ITEMS[kind]
        items = []
        for item in children(element, name):
            i = f"{w}/{name}"
            items.append(
                ResourceStateEntry(
                    rpt_time=read_time(required(item, "RptTime", i), f"{i}/RptTime"),
                    ebrid=check_ebrid(required(item, "EBRID", i), f"{i}/EBRID"),
                    state=read_code(
                        ResourceStateCode, required(item, "StateCode", i), f"{i}/StateCode"
                    ),
                    state_desc=text(item, "StateDesc", i) or "",
                )
            )
        return ResourceState(kind, tuple(items))
    raise EbdFormatError("this system does not read this type", f"EBD/EBDType/{kind.value}")


def _read_state_response(element: etree._Element, w: str) -> EbmStateResponse:
    coverage_element = child(element, "Coverage")
    coverage = None
    if coverage_element is not None:
        c = f"{w}/Coverage"
        areas = text(coverage_element, "AreaCode", c)
        coverage = Coverage(
            rate=text(coverage_element, "CoverageRate", c) or "",
            area_codes=check_area_codes(areas, f"{c}/AreaCode") if areas else (),
            res_brd_stat=text(coverage_element, "ResBrdStat", c) or "",
        )
    return EbmStateResponse(
        rpt_time=read_time(required(element, "RptTime", w), f"{w}/RptTime"),
        ebmid=check_ebmid(required(element, "EBM/EBMID", w), f"{w}/EBM/EBMID"),
        state=read_code(BrdStateCode, required(element, "BrdStateCode", w), f"{w}/BrdStateCode"),
        state_desc=text(element, "BrdStateDesc", w) or "",
        coverage=coverage,
    )


def _read_platform(element: etree._Element, w: str) -> PlatformEntry:
    parent = text(element, "RelatedEBRPS/EBRID", w)
    return PlatformEntry(
        rpt_time=read_time(required(element, "RptTime", w), f"{w}/RptTime"),
        ebrid=check_ebrid(required(element, "EBRID", w), f"{w}/EBRID"),
        name=required(element, "EBRName", w),
        rpt_type=text(element, "RptType", w) or "Sync",
        parent_ebrid=check_ebrid(parent, f"{w}/RelatedEBRPS/EBRID") if parent else None,
        address=text(element, "Address", w) or "",
        contact=text(element, "Contact", w) or "",
        phone=text(element, "PhoneNumber", w) or "",
        longitude=text(element, "Longitude", w) or "",
        latitude=text(element, "Latitude", w) or "",
        url=text(element, "URL", w) or "",
    )
