"""The alert model: terse construction, identity key and expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

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


def _info(expires: datetime | None) -> Info:
    return Info(
        event="暴雨",
        urgency=Urgency.IMMEDIATE,
        severity=Severity.SEVERE,
        certainty=Certainty.LIKELY,
        categories=[Category.MET],
        expires=expires,
        areas=[Area(area_desc="集宁区", geocodes=[NamedValue("GB/T 2260", "150902000000")])],
    )


def test_enum_values_are_cap_words() -> None:
    assert str(Certainty.LIKELY) == "Likely"
    assert Category("CBRNE") is Category.CBRNE
    assert [str(m) for m in MsgType] == ["Alert", "Update", "Cancel", "Ack", "Error"]


def test_key_uses_cap_time_and_reference_matches() -> None:
    sent = datetime(2024, 7, 1, 8, 0, tzinfo=timezone(timedelta(hours=8)))
    alert = Alert(
        identifier="CN-150900-1",
        sender="ulanqab@example.cn",
        sent=sent,
        status=Status.ACTUAL,
        msg_type=MsgType.ALERT,
        scope=Scope.PUBLIC,
    )
    assert alert.key == ("ulanqab@example.cn", "CN-150900-1", "2024-07-01T08:00:00+08:00")
    assert str(alert.reference) == "ulanqab@example.cn,CN-150900-1,2024-07-01T08:00:00+08:00"
    assert alert.reference == Reference(*alert.key)
    assert alert.infos == [] and alert.codes == [] and alert.references == []


def test_expires_at_is_latest_info_expiry() -> None:
    early = datetime(2024, 7, 1, 10, 0, tzinfo=UTC)
    late = datetime(2024, 7, 1, 19, 0, tzinfo=timezone(timedelta(hours=8)))
    alert = Alert(
        identifier="a",
        sender="s",
        sent=early - timedelta(hours=1),
        status=Status.TEST,
        msg_type=MsgType.ALERT,
        scope=Scope.PUBLIC,
        infos=[_info(early), _info(None), _info(late)],
    )
    # 19:00+08:00 is 11:00 UTC, later than 10:00 UTC.
    assert alert.expires_at() == late
    alert.infos = [_info(None)]
    assert alert.expires_at() is None
