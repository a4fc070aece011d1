"""CAP → EBM for what we send, and EBM → CAP for what the upper platform sends us.

The mapping follows the research notes' working proposal (no public text of T/AHMS 0009-2023
or QX/T 433-2018 gives one; ``channels/ebplatform/README.md`` has the table):

- MsgType: an Actual Alert or Update is 1, a Cancel 2 (naming the cancelled EBM in
  ``RelatedInfo/EBMID``); Exercise and Test go out as a drill (``exercise_msg_type``,
  ``test_msg_type``), a Test also with Severity 15;
- Severity: Extreme 1 (red), Severe 2 (orange), Moderate 3 (yellow), Minor 4 (blue), Unknown 0;
- EventType: a five-character ``<eventCode>`` (valueName ``EventType``, ``EBM`` or
  ``GB/T 35561``) if the alert has one, else ``default_event_type``;
- AreaCode: the alert's division geocodes inside the target's area (12 digits), or the target's
  area itself when a geocode covers it or the alert names its area otherwise;
- StartTime/EndTime: ``effective`` (else ``onset``, else ``sent``) and ``expires``;
- LanguageCode, MsgTitle, MsgDesc: the target's first language as a GB/T 4880.2 code, the
  marked title and the marked body (receivers speak MsgDesc when no audio comes with it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from broadcaster.cap import (
    Alert,
    Area,
    Category,
    Certainty,
    Info,
    MsgType,
    NamedValue,
    Reference,
    Scope,
    Severity,
    Status,
    Urgency,
)
from broadcaster.channel import AlertMessage
from broadcaster.delivery import Target
from broadcaster.divisions import covers, normalize_code
from drivers.ebd import Ebm
from drivers.ebd import MsgType as EbmType
from drivers.ebd import Severity as EbmSeverity
from drivers.ebd.xmlsafe import BEIJING, write_time

DIVISION_NAMES = frozenset(
    {"cpeas geographic code", "adcode", "gb/t 2260", "gb2260", "division", "行政区划代码"}
)
EVENT_CODE_NAMES = frozenset({"eventtype", "ebm", "gb/t 35561"})
_SEVERITY = {
    Severity.EXTREME: EbmSeverity.RED,
    Severity.SEVERE: EbmSeverity.ORANGE,
    Severity.MODERATE: EbmSeverity.YELLOW,
    Severity.MINOR: EbmSeverity.BLUE,
    Severity.UNKNOWN: EbmSeverity.UNKNOWN,
}
_LANGUAGES = {"zh": "zho", "mn": "mon", "en": "eng", "bo": "bod", "ug": "uig", "kk": "kaz"}


@dataclass(frozen=True)
class EbmChoices:
    """The settings the mapping reads (from the channel's configuration)."""

    sender_name: str
    sender_code: str
    default_event_type: str
    exercise_msg_type: int
    test_msg_type: int


def language_code(tag: str) -> str:
    """The three-letter GB/T 4880.2 code of a language tag (``zh-CN`` → ``zho``)."""
    return _LANGUAGES.get(tag.split("-")[0].lower(), "zho")


def area_codes(alert: Alert, target: Target) -> tuple[str, ...]:
    """The 12-digit AreaCode list of ``alert`` for a platform covering ``target.division``."""
    own = normalize_code(target.division or "")
    inside: list[str] = []
    for info in alert.infos:
        for area in info.areas:
            for geocode in area.geocodes:
                if geocode.value_name.strip().lower() not in DIVISION_NAMES:
                    continue
                try:
                    code = normalize_code(geocode.value)
                except ValueError:
                    continue
                if covers(code, own):
                    return (own,)
                if covers(own, code) and code not in inside:
                    inside.append(code)
    return tuple(inside) or (own,)


def _event_type(info: Info, default: str) -> str:
    for code in info.event_codes:
        value = code.value.strip()
        if code.value_name.strip().lower() in EVENT_CODE_NAMES and len(value) == 5:
            return value
    return default


def _window(alert: Alert, info: Info, expires_at: float) -> tuple[datetime, datetime]:
    start = info.effective or info.onset or alert.sent
    end = info.expires or datetime.fromtimestamp(expires_at, UTC)
    return start, end


def _msg_type(alert: Alert, choices: EbmChoices) -> tuple[EbmType, EbmSeverity | None]:
    """MsgType, and the Severity it forces (15 for a Test), of the EBM for ``alert``."""
    test = alert.status not in (Status.ACTUAL, Status.EXERCISE)
    forced = EbmSeverity.TEST if test else None
    if alert.msg_type is MsgType.CANCEL:
        return EbmType.CANCEL, forced
    if alert.status is Status.EXERCISE:
        return EbmType(choices.exercise_msg_type), None
    if test:
        return EbmType(choices.test_msg_type), forced
    return EbmType.ACTUAL, None


def build_ebm(
    message: AlertMessage,
    target: Target,
    choices: EbmChoices,
    *,
    ebmid: str,
    send_time: datetime,
    related_ebmid: str | None = None,
) -> Ebm:
    """The EBM one delivery carries: the same function makes what is sent and what is shown."""
    alert = message.alert
    text = message.rendition.for_languages(target.languages)[0]
    info = next((i for i in alert.infos if i.language == text.language), alert.infos[0])
    msg_type, forced = _msg_type(alert, choices)
    start, end = _window(alert, info, message.expires_at)
    return Ebm(
        ebmid=ebmid,
        msg_type=msg_type,
        sender_name=choices.sender_name,
        sender_code=choices.sender_code,
        send_time=send_time,
        event_type=_event_type(info, choices.default_event_type),
        severity=forced or _SEVERITY[info.severity],
        start_time=start,
        end_time=end,
        title=text.title,
        description=text.body,
        area_codes=area_codes(alert, target),
        language=language_code(text.language),
        related_ebmid=related_ebmid,
    )


def ebm_fields(ebm: Ebm) -> dict[str, object]:
    """The fields of an EBM an officer checks, as JSON values (ids and send time left out:
    they are fixed only when it goes out)."""
    return {
        "msg_type": int(ebm.msg_type),
        "sender_name": ebm.sender_name,
        "sender_code": ebm.sender_code,
        "event_type": ebm.event_type,
        "severity": int(ebm.severity),
        "start_time": write_time(ebm.start_time),
        "end_time": write_time(ebm.end_time),
        "area_codes": list(ebm.area_codes),
        "language": ebm.language,
        "title": ebm.title,
        "description": ebm.description,
    }


_CAP_SEVERITY = {value: key for key, value in _SEVERITY.items()}


def alert_of_ebm(
    ebm: Ebm, src_ebrid: str, cancelled: Reference | None, cancelled_status: str | None = None
) -> Alert:
    """The CAP alert an upper platform's EBM becomes (``cancelled``: the alert a cancel EBM
    lifts, found from its ``RelatedInfo/EBMID``; the Cancel has that alert's status,
    ``cancelled_status``, as CAP asks: the lifting of a drill is a drill too)."""
    sent = _aware(ebm.send_time)
    drill = ebm.msg_type in (EbmType.PLATFORM_DRILL, EbmType.HEADEND_DRILL, EbmType.TERMINAL_DRILL)
    status = Status.EXERCISE if drill else Status.ACTUAL
    if ebm.severity is EbmSeverity.TEST:
        status = Status.TEST
    cancel = ebm.msg_type is EbmType.CANCEL and cancelled is not None
    if cancel and cancelled_status in {s.value for s in Status}:
        status = Status(cancelled_status)
    area = Area(
        area_desc=f"应急广播区域 {','.join(ebm.area_codes)}",
        geocodes=[NamedValue("GB/T 2260", code) for code in ebm.area_codes],
    )
    start = _aware(ebm.start_time)
    end = max(_aware(ebm.end_time), max(sent, start) + timedelta(minutes=1))
    info = Info(
        language="zh-CN",
        categories=[Category.OTHER],
        event=ebm.title or ebm.event_type,
        urgency=Urgency.IMMEDIATE,
        severity=_CAP_SEVERITY.get(ebm.severity, Severity.UNKNOWN),
        certainty=Certainty.OBSERVED,
        event_codes=[NamedValue("EventType", ebm.event_type)],
        effective=start,
        expires=end,
        sender_name=ebm.sender_name,
        headline=ebm.title,
        description=ebm.description,
        areas=[area],
    )
    return Alert(
        identifier=f"EBM-{ebm.ebmid}",
        sender=f"ebd-{src_ebrid}",
        sent=sent,
        status=status,
        msg_type=MsgType.CANCEL if cancel else MsgType.ALERT,
        scope=Scope.PUBLIC,
        references=[cancelled] if cancel and cancelled else [],
        infos=[info],
    )


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=BEIJING)
