"""Code tables and identifier rules of the EBD platform interface (GD/J 082/083-2018).

Every table here is one that the deployed platforms agree on (see ``docs/protocols/ebd.md``):
EBDType, EBDResponse ResultCode, EBM MsgType, Severity, BrdStateCode, resource StateCode,
AuxiliaryType, OMDType and the five-character EventType structure. Identifiers:

- EBRID (resource code): 23 digits = level(1) + area(12) + type(2) + subtype(2) + sub-resource(2)
  + sequence(4); the 2016 form had 18 digits.
- EBDID (package id): 41 digits = kind(2, ``10`` ordinary, ``01`` heartbeat) + source EBRID(23)
  + sequence(16; all zeros for a heartbeat); the 2016 form had 36 digits (EBRID of 18).
- EBMID (message id): source EBRID(23) + YYYYMMDD + sequence, at most 35 digits.
"""

from __future__ import annotations

import re
from enum import IntEnum, StrEnum

from drivers.ebd.errors import EbdFormatError


class EbdType(StrEnum):
    """``EBDType``: what the package carries; the body element has the same name."""

    EBM = "EBM"
    EBM_STATE_REQUEST = "EBMStateRequest"
    EBM_STATE_RESPONSE = "EBMStateResponse"
    EBM_BRD_LOG = "EBMBrdLog"
    OMD_REQUEST = "OMDRequest"
    EBRPS_INFO = "EBRPSInfo"
    EBRST_INFO = "EBRSTInfo"
    EBRAS_INFO = "EBRASInfo"
    EBRBS_INFO = "EBRBSInfo"
    EBRDT_INFO = "EBRDTInfo"
    EBRPS_STATE = "EBRPSState"
    EBRAS_STATE = "EBRASState"
    EBRBS_STATE = "EBRBSState"
    EBRDT_STATE = "EBRDTState"
    CONNECTION_CHECK = "ConnectionCheck"
    EBD_RESPONSE = "EBDResponse"


class ResultCode(IntEnum):
    """``EBDResponse/ResultCode``: the receipt for any package."""

    RECEIVED = 0
    OK = 1
    PARSE_FAILED = 2
    CONTENT_MISSING = 3
    SIGNATURE_FAILED = 4
    OTHER_ERROR = 5


RESULT_DESCRIPTIONS = {
    ResultCode.RECEIVED: "已接收，未处理",
    ResultCode.OK: "接收解析及数据校验成功",
    ResultCode.PARSE_FAILED: "接收解析失败",
    ResultCode.CONTENT_MISSING: "内容缺失",
    ResultCode.SIGNATURE_FAILED: "签名验证失败",
    ResultCode.OTHER_ERROR: "其他错误",
}


class MsgType(IntEnum):
    """``MsgBasicInfo/MsgType``: actual, cancel, or one of three drills."""

    ACTUAL = 1
    CANCEL = 2
    PLATFORM_DRILL = 3
    HEADEND_DRILL = 4
    TERMINAL_DRILL = 5


class Severity(IntEnum):
    """``MsgBasicInfo/Severity``: 1 red (most severe) to 4 blue; 15 is for tests only."""

    UNKNOWN = 0
    RED = 1
    ORANGE = 2
    YELLOW = 3
    BLUE = 4
    TEST = 15


class BrdStateCode(IntEnum):
    """``BrdStateCode`` of an EBMStateResponse (2018 values; the 2016 ones differ)."""

    NOT_PROCESSED = 0
    WAITING = 1
    BROADCASTING = 2
    SUCCEEDED = 3
    FAILED = 4
    CANCELLED = 5


BRD_STATE_DESCRIPTIONS = {
    BrdStateCode.NOT_PROCESSED: "未处理",
    BrdStateCode.WAITING: "等待播发",
    BrdStateCode.BROADCASTING: "播发中",
    BrdStateCode.SUCCEEDED: "播发成功",
    BrdStateCode.FAILED: "播发失败",
    BrdStateCode.CANCELLED: "播发取消",
}


class ResourceStateCode(IntEnum):
    """``StateCode`` of an EBRxxState item."""

    RUNNING = 1
    STOPPED = 2
    FAULT = 3
    RECOVERED = 4
    BROADCASTING = 5


class AuxiliaryType(IntEnum):
    """``Auxiliary/AuxiliaryType``: the audio formats seen in deployments."""

    MP3 = 2
    WAV = 3


