"""Plain values of the EBD platform interface: the envelope and the bodies this system uses.

Element names and order follow the deployed 2018 platforms (GD/J 083-2018 era, see
``docs/protocols/ebd.md``). Times are Beijing local time without zone, as on the wire; an
aware ``datetime`` given to the writer is converted to UTC+8 first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from drivers.ebd.codes import (
    AuxiliaryType,
    BrdStateCode,
    EbdType,
    MsgType,
    ResourceStateCode,
    ResultCode,
    Severity,
)


@dataclass(frozen=True)
class Auxiliary:
    """One ``MsgContent/Auxiliary``: a resource file carried in the package."""

    type: AuxiliaryType
    desc: str
    size: int | None = None
    digest: str | None = None


@dataclass(frozen=True)
class Dispatch:
    """One ``EBM/Dispatch``: which platform, station, adapter or broadcast system is to carry
    the message (all optional; repeated ``Dispatch`` elements sit directly under ``EBM``)."""

    language: str | None = None
    ebrps: str | None = None
    ebrst: str | None = None
    ebras: str | None = None
    brd_sys_type: str | None = None
    brd_sys_info: str | None = None


@dataclass(frozen=True)
class Ebm:
    """The ``EBM`` body: one broadcast instruction."""

    ebmid: str
    msg_type: MsgType
    sender_name: str
    sender_code: str
    send_time: datetime
    event_type: str
    severity: Severity
    start_time: datetime
    end_time: datetime
    title: str
    description: str
    area_codes: tuple[str, ...]
    language: str = "zho"
    version: str = "1"
    related_ebmid: str | None = None
    related_ebiid: str | None = None
    program_num: str | None = None
    auxiliaries: tuple[Auxiliary, ...] = ()
    dispatches: tuple[Dispatch, ...] = ()


@dataclass(frozen=True)
class EbdResponse:
    """The ``EBDResponse`` body: the receipt for any package."""

    result_code: ResultCode
    result_desc: str = ""


@dataclass(frozen=True)
class ConnectionCheck:
    """The ``ConnectionCheck`` body: a heartbeat."""

    rpt_time: datetime


@dataclass(frozen=True)
class EbmStateRequest:
    """The ``EBMStateRequest`` body: asks for the broadcast state of one EBM."""

    ebmid: str


@dataclass(frozen=True)
class Coverage:
    """``EBMStateResponse/Coverage``: what the broadcast reached."""

    rate: str = ""
    area_codes: tuple[str, ...] = ()
    res_brd_stat: str = ""


@dataclass(frozen=True)
class EbmStateResponse:
    """The ``EBMStateResponse`` body: broadcast-state feedback for one EBM."""

    rpt_time: datetime
    ebmid: str
    state: BrdStateCode
    state_desc: str = ""
    coverage: Coverage | None = None


@dataclass(frozen=True)
class OmdRequest:
    """The ``OMDRequest`` body: asks for resource information, states or logs."""

    omd_type: str
    rpt_start_time: datetime | None = None
    rpt_end_time: datetime | None = None
    rpt_type: str = "Full"


@dataclass(frozen=True)
class PlatformEntry:
    """One ``EBRPS`` of an ``EBRPSInfo``: a platform describing itself."""

    rpt_time: datetime
    ebrid: str
    name: str
    rpt_type: str = "Sync"
    parent_ebrid: str | None = None
    address: str = ""
    contact: str = ""
    phone: str = ""
    longitude: str = ""
    latitude: str = ""
    url: str = ""


@dataclass(frozen=True)
class PlatformInfo:
    """The ``EBRPSInfo`` body, or with ``kind`` EBRSTInfo the ``EBRSTInfo`` body (stations:
    the same entries without ``URL``)."""

    entries: tuple[PlatformEntry, ...]
    rpt_type: str = "Full"
    kind: EbdType = EbdType.EBRPS_INFO


@dataclass(frozen=True)
class DeviceEntry:
    """One ``EBRAS`` (adapter) of an ``EBRASInfo``, or one ``EBRDT`` (platform device or
    terminal) of an ``EBRDTInfo``; ``parent_ebrst`` and ``url`` belong to adapters only."""

    rpt_time: datetime
    ebrid: str
    name: str
    rpt_type: str = "Sync"
    parent_ebrps: str | None = None
    parent_ebrst: str | None = None
    longitude: str = ""
    latitude: str = ""
    url: str = ""


@dataclass(frozen=True)
class DeviceInfo:
    """The ``EBRASInfo`` or ``EBRDTInfo`` body (``kind`` says which)."""

    kind: EbdType
    entries: tuple[DeviceEntry, ...]


@dataclass(frozen=True)
class ResourceStateEntry:
    """One item of an ``EBRxxState`` body."""

    rpt_time: datetime
    ebrid: str
    state: ResourceStateCode
    state_desc: str = ""


@dataclass(frozen=True)
class ResourceState:
    """An ``EBRPSState`` / ``EBRASState`` / ``EBRBSState`` / ``EBRDTState`` body."""

    kind: EbdType
    entries: tuple[ResourceStateEntry, ...]


Body = (
    Ebm
    | EbdResponse
    | ConnectionCheck
    | EbmStateRequest
    | EbmStateResponse
    | OmdRequest
    | PlatformInfo
    | DeviceInfo
    | ResourceState
)


@dataclass(frozen=True)
class Ebd:
    """One EBD file: the envelope and its body (``EBDType`` follows from the body)."""

    ebdid: str
    src_ebrid: str
    time: datetime
    body: Body
    dest_ebrid: str | None = None
    src_url: str | None = None
    related_ebdid: str | None = None
    version: str = "1.0"

    @property
    def ebd_type(self) -> EbdType:
        """The ``EBDType`` this body is sent as."""
        return body_type(self.body)


def body_type(body: Body) -> EbdType:
    """The ``EBDType`` of a body value."""
    if isinstance(body, ResourceState | PlatformInfo | DeviceInfo):
        return body.kind
    return _BODY_TYPES[type(body)]


_BODY_TYPES: dict[type, EbdType] = {
    Ebm: EbdType.EBM,
    EbdResponse: EbdType.EBD_RESPONSE,
    ConnectionCheck: EbdType.CONNECTION_CHECK,
    EbmStateRequest: EbdType.EBM_STATE_REQUEST,
    EbmStateResponse: EbdType.EBM_STATE_RESPONSE,
    OmdRequest: EbdType.OMD_REQUEST,
}
