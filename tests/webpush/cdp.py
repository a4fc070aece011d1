"""A small Chrome DevTools Protocol client over aiohttp websockets, and a headless Chromium.

Enough for the browser tests: launch Debian's ``chromium`` with a private profile, attach to
a page target in flat session mode, send commands, await events (never poll with sleeps) and
take screenshots. The browser runs in its own process group, which is ended on close.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import re
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM = "/usr/bin/chromium"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
)

Event = dict[str, Any]


class CdpError(RuntimeError):
    """The browser answered a command with an error."""


class CdpClient:
    """One websocket connection to the browser; commands carry an optional session id."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: list[Event] = []
        self._waiters: list[tuple[str, Callable[[Event], bool], asyncio.Future[Event]]] = []
        self._reader = asyncio.create_task(self._read(), name="cdp-reader")

    async def _read(self) -> None:
        async for message in self._ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(message.data)
            if "id" in data:
                future = self._pending.pop(data["id"], None)
                if future is not None and not future.done():
                    future.set_result(data)
                continue
            self.events.append(data)
            for waiter in list(self._waiters):
                method, predicate, future = waiter
                if data.get("method") == method and predicate(data) and not future.done():
                    future.set_result(data)
                    self._waiters.remove(waiter)

    async def send(self, method: str, session: str | None = None, **params: Any) -> Any:
        ident = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[ident] = future
        command: dict[str, Any] = {"id": ident, "method": method, "params": params}
        if session is not None:
            command["sessionId"] = session
        await self._ws.send_str(json.dumps(command))
        answer = await asyncio.wait_for(future, 30)
        if "error" in answer:
            raise CdpError(f"{method}: {answer['error']}")
        return answer.get("result", {})

    async def event(
        self, method: str, predicate: Callable[[Event], bool] = lambda _e: True, timeout: float = 15
    ) -> Event:
        """The first event ``method`` matching ``predicate``, already seen or still to come."""
        for seen in self.events:
            if seen.get("method") == method and predicate(seen):
                return seen
        future: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        self._waiters.append((method, predicate, future))
        return await asyncio.wait_for(future, timeout)

    async def close(self) -> None:
        await self._ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


class Page:
    """A page target attached in flat mode."""

    def __init__(self, client: CdpClient, session: str) -> None:
        self.client = client
        self.session = session

    async def send(self, method: str, **params: Any) -> Any:
        return await self.client.send(method, self.session, **params)

    async def evaluate(self, expression: str) -> Any:
        """The value of ``expression`` (promises are awaited); JS exceptions raise CdpError."""
        result = await self.send(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in result:
            raise CdpError(f"{expression[:60]}…: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def navigate(self, url: str) -> None:
        loaded = asyncio.ensure_future(
            self.client.event("Page.loadEventFired", lambda e: e.get("sessionId") == self.session)
        )
        self.client.events = [e for e in self.client.events if e["method"] != "Page.loadEventFired"]
        await self.send("Page.navigate", url=url)
        await loaded

    async def screenshot(self, path: Path) -> None:
        shot = await self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))


class HeadlessChromium:
    """Debian's Chromium, headless, with a private profile in ``profile``."""

    def __init__(self, profile: Path) -> None:
        self.profile = profile
        self.process: asyncio.subprocess.Process | None = None
        self.client: CdpClient | None = None
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> CdpClient:
        self.process = await asyncio.create_subprocess_exec(
            CHROMIUM,
            *FLAGS,
            f"--user-data-dir={self.profile}",
            "about:blank",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        assert self.process.stderr is not None
        url = None
        async with asyncio.timeout(30):
            while url is None:
                line = await self.process.stderr.readline()
                if not line:
                    raise CdpError("chromium exited before opening DevTools")
                match = re.search(rb"DevTools listening on (ws://\S+)", line)
                url = match.group(1).decode() if match else None
        self._drain = asyncio.create_task(self._discard(self.process.stderr), name="cdp-stderr")
        self._http = aiohttp.ClientSession()
        ws = await self._http.ws_connect(url, max_msg_size=0)
        self.client = CdpClient(ws)
        return self.client

    @staticmethod
    async def _discard(stream: asyncio.StreamReader) -> None:
        while await stream.read(65536):
            pass

    async def new_page(self) -> Page:
        assert self.client is not None
        target = await self.client.send("Target.createTarget", url="about:blank")
        attached = await self.client.send(
            "Target.attachToTarget", targetId=target["targetId"], flatten=True
        )
        return Page(self.client, attached["sessionId"])

    async def close(self) -> None:
        if self.client is not None:
            with contextlib.suppress(CdpError, TimeoutError, aiohttp.ClientError):
                await asyncio.wait_for(self.client.send("Browser.close"), 5)
            await self.client.close()
        if self._http is not None:
            await self._http.close()
        if self.process is not None:
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
            # Renderer and utility processes share the browser's process group.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            await self._drain
