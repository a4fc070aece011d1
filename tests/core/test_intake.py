"""Intake: validation, idempotency, area targeting and what is stored."""

from __future__ import annotations

from pathlib import Path

import pytest

from broadcaster.cap import Circle, MsgType, Status
from broadcaster.cap.serialize import to_xml
from broadcaster.errors import CapError, UnreachableAreaError
from broadcaster.store.alerts import REACHES_NO_ONE
from tests.core.support import (
    COUNTY_SEAT,
    OTHER_COUNTY,
    make_alert,
    make_config,
    running,
    village_targets,
)

RECORDING = {"rec": {"type": "tests.core.support:RecordingChannel", "concurrency": 4}}


def _registry() -> list[dict[str, object]]:
    return village_targets("rec", 30) + village_targets("rec", 10, county=OTHER_COUNTY)


async def _counts(service) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    def count() -> tuple[int, int]:
        conn = service.database.conn
        return (
            conn.execute("SELECT count(*) FROM alerts").fetchone()[0],
            conn.execute("SELECT count(*) FROM deliveries").fetchone()[0],
        )

    return await service.database.run(count)


async def test_geocode_selects_every_village_of_the_county_and_no_other(tmp_path: Path) -> None:
    async with running(make_config(tmp_path, RECORDING, _registry())) as service:
        result = await service.submit(to_xml(make_alert()), origin="test")
        assert result.created and result.state == "active"
        assert result.planned == {"rec": 30}
        rows = await service.database.run(service.outbox.deliveries, result.alert_id)
        assert all(r["division"].startswith("150921") for r in rows)


async def test_polygon_and_circle_select_by_coordinates(tmp_path: Path) -> None:
    lat, lon = COUNTY_SEAT
    # a box around the first 10 targets of the first column of the grid
    square = [
        (lat - 0.0005, lon - 0.0005),
        (lat - 0.0005, lon + 0.0005),
        (lat + 0.0095, lon + 0.0005),
        (lat + 0.0095, lon - 0.0005),
        (lat - 0.0005, lon - 0.0005),
    ]
    async with running(make_config(tmp_path, RECORDING, _registry())) as service:
        by_polygon = await service.submit(
            make_alert("poly", geocodes=(), polygon=square), origin="test"
        )
        assert by_polygon.planned == {"rec": 10}
        by_circle = await service.submit(
            make_alert("circle", geocodes=(), circle=Circle(lat, lon, 0.12)), origin="test"
        )
        # grid step 0.001 deg latitude ≈ 0.111 km: the seat and one neighbour north
        assert by_circle.planned == {"rec": 2}


async def test_same_alert_twice_is_stored_once(tmp_path: Path) -> None:
    alert = make_alert()
    async with running(make_config(tmp_path, RECORDING, _registry())) as service:
        first = await service.submit(to_xml(alert), origin="test")
        second = await service.submit(to_xml(alert), origin="test")
        assert first.created and not second.created
        assert first.alert_id == second.alert_id
        assert await _counts(service) == (1, 30)


async def test_invalid_alert_is_rejected_and_nothing_is_stored(tmp_path: Path) -> None:
    bad = to_xml(make_alert()).replace(b"<scope>Public</scope>", b"")
    async with running(make_config(tmp_path, RECORDING, _registry())) as service:
        with pytest.raises(CapError) as err:
            await service.submit(bad, origin="test")
        assert any("scope" in p.path for p in err.value.problems)
        assert await _counts(service) == (0, 0)


async def test_unknown_channel_is_rejected(tmp_path: Path) -> None:
    async with running(make_config(tmp_path, RECORDING, _registry())) as service:
        with pytest.raises(CapError, match="nosuch"):
            await service.submit(make_alert(), origin="test", channels=["nosuch"])
        assert await _counts(service) == (0, 0)


@pytest.mark.parametrize("status", [Status.SYSTEM, Status.DRAFT])
async def test_system_and_draft_messages_are_held_not_broadcast(
    tmp_path: Path, status: Status
) -> None:
    async with running(make_config(tmp_path, RECORDING, _registry())) as service:
        result = await service.submit(make_alert(status=status), origin="test")
        assert result.state == "held" and result.planned == {}


