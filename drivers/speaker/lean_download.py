"""The lean fleet's download of sealed audio (docs/protocols/speaker.md section 5.1), with the
least HTTP a box needs (RFC 9112: one ``GET`` on a connection of its own, ``Connection:
close``, a body of ``Content-Length`` bytes).

A box asks for a ``play_url`` without ``sha256`` with the command's ``to`` in
``Broadcaster-To`` and takes the answer only when it is a 200 whose body hashes to its
``Broadcaster-Audio-SHA256`` and whose seal matches under the key of that ``to``
(:func:`~drivers.speaker.sealed_audio.check_sealed_answer`, the check the full box makes). A
fleet's downloads share one limit on how many run at once, so a process stays within its open
files. Only ``http://`` is spoken: the fleet measures a server on loopback.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import cast
from urllib.parse import urlsplit

from multidict import CIMultiDict

from drivers.speaker.errors import MediaDownloadError
from drivers.speaker.seal import TARGET_HEADER
from drivers.speaker.sealed_audio import CommandTarget, SealedAudio, check_sealed_answer

MAX_BYTES = 16 << 20
"""The largest answer a lean box reads (a real box's limit is its storage)."""
MAX_HEAD = 16 << 10
"""The largest status line and headers a lean box reads."""

Answer = tuple[int, CIMultiDict[str], bytes]


class _Get(asyncio.Protocol):
    """One request on its own connection; ``answer`` gets the status, headers and body."""

    def __init__(self, request: bytes, answer: asyncio.Future[Answer]) -> None:
        self._request = request
        self._answer = answer
        self._buffer = bytearray()
        self._head: tuple[int, CIMultiDict[str], int] | None = None
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        stream = cast(asyncio.Transport, transport)  # uvloop's are not asyncio.Transport's
        self._transport = stream
        stream.write(self._request)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        try:
            if self._head is None:
                self._head = self._parse_head()
            if self._head is not None and len(self._buffer) >= self._head[2]:
                status, headers, length = self._head
                self._finish((status, headers, bytes(self._buffer[:length])))
        except MediaDownloadError as exc:
            self._finish(exc)

    def _parse_head(self) -> tuple[int, CIMultiDict[str], int] | None:
        """The status, headers and body length once the head is in (the buffer then holds the
        body); None while it is not."""
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > MAX_HEAD:
                raise MediaDownloadError("the answer's head is too long")
            return None
        lines = bytes(self._buffer[:end]).decode("latin-1").split("\r\n")
        del self._buffer[: end + 4]
        version, _, rest = lines[0].partition(" ")
        code = rest[:3]
        if not version.startswith("HTTP/1.") or not code.isdigit():
            raise MediaDownloadError(f"not an HTTP/1.1 answer: {lines[0][:80]!r}")
        headers: CIMultiDict[str] = CIMultiDict()
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon:
                raise MediaDownloadError(f"a malformed header line: {line[:80]!r}")
            headers.add(name.strip(), value.strip())
        lengths = headers.getall("Content-Length", [])
        if len(lengths) != 1 or not lengths[0].isdigit() or int(lengths[0]) > MAX_BYTES:
            raise MediaDownloadError(f"the answer needs one Content-Length ≤ {MAX_BYTES}")
        return int(code), headers, int(lengths[0])

    def _finish(self, outcome: Answer | Exception) -> None:
        if not self._answer.done():
            if isinstance(outcome, Exception):
                self._answer.set_exception(outcome)
            else:
                self._answer.set_result(outcome)
        if self._transport is not None:
            self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish(MediaDownloadError(f"the connection closed before the answer ended: {exc}"))


async def get(url: str, headers: dict[str, str]) -> Answer:
    """``GET url`` with ``headers``: the answer's status, headers and body; raises
    MediaDownloadError when the server cannot be reached or the answer is malformed."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise MediaDownloadError(f"a lean box fetches http:// URLs only, not {url!r}")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    lines = [f"GET {target} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[Answer] = loop.create_future()
    try:
        await loop.create_connection(
            lambda: _Get(request, answer), parts.hostname, parts.port or 80
        )
    except OSError as exc:
        raise MediaDownloadError(f"{url}: {exc}") from exc
    return await answer


class Downloads:
    """A fleet's sealed downloads, at most ``parallel`` at once, each within ``timeout_s``;
    ``bytes`` counts the bodies received."""

    def __init__(self, parallel: int = 500, timeout_s: float = 30.0) -> None:
        self._limit = asyncio.Semaphore(parallel)
        self.timeout_s = timeout_s
        self.bytes = 0

    async def fetch_sealed(
        self, url: str, to: CommandTarget, within_s: float | None = None
    ) -> SealedAudio:
        """The verified answer for ``url`` asked for as ``to``, within ``within_s`` (what is
        left of the timeout after a wait for retained audio; None: the whole timeout); raises
        MediaDownloadError (not reached, not 200, malformed, too slow) or MediaIntegrityError
        (the checks)."""
        within = self.timeout_s if within_s is None else max(within_s, 0.0)
        async with self._limit:
            try:
                async with asyncio.timeout(within):
                    status, headers, body = await get(url, {TARGET_HEADER: to.target})
            except TimeoutError as exc:
                raise MediaDownloadError(f"{url}: no answer within {within:g} s") from exc
        self.bytes += len(body)
        if status != 200:
            raise MediaDownloadError(f"{url}: HTTP {status}")
        return check_sealed_answer(url, to, headers, hashlib.sha256(body).hexdigest())
