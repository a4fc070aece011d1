"""An EBD platform peer over real HTTP, for tests and bench work without a real 应急广播平台.

It answers as the deployed platforms do (GD/J 083-2018 era): every POSTed package gets a signed
EBDResponse tar in the HTTP reply; an accepted EBM is followed, after ``state_delay`` seconds, by
an EBMStateResponse pushed to ``state_url`` (else the EBM's ``SRC/URL``) with the configured
outcome; an EBMStateRequest is acknowledged and answered by a pushed EBMStateResponse whose
RelatedEBD is the request (or, with ``state_inline``, answered directly in the HTTP reply as the
2016 platforms did); a ConnectionCheck is acknowledged. Signatures are verified when a verifier
is given. Everything received is kept in ``received`` and everything refused in ``refused``.

It can act as the upper platform too: ``send_ebm`` posts an EBM to a URL.

An OMDRequest for EBRPSInfo or EBRPSState is acknowledged and answered by a pushed report of
the simulator itself.

Fault hooks (``faults``): refuse with a ResultCode, drop the connection, answer garbage, answer
slowly, never send state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import aiohttp
from aiohttp import web

from drivers.ebd.client import PostTimeouts, post_package, read_posted_package
from drivers.ebd.codes import BrdStateCode, EbdType, ResourceStateCode, ResultCode
from drivers.ebd.errors import EbdError, EbdFormatError, EbdSignatureError
from drivers.ebd.exchange import (
    EbdIdSequence,
    Incoming,
    build_package,
    make_response,
    make_state_response,
    read_incoming,
)
from drivers.ebd.model import (
    Body,
    Ebd,
    Ebm,
    EbmStateRequest,
    OmdRequest,
    PlatformEntry,
    PlatformInfo,
    ResourceState,
    ResourceStateEntry,
    body_type,
)
from drivers.ebd.package import MAX_PACKAGE_BYTES, Package, write_package
from drivers.ebd.signature import Signer, Verifier
from drivers.ebd.xmlsafe import beijing_now


@dataclass
class PlatformFaults:
    """What the simulated platform does wrong; all off by default."""

    refuse_with: ResultCode | None = None
    drop_connection: bool = False
    garbage: bool = False
    answer_delay: float = 0.0
    never_send_state: bool = False


@dataclass
class Push:
    """One package the simulator pushed on its own (a state or a report), and what came of it."""

    kind: EbdType
    url: str
    ebmid: str = ""
    state: BrdStateCode | None = None
    result: ResultCode | None = None
    error: str = ""


@dataclass
class PlatformBehaviour:
    """How the simulated platform answers when nothing is wrong."""

    state_url: str | None = None
    state_delay: float = 0.5
    state_outcome: BrdStateCode = BrdStateCode.SUCCEEDED
    state_inline: bool = False
    verify_heartbeat: bool = False
    path: str = "/ebd"
    timeouts: PostTimeouts = field(default_factory=lambda: PostTimeouts(5.0, 10.0))


class EbdPlatformSimulator:
    """A simulated 应急广播平台 with its own EBRID, signer and trust list."""

    def __init__(
        self,
        ebrid: str,
        signer: Signer | None,
        verifier: Verifier | None,
        behaviour: PlatformBehaviour | None = None,
    ) -> None:
        self.ebrid = ebrid
        self.signer = signer
        self.verifier = verifier
        self.behaviour = behaviour or PlatformBehaviour()
        self.faults = PlatformFaults()
        self.received: list[Incoming] = []
        self.refused: list[tuple[ResultCode, str]] = []
        self.states: dict[str, BrdStateCode] = {}
        self.pushes: list[Push] = []
        self.url = ""
        self._ids = EbdIdSequence(ebrid)
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.changed = asyncio.Event()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on ``host:port`` (0 picks a free port); return the URL to POST to."""
        app = web.Application(client_max_size=MAX_PACKAGE_BYTES)
        app.router.add_post(self.behaviour.path, self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = self._runner.addresses[0]
        self.url = f"http://{host}:{bound[1]}{self.behaviour.path}"
        self._session = aiohttp.ClientSession()
        return self.url

    async def stop(self) -> None:
        """Cancel pending state pushes, stop listening and close the client session."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> EbdPlatformSimulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _note(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` is true, re-checking after every change."""
        while not predicate():
            await self.changed.wait()

    # --- receiving -------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self.faults.answer_delay:
            await asyncio.sleep(self.faults.answer_delay)
        if self.faults.drop_connection:
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=500)
        if self.faults.garbage:
            return web.Response(body=b"\x00garbage, not a package\xff" * 20)
        try:
            data = await read_posted_package(request)
            incoming = await asyncio.to_thread(
                read_incoming,
                data,
                self.verifier,
                verify_heartbeat=self.behaviour.verify_heartbeat,
            )
        except (EbdFormatError, EbdSignatureError) as error:
            code = ResultCode(error.result_code)
            self.refused.append((code, str(error)))
            self._note()
            return self._reply(make_response(self._ids.next(), self.ebrid, None, code, self.signer))
        self.received.append(incoming)
        self._note()
        if self.faults.refuse_with is not None:
            code = self.faults.refuse_with
            return self._reply(self._respond(incoming.ebd, code))
        return self._reply(self._dispatch(incoming.ebd))

    def _respond(self, ebd: Ebd, code: ResultCode, desc: str | None = None) -> Package:
        return make_response(self._ids.next(), self.ebrid, ebd, code, self.signer, desc)

    def _dispatch(self, ebd: Ebd) -> Package:
        body = ebd.body
        if isinstance(body, Ebm):
            self.states[body.ebmid] = BrdStateCode.WAITING
            self._schedule_state(ebd, body.ebmid, None)
        elif isinstance(body, EbmStateRequest):
            if body.ebmid not in self.states:
                return self._respond(ebd, ResultCode.OTHER_ERROR, f"未知的EBMID {body.ebmid}")
            if self.behaviour.state_inline:
                state = self.states[body.ebmid]
                return make_state_response(
                    self._ids.next(), self.ebrid, body.ebmid, state, self.signer, request=ebd
                )
            self._schedule_state(ebd, body.ebmid, ebd)
        elif isinstance(body, OmdRequest) and ebd.src_url:
            report = self._report(body.omd_type)
            if report is not None:
                package = self._package(report, ebd)
                self._spawn(self._deliver(ebd.src_url, package, Push(body_type(report), "")))
        return self._respond(ebd, ResultCode.OK)

    def _report(self, omd_type: str) -> Body | None:
        """What this platform answers an OMDRequest with: its own info or state."""
        now = beijing_now()
        if omd_type == EbdType.EBRPS_INFO:
            name = "模拟应急广播平台"
            return PlatformInfo((PlatformEntry(now, self.ebrid, name, url=self.url),))
        if omd_type == EbdType.EBRPS_STATE:
            entry = ResourceStateEntry(now, self.ebrid, ResourceStateCode.RUNNING, "正常")
            return ResourceState(EbdType.EBRPS_STATE, (entry,))
        return None

    def _package(self, body: Body, request: Ebd) -> Package:
        ebd = Ebd(
            ebdid=self._ids.next(),
            src_ebrid=self.ebrid,
            time=beijing_now(),
            body=body,
            dest_ebrid=request.src_ebrid,
            src_url=self.url or None,
            related_ebdid=request.ebdid,
        )
        return build_package(ebd, self.signer)

    def _schedule_state(self, ebd: Ebd, ebmid: str, request: Ebd | None) -> None:
        url = self.behaviour.state_url or ebd.src_url
        if url and not self.faults.never_send_state:
            self._spawn(self._push_state(url, ebd, ebmid, request))

    async def _push_state(self, url: str, ebd: Ebd, ebmid: str, request: Ebd | None) -> None:
        if request is None:
            await asyncio.sleep(self.behaviour.state_delay)
            self.states[ebmid] = self.behaviour.state_outcome
        state = self.states[ebmid]
        package = make_state_response(
            self._ids.next(), self.ebrid, ebmid, state, self.signer, request=request or ebd
        )
        await self._deliver(url, package, Push(EbdType.EBM_STATE_RESPONSE, url, ebmid, state))

    async def _deliver(self, url: str, package: Package, push: Push) -> None:
        push.url = url
        try:
            reply = await self.post(url, package)
            push.result = getattr(reply.ebd.body, "result_code", None)
        except EbdError as error:
            push.error = str(error)
        self.pushes.append(push)
        self._note()

    def _reply(self, package: Package) -> web.Response:
        return web.Response(
            body=write_package(package),
            content_type="application/x-tar",
            headers={"Content-Disposition": f"attachment; filename={package.tar_name}"},
        )

    # --- sending (as the upper platform) ----------------------------------------------------

    async def post(self, url: str, package: Package) -> Incoming:
        """POST a package and return the checked reply."""
        if self._session is None:
            raise RuntimeError("the simulator is not started")
        return await post_package(
            self._session, url, package, self.verifier, self.behaviour.timeouts
        )

    async def send(self, url: str, body: Body, dest_ebrid: str | None = None) -> Incoming:
        """Send one body in a new signed package to ``url``; return the reply."""
        ebd = Ebd(self._ids.next(), self.ebrid, beijing_now(), body, dest_ebrid, self.url or None)
        return await self.post(url, build_package(ebd, self.signer))

    async def send_ebm(self, url: str, ebm: Ebm, dest_ebrid: str | None = None) -> Incoming:
        """Act as the upper platform: send an EBM to ``url``; return the reply."""
        return await self.send(url, ebm, dest_ebrid)

    def received_of(self, kind: EbdType) -> list[Ebd]:
        """Every received package of one type, oldest first."""
        return [incoming.ebd for incoming in self.received if incoming.ebd.ebd_type is kind]