OMD_TYPES = frozenset(
    {
        "EBRPSInfo",
        "EBRSTInfo",
        "EBRASInfo",
        "EBRBSInfo",
        "EBRDTInfo",
        "EBMBrdLog",
        "EBRPSState",
        "EBRASState",
        "EBRBSState",
        "EBRDTState",
    }
)

EBDID_KIND_ORDINARY = "10"
EBDID_KIND_HEARTBEAT = "01"
EBMID_MAX_DIGITS = 35
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

_EBRID = re.compile(r"\d{23}|\d{18}", re.ASCII)
_EBDID = re.compile(r"(01|10)(\d{23}|\d{18})(\d{16})", re.ASCII)
_EVENT_TYPE = re.compile(r"1[1-4][A-Z]\d{2}|1\d000|20000|00000", re.ASCII)


def check_ebrid(value: str, element: str = "EBRID") -> str:
    """Return ``value`` if it is a 23-digit (or legacy 18-digit) EBRID, else raise."""
    if not _EBRID.fullmatch(value):
        raise EbdFormatError(f"{value!r} is not a 23-digit resource code", element)
    return value


def check_ebdid(value: str, element: str = "EBDID") -> str:
    """Return ``value`` if it is a 41-digit (or legacy 36-digit) EBDID, else raise."""
    if not _EBDID.fullmatch(value):
        raise EbdFormatError(f"{value!r} is not a 41-digit package id", element)
    return value


def ebdid_source(ebdid: str) -> str:
    """The source EBRID inside an EBDID (23 digits, or 18 for the legacy form)."""
    check_ebdid(ebdid)
    return ebdid[2:-16]


def make_ebdid(source_ebrid: str, sequence: int, *, heartbeat: bool = False) -> str:
    """Build an EBDID: kind + source EBRID + 16-digit sequence (zeros for a heartbeat)."""
    check_ebrid(source_ebrid, "SRC/EBRID")
    if heartbeat:
        return EBDID_KIND_HEARTBEAT + source_ebrid + "0" * 16
    if not 0 <= sequence < 10**16:
        raise EbdFormatError(f"sequence {sequence} does not fit 16 digits", "EBDID")
    return f"{EBDID_KIND_ORDINARY}{source_ebrid}{sequence:016d}"


def make_ebmid(source_ebrid: str, day: str, sequence: int, width: int = 4) -> str:
    """Build an EBMID: source EBRID + ``day`` (YYYYMMDD) + sequence of ``width`` digits."""
    check_ebrid(source_ebrid, "SenderCode")
    if not re.fullmatch(r"\d{8}", day):
        raise EbdFormatError(f"{day!r} is not YYYYMMDD", "EBMID")
    if not 0 <= sequence < 10**width:
        raise EbdFormatError(f"sequence {sequence} does not fit {width} digits", "EBMID")
    ebmid = f"{source_ebrid}{day}{sequence:0{width}d}"
    return check_ebmid(ebmid)


def check_ebmid(value: str, element: str = "EBMID") -> str:
    """Return ``value`` if it is an EBMID of digits, at most 35 long, else raise."""
    if not re.fullmatch(rf"\d{{20,{EBMID_MAX_DIGITS}}}", value):
        raise EbdFormatError(f"{value!r} is not an EBMID of at most 35 digits", element)
    return value


def check_event_type(value: str, element: str = "EventType") -> str:
    """Return ``value`` if it has the five-character event-code structure (``11B03``)."""
    if not _EVENT_TYPE.fullmatch(value):
        raise EbdFormatError(f"{value!r} is not a five-character event code", element)
    return value


def check_area_codes(value: str, element: str = "AreaCode") -> tuple[str, ...]:
    """Split a comma-separated list of 12-digit area codes, refusing anything else."""
    codes = tuple(code.strip() for code in value.split(",") if code.strip())
    if not codes or any(not re.fullmatch(r"\d{12}", code) for code in codes):
        raise EbdFormatError(f"{value!r} is not a list of 12-digit area codes", element)
    return codes


def area_code(division: str) -> str:
    """Pad a GB/T 2260 division code (2, 4, 6, 9 or 12 digits) to the 12-digit form."""
    if not re.fullmatch(r"\d{2}|\d{4}|\d{6}|\d{9}|\d{12}", division):
        raise EbdFormatError(f"{division!r} is not a division code", "AreaCode")
    return division.ljust(12, "0")