async def test_an_alert_expired_before_it_came_reaches_no_one(tmp_path: Path) -> None:
    # Refused as an alert whose area selects no one, unless the sender allows that: then it
    # is stored as expired and plans nothing.
    from datetime import timedelta

    from tests.core.support import now_utc

    old = make_alert(sent=now_utc() - timedelta(hours=2), expires_in=600)
    async with running(make_config(tmp_path, RECORDING, _registry())) as service:
        with pytest.raises(UnreachableAreaError, match="expired before it came"):
            await service.submit(old, origin="test")
        assert await _counts(service) == (0, 0)
        result = await service.submit(old, origin="test", allow_empty=True)
        assert result.state == "expired" and result.planned == {}


async def test_a_division_code_that_is_none_is_warned_of(tmp_path: Path) -> None:
    # A typo beside a valid code: the alert goes out to the valid one, and says what it missed.
    alert = make_alert("typo", geocodes=["150921000000", "1509220000"])
    async with running(make_config(tmp_path, RECORDING, _registry())) as service:
        result = await service.submit(alert, origin="test")
        assert result.planned
        (warning,) = [w for w in result.warnings if w.rule == "division-code"]
        assert warning.path == "/alert/info[1]/area[1]/geocode[2]"
        assert warning.severity == "warning" and "has 10 digits" in warning.message


async def test_a_polygon_that_loops_over_itself_is_warned_of(tmp_path: Path) -> None:
    # Around the county seat's villages twice, the second loop inside the first: the part
    # wound around twice is outside by the even-odd rule, and the answer says so.
    lat0, lon0 = COUNTY_SEAT
    loops = [(0, 0), (4, 0), (4, 4), (0, 4), (0, 1), (3, 1), (3, 3), (1, 3), (1, 0.5), (0, 0)]
    ring = [(lat0 + (y - 0.5) * 0.01, lon0 + (x - 2) * 0.01) for x, y in loops]
    alert = make_alert("loops", geocodes=[], polygon=ring)
    async with running(make_config(tmp_path, RECORDING, _registry())) as service:
        result = await service.submit(alert, origin="test")
        (warning,) = [w for w in result.warnings if w.rule == "polygon-loop"]
    assert warning.path == "/alert/info[1]/area[1]/polygon[1]"
    assert warning.severity == "warning" and "read as outside" in warning.message
    # The villages 1 to 3 hundredths of a degree north of the first loop's south edge are
    # in the part wound twice: not planned.
    assert result.planned == {"rec": 11}


async def test_a_cancel_of_no_stored_alert_reaches_no_one(tmp_path: Path) -> None:
    never = make_alert("never-here")
    cancel = make_alert("c", msg_type=MsgType.CANCEL, references=[never])
    async with running(make_config(tmp_path, RECORDING, _registry())) as service:
        with pytest.raises(UnreachableAreaError, match="names no alert stored here"):
            await service.submit(cancel, origin="test")
        assert await _counts(service) == (0, 0)


@pytest.mark.parametrize(
    ("first", "then", "applied"),
    [
        (Status.ACTUAL, Status.TEST, False),
        (Status.TEST, Status.ACTUAL, False),
        (Status.TEST, Status.TEST, True),
        (Status.ACTUAL, Status.ACTUAL, True),
    ],
)
@pytest.mark.parametrize("msg_type", [MsgType.CANCEL, MsgType.UPDATE])
async def test_a_message_cancels_or_updates_only_alerts_of_its_own_status(
    tmp_path: Path, first: Status, then: Status, applied: bool, msg_type: MsgType
) -> None:
    original = make_alert("orig", status=first, effective_in=3000)
    later = make_alert("later", status=then, msg_type=msg_type, references=[original])
    async with running(make_config(tmp_path, RECORDING, _registry())) as service:
        stored = await service.submit(original, origin="test")
        if applied:
            assert (await service.submit(later, origin="test")).stopped_alerts == [stored.alert_id]
        else:
            with pytest.raises(CapError, match=f"of status {then.value} cannot"):
                await service.submit(later, origin="test")
        record = await service.database.run(service.alerts.get, stored.alert_id)
        assert (record["state"] == "active") is not applied


