"""Test and bench equipment for the loudspeaker driver, shipped so integrators can use it too.

- ``MosquittoBroker`` and ``free_port``, from :mod:`drivers.mqtt.testing`: a real Mosquitto
  on a free port, with the queue limits a hub serving thousands of boxes needs.
- ``NullModem``: two ptys joined like a serial cable, with a hook to inject line noise.
- ``MediaServer``: audio over real HTTP from memory; unknown names answer 404.
- ``SealedMediaServer``: the server side of sealed audio, with hooks to break its answers.
- ``HubEventRecorder``: drains ``SpeakerHub.events()`` and lets a test await a condition.
- ``play_url_command``: a PlayUrl valid from now.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import select
import threading
import tty
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Self

from aiohttp import web
from multidict import CIMultiDict

from drivers.mqtt.testing import MosquittoBroker, free_port
from drivers.speaker.hub import SpeakerHub
from drivers.speaker.messages import (
    AckStage,
    BoxAck,
    BoxPresence,
    BroadcastClass,
    HubEvent,
    PlayUrl,
    Priority,
)
from drivers.speaker.seal import (
    SEAL_HEADER,
    SHA256_HEADER,
    SPEECH_START_HEADER,
    TARGET_HEADER,
    seal,
)

__all__ = [
    "HubEventRecorder",
    "MediaServer",
    "MosquittoBroker",
    "NullModem",
    "SealedMediaServer",
    "free_port",
    "play_url_command",
]


class NullModem:
    """Two ptys joined by a forwarding thread, like a cable between two serial ports."""

    def __init__(self) -> None:
        self._ma, self._sa = os.openpty()
        self._mb, self._sb = os.openpty()
        for fd in (self._sa, self._sb):
            tty.setraw(fd)
        self.path_a, self.path_b = os.ttyname(self._sa), os.ttyname(self._sb)
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._forward, name="null-modem", daemon=True)
        self._thread.start()

    def _forward(self) -> None:
        peer = {self._ma: self._mb, self._mb: self._ma}
        while True:
            ready, _, _ = select.select([self._ma, self._mb, self._stop_r], [], [])
            if self._stop_r in ready:
                return
            for fd in ready:
                try:
                    os.write(peer[fd], os.read(fd, 4096))
                except OSError:
                    continue

    def inject_towards_b(self, data: bytes) -> None:
        """Put bytes on the line towards side B, as line noise would."""
        os.write(self._mb, data)

    def close(self) -> None:
        """Stop forwarding and close both ptys."""
        os.write(self._stop_w, b"x")
        self._thread.join()
        for fd in (self._ma, self._sa, self._mb, self._sb, self._stop_r, self._stop_w):
            os.close(fd)


class MediaServer:
    """Serves ``files`` over HTTP on 127.0.0.1; counts requests."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.requests = 0
        self.base = ""
        self.gate: asyncio.Event | None = None
        """While set to an unset event, requests wait for it (a download in progress)."""
        self.refusals: list[tuple[int, str | None]] = []
        """The next requests' answers, one each, first to last: a status and the
        ``Retry-After`` to give (None: none), as a busy or failing server answers."""
        self._runner: web.AppRunner | None = None

    def url(self, name: str) -> str:
        return f"{self.base}/media/{name}"

    @property
    def missing_url(self) -> str:
        return f"{self.base}/media/missing-{len(self.files)}.wav"

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.gate is not None:
            await self.gate.wait()
        refused = self._refused()
        if refused is not None:
            return refused
        body = self.files.get(request.match_info["name"])
        if body is None:
            raise web.HTTPNotFound()
        return web.Response(body=body, content_type="audio/wav")

    def _refused(self) -> web.Response | None:
        """The next of :attr:`refusals`, if any is left."""
        if not self.refusals:
            return None
        status, retry_after = self.refusals.pop(0)
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        return web.Response(status=status, headers=headers, text="not now")

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_get("/media/{name}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.base = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


class SealedMediaServer(MediaServer):
    """Serves ``files`` sealed (docs/protocols/speaker.md, section 5.1): each answer carries
    the body's SHA-256, its speech start from ``speech_starts`` and the seal under the key
    ``keys`` holds for the request's ``Broadcaster-To`` (403 for a target it has no key of).

    ``targets`` lists the targets asked for, ``answered`` counts the answers sent; ``hold_s``
    holds each answer (audio still rendering); ``tamper`` may change each answer's headers in
    place and returns the body to send, as a faulty or hostile server would.
    """

    def __init__(
        self,
        files: dict[str, bytes],
        keys: dict[str, bytes],
        speech_starts: dict[str, int] | None = None,
    ) -> None:
        super().__init__(files)
        self.keys = keys
        self.speech_starts = speech_starts or {}
        self.targets: list[str] = []
        self.answered = 0
        self.hold_s = 0.0
        self.tamper: Callable[[CIMultiDict[str], bytes], bytes] | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        target = request.headers.get(TARGET_HEADER, "")
        self.targets.append(target)
        if self.gate is not None:
            await self.gate.wait()
        await asyncio.sleep(self.hold_s)
        refused = self._refused()
        if refused is not None:
            return refused
        name = request.match_info["name"]
        body, key = self.files.get(name), self.keys.get(target)
        if body is None:
            raise web.HTTPNotFound()
        if key is None:
            raise web.HTTPForbidden()
        sha256 = hashlib.sha256(body).hexdigest()
        start = self.speech_starts.get(name)
        headers = CIMultiDict(
            {SHA256_HEADER: sha256, SEAL_HEADER: seal(key, self.url(name), target, sha256, start)}
        )
        if start is not None:
            headers[SPEECH_START_HEADER] = str(start)
        if self.tamper is not None:
            body = self.tamper(headers, body)
        self.answered += 1
        return web.Response(body=body, headers=headers, content_type="audio/ogg")


def play_url_command(
    cmd_id: str,
    alert_id: str,
    url: str,
    data: bytes,
    priority: int = Priority.EMERGENCY,
    expires_in_s: float = 60.0,
    fallback_clip: str | None = None,
    broadcast_class: BroadcastClass = BroadcastClass.EMERGENCY,
) -> PlayUrl:
    """A PlayUrl for ``data`` served at ``url``, issued now."""
    now = datetime.now(UTC)
    return PlayUrl(
        cmd_id=cmd_id,
        alert_id=alert_id,
        issued_at=now,
        expires_at=now + timedelta(seconds=expires_in_s),
        url=url,
        sha256=hashlib.sha256(data).hexdigest(),
        priority=priority,
        volume=70,
        fallback_clip=fallback_clip,
        broadcast_class=broadcast_class,
    )


class HubEventRecorder:
    """Consumes a hub's events into ``events``; ``wait_for`` awaits a condition on them."""

    def __init__(self, hub: SpeakerHub) -> None:
        self.events: list[HubEvent] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._task = asyncio.get_running_loop().create_task(self._pump(hub))

    async def _pump(self, hub: SpeakerHub) -> None:
        async for event in hub.events():
            self.events.append(event)
            for waiter in self._waiters:
                if not waiter.done():
                    waiter.set_result(None)
            self._waiters.clear()

    async def wait_for(self, predicate: Callable[[], bool], within_s: float = 5.0) -> None:
        """Wait until ``predicate()`` holds; raises TimeoutError after ``within_s``."""
        async with asyncio.timeout(within_s):
            while not predicate():
                waiter = asyncio.get_running_loop().create_future()
                self._waiters.append(waiter)
                await waiter

    def acks(
        self, cmd_id: str | None = None, stage: AckStage | None = None, box_id: str | None = None
    ) -> list[BoxAck]:
        """Acks received so far, filtered."""
        return [
            e
            for e in self.events
            if isinstance(e, BoxAck)
            and cmd_id in (None, e.cmd_id)
            and stage in (None, e.stage)
            and box_id in (None, e.box_id)
        ]

    def acked_boxes(self, cmd_id: str, stage: AckStage) -> set[str]:
        """Boxes that reported ``stage`` for ``cmd_id``."""
        return {a.box_id for a in self.acks(cmd_id, stage)}

    async def wait_acks(
        self, cmd_id: str, stage: AckStage, boxes: set[str], within_s: float = 5.0
    ) -> None:
        """Wait until every box in ``boxes`` reported ``stage`` for ``cmd_id``."""
        await self.wait_for(lambda: boxes <= self.acked_boxes(cmd_id, stage), within_s)

    def presence(self, box_id: str) -> list[bool]:
        """The online/offline reports for ``box_id``, in order (online again too when it
        says hello in a new MQTT session while counted online)."""
        return [e.online for e in self.events if isinstance(e, BoxPresence) and e.box_id == box_id]

    async def close(self) -> None:
        """Stop consuming events."""
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
