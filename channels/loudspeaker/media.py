"""The audio the boxes download: each alert rendered once per set of languages (one programme:
the attention signal, then each language the box serves in its order), published under its
SHA-256 and served over HTTP (docs/protocols/speaker.md section 5.1).

``AudioLibrary.reserve`` names the URL a programme will be served at before it is rendered, so
a ``play_url`` can go out at once without its SHA-256: ``audio/next/<token>`` holds a box's
request (at most ``HOLD_S``) until ``publish`` has the file, then answers with it, its SHA-256,
where its speech starts and the seal of section 5.1 under the key of the command's ``to``
(:mod:`drivers.speaker.seal`; the channel says which keys it holds). A published token is
written beside the audio (``<token>.next``), so its URL stays valid across server restarts.
The newest published files (``KEPT_BYTES``) answer those requests from memory: every box of a
fan-out asks at once. No more requests are held at once than the channel allows (twice its
boxes and some: ``hold_limit``); one past that is answered ``503`` with ``Retry-After: 1`` at
once. A failed render answers the requests held for it with ``404`` (the boxes play their
fallback clip), and so every request for its token until a new render of it begins.

``AudioLibrary.prepare`` renders through the core's ``AudioPublisher`` (its cache makes a
second render free) and says what a box would be told (URL, SHA-256, duration) without
publishing anything: the preview uses it, so a preview changes nothing a box can see.
``AudioLibrary.publish`` is ``prepare`` and then a copy of the file into
``<data dir>/loudspeaker-<channel>/audio/`` as ``<sha256>.<ext>``, so the URL a box received
stays valid across server restarts; ``preview`` hands the console each programme the boxes
of an alert's area would get, unpublished. Only the channel's format is rendered, and the
published audio says where its speech starts after the attention signal
(``speech_start_ms``, for boxes that play a stored attention clip first). Concurrent sends of
one alert share one render (another renders it when the send that began it is cancelled).
``web_app`` serves the files at ``audio/<name>`` with Range support, ETag and Last-Modified
(aiohttp ``FileResponse``) and ``Cache-Control: immutable``: the name is the content's hash,
so a file never changes.
``prune`` deletes files not published again for the core's ``[audio] keep_days`` (run by the
channel's housekeeping): a publish answered from a render in memory marks its file (and its
token's note) as published again, or publishes it afresh when the file was deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from aiohttp import hdrs, web

from audio import LOUDSPEAKER_PROFILE, AudioError, ExportFormat
from audio.render import Render
from broadcaster.channel import AlertMessage, PreviewAudio
from broadcaster.delivery import Target
from broadcaster.publisher import AudioPublisher, preview_audio, unspoken_warnings
from drivers.speaker import seal

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[0-9a-f]{64}\.(mp3|opus)$")
_TOKEN = re.compile(r"^[0-9a-f]{32}$")
HOLD_S = 20.0
"""How long a request for audio still being rendered is held (a box waits 30 s)."""
_CONTENT_TYPES = {"mp3": "audio/mpeg", "opus": "audio/ogg"}
#: How many alert/languages renders and their tokens are remembered in memory (files and
#: token notes stay on disk); tokens whose render is awaited are kept beyond.
_REMEMBERED = 256
AWAITED_MOST = 4 * _REMEMBERED
"""Tokens kept at most, those whose render is awaited included (see ``_forget_tokens``)."""
HOLD_SPARE = 256
"""Requests held beyond twice the boxes (``hold_limit``'s default when nothing says)."""
KEPT_BYTES = 32 << 20
"""Published audio answered from memory, the most recently published first: every box of a
fan-out asks for the same file at once, and an answer from memory needs no file to be looked
up and opened for each. Past this many bytes the older files are answered from disk."""


@dataclass(frozen=True, slots=True)
class PublishedAudio:
    """One alert's programme for a set of languages, ready for ``play_url``: the languages it
    speaks and a warning for each it could not."""

    url: str
    sha256: str
    duration_s: float
    has_marker: bool
    engine: str
    languages: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    speech_start_ms: int | None = None
    """Where the audio after the opening attention signal begins (None: it has none)."""


@dataclass(frozen=True, slots=True)
class PreparedAudio:
    """A programme rendered and not yet published: what ``play_url`` will name once it is, the
    render, and the name it is published under."""

    audio: PublishedAudio
    render: Render
    name: str


class AudioLibrary:
    """Renders, publishes and serves the channel's audio."""

    def __init__(
        self,
        directory: Path,
        base_url: str,
        audio_format: str,
        key_for: Callable[[str], bytes | None] = lambda target: None,
        hold_limit: Callable[[], int] = lambda: HOLD_SPARE,
    ) -> None:
        self.directory = directory
        self._hold_limit = hold_limit
        self._holding = 0
        self._base_url = base_url.rstrip("/")
        self._format = ExportFormat(audio_format)
        self._key_for = key_for
        self._renders: OrderedDict[tuple[str, tuple[str, ...]], asyncio.Future[PublishedAudio]] = (
            OrderedDict()
        )
        self._tokens: OrderedDict[tuple[str, tuple[str, ...]], str] = OrderedDict()
        self._held: dict[str, asyncio.Future[PublishedAudio]] = {}
        self._in_memory: OrderedDict[str, bytes] = OrderedDict()

    def reserve(self, message: AlertMessage, languages: tuple[str, ...]) -> str:
        """The URL the alert's programme in ``languages`` is served at once ``publish`` has
        it, for a sealed ``play_url`` sent before the render (the same for every call)."""
        key = (message.id, languages)
        token = self._tokens.get(key)
        if token is None:
            token = self._tokens[key] = secrets.token_hex(16)
            self._held[token] = asyncio.get_running_loop().create_future()
            self._forget_tokens()
        return self._held_url(token)

    def _forget_tokens(self) -> None:
        """Past :data:`_REMEMBERED` tokens, forget the oldest whose render is over: the note
        written when it was published answers its URL from then on. A token still awaited
        is kept, since its URL is out with the boxes, unless :data:`AWAITED_MOST` are (tokens
        reserved by sends that never published)."""
        for key, token in list(self._tokens.items()):
            if len(self._tokens) <= _REMEMBERED:
                return
            held = self._held.get(token)
            if held is None or held.done() or len(self._tokens) > AWAITED_MOST:
                del self._tokens[key]
                self._held.pop(token, None)

    def _held_url(self, token: str) -> str:
        return f"{self._base_url}/audio/next/{token}"

    async def publish(
        self, publisher: AudioPublisher, message: AlertMessage, languages: tuple[str, ...]
    ) -> PublishedAudio:
        """The alert's programme in ``languages``, rendered and published once, and the
        requests held for its reserved URL answered; raises AudioError (NoVoiceError when no
        language can be voiced), and the held requests learn it (a cancelled render leaves
        them waiting for the next)."""
        key = (message.id, languages)
        self._rearm(key)
        try:
            published = await self._published(publisher, message, languages)
        except Exception as error:
            self._release(key, error)
            raise
        token = self._waiting_token(key)
        if token is not None:
            try:
                await asyncio.to_thread(self._write_token, token, published)
            except OSError as exc:  # the boxes asking now are answered all the same
                log.warning("audio %s: its URL will not outlive a restart: %s", token, exc)
            self._release(key, published)
        return published

    async def _published(
        self, publisher: AudioPublisher, message: AlertMessage, languages: tuple[str, ...]
    ) -> PublishedAudio:
        key = (message.id, languages)
        while (pending := self._renders.get(key)) is not None:
            try:
                published = pending.result() if pending.done() else await asyncio.shield(pending)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise
                continue  # the send that rendered it was cancelled, not this one: render here
            if await asyncio.to_thread(self._published_again, published, self._tokens.get(key)):
                return published
            if self._renders.get(key) is pending:  # its file was pruned: published afresh
                del self._renders[key]
            break
        future: asyncio.Future[PublishedAudio] = asyncio.get_running_loop().create_future()
        self._renders[key] = future
        while len(self._renders) > _REMEMBERED:
            self._renders.popitem(last=False)
        try:
            published = await self._render(publisher, message, languages)
        except BaseException as error:
            if self._renders.get(key) is future:
                del self._renders[key]
            future.set_exception(error)
            # Mark the exception retrieved: other waiters get it, none may exist.
            future.exception()
            raise
        future.set_result(published)
        return published

    def _waiting_token(self, key: tuple[str, tuple[str, ...]]) -> str | None:
        """``key``'s reserved token, while its requests are still held."""
        token = self._tokens.get(key)
        held = self._held.get(token) if token is not None else None
        return token if held is not None and not held.done() else None

    def _published_again(self, published: PublishedAudio, token: str | None) -> bool:
        """Mark ``published``'s file, and its token's note, as published now (``prune``
        keeps them); False when the file is gone."""
        try:
            os.utime(self.directory / f"{published.sha256}.{self._format.value}")
        except FileNotFoundError:
            return False
        if token is not None:
            with contextlib.suppress(OSError):
                os.utime(self.directory / f"{token}.next")
        return True

    def _rearm(self, key: tuple[str, tuple[str, ...]]) -> None:
        """A render of ``key`` begins: its token holds requests again if the last one
        failed."""
        token = self._tokens.get(key)
        held = self._held.get(token) if token is not None else None
        failed = held is not None and held.done() and (held.cancelled() or held.exception())
        if token is not None and failed:
            self._held[token] = asyncio.get_running_loop().create_future()

    def _release(
        self, key: tuple[str, tuple[str, ...]], outcome: PublishedAudio | Exception
    ) -> None:
        """Answer the requests held for ``key``'s token; after a failed render, so is every
        request for it until the next render begins (:meth:`_rearm`)."""
        token = self._waiting_token(key)
        if token is None:
            return
        held = self._held[token]
        if isinstance(outcome, PublishedAudio):
            held.set_result(outcome)
            return
        held.set_exception(outcome)
        held.exception()

    def _write_token(self, token: str, published: PublishedAudio) -> None:
        """Note beside the audio which file the token stands for, for after a restart."""
        link = {"sha256": published.sha256, "speech_start_ms": published.speech_start_ms}
        _write_whole(self.directory / f"{token}.next", json.dumps(link).encode())

    async def _render(
        self, publisher: AudioPublisher, message: AlertMessage, languages: tuple[str, ...]
    ) -> PublishedAudio:
        prepared = await self.prepare(publisher, message, languages)
        source = prepared.render.files[self._format]
        data = await asyncio.to_thread(self._store, source, self.directory / prepared.name)
        self._keep(prepared.audio.sha256, data)
        return prepared.audio

    def _keep(self, sha256: str, data: bytes) -> None:
        """Answer requests for ``sha256`` from ``data`` while it is among the newest
        ``KEPT_BYTES`` published."""
        kept = self._in_memory
        kept[sha256] = data
        kept.move_to_end(sha256)
        total = sum(map(len, kept.values()))
        while total > KEPT_BYTES and len(kept) > 1:
            total -= len(kept.popitem(last=False)[1])

    async def prepare(
        self, publisher: AudioPublisher, message: AlertMessage, languages: tuple[str, ...]
    ) -> PreparedAudio:
        """The alert's programme in ``languages`` as ``publish`` would publish it, rendered but
        not published (no box can fetch it); raises as ``publish``."""
        # Only the format the boxes download: the other encoder would only delay the send.
        profile = LOUDSPEAKER_PROFILE.with_formats(self._format)
        render = await publisher.render_programme(message, profile, languages)
        sha256 = render.sha256[self._format]
        name = f"{sha256}.{self._format.value}"
        audio = PublishedAudio(
            url=f"{self._base_url}/audio/{name}",
            sha256=sha256,
            duration_s=render.duration_s,
            has_marker=render.has_marker,
            engine=render.engine,
            languages=render.languages,
            warnings=unspoken_warnings(render),
            speech_start_ms=_speech_start_ms(render),
        )
        return PreparedAudio(audio, render, name)

    async def preview(
        self, publisher: AudioPublisher | None, message: AlertMessage, targets: Sequence[Target]
    ) -> tuple[PreviewAudio, ...]:
        """Each programme the boxes of ``targets`` would play (with no targets, the one of every
        language of the alert), rendered as ``send`` renders it and not published; one that
        cannot be rendered is left out (the preview's notes say why)."""
        if publisher is None:
            return ()
        boxes: dict[tuple[str, ...], int] = {}
        for target in targets:
            boxes[tuple(target.languages)] = boxes.get(tuple(target.languages), 0) + 1
        if not boxes:
            boxes[tuple(t.language for t in message.rendition.texts)] = 0
        found: dict[str, PreviewAudio] = {}
        for languages, count in boxes.items():
            try:
                prepared = await self.prepare(publisher, message, languages)
            except AudioError:
                continue
            known = found.get(prepared.audio.sha256)
            total = count + (known.targets if known else 0)
            found[prepared.audio.sha256] = preview_audio(prepared.render, self._format, total)
        return tuple(found.values())

    @staticmethod
    def _store(source: Path, destination: Path) -> bytes:
        """Publish ``source`` as ``destination``; its bytes."""
        if destination.is_file():
            os.utime(destination)  # published again: kept as long as a fresh one
            return destination.read_bytes()
        destination.parent.mkdir(parents=True, exist_ok=True)
        data = source.read_bytes()
        _write_whole(destination, data)
        return data

    async def prune(self, older_than_s: float) -> int:
        """Delete published files (and leftover partial copies) last published more than
        ``older_than_s`` ago; returns how many. A box still holding such a URL falls back to
        its stored clip, but alerts do not live that long. Audio kept in memory goes with its
        file (whoever deleted that)."""
        removed, gone = await asyncio.to_thread(self._prune, older_than_s, list(self._in_memory))
        for sha256 in gone:
            self._in_memory.pop(sha256, None)
        return removed

    def _prune(self, older_than_s: float, kept: list[str]) -> tuple[int, list[str]]:
        """How many files were deleted, and which of ``kept`` have no file now."""
        cutoff = time.time() - older_than_s
        removed = 0
        for path in self.directory.glob("*"):
            with contextlib.suppress(OSError):
                if path.is_file() and path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
        suffix = self._format.value
        gone = [sha256 for sha256 in kept if not (self.directory / f"{sha256}.{suffix}").is_file()]
        return removed, gone

    def web_app(self) -> web.Application:
        """``GET audio/<sha256>.<ext>``: the published files, with Range and caching headers;
        ``GET audio/next/<token>``: a reserved programme, sealed, once it is published."""
        app = web.Application()
        app.router.add_get("/audio/next/{token}", self._serve_held)
        app.router.add_get("/audio/{name}", self._serve)
        return app

    async def _serve_held(self, request: web.Request) -> web.StreamResponse:
        """The reserved programme, held until it is published (at most ``HOLD_S``), with its
        SHA-256, its speech start and the seal under the key of the ``to`` the box names."""
        token = request.match_info["token"]
        if _TOKEN.fullmatch(token) is None:
            raise web.HTTPNotFound(text="no such audio")
        target = request.headers.get(seal.TARGET_HEADER, "")
        key = self._key_for(target)
        if key is None:  # answered as an unknown token: which boxes exist is not told
            raise web.HTTPNotFound(text="no such audio")
        sha256, speech_start_ms = await self._held_audio(token)
        name = f"{sha256}.{self._format.value}"
        url = self._held_url(token)
        headers = {
            "Content-Type": _CONTENT_TYPES[self._format.value],
            "Cache-Control": "private, no-store",
            seal.SHA256_HEADER: sha256,
            seal.SEAL_HEADER: seal.seal(key, url, target, sha256, speech_start_ms),
        }
        if speech_start_ms is not None:
            headers[seal.SPEECH_START_HEADER] = str(speech_start_ms)
        data = self._in_memory.get(sha256)
        if data is not None and hdrs.RANGE not in request.headers:
            return web.Response(body=data, headers=headers)
        path = self.directory / name
        if not await asyncio.to_thread(path.is_file):
            raise web.HTTPNotFound(text="the audio is no longer kept")
        return web.FileResponse(path, headers=headers)

    async def _held_audio(self, token: str) -> tuple[str, int | None]:
        """The SHA-256 and speech start of the token's programme: as soon as it is published,
        or from the note written when it was (a URL from before a restart)."""
        held = self._held.get(token)
        if held is None:
            try:
                raw = await asyncio.to_thread((self.directory / f"{token}.next").read_text, "utf-8")
                link = json.loads(raw)
                return str(link["sha256"]), link["speech_start_ms"]
            except (OSError, ValueError, KeyError) as exc:
                raise web.HTTPNotFound(text="no such audio") from exc
        if held.done():
            if held.cancelled() or held.exception() is not None:  # until a render begins again
                raise web.HTTPNotFound(text="the audio could not be rendered")
            published = held.result()
            return published.sha256, published.speech_start_ms
        if self._holding >= self._hold_limit():
            raise web.HTTPServiceUnavailable(
                text="too many requests wait for audio", headers={"Retry-After": "1"}
            )
        self._holding += 1
        try:
            async with asyncio.timeout(HOLD_S):
                published = await asyncio.shield(held)
        except TimeoutError as exc:
            raise web.HTTPServiceUnavailable(text="the audio is not rendered yet") from exc
        except Exception as exc:  # for good: not a 503, which boxes would ask again after
            raise web.HTTPNotFound(text="the audio could not be rendered") from exc
        finally:
            self._holding -= 1
        return published.sha256, published.speech_start_ms

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        match = _NAME.fullmatch(name)
        path = self.directory / name
        if match is None or not await asyncio.to_thread(path.is_file):
            raise web.HTTPNotFound(text="no such audio")
        return web.FileResponse(
            path,
            headers={
                "Content-Type": _CONTENT_TYPES[match.group(1)],
                "Cache-Control": "public, max-age=31536000, immutable",
            },
        )


def _write_whole(path: Path, data: bytes) -> None:
    """Write ``path`` at once, through a partial file of this write's own: publishes of one
    programme (or of programmes that came out the same) may write it at the same moment, and
    none may move another's partial file away."""
    partial = path.with_name(f"{path.name}.{secrets.token_hex(8)}.part")
    partial.write_bytes(data)
    partial.replace(path)


def _speech_start_ms(render: Render) -> int | None:
    """The end of the render's opening attention signal, in milliseconds."""
    attention = next((s for s in render.segments if s.kind == "attention"), None)
    return None if attention is None else round(attention.end_s * 1000)
