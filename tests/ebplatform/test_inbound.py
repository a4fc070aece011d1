"""The inbound endpoint ``POST /channels/eb/ebd``: hostile and unauthorised packages are answered
with a signed EBDResponse of the documented ResultCode and change nothing; an upper platform's
EBM becomes an alert delivered on our own channels, and its broadcast state goes back up."""

from __future__ import annotations

import asyncio
import json
import tarfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from broadcaster.service import BroadcasterService
from drivers.ebd import (
    BrdStateCode,
    Ebd,
    EbdResponse,
    EbdType,
    EbmStateRequest,
    EbmStateResponse,
    MsgType,
    Package,
    ResultCode,
    SignatureForm,
    build_package,
    read_incoming,
    write_package,
)
from drivers.ebd.signature import sign_package
from drivers.ebd.simulator import EbdPlatformSimulator
from drivers.ebd.testing import make_identity, raw_tar, sample_ebm, tar_claiming
from drivers.ebd.xmlsafe import beijing_now
from drivers.rds import RdsEncoderSimulator
from tests.ebplatform.conftest import (
    HUADE,
    HUADE_EBRID,
    OURS,
    UPPER_EBRID,
    ZHUOZI,
    ZHUOZI_EBRID,
    Pki,
    channel_table,
    server,
)
from tests.fm.conftest import NORMAL, TRANSMITTER, StateLog, fm_table, fm_target

VILLAGE = {"id": "v1", "channel": "log", "name": "村1", "division": "150921001001"}


@asynccontextmanager
async def upper_and_us(
    tmp_path: Path,
    pki: Pki,
    policy: str = "deliver",
    devices: tuple[dict[str, Any], dict[str, Any]] | None = None,
    heartbeat_seconds: float = 0,
    upper_cert: bool = True,
    upper_url: bool = True,
    **extra: Any,
) -> AsyncIterator[tuple[BroadcasterService, str, EbdPlatformSimulator]]:
    """Us with the upper platform (its ``url`` configured unless ``upper_url`` is false); our
    own devices are a log file unless ``devices`` gives another channel table and its target."""
    upper = EbdPlatformSimulator(UPPER_EBRID, pki.upper.signer(), pki.verifier_of_ours())
    await upper.start()
    table = channel_table(pki, {"zhuozi": "http://127.0.0.1:9/ebd"}, **extra)
    table["upper"] = {
        "ebrid": UPPER_EBRID,
        "cert_id": pki.upper.cert_id if upper_cert else None,
        "url": upper.url if upper_url else None,
        "policy": policy,
        "report_seconds": 0.05,
        "heartbeat_seconds": heartbeat_seconds,
    }
    device_table, device_target = devices or ({"type": "log"}, VILLAGE)
    channels = {"eb": table, device_target["channel"]: device_table}
    try:
        async with server(tmp_path, channels, [device_target]) as (service, base):
            yield service, f"{base}/channels/eb/ebd", upper
    finally:
        await upper.stop()


async def post(
    pki: Pki, url: str, data: bytes, *, multipart: bool = True
) -> tuple[int, Ebd | None]:
    """POST raw tar bytes; the reply checked against our certificate."""
    async with aiohttp.ClientSession() as session:
        if multipart:
            form = aiohttp.FormData()
            form.add_field(
                "file", data, filename="EBDT_x.tar", content_type="application/octet-stream"
            )
            body: Any = form
        else:
            body = data
        async with session.post(url, data=body) as response:
            status, reply = response.status, await response.read()
    if status != 200:
        return status, None
    return status, read_incoming(reply, pki.verifier_of_ours()).ebd


def upper_ebd(
    body: Any, *, ebdid_source: str = UPPER_EBRID, src: str = UPPER_EBRID, **changes: Any
) -> Ebd:
    now = beijing_now()
    ebdid = f"10{ebdid_source}{now:%Y%m%d}{time.monotonic_ns() % 10**8:08d}"
    return replace(Ebd(ebdid, src, now, body, OURS, None), **changes)


def upper_ebm(**changes: Any) -> Any:
    return sample_ebm(UPPER_EBRID, **({"area_codes": (ZHUOZI,)} | changes))


def _signed(pki: Pki, ebd: Ebd, key: Any = None) -> bytes:
    return write_package(build_package(ebd, key or pki.upper.signer()))


