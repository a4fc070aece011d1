"""The CAP 1.2 alert as Python data (OASIS CAP 1.2 §3.2, "Message Structure").

One dataclass per CAP segment (``alert``, ``info``, ``resource``, ``area``) plus the small value
types. Enumerated values are :class:`~enum.StrEnum` members whose values are exactly the CAP
words, so ``str(Urgency.IMMEDIATE) == "Immediate"``. All times are timezone-aware. Geometry is
kept as CAP writes it: WGS 84 ``(lat, lon)`` pairs, radius in kilometres. The model carries
values only; whether they form a valid alert is decided by :mod:`broadcaster.cap.validate`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from broadcaster.cap.times import format_cap_time


class Status(StrEnum):
    """``<status>``: the handling of the message (§3.2.1)."""

    ACTUAL = "Actual"
    EXERCISE = "Exercise"
    SYSTEM = "System"
    TEST = "Test"
    DRAFT = "Draft"


class MsgType(StrEnum):
    """``<msgType>``: the nature of the message (§3.2.1)."""

    ALERT = "Alert"
    UPDATE = "Update"
    CANCEL = "Cancel"
    ACK = "Ack"
    ERROR = "Error"


class Scope(StrEnum):
    """``<scope>``: who the message is for (§3.2.1)."""

    PUBLIC = "Public"
    RESTRICTED = "Restricted"
    PRIVATE = "Private"


class Category(StrEnum):
    """``<category>``: the kind of subject event (§3.2.2)."""

    GEO = "Geo"
    MET = "Met"
    SAFETY = "Safety"
    SECURITY = "Security"
    RESCUE = "Rescue"
    FIRE = "Fire"
    HEALTH = "Health"
    ENV = "Env"
    TRANSPORT = "Transport"
    INFRA = "Infra"
    CBRNE = "CBRNE"
    OTHER = "Other"


class ResponseType(StrEnum):
    """``<responseType>``: the action recommended to the audience (§3.2.2)."""

    SHELTER = "Shelter"
    EVACUATE = "Evacuate"
    PREPARE = "Prepare"
    EXECUTE = "Execute"
    AVOID = "Avoid"
    MONITOR = "Monitor"
    ASSESS = "Assess"
    ALL_CLEAR = "AllClear"
    NONE = "None"


class Urgency(StrEnum):
    """``<urgency>``: when action should be taken (§3.2.2)."""

    IMMEDIATE = "Immediate"
    EXPECTED = "Expected"
    FUTURE = "Future"
    PAST = "Past"
    UNKNOWN = "Unknown"


class Severity(StrEnum):
    """``<severity>``: how bad the threat is (§3.2.2)."""

    EXTREME = "Extreme"
    SEVERE = "Severe"
    MODERATE = "Moderate"
    MINOR = "Minor"
    UNKNOWN = "Unknown"


class Certainty(StrEnum):
    """``<certainty>``: how sure the sender is (§3.2.2; CAP 1.1 ``VeryLikely`` reads as Likely)."""

    OBSERVED = "Observed"
    LIKELY = "Likely"
    POSSIBLE = "Possible"
    UNLIKELY = "Unlikely"
    UNKNOWN = "Unknown"


@dataclass(slots=True)
class NamedValue:
    """A ``valueName``/``value`` pair: ``<eventCode>``, ``<parameter>`` or ``<geocode>``."""

    value_name: str
    value: str


@dataclass(slots=True)
class Reference:
    """One ``sender,identifier,sent`` triplet of ``<references>``; ``sent`` is kept verbatim."""

    sender: str
    identifier: str
    sent: str

    def __str__(self) -> str:
        return f"{self.sender},{self.identifier},{self.sent}"


@dataclass(slots=True)
class Circle:
    """``<circle>``: a WGS 84 centre and a radius in kilometres."""

    lat: float
    lon: float
    radius_km: float


@dataclass(slots=True)
class Polygon:
    """``<polygon>``: WGS 84 ``(lat, lon)`` pairs; a valid one is closed and has 4+ pairs."""

    points: tuple[tuple[float, float], ...]


@dataclass(slots=True, kw_only=True)
class Area:
    """``<area>``: where the warning applies (§3.2.4)."""

    area_desc: str
    polygons: list[Polygon] = field(default_factory=list)
    circles: list[Circle] = field(default_factory=list)
    geocodes: list[NamedValue] = field(default_factory=list)
    altitude: float | None = None
    ceiling: float | None = None


@dataclass(slots=True, kw_only=True)
class Resource:
    """``<resource>``: a file with more information, e.g. the audio of the warning (§3.2.3)."""

    resource_desc: str
    mime_type: str
    size: int | None = None
    uri: str | None = None
    deref_uri: str | None = None
    digest: str | None = None


@dataclass(slots=True, kw_only=True)
class Info:
    """``<info>``: the event, its urgency and what to do, in one language (§3.2.2)."""

    event: str
    urgency: Urgency
    severity: Severity
    certainty: Certainty
    language: str = "en-US"
    categories: list[Category] = field(default_factory=list)
    response_types: list[ResponseType] = field(default_factory=list)
    audience: str | None = None
    event_codes: list[NamedValue] = field(default_factory=list)
    effective: datetime | None = None
    onset: datetime | None = None
    expires: datetime | None = None
    sender_name: str | None = None
    headline: str | None = None
    description: str | None = None
    instruction: str | None = None
    web: str | None = None
    contact: str | None = None
    parameters: list[NamedValue] = field(default_factory=list)
    resources: list[Resource] = field(default_factory=list)
    areas: list[Area] = field(default_factory=list)


@dataclass(slots=True, kw_only=True)
class Alert:
    """``<alert>``: one CAP message (§3.2.1); identified by sender, identifier and sent."""

    identifier: str
    sender: str
    sent: datetime
    status: Status
    msg_type: MsgType
    scope: Scope
    source: str | None = None
    restriction: str | None = None
    addresses: str | None = None
    codes: list[str] = field(default_factory=list)
    note: str | None = None
    references: list[Reference] = field(default_factory=list)
    incidents: str | None = None
    infos: list[Info] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str, str]:
        """``(sender, identifier, sent)`` as written in a ``<references>`` triplet."""
        return (self.sender, self.identifier, format_cap_time(self.sent))

    @property
    def reference(self) -> Reference:
        """The triplet a later Update or Cancel uses to refer to this alert."""
        return Reference(*self.key)

    def expires_at(self) -> datetime | None:
        """The latest ``<expires>`` over all info blocks, or None when none has one."""
        expiries = [info.expires for info in self.infos if info.expires is not None]
        return max(expiries) if expiries else None
