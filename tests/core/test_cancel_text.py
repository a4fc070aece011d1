"""A Cancel's public text names the warning it lifts (area, event, level, time of issue in the
deployment's time zone) with the officer's public note; the internal reason stays on the record
and in the audit log, never in the CAP document residents and the public feed receive."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from broadcaster.cap import NamedValue, ResponseType
from broadcaster.cap.serialize import from_json
from broadcaster.config import ServerConfig
from broadcaster.rendition import render
from tests.core.support import (
    make_alert,
    make_config,
    running,
    village_targets,
    wait_until_complete,
)

SENT = datetime(2026, 12, 6, 1, 30, tzinfo=UTC)  # 09:30 in Asia/Shanghai


async def test_the_cancel_names_the_lifted_warning_and_keeps_the_reason_internal(
    tmp_path: Path,
) -> None:
    config = make_config(tmp_path, {"log": {"type": "log"}}, village_targets("log", 2))
    alert = make_alert("to-lift", sent=SENT, expires_in=10**8)
    english = replace(
        alert.infos[0],
        language="en-US",
        event="Blizzard",
        headline="Blizzard warning",
        parameters=[NamedValue("level", "orange")],
        sender_name="Ulanqab Meteorological Observatory",
    )
    alert.infos.append(english)
    async with running(config) as service:
        first = await service.submit(alert, origin="test")
        cancel = await service.cancel(
            first.alert_id, reason="内部：会商后决定", origin="test", public_note="道路已恢复通行。"
        )
        await wait_until_complete(service, cancel.alert_id)
        document = await service.database.run(service.alerts.document, cancel.alert_id)
        raw = await service.database.run(service.alerts.raw_xml, cancel.alert_id)
        record = await service.database.run(service.alerts.get, cancel.alert_id)
    assert document is not None and record is not None
    cap = from_json(document)
    assert "会商" not in raw.decode() and cap.note is None
    zh, en = render(cap).texts
    assert zh.title == "【解除】卓资县暴雪橙色预警"
    assert zh.description == (
        "乌兰察布市气象台2026年12月06日09时30分（UTC+08:00）发布的卓资县暴雪橙色预警现予解除。"
        "\n道路已恢复通行。"
    )
    assert en.title == "[CANCELLED]Blizzard orange warning for 卓资县"
    assert en.description.startswith(
        "The Blizzard orange warning for 卓资县 issued by Ulanqab Meteorological Observatory"
        " on 2026-12-06 09:30 (UTC+08:00) is lifted."
    )
    assert all(i.response_types == [ResponseType.ALL_CLEAR] for i in cap.infos)
    assert [i.areas for i in cap.infos] == [i.areas for i in alert.infos]
    events = {e["event"]: e["detail"] for e in record["events"]}
    assert events["reason"] == "内部：会商后决定"


def test_an_unknown_time_zone_is_refused_with_its_key() -> None:
    assert ServerConfig().timezone == "Asia/Shanghai"
    with pytest.raises(ValidationError, match="not a known IANA time zone"):
        ServerConfig(timezone="Mars/Olympus")