def _symlink(pki: Pki) -> bytes:
    package = build_package(upper_ebd(upper_ebm()), pki.upper.signer())
    link = tarfile.TarInfo("EBDR_a.mp3")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    return raw_tar((f"EBDB_{package.ebdid}.xml", package.ebdb), link)


def _entities(pki: Pki) -> bytes:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE EBD [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;">]>'
        b"<EBD><EBDType>EBM</EBDType><EBDID>&c;</EBDID></EBD>"
    )
    package = Package(upper_ebd(upper_ebm()).ebdid, bomb)
    return write_package(sign_package(package, pki.upper.signer(), SignatureForm.CURRENT))


def _tampered(pki: Pki) -> bytes:
    package = build_package(upper_ebd(upper_ebm()), pki.upper.signer())
    ebdb = package.ebdb.replace("暴雨".encode(), "大雨".encode(), 1)
    return write_package(replace(package, ebdb=ebdb))


def _other_digits(pki: Pki) -> bytes:
    package = build_package(upper_ebd(upper_ebm()), pki.upper.signer())
    size = "<Auxiliary><AuxiliaryType>2</AuxiliaryType><AuxiliaryDesc>EBDR_a.mp3"
    size += "</AuxiliaryDesc><Size>²</Size></Auxiliary><MsgDesc>"
    ebdb = package.ebdb.replace(b"<MsgDesc>", size.encode(), 1)
    return write_package(replace(package, ebdb=ebdb))


HOSTILE = {
    "path traversal": (lambda pki: raw_tar(("../EBDB_x.xml", b"<EBD/>")), ResultCode.PARSE_FAILED),
    "symlink": (_symlink, ResultCode.PARSE_FAILED),
    "huge member": (
        lambda pki: tar_claiming("EBDB_x.xml", 5 * 1024 * 1024),
        ResultCode.PARSE_FAILED,
    ),
    "entity expansion": (_entities, ResultCode.PARSE_FAILED),
    "tampered byte": (_tampered, ResultCode.SIGNATURE_FAILED),
    "a size in digits other than ASCII": (_other_digits, ResultCode.PARSE_FAILED),
    "a county's key signing as the upper platform": (
        lambda pki: _signed(pki, upper_ebd(upper_ebm()), pki.zhuozi.signer()),
        ResultCode.SIGNATURE_FAILED,
    ),
    "untrusted key": (
        lambda pki: _signed(pki, upper_ebd(upper_ebm()), make_identity(UPPER_EBRID).signer()),
        ResultCode.SIGNATURE_FAILED,
    ),
    "EBDID of another source": (
        lambda pki: _signed(pki, upper_ebd(upper_ebm(), ebdid_source=HUADE_EBRID)),
        ResultCode.OTHER_ERROR,
    ),
    "unknown sender": (
        lambda pki: _signed(pki, upper_ebd(upper_ebm(), ebdid_source=HUADE_EBRID, src=HUADE_EBRID)),
        ResultCode.OTHER_ERROR,
    ),
    "addressed to another platform": (
        lambda pki: _signed(pki, upper_ebd(upper_ebm(), dest_ebrid=ZHUOZI_EBRID)),
        ResultCode.OTHER_ERROR,
    ),
    "a warning reaching none of our receivers": (
        lambda pki: _signed(pki, upper_ebd(upper_ebm(area_codes=(HUADE,)))),
        ResultCode.OTHER_ERROR,
    ),
    "state of an EBM never sent": (
        lambda pki: _signed(
            pki,
            upper_ebd(
                EbmStateResponse(beijing_now(), OURS + "202406010001", BrdStateCode.SUCCEEDED)
            ),
        ),
        ResultCode.OTHER_ERROR,
    ),
}


async def test_hostile_packages_are_answered_harmlessly(tmp_path: Path, pki: Pki) -> None:
    async with upper_and_us(tmp_path, pki) as (service, url, _):
        for name, (make, code) in HOSTILE.items():
            status, reply = await post(pki, url, make(pki))
            assert status == 200, name
            assert reply is not None and isinstance(reply.body, EbdResponse), name
            assert (reply.src_ebrid, reply.body.result_code) == (OURS, code), name
        status, reply = await post(pki, url, b"not multipart", multipart=False)
        assert reply is not None and reply.body.result_code is ResultCode.PARSE_FAILED  # type: ignore[union-attr]
        status, _ = await post(pki, url, b"x" * (2 * 1024 * 1024))
        assert status == 413  # over [server] max_body_bytes: refused before it is read
        assert await service.store.alerts.active(time.time()) == []
        assert not (tmp_path / "data" / "deliveries.jsonl").exists()


