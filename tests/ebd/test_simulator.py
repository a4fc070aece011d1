"""The platform simulator over loopback HTTP: two simulated platforms (city above, county below)
exchange signed packages as the deployed platforms do, and every fault hook is seen by the
client as the documented error."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import aiohttp
import pytest
from aiohttp import web

from drivers.ebd import (
    Auxiliary,
    AuxiliaryType,
    BrdStateCode,
    ConnectionCheck,
    Ebd,
    EbdConfigError,
    EbdFormatError,
    EbdLinkError,
    EbdRefusedError,
    EbdResponse,
    EbdTimeoutError,
    EbdType,
    EbmStateRequest,
    EbmStateResponse,
    OmdRequest,
    PlatformInfo,
    PostTimeouts,
    ResourceState,
    ResourceStateCode,
    ResultCode,
    build_package,
    post_package,
    read_incoming,
    result_of,
    write_package,
)
from drivers.ebd.simulator import EbdPlatformSimulator, PlatformBehaviour
from drivers.ebd.testing import PlatformIdentity, make_identity, sample_ebm, verifier_for
from drivers.ebd.xmlsafe import beijing_now

Pair = tuple[EbdPlatformSimulator, EbdPlatformSimulator]


@pytest.fixture
async def pair(city: PlatformIdentity, county: PlatformIdentity) -> AsyncIterator[Pair]:
    upper = EbdPlatformSimulator(city.ebrid, city.signer(), verifier_for(county))
    lower = EbdPlatformSimulator(
        county.ebrid, county.signer(), verifier_for(city), PlatformBehaviour(state_delay=0.05)
    )
    async with upper, lower:
        yield upper, lower


async def test_ebm_is_acknowledged_then_its_state_pushed(pair: Pair) -> None:
    upper, lower = pair
    ebm = sample_ebm(upper.ebrid)
    reply = await upper.send_ebm(lower.url, ebm, lower.ebrid)
    request_id = lower.received[0].ebd.ebdid
    assert result_of(reply.ebd, request_id) == EbdResponse(ResultCode.OK, "接收解析及数据校验成功")
    assert reply.ebd.related_ebdid == request_id and reply.ebd.src_ebrid == lower.ebrid
    assert reply.signature is not None  # the reply was signed and verified
    assert lower.received_of(EbdType.EBM)[0].body == ebm
    async with asyncio.timeout(5):
        await upper.wait_until(lambda: bool(upper.received_of(EbdType.EBM_STATE_RESPONSE)))
        await lower.wait_until(lambda: bool(lower.pushes))
    state = upper.received_of(EbdType.EBM_STATE_RESPONSE)[0].body
    assert isinstance(state, EbmStateResponse)
    assert (state.ebmid, state.state, state.state_desc) == (
        ebm.ebmid,
        BrdStateCode.SUCCEEDED,
        "播发成功",
    )
    assert lower.pushes[0].result is ResultCode.OK


async def test_state_goes_to_the_configured_url_with_the_configured_outcome(
    pair: Pair, city: PlatformIdentity
) -> None:
    upper, lower = pair
    lower.behaviour.state_outcome = BrdStateCode.FAILED
    async with EbdPlatformSimulator(city.ebrid, None, None) as third:
        lower.behaviour.state_url = third.url
        await upper.send_ebm(lower.url, sample_ebm(upper.ebrid))
        async with asyncio.timeout(5):
            await third.wait_until(lambda: bool(third.received))
        body = third.received[0].ebd.body
        assert isinstance(body, EbmStateResponse) and body.state is BrdStateCode.FAILED
    assert not upper.received_of(EbdType.EBM_STATE_RESPONSE)


async def test_state_polls_are_answered_by_push_or_inline(pair: Pair) -> None:
    upper, lower = pair
    lower.faults.never_send_state = True
    ebm = sample_ebm(upper.ebrid)
    await upper.send_ebm(lower.url, ebm)
    reply = await upper.send(lower.url, EbmStateRequest(ebm.ebmid))
    poll_id = lower.received[-1].ebd.ebdid
    result_of(reply.ebd, poll_id)
    assert not lower.pushes  # never_send_state holds pushes back
    lower.faults.never_send_state = False
    await upper.send(lower.url, EbmStateRequest(ebm.ebmid))
    poll_id = lower.received[-1].ebd.ebdid
    async with asyncio.timeout(5):
        await upper.wait_until(lambda: bool(upper.received_of(EbdType.EBM_STATE_RESPONSE)))
    pushed = upper.received_of(EbdType.EBM_STATE_RESPONSE)[0]
    assert pushed.related_ebdid == poll_id
    assert isinstance(pushed.body, EbmStateResponse)
    assert pushed.body.state is BrdStateCode.WAITING
    lower.behaviour.state_inline = True
    inline = await upper.send(lower.url, EbmStateRequest(ebm.ebmid))
    assert isinstance(inline.ebd.body, EbmStateResponse)
    assert inline.ebd.related_ebdid == lower.received[-1].ebd.ebdid
    unknown = await upper.send(lower.url, EbmStateRequest(ebm.ebmid[:-1] + "9"))
    with pytest.raises(EbdRefusedError) as caught:
        result_of(unknown.ebd, lower.received[-1].ebd.ebdid)
    assert caught.value.result_code == 5


async def test_heartbeat_is_acknowledged(pair: Pair) -> None:
    upper, lower = pair
    reply = await lower.send(upper.url, ConnectionCheck(beijing_now()))
    result_of(reply.ebd, upper.received[0].ebd.ebdid)
    assert upper.received_of(EbdType.CONNECTION_CHECK)


async def test_untrusted_and_tampered_packages_get_result_code_4(
    pair: Pair, city: PlatformIdentity
) -> None:
    upper, lower = pair
    stranger = make_identity(city.ebrid)
    ebd = Ebd(upper._ids.next(), city.ebrid, beijing_now(), sample_ebm(city.ebrid))
    signed = build_package(ebd, stranger.signer())
    with pytest.raises(EbdRefusedError) as caught:
        result_of((await upper.post(lower.url, signed)).ebd, ebd.ebdid)
    assert caught.value.result_code == 4
    genuine = build_package(ebd, city.signer())
    tampered = replace(genuine, ebdb=genuine.ebdb.replace("暴雨".encode(), "大雪".encode(), 1))
    with pytest.raises(EbdRefusedError) as caught:
        result_of((await upper.post(lower.url, tampered)).ebd, ebd.ebdid)
    assert caught.value.result_code == 4
    assert [code for code, _ in lower.refused] == [4, 4] and not lower.received


@pytest.mark.parametrize("code", [c for c in ResultCode if c is not ResultCode.OK])
async def test_refusal_hook_answers_each_result_code(pair: Pair, code: ResultCode) -> None:
    upper, lower = pair
    lower.faults.refuse_with = code
    reply = await upper.send_ebm(lower.url, sample_ebm(upper.ebrid))
    with pytest.raises(EbdRefusedError) as caught:
        result_of(reply.ebd, lower.received[0].ebd.ebdid)
    assert caught.value.result_code == code
    assert caught.value.retryable is (code in (0, 5))


async def test_link_faults_become_the_documented_errors(pair: Pair) -> None:
    upper, lower = pair
    ebm = sample_ebm(upper.ebrid)
    lower.faults.drop_connection = True
    with pytest.raises(EbdLinkError):
        await upper.send_ebm(lower.url, ebm)
    lower.faults.drop_connection = False
    lower.faults.garbage = True
    with pytest.raises(EbdFormatError, match="EBDT"):
        await upper.send_ebm(lower.url, ebm)
    lower.faults.garbage = False
    lower.faults.answer_delay = 1.0
    upper.behaviour.timeouts = PostTimeouts(1.0, 0.3)
    with pytest.raises(EbdTimeoutError):
        await upper.send_ebm(lower.url, ebm)
    await lower.stop()
    with pytest.raises(EbdLinkError):
        await upper.send_ebm(lower.url, ebm)


async def test_malformed_posts_are_answered_with_a_signed_refusal(
    pair: Pair, city: PlatformIdentity, county: PlatformIdentity
) -> None:
    upper, lower = pair
    verifier = verifier_for(county)
    ebd = Ebd(upper._ids.next(), city.ebrid, beijing_now(), sample_ebm(city.ebrid))
    package = build_package(ebd, city.signer())
    wrong_name = replace(package, ebdid=package.ebdid[:-1] + "7", ebds=None)
    async with aiohttp.ClientSession() as session:
        reply = await post_package(session, lower.url, wrong_name, verifier)
        assert isinstance(reply.ebd.body, EbdResponse)
        assert reply.ebd.body.result_code is ResultCode.PARSE_FAILED
        form = aiohttp.FormData()
        form.add_field("other", write_package(package), filename="x.tar")
        async with session.post(lower.url, data=form) as response:
            assert response.status == 200
            assert response.headers["Content-Disposition"].startswith("attachment; filename=EBDT_")
            assert response.content_type == "application/x-tar"
    assert [code for code, _ in lower.refused] == [2, 3]
    assert "differs" in lower.refused[0][1] and "file" in lower.refused[1][1]


async def test_omd_requests_are_answered_by_pushed_reports(pair: Pair) -> None:
    upper, lower = pair
    await upper.send(lower.url, OmdRequest("EBRPSInfo"))
    await upper.send(lower.url, OmdRequest("EBRPSState"))
    reply = await upper.send(lower.url, OmdRequest("EBRBSInfo"))
    result_of(reply.ebd, lower.received[-1].ebd.ebdid)  # acknowledged, nothing pushed
    async with asyncio.timeout(5):
        await lower.wait_until(lambda: len(lower.pushes) == 2)
    assert all(push.result is ResultCode.OK for push in lower.pushes)
    info = upper.received_of(EbdType.EBRPS_INFO)[0]
    assert isinstance(info.body, PlatformInfo)
    assert info.body.entries[0].ebrid == lower.ebrid and info.body.entries[0].url == lower.url
    assert info.related_ebdid == lower.received[0].ebd.ebdid
    state = upper.received_of(EbdType.EBRPS_STATE)[0].body
    assert isinstance(state, ResourceState)
    assert state.entries[0].state is ResourceStateCode.RUNNING


@pytest.mark.parametrize(
    ("headers", "body", "reason"),
    [
        ({"Content-Type": "application/x-tar"}, b"abc", "not multipart"),
        ({"Content-Type": "multipart/form-data"}, b"xx", "not multipart"),
        (
            {"Content-Type": "multipart/form-data; boundary=zz"},
            b'--zz\r\nContent-Disposition: form-data; name="file"\r\n\r\nabc',
            "not a tar",
        ),
        ({}, b"", "not multipart"),
    ],
)
async def test_posts_that_are_not_packages_get_result_code_2(
    pair: Pair, headers: dict[str, str], body: bytes, reason: str
) -> None:
    _, lower = pair
    async with (
        aiohttp.ClientSession() as session,
        session.post(lower.url, data=body, headers=headers) as response,
    ):
        assert response.status == 200
        reply = read_incoming(await response.read(), None)
    assert isinstance(reply.ebd.body, EbdResponse)
    assert reply.ebd.body.result_code is ResultCode.PARSE_FAILED
    assert reply.ebd.related_ebdid is None
    assert reason in lower.refused[0][1]


async def test_a_reply_to_another_request_is_refused(pair: Pair) -> None:
    upper, lower = pair
    reply = await upper.send(lower.url, ConnectionCheck(beijing_now()))
    with pytest.raises(EbdFormatError, match="RelatedEBD"):
        result_of(reply.ebd, reply.ebd.related_ebdid[:-1] + "0")  # type: ignore[index]
    with pytest.raises(EbdFormatError, match="not EBDResponse"):
        result_of(lower.received[0].ebd, "x")


async def test_http_errors_are_split_by_whether_a_retry_makes_sense(
    pair: Pair, city: PlatformIdentity
) -> None:
    upper, lower = pair
    ebd = Ebd(upper._ids.next(), city.ebrid, beijing_now(), ConnectionCheck(beijing_now()))
    package = build_package(ebd, city.signer())
    with pytest.raises(EbdConfigError, match="HTTP 404"):
        await upper.post(lower.url + "-elsewhere", package)
    with pytest.raises(EbdConfigError, match="not a usable URL"):
        await upper.post("http://[::1", package)

    async def busy(request: web.Request) -> web.Response:
        return web.Response(status=503)

    app = web.Application()
    app.router.add_post("/ebd", busy)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        with pytest.raises(EbdLinkError, match="HTTP 503") as caught:
            await upper.post(f"http://127.0.0.1:{port}/ebd", package)
        assert caught.value.retryable
    finally:
        await runner.cleanup()


async def test_resources_travel_with_the_ebm_and_must_match_it(
    pair: Pair, city: PlatformIdentity
) -> None:
    upper, lower = pair
    audio = b"ID3" + bytes(2000)
    ebm = sample_ebm(
        city.ebrid, auxiliaries=(Auxiliary(AuxiliaryType.MP3, "EBDR_warning.mp3", len(audio)),)
    )
    ebd = Ebd(upper._ids.next(), city.ebrid, beijing_now(), ebm)
    package = build_package(ebd, city.signer(), {"EBDR_warning.mp3": audio})
    result_of((await upper.post(lower.url, package)).ebd, ebd.ebdid)
    assert lower.received[0].package.resources == {"EBDR_warning.mp3": audio}
    with pytest.raises(EbdFormatError, match="names no file") as caught:
        build_package(ebd, city.signer())
    assert caught.value.result_code == 3
    short = replace(package, resources={"EBDR_warning.mp3": audio[:-1]})
    with pytest.raises(EbdRefusedError) as refused:
        result_of((await upper.post(lower.url, short)).ebd, ebd.ebdid)
    assert refused.value.result_code == 2 and "Size" in lower.refused[0][1]
