"""The ebplatform channel through the core against simulated county platforms over real HTTP:
the EBM of each county checked field by field, accepted, confirmed by pushed or polled state,
cancelled; every simulator fault ends in the documented delivery state with nothing lost."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from broadcaster.cap import Severity, Status
from broadcaster.service import BroadcasterService
from drivers.ebd import (
    BrdStateCode,
    Ebd,
    EbdType,
    Ebm,
    EbmStateResponse,
    MsgType,
    ResultCode,
    build_package,
)
from drivers.ebd.simulator import EbdPlatformSimulator
from drivers.ebd.xmlsafe import BEIJING, beijing_now
from tests.core.support import make_alert, wait_for_deliveries, wait_until_complete
from tests.ebplatform.conftest import (
    HUADE,
    HUADE_EBRID,
    OURS,
    ZHUOZI,
    ZHUOZI_EBRID,
    Pki,
    channel_table,
    county_platforms,
    free_port,
    server,
)


def ebms(sim: EbdPlatformSimulator) -> list[Ebm]:
    return [ebd.body for ebd in sim.received_of(EbdType.EBM)]  # type: ignore[misc]


def _naive_beijing(value: Any) -> Any:
    return value.astimezone(BEIJING).replace(tzinfo=None)


async def test_two_counties_get_their_ebm_confirmed_by_pushed_state_then_the_cancel(
    tmp_path: Path, pki: Pki
) -> None:
    async with county_platforms(pki, state_delay=0.1) as sims:
        peers = {name: sim.url for name, sim in sims.items()}
        async with server(tmp_path, {"eb": channel_table(pki, peers)}) as (service, base):
            alert = make_alert("ebd-1", geocodes=(ZHUOZI, HUADE), severity=Severity.SEVERE)
            result = await service.submit(alert, origin="test")
            assert await wait_until_complete(service, result.alert_id) == {"eb": {"confirmed": 2}}
            for name, county, ebrid in (
                ("zhuozi", ZHUOZI, ZHUOZI_EBRID),
                ("huade", HUADE, HUADE_EBRID),
            ):
                sim = sims[name]
                (ebd,) = sim.received_of(EbdType.EBM)
                assert (ebd.src_ebrid, ebd.dest_ebrid) == (OURS, ebrid)
                assert ebd.src_url == f"{base}/channels/eb/ebd"
                ebm = ebd.body
                assert isinstance(ebm, Ebm)
                assert ebm.ebmid.startswith(OURS) and len(ebm.ebmid) == 35
                assert ebm.msg_type is MsgType.ACTUAL
                assert ebm.sender_name == "乌兰察布市突发事件预警信息发布中心"
                assert ebm.sender_code == OURS
                assert ebm.event_type == "10000"  # no event code in the alert: the default
                assert int(ebm.severity) == 2  # Severe → orange
                assert ebm.start_time == _naive_beijing(alert.sent)
                assert ebm.end_time == _naive_beijing(alert.sent + timedelta(hours=1))
                assert ebm.area_codes == (county,)
                assert ebm.language == "zho"
                assert ebm.title == "卓资县暴雪橙色预警"
                assert ebm.description == (
                    "卓资县暴雪橙色预警\n预计未来12小时内降雪量将达10毫米以上。\n请减少外出，注意防寒保暖。"
                )
                assert ebm.related_ebmid is None and ebm.auxiliaries == ()
                await sim.wait_until(lambda sim=sim: len(sim.pushes) == 1)  # type: ignore[misc]
                (push,) = sim.pushes
                assert (push.ebmid, push.state, push.result) == (
                    ebm.ebmid,
                    BrdStateCode.SUCCEEDED,
                    ResultCode.OK,
                )
            rows = await service.database.run(service.outbox.deliveries, result.alert_id)
            assert {r["provider_ref"] for r in rows} == {ebms(s)[0].ebmid for s in sims.values()}
            assert rows[0]["content"]["ebm"]["area_codes"] in ([ZHUOZI], [HUADE])

            cancel = await service.cancel(result.alert_id, reason="解除", origin="test")
            assert await wait_until_complete(service, cancel.alert_id) == {"eb": {"confirmed": 2}}
            for sim in sims.values():
                first, second = ebms(sim)
                assert second.msg_type is MsgType.CANCEL
                assert second.related_ebmid == first.ebmid and second.ebmid != first.ebmid
                assert second.area_codes == first.area_codes

            # State packages must be about an EBM sent to their sender, in reply to our package.
            zhuozi_ebmid = ebms(sims["zhuozi"])[0].ebmid
            inbound = f"{base}/channels/eb/ebd"
            for sim, related in ((sims["huade"], None), (sims["zhuozi"], "10" + OURS + "9" * 16)):
                state = EbmStateResponse(beijing_now(), zhuozi_ebmid, BrdStateCode.FAILED)
                ebd = Ebd(sim._ids.next(), sim.ebrid, beijing_now(), state, OURS, None, related)
                reply = await sim.post(inbound, build_package(ebd, sim.signer))
                assert reply.ebd.body.result_code is ResultCode.OTHER_ERROR  # type: ignore[union-attr]
            ledger = service.channels["eb"].ledger  # type: ignore[attr-defined]
            assert (
                await ledger.sent_for_ebmid(zhuozi_ebmid)
            ).state == BrdStateCode.SUCCEEDED  # unchanged


async def test_state_polled_with_ebm_state_requests_confirms(tmp_path: Path, pki: Pki) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}/ebd"  # the platforms cannot push to us
    async with county_platforms(
        pki, state_delay=0.05, state_inline=True, state_url=nowhere
    ) as sims:
        table = channel_table(pki, {"zhuozi": sims["zhuozi"].url}, state_poll_seconds=0.1)
        async with server(tmp_path, {"eb": table}) as (service, _):
            result = await service.submit(make_alert("ebd-poll"), origin="test")
            assert await wait_until_complete(service, result.alert_id) == {"eb": {"confirmed": 1}}
            requests = sims["zhuozi"].received_of(EbdType.EBM_STATE_REQUEST)
            assert requests and requests[0].body.ebmid == ebms(sims["zhuozi"])[0].ebmid  # type: ignore[union-attr]


async def _attempted(service: BroadcasterService, alert_id: str, times: int) -> None:
    await wait_for_deliveries(service, alert_id, lambda rows: rows[0]["attempts"] >= times)


@pytest.mark.parametrize(
    ("fault", "value"),
    [
        ("drop_connection", True),
        ("garbage", True),
        ("answer_delay", 1.0),
        ("refuse_with", ResultCode.RECEIVED),
        ("refuse_with", ResultCode.OTHER_ERROR),
    ],
)
async def test_passing_faults_are_retried_until_the_platform_takes_it(
    tmp_path: Path, pki: Pki, fault: str, value: Any
) -> None:
    async with county_platforms(pki, state_delay=0.05) as sims:
        sim = sims["zhuozi"]
        table = channel_table(pki, {"zhuozi": sim.url}, timeout_seconds=0.4)
        async with server(tmp_path, {"eb": table}) as (service, _):
            setattr(sim.faults, fault, value)
            result = await service.submit(make_alert(f"ebd-{fault}"), origin="test")
            await _attempted(service, result.alert_id, 2)
            setattr(sim.faults, fault, type(value)() if fault != "refuse_with" else None)
            assert await wait_until_complete(service, result.alert_id) == {"eb": {"confirmed": 1}}
            ids = {ebm.ebmid for ebm in ebms(sim)}
            assert len(ids) == 1  # every attempt carried the same EBMID


@pytest.mark.parametrize(
    "code", [ResultCode.PARSE_FAILED, ResultCode.CONTENT_MISSING, ResultCode.SIGNATURE_FAILED]
)
async def test_a_refusal_fails_the_delivery(tmp_path: Path, pki: Pki, code: ResultCode) -> None:
    async with county_platforms(pki) as sims:
        sim = sims["zhuozi"]
        sim.faults.refuse_with = code
        async with server(tmp_path, {"eb": channel_table(pki, {"zhuozi": sim.url})}) as (
            service,
            _,
        ):
            result = await service.submit(make_alert("ebd-refused"), origin="test")
            assert await wait_until_complete(service, result.alert_id) == {"eb": {"failed": 1}}
            (row,) = await service.database.run(service.outbox.deliveries, result.alert_id)
            assert f"ResultCode {int(code)}" in row["last_error"] and row["attempts"] == 1


async def test_a_failed_broadcast_fails_and_missing_state_is_sent_again(
    tmp_path: Path, pki: Pki
) -> None:
    async with county_platforms(pki, state_delay=0.05, state_outcome=BrdStateCode.FAILED) as sims:
        sim = sims["zhuozi"]
        table = channel_table(pki, {"zhuozi": sim.url}, confirm_timeout_seconds=0.5)
        async with server(tmp_path, {"eb": table}) as (service, _):
            failed = await service.submit(make_alert("ebd-brd-failed"), origin="test")
            assert await wait_until_complete(service, failed.alert_id) == {"eb": {"failed": 1}}

            sim.behaviour.state_outcome = BrdStateCode.SUCCEEDED
            sim.faults.never_send_state = True
            silent = await service.submit(make_alert("ebd-silent"), origin="test")
            await _attempted(service, silent.alert_id, 2)  # no state in time: sent again
            sim.faults.never_send_state = False
            assert await wait_until_complete(service, silent.alert_id) == {"eb": {"confirmed": 1}}
            silent_ebms = [e for e in ebms(sim) if e.ebmid != ebms(sim)[0].ebmid]
            assert len({e.ebmid for e in silent_ebms}) == 1 and len(silent_ebms) >= 2


async def test_test_and_exercise_alerts_go_out_as_drills(tmp_path: Path, pki: Pki) -> None:
    async with county_platforms(pki, state_delay=0.05) as sims:
        sim = sims["zhuozi"]
        async with server(tmp_path, {"eb": channel_table(pki, {"zhuozi": sim.url})}) as (
            service,
            _,
        ):
            for status in (Status.TEST, Status.EXERCISE):
                result = await service.submit(
                    make_alert(f"ebd-{status}", status=status), origin="t"
                )
                await wait_until_complete(service, result.alert_id)
            test, exercise = ebms(sim)
            assert (test.msg_type, int(test.severity)) == (MsgType.PLATFORM_DRILL, 15)
            assert (exercise.msg_type, int(exercise.severity)) == (MsgType.PLATFORM_DRILL, 2)
            assert test.title.startswith("【测试】") and exercise.title.startswith("【演练】")
            assert test.description.startswith("【测试】")


async def test_preview_shows_the_fields_send_uses(tmp_path: Path, pki: Pki) -> None:
    async with county_platforms(pki, state_delay=0.05) as sims:
        peers = {name: sim.url for name, sim in sims.items()}
        async with server(tmp_path, {"eb": channel_table(pki, peers)}) as (service, _):
            alert = make_alert("ebd-preview", geocodes=(ZHUOZI, HUADE))
            preview = (await service.preview(alert))["eb"]
            assert preview.unit == "platforms" and preview.targets == 2
            result = await service.submit(alert, origin="test")
            await wait_until_complete(service, result.alert_id)
            rows = await service.database.run(service.outbox.deliveries, result.alert_id)
            assert sorted(map(str, preview.contents)) == sorted(str(r["content"]) for r in rows)
            assert {c["ebm"]["area_codes"][0] for c in preview.contents} == {ZHUOZI, HUADE}
    await asyncio.sleep(0)


async def test_the_spoken_warning_travels_as_an_mp3_resource(tmp_path: Path, pki: Pki) -> None:
    async with county_platforms(pki, state_delay=0.05) as sims:
        sim = sims["zhuozi"]
        table = channel_table(pki, {"zhuozi": sim.url}, audio=True)
        async with server(tmp_path, {"eb": table}) as (service, _):
            result = await service.submit(make_alert("ebd-audio"), origin="test")
            assert await wait_until_complete(service, result.alert_id) == {"eb": {"confirmed": 1}}
            (row,) = await service.database.run(service.outbox.deliveries, result.alert_id)
            assert row["content"]["audio"] == "mp3"
    (incoming,) = sim.received
    (auxiliary,) = incoming.ebd.body.auxiliaries  # type: ignore[union-attr]
    data = incoming.package.resources[auxiliary.desc]
    assert auxiliary.desc.startswith("EBDR_") and auxiliary.desc.endswith(".mp3")
    assert auxiliary.size == len(data) > 1000
    assert data[:3] == b"ID3" or data[0] == 0xFF  # an MPEG audio file


async def test_an_accepted_ebm_is_confirmed_after_a_restart_without_sending_it_again(
    tmp_path: Path, pki: Pki
) -> None:
    port = free_port()
    async with county_platforms(pki, state_delay=2.0) as sims:
        sim = sims["zhuozi"]
        table = channel_table(pki, {"zhuozi": sim.url}, state_poll_seconds=0.5)
        async with server(tmp_path, {"eb": table}, port=port) as (service, _):
            result = await service.submit(make_alert("ebd-restart"), origin="test")
            await wait_for_deliveries(
                service, result.alert_id, lambda rows: rows[0]["state"] == "accepted"
            )
        async with server(tmp_path, {"eb": table}, port=port) as (service, _):
            assert await wait_until_complete(service, result.alert_id) == {"eb": {"confirmed": 1}}
    assert len(ebms(sim)) == 1  # the EBM went out once; its state came after the restart