async def test_a_body_sent_in_chunks_is_held_to_the_body_limit(tmp_path: Path, pki: Pki) -> None:
    # Without a Content-Length the limit is not checked before the read: the read checks it.
    boundary = "b0undary"

    async def chunks() -> AsyncIterator[bytes]:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file";'
            ' filename="EBDT_x.tar"\r\n\r\n'
        ).encode()
        for _ in range(3):
            yield b"\0" * (1024 * 1024)
        yield f"\r\n--{boundary}--\r\n".encode()

    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    async with upper_and_us(tmp_path, pki) as (service, url, _):
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, data=chunks(), headers=headers) as response,
        ):
            reply = read_incoming(await response.read(), pki.verifier_of_ours())
        assert isinstance(reply.ebd.body, EbdResponse)
        assert reply.ebd.body.result_code is ResultCode.PARSE_FAILED
        assert await service.store.alerts.active(time.time()) == []


async def test_a_sender_without_its_certificate_named_is_refused(tmp_path: Path, pki: Pki) -> None:
    # The trust folder holds the counties' certificates too: any of them could sign as it.
    async with upper_and_us(tmp_path, pki, upper_cert=False) as (service, url, _):
        status, reply = await post(pki, url, _signed(pki, upper_ebd(upper_ebm())))
        assert status == 200 and reply is not None and isinstance(reply.body, EbdResponse)
        assert reply.body.result_code is ResultCode.SIGNATURE_FAILED
        assert await service.store.alerts.active(time.time()) == []


async def test_only_allowed_addresses_may_post(tmp_path: Path, pki: Pki) -> None:
    async with upper_and_us(tmp_path, pki, allow_from=["127.0.0.2/32"]) as (service, url, _):
        status, _reply = await post(pki, url, _signed(pki, upper_ebd(upper_ebm())))
        assert status == 403
        assert await service.store.alerts.active(time.time()) == []


