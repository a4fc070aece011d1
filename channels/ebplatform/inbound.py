"""The inbound endpoint of the ``ebplatform`` channel, ``POST /channels/<name>/ebd``, and the
broadcast-state reports sent back to the upper platform.

Who may call it: a caller whose address is in ``allow_from`` (when set; others get 403 and
nothing is read), whose package is signed by a certificate of the trust list, whose
``SRC/EBRID`` is a configured peer or the upper platform, whose EBDID was issued by that
``SRC/EBRID`` and whose ``DEST/EBRID``, when present, is ours. Every package is answered with
a signed EBDResponse tar (GD/J 083-2018 as deployed): ResultCode 2/3 for a malformed package
(the driver's safe tar and XML readers: no links or paths in the tar, size limits, no DTD or
entities), 4 for a bad signature, 5 for an unknown sender or a wrong EBDID relation, 1 when
taken (an EBMStateRequest without ``upper.url`` excepted: see below). Nothing is changed by a
refused package.

What is taken: an EBMStateResponse from a peer updates our delivery of that EBM; an EBM from
the upper platform becomes a CAP alert through the normal intake (delivered at once or held
for an officer, ``upper.policy``); an EBMStateRequest from it is answered by a pushed
EBMStateResponse; a ConnectionCheck is acknowledged. The state of each alert taken in is
reported up whenever it changes, until it is final, and we send the upper platform heartbeats.

State reports and heartbeats go to ``upper.url`` only, never to the ``SRC/URL`` a package
names: that address is the sender's word, and following it would let anyone whose package is
taken make this server POST wherever it likes. Without ``upper.url`` nothing is pushed; an
EBMStateRequest is then answered with the EBMStateResponse itself in the HTTP reply, as 2016
platforms answer polls (one of the two answers deployed under GD/J 083-2018; see
``docs/protocols/ebd.md``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from typing import TYPE_CHECKING

from aiohttp import web

from broadcaster.cap import Reference
from broadcaster.errors import CapError, StoreError
from channels.ebplatform.ledger import ReceivedEbm
from channels.ebplatform.mapping import alert_of_ebm
from channels.ebplatform.states import take_state
from drivers.ebd import (
    BrdStateCode,
    ConnectionCheck,
    Ebd,
    EbdError,
    EbdFormatError,
    EbdSignatureError,
    Ebm,
    EbmStateRequest,
    EbmStateResponse,
    MsgType,
    Package,
    ResultCode,
    build_package,
    make_ebdid,
    make_response,
    make_state_response,
    read_incoming,
    write_package,
)
from drivers.ebd.client import read_posted_package
from drivers.ebd.codes import ebdid_source
from drivers.ebd.signature import SignatureFile
from drivers.ebd.xmlsafe import beijing_now

if TYPE_CHECKING:
    from channels.ebplatform.channel import EbPlatformChannel

log = logging.getLogger(__name__)

_FINAL = {"confirmed", "failed", "expired", "cancelled", "superseded"}


def inbound_app(channel: EbPlatformChannel) -> web.Application:
    """The application mounted at ``/channels/<name>/``."""

    async def receive(request: web.Request) -> web.StreamResponse:
        try:
            return await _receive(channel, request)
        except StoreError as error:  # the shared store is out of reach: the sender retries
            log.warning("ebplatform %s: package not taken: %s", channel.name, error)
            return web.Response(status=503, text="the store is out of reach, try again later")

    app = web.Application()
    app.router.add_post("/ebd", receive)
    return app


def _allowed(channel: EbPlatformChannel, address: str | None) -> bool:
    networks = channel.config.allow_from
    if not networks:
        return True
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(n, strict=False) for n in networks)


def _tar(package: Package) -> web.Response:
    return web.Response(
        body=write_package(package),
        content_type="application/x-tar",
        headers={"Content-Disposition": f"attachment; filename={package.tar_name}"},
    )


async def _receive(channel: EbPlatformChannel, request: web.Request) -> web.StreamResponse:
    if not channel.ready:
        return web.Response(status=503, text="the platform link is not running")
    if not _allowed(channel, request.remote):
        return web.Response(status=403, text="this address may not send packages here")
    local = channel.config.local_ebrid
    try:
        data = await read_posted_package(request)
        verify_heartbeat = channel.config.verify_heartbeat
        incoming = await asyncio.to_thread(
            read_incoming, data, channel.verifier, verify_heartbeat=verify_heartbeat
        )
    except (EbdFormatError, EbdSignatureError) as error:
        log.info(
            "ebplatform %s: refused a package from %s: %s", channel.name, request.remote, error
        )
        code = ResultCode(error.result_code)
        reply = make_response(await channel.next_ebdid(), local, None, code, channel.signer)
        return _tar(reply)
    ebd = incoming.ebd
    problem = _signer_problem(channel, ebd, incoming.signature)
    answer = (ResultCode.SIGNATURE_FAILED, problem) if problem else await _take(channel, ebd)
    if isinstance(answer, Package):
        return _tar(answer)
    code, desc = answer
    if code is not ResultCode.OK:
        log.info(
            "ebplatform %s: refused %s %s: %s", channel.name, ebd.ebd_type.value, ebd.ebdid, desc
        )
    ebdid = await channel.next_ebdid()
    reply = make_response(ebdid, local, ebd, code, channel.signer, desc or None)
    return _tar(reply)


def _signer_problem(channel: EbPlatformChannel, ebd: Ebd, signature: SignatureFile | None) -> str:
    """A package signed with a certificate other than its sender's: every certificate of the
    trust list is good, so without the binding one peer could sign as another, or as the
    upper platform. Unverified heartbeats (``verify_heartbeat = false``) pass."""
    if signature is None:
        return ""
    senders = channel.config.senders()
    sender = next((s for s in senders if s.ebrid == ebd.src_ebrid), None)
    if sender is None:
        return ""  # no peer: the relation check refuses it
    expected, signed = sender.cert_id, signature.value.cert_id.hex()
    if expected is None:
        if channel.trusted > 1:
            return (
                f"SRC/EBRID {ebd.src_ebrid} has no cert_id configured: any of the"
                f" {channel.trusted} trusted certificates could sign as it"
            )
        return ""
    if signed != expected.lower():
        return f"signed with certificate {signed}, not SRC/EBRID {ebd.src_ebrid}'s {expected}"
    return ""


def _relation_problem(channel: EbPlatformChannel, ebd: Ebd) -> str:
    known = {sender.ebrid for sender in channel.config.senders()}
    if ebd.src_ebrid not in known:
        return f"SRC/EBRID {ebd.src_ebrid} is no peer of this platform"
    if ebdid_source(ebd.ebdid) != ebd.src_ebrid:
        return f"EBDID {ebd.ebdid} was not issued by SRC/EBRID {ebd.src_ebrid}"
    if ebd.dest_ebrid and ebd.dest_ebrid != channel.config.local_ebrid:
        return f"DEST/EBRID {ebd.dest_ebrid} is not this platform"
    return ""


Answer = tuple[ResultCode, str] | Package
"""How a package is answered: the ResultCode and description of an EBDResponse, or a package
of its own (the state asked for, when there is no ``upper.url`` to push it to)."""


async def _take(channel: EbPlatformChannel, ebd: Ebd) -> Answer:
    problem = _relation_problem(channel, ebd)
    if problem:
        return ResultCode.OTHER_ERROR, problem
    body = ebd.body
    upper = channel.config.upper
    from_upper = upper is not None and ebd.src_ebrid == upper.ebrid
    if isinstance(body, EbmStateResponse):
        return await take_state(channel, ebd, body)
    if isinstance(body, ConnectionCheck):
        return ResultCode.OK, ""
    if isinstance(body, Ebm) and from_upper:
        return await _take_ebm(channel, ebd, body)
    if isinstance(body, EbmStateRequest) and from_upper:
        return await _take_state_request(channel, ebd, body)
    return ResultCode.OTHER_ERROR, f"{ebd.ebd_type.value} from {ebd.src_ebrid} is not taken here"


async def _take_state_request(
    channel: EbPlatformChannel, ebd: Ebd, request: EbmStateRequest
) -> Answer:
    """The upper platform asks for the state of an EBM it sent: pushed to ``upper.url`` after
    the receipt, or, with no ``upper.url``, answered in the reply."""
    upper = channel.config.upper
    received = await channel.ledger.received(request.ebmid)
    if upper is None or channel.context.alerts is None or received is None:
        return ResultCode.OTHER_ERROR, f"EBMID {request.ebmid} was never received here"
    if not upper.url:
        state = await _state_of(channel, received)
        ebdid, local = await channel.next_ebdid(), channel.config.local_ebrid
        return make_state_response(ebdid, local, received.ebmid, state, channel.signer, request=ebd)
    channel.spawn(_report(channel, upper.url, received, request=ebd))
    return ResultCode.OK, ""


async def _take_ebm(channel: EbPlatformChannel, ebd: Ebd, ebm: Ebm) -> tuple[ResultCode, str]:
    upper = channel.config.upper
    hooks = channel.context.alerts
    if upper is None or hooks is None:
        return ResultCode.OTHER_ERROR, "this platform takes no EBMs"
    if await channel.ledger.received(ebm.ebmid) is not None:
        return ResultCode.OK, "已接收"
    cancelled, status = None, None
    if ebm.msg_type is MsgType.CANCEL:
        earlier = await channel.ledger.received(ebm.related_ebmid or "")
        if earlier is None:
            return ResultCode.OTHER_ERROR, "RelatedInfo/EBMID names no EBM received here"
        cancelled = Reference(*earlier.cap_key.split(",", 2))
        status = await hooks.status(earlier.alert_id)
    alert = alert_of_ebm(ebm, ebd.src_ebrid, cancelled, status)
    try:
        alert_id = await hooks.submit(
            alert,
            origin=f"ebd:{ebd.src_ebrid}",
            hold=upper.policy == "hold",
            channels=upper.channels,
        )
    except CapError as error:
        return ResultCode.OTHER_ERROR, f"the warning was not taken: {error}"[:200]
    ends = alert.expires_at()
    until = ends.timestamp() if ends else time.time()
    reference = str(alert.reference)
    received = ReceivedEbm(ebm.ebmid, ebd.src_ebrid, alert_id, reference, None, until)
    await channel.ledger.record_received(received)
    return ResultCode.OK, ""


def broadcast_state(summary: dict[str, dict[str, int]]) -> BrdStateCode:
    """Our deliveries of one alert, summed over channels, as a BrdStateCode."""
    counts: dict[str, int] = {}
    for states in summary.values():
        for state, n in states.items():
            counts[state] = counts.get(state, 0) + n
    total = sum(counts.values())
    if total == 0:
        return BrdStateCode.WAITING
    if all(state in _FINAL for state in counts):
        if counts.get("confirmed", 0) == total:
            return BrdStateCode.SUCCEEDED
        if counts.get("cancelled", 0) + counts.get("superseded", 0) == total:
            return BrdStateCode.CANCELLED
        return BrdStateCode.FAILED
    started = counts.get("confirmed", 0) + counts.get("accepted", 0) + counts.get("sending", 0)
    return BrdStateCode.BROADCASTING if started else BrdStateCode.WAITING


async def _state_of(channel: EbPlatformChannel, received: ReceivedEbm) -> BrdStateCode:
    """The broadcast state of the alert one received EBM became."""
    alerts = channel.context.alerts
    assert alerts is not None  # state is asked for and reported only with the alert hooks
    state = broadcast_state(await alerts.summary(received.alert_id))
    if state is BrdStateCode.WAITING and await alerts.rejected(received.alert_id):
        state = BrdStateCode.FAILED  # our officer refused it: it will not be broadcast here
    return state


async def _report(
    channel: EbPlatformChannel, url: str, received: ReceivedEbm, request: Ebd | None
) -> None:
    """Push the current state of one received EBM to ``url`` (``upper.url``); a store out of
    reach is logged (the next round reports it)."""
    try:
        await _push_state(channel, url, received, request)
    except StoreError as error:
        log.warning(
            "ebplatform %s: state of %s not reported: %s", channel.name, received.ebmid, error
        )


async def _push_state(
    channel: EbPlatformChannel, url: str, received: ReceivedEbm, request: Ebd | None
) -> None:
    """Push the current state of one received EBM up; remember it once the upper took it."""
    state = await _state_of(channel, received)
    if request is None and received.reported == int(state):
        return
    ebdid = await channel.next_ebdid()
    package = make_state_response(
        ebdid, channel.config.local_ebrid, received.ebmid, state, channel.signer, request=request
    )
    try:
        await channel.post_url(url, package)
    except EbdError as error:
        log.info("ebplatform %s: state of %s not reported: %s", channel.name, received.ebmid, error)
        return
    await channel.ledger.set_reported(received.ebmid, int(state))


async def report_states(channel: EbPlatformChannel, url: str) -> None:
    """Report the state of every EBM taken in to ``url`` (``upper.url``) whenever it changes,
    until it is final."""
    assert channel.config.upper is not None
    while True:
        await asyncio.sleep(channel.config.upper.report_seconds)
        try:
            unreported = await channel.ledger.unreported(time.time())
        except StoreError as error:
            log.warning("ebplatform %s: cannot read the EBMs taken in: %s", channel.name, error)
            continue
        for received in unreported:
            await _report(channel, url, received, request=None)


async def heartbeats(channel: EbPlatformChannel, url: str, period: float) -> None:
    """Send the upper platform a signed ConnectionCheck every ``period`` seconds (its EBDID is
    the heartbeat form: kind 01, our EBRID, sixteen zeros); the outcome shows in health."""
    upper = channel.config.upper
    assert upper is not None
    local = channel.config.local_ebrid
    while True:
        ebdid = make_ebdid(local, 0, heartbeat=True)
        ebd = Ebd(ebdid, local, beijing_now(), ConnectionCheck(beijing_now()), upper.ebrid)
        try:
            package = await asyncio.to_thread(
                build_package, ebd, channel.signer, None, channel.form
            )
            await channel.post_url(url, package)
            channel.upper_error = ""
        except EbdError as error:
            channel.upper_error = f"heartbeat: {error}"
        await asyncio.sleep(period)