async def test_a_draft_cancel_changes_nothing(tmp_path: Path) -> None:
    original = make_alert("orig", effective_in=3000)
    draft = make_alert("draft", status=Status.DRAFT, msg_type=MsgType.CANCEL, references=[original])
    async with running(make_config(tmp_path, RECORDING, _registry())) as service:
        stored = await service.submit(original, origin="test")
        result = await service.submit(draft, origin="test")
        assert result.stopped_alerts == [] and result.state == "held"
        record = await service.database.run(service.alerts.get, stored.alert_id)
        assert record["state"] == "active"


async def test_another_document_under_a_stored_alert_s_name_is_refused(tmp_path: Path) -> None:
    first = make_alert("same", headline="first")
    other = make_alert("same", headline="other", sent=first.sent)
    async with running(make_config(tmp_path, RECORDING, _registry())) as service:
        stored = await service.submit(first, origin="test")
        again = await service.submit(first, origin="test")
        assert (again.created, again.alert_id) == (False, stored.alert_id)
        with pytest.raises(CapError, match="another alert is stored as"):
            await service.submit(other, origin="test")


async def test_raw_xml_is_kept_verbatim(tmp_path: Path) -> None:
    raw = to_xml(make_alert()).replace(b"<status>", b"\n  <status>")
    async with running(make_config(tmp_path, RECORDING, _registry())) as service:
        result = await service.submit(raw, origin="test")
        stored = await service.database.run(service.alerts.raw_xml, result.alert_id)
        assert stored == raw


async def test_update_supersedes_queued_deliveries_of_the_original(tmp_path: Path) -> None:
    original = make_alert("orig", effective_in=3000)  # deferred: everything stays queued
    update = make_alert("upd", msg_type=MsgType.UPDATE, references=[original])
    async with running(make_config(tmp_path, RECORDING, _registry())) as service:
        first = await service.submit(original, origin="test")
        second = await service.submit(update, origin="test")
        assert second.stopped_alerts == [first.alert_id]
        record = await service.database.run(service.alerts.get, first.alert_id)
        assert record["state"] == "superseded"
        summary = await service.database.run(service.outbox.summary, first.alert_id)
        assert summary == {"rec": {"cancelled": 30}}
        refs = (await service.database.run(service.alerts.get, second.alert_id))["references"]
        assert refs[0]["alert_id"] == first.alert_id


async def test_every_real_sample_goes_through_intake(tmp_path: Path) -> None:
    from tests.conftest import CAP_SAMPLES

    accepted = sorted((CAP_SAMPLES / "valid").glob("*.xml")) + sorted(
        (CAP_SAMPLES / "cap11").glob("*.xml")
    )
    refused = sorted((CAP_SAMPLES / "invalid").glob("*.xml")) + sorted(
        (CAP_SAMPLES / "hostile").glob("*.xml")
    )
    async with running(make_config(tmp_path, RECORDING, _registry())) as service:
        ids = set()
        for sample in accepted:
            # Alerts from elsewhere select no target of this registry: let them in anyway.
            try:
                result = await service.submit(sample.read_bytes(), origin="test", allow_empty=True)
            except CapError as exc:  # two CAP 1.1 samples name one alert with other content
                assert "another alert is stored as" in str(exc), sample.name
                assert sample.name == "google_no_optional_fields.xml"
                continue
            assert result.state in ("expired", "held", REACHES_NO_ONE), sample.name
            ids.add(result.alert_id)
        for sample in refused:
            with pytest.raises(CapError) as err:
                await service.submit(sample.read_bytes(), origin="test")
            assert err.value.problems and err.value.problems[0].path.startswith("/"), sample.name
        stored, _ = await _counts(service)
        assert stored == len(ids) >= len(accepted) - 1