async def _lines(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "data" / "deliveries.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _reported(upper: EbdPlatformSimulator, ebmid: str, state: BrdStateCode) -> bool:
    return any(
        isinstance(e.body, EbmStateResponse) and e.body.ebmid == ebmid and e.body.state is state
        for e in upper.received_of(EbdType.EBM_STATE_RESPONSE)
    )


async def test_an_upper_ebm_is_played_on_our_fm_transmitter_and_its_state_goes_back_up(
    tmp_path: Path, pki: Pki
) -> None:
    sink = tmp_path / "sink"
    sink.mkdir()
    log = StateLog(sink)
    async with RdsEncoderSimulator(initial=NORMAL, on_change=log.record) as encoder:
        url = await encoder.start_tcp()
        devices = (fm_table(sink, {TRANSMITTER: url}), fm_target())
        async with upper_and_us(tmp_path, pki, devices=devices) as (service, url, upper):
            ebm = upper_ebm()
            reply = await upper.send(url, ebm, OURS)
            assert reply.ebd.body == EbdResponse(ResultCode.OK, "接收解析及数据校验成功")
            await upper.wait_until(lambda: _reported(upper, ebm.ebmid, BrdStateCode.SUCCEEDED))
            (alert,) = await service.store.alerts.active(time.time())
            deliveries = await service.store.deliveries.deliveries(alert["id"])
            assert [(d["channel"], d["state"]) for d in deliveries] == [("fm", "confirmed")]
            assert (sink / f"{deliveries[0]['id']}.wav").stat().st_size > 10_000  # played
            raised = [state for _, state, _ in log.changes if state.ta]
            assert raised and raised[-1].ps == "ALERT".ljust(8)
            assert encoder.state == NORMAL  # restored after the warning

            again = await upper.send(url, ebm, OURS)  # the same EBMID is not a new alert
            assert again.ebd.body.result_code is ResultCode.OK  # type: ignore[union-attr]
            assert len(await service.store.alerts.active(time.time())) == 1

            request = await upper.send(url, EbmStateRequest(ebm.ebmid), OURS)
            assert request.ebd.body.result_code is ResultCode.OK  # type: ignore[union-attr]
            asked = request.ebd.related_ebdid
            await upper.wait_until(
                lambda: any(
                    e.related_ebdid == asked for e in upper.received_of(EbdType.EBM_STATE_RESPONSE)
                )
            )


@pytest.mark.parametrize("kind", [MsgType.ACTUAL, MsgType.PLATFORM_DRILL])
async def test_an_upper_cancel_ebm_cancels_the_alert_it_names(
    tmp_path: Path, pki: Pki, kind: MsgType
) -> None:
    # The cancel of a drill is a drill too: CAP's Cancel has the status of what it lifts.
    async with upper_and_us(tmp_path, pki) as (_service, url, upper):
        ebm = upper_ebm(msg_type=kind)
        assert (await upper.send(url, ebm, OURS)).ebd.body.result_code is ResultCode.OK  # type: ignore[union-attr]
        await upper.wait_until(lambda: _reported(upper, ebm.ebmid, BrdStateCode.SUCCEEDED))
        cancel = upper_ebm(
            ebmid=ebm.ebmid[:-4] + "0099", msg_type=MsgType.CANCEL, related_ebmid=ebm.ebmid
        )
        stray = upper_ebm(ebmid=ebm.ebmid[:-4] + "0098", msg_type=MsgType.CANCEL,
                          related_ebmid=ebm.ebmid[:-4] + "0097")  # fmt: skip
        refused = await upper.send(url, stray, OURS)
        assert refused.ebd.body.result_code is ResultCode.OTHER_ERROR  # type: ignore[union-attr]
        assert (await upper.send(url, cancel, OURS)).ebd.body.result_code is ResultCode.OK  # type: ignore[union-attr]
        await upper.wait_until(lambda: _reported(upper, cancel.ebmid, BrdStateCode.SUCCEEDED))
        lines = await _lines(tmp_path)
        assert len(lines) == 2 and lines[0]["texts"][0]["headline"] == ebm.title
        marks = "【演练】【解除】" if kind is MsgType.PLATFORM_DRILL else "【解除】"
        assert lines[1]["texts"][0]["title"].startswith(marks)


async def test_an_upper_ebm_our_officer_rejects_is_reported_failed(
    tmp_path: Path, pki: Pki
) -> None:
    async with upper_and_us(tmp_path, pki, policy="hold") as (service, url, upper):
        ebm = upper_ebm()
        assert (await upper.send(url, ebm, OURS)).ebd.body.result_code is ResultCode.OK  # type: ignore[union-attr]
        (pending,) = await service.store.alerts.pending_approvals()
        await service.reject(pending["alert_id"], by="console:wang", reason="not for us")
        await upper.wait_until(lambda: _reported(upper, ebm.ebmid, BrdStateCode.FAILED))
        # Final: asked again, the answer is the same.
        request = await upper.send(url, EbmStateRequest(ebm.ebmid), OURS)
        asked = request.ebd.related_ebdid

        def answers() -> list[Ebd]:
            responses = upper.received_of(EbdType.EBM_STATE_RESPONSE)
            return [e for e in responses if e.related_ebdid == asked]

        await upper.wait_until(lambda: bool(answers()))
        (answer,) = answers()
        assert isinstance(answer.body, EbmStateResponse)
        assert answer.body.state is BrdStateCode.FAILED
        assert await _lines(tmp_path) == []


async def test_a_held_upper_ebm_waits_for_an_officer_and_we_keep_sending_heartbeats(
    tmp_path: Path, pki: Pki
) -> None:
    held = upper_and_us(tmp_path, pki, policy="hold", heartbeat_seconds=0.2)
    async with held as (service, url, upper):
        ebm = upper_ebm()
        assert (await upper.send(url, ebm, OURS)).ebd.body.result_code is ResultCode.OK  # type: ignore[union-attr]
        await upper.wait_until(lambda: bool(upper.received_of(EbdType.EBM_STATE_RESPONSE)))
        (state,) = {e.body.state for e in upper.received_of(EbdType.EBM_STATE_RESPONSE)}  # type: ignore[union-attr]
        assert state is BrdStateCode.WAITING
        (pending,) = await service.store.alerts.pending_approvals()
        assert await _lines(tmp_path) == []
        assert pending["requested_by"] == "channel:eb"

        await upper.wait_until(lambda: len(upper.received_of(EbdType.CONNECTION_CHECK)) >= 2)
        heartbeat = upper.received_of(EbdType.CONNECTION_CHECK)[0]
        assert (heartbeat.ebdid, heartbeat.dest_ebrid) == ("01" + OURS + "0" * 16, UPPER_EBRID)
        health = await service.channels["eb"].health()
        assert health.devices["upper"] == {"ok": True, "detail": ""}
        upper.faults.refuse_with = ResultCode.OTHER_ERROR  # the upper platform stops taking them
        for _ in range(200):
            health = await service.channels["eb"].health()
            if not health.devices["upper"]["ok"]:
                break
            await asyncio.sleep(0.05)
        assert "ResultCode 5" in health.devices["upper"]["detail"]
        assert "last exchange failed: upper" in health.detail


@asynccontextmanager
async def listener() -> AsyncIterator[tuple[str, list[str]]]:
    """A loopback HTTP server that notes every request it gets: the URL a hostile package names
    as its ``SRC/URL``. Yields that URL and the requests ("METHOD path") it got."""
    hits: list[str] = []

    async def note(request: web.Request) -> web.Response:
        hits.append(f"{request.method} {request.path}")
        return web.Response(status=404)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", note)
    listening = TestServer(app, host="127.0.0.1")
    await listening.start_server()
    try:
        yield str(listening.make_url("/ebd")), hits
    finally:
        await listening.close()


async def test_state_goes_to_upper_url_never_to_the_src_url_a_package_names(
    tmp_path: Path, pki: Pki
) -> None:
    async with listener() as (src_url, hits), upper_and_us(tmp_path, pki) as (_, url, upper):
        ebm = upper_ebm()
        _, reply = await post(pki, url, _signed(pki, upper_ebd(ebm, src_url=src_url)))
        assert reply is not None and reply.body.result_code is ResultCode.OK  # type: ignore[union-attr]
        await upper.wait_until(lambda: _reported(upper, ebm.ebmid, BrdStateCode.SUCCEEDED))
        ask = upper_ebd(EbmStateRequest(ebm.ebmid), src_url=src_url)
        _, reply = await post(pki, url, _signed(pki, ask))
        assert reply is not None and isinstance(reply.body, EbdResponse)
        assert reply.body.result_code is ResultCode.OK  # a receipt; the state is pushed
        await upper.wait_until(
            lambda: any(
                e.related_ebdid == ask.ebdid for e in upper.received_of(EbdType.EBM_STATE_RESPONSE)
            )
        )
        assert hits == []


async def test_without_upper_url_nothing_is_pushed_and_state_is_answered_when_asked(
    tmp_path: Path, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    unset = upper_and_us(tmp_path, pki, upper_url=False, heartbeat_seconds=0.05)
    async with listener() as (src_url, hits), unset as (_, url, upper):
        (warning,) = [r for r in caplog.records if "upper.url is not set" in r.getMessage()]
        assert warning.levelname == "WARNING"
        ebm = upper_ebm()
        _, reply = await post(pki, url, _signed(pki, upper_ebd(ebm, src_url=src_url)))
        assert reply is not None and reply.body.result_code is ResultCode.OK  # type: ignore[union-attr]
        for _ in range(200):  # asked, the state comes in the reply itself
            ask = upper_ebd(EbmStateRequest(ebm.ebmid), src_url=src_url)
            _, answer = await post(pki, url, _signed(pki, ask))
            assert answer is not None and isinstance(answer.body, EbmStateResponse)
            assert (answer.related_ebdid, answer.dest_ebrid) == (ask.ebdid, UPPER_EBRID)
            state = answer.body.state
            if state is BrdStateCode.SUCCEEDED:
                break
            await asyncio.sleep(0.05)
        assert state is BrdStateCode.SUCCEEDED
        await asyncio.sleep(0.3)  # six report rounds and heartbeat periods: none may go out
        assert hits == []
        assert upper.received == []
