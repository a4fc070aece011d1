"""A local stand-in for the online read-aloud service that edge-tts speaks to.

It serves the service's WebSocket protocol on 127.0.0.1, as edge_tts 7.3.1 uses it, so the real
library, aiohttp, the ffmpeg decoder and ``EdgeTtsEngine`` all run unchanged; only the address
differs. Protocol facts (the service has no public specification; these are the messages the
library sends and accepts):

- Handshake: ``GET /consumer/speech/synthesize/readaloud/edge/v1`` upgraded to a WebSocket, with
  the query parameters ``TrustedClientToken``, ``ConnectionId`` (32 hex digits),
  ``Sec-MS-GEC`` (``<16 hex>-<64 hex>``) and ``Sec-MS-GEC-Version``. The service refuses a bad
  handshake with HTTP 403 and a ``Date`` header.
- Client text frames: header lines ``Name:value`` separated by CRLF, a blank line, then a body.
  First ``Path:speech.config`` (JSON naming the output format
  ``audio-24khz-48kbitrate-mono-mp3`` and which boundaries to report), then ``Path:ssml`` with
  ``X-RequestId``, ``Content-Type:application/ssml+xml`` and ``X-Timestamp``, whose body is one
  ``<speak><voice name=…><prosody pitch=… rate=… volume=…>escaped text</prosody></voice></speak>``.
- Service text frames, same layout, echoing ``X-RequestId``: ``Path:turn.start``, optionally
  ``Path:response``, ``Path:audio.metadata`` (JSON ``Metadata`` list of ``SentenceBoundary`` or
  ``WordBoundary`` entries with offsets and durations in 100 ns ticks), and ``Path:turn.end``.
- Service binary frames: a 2-byte big-endian length, that many bytes of CRLF-terminated header
  lines (``Content-Type:audio/mpeg`` and ``Path:audio``), then MP3 bytes. A last frame without
  ``Content-Type`` and without audio closes the stream.

The stand-in speaks a sine tone (real MP3 from ffmpeg, 24 kHz mono 48 kbit/s) whose length
depends on the text, split across several binary frames; it records every handshake and every
request, and can be scripted to fail in the ways the real service has failed.
"""

from __future__ import annotations

import asyncio
import enum
import json
import re
import uuid
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import edge_tts.constants
from aiohttp import WSMsgType, web

SERVICE_PATH = urlsplit(edge_tts.constants.WSS_URL).path
SYNTHESIS_NS = "{http://www.w3.org/2001/10/synthesis}"
TICKS_PER_SECOND = 10_000_000
# Bytes after a 2-byte length that claims 16 header bytes but holds no "Name:value" line.
GARBAGE_FRAME = b"\x00\x10" + bytes(range(0x80, 0xC0))
NOT_MP3 = b"<html><body>503 Service Unavailable</body></html>\n" * 40


class ReadAloudFault(enum.Enum):
    """How the stand-in misbehaves; ``NONE`` answers every request correctly."""

    NONE = "none"
    REFUSE_HANDSHAKE = "refuse-handshake"  # HTTP 403 instead of the upgrade
    CLOSE_BEFORE_TURN_END = "close-before-turn-end"  # turn.start, some audio, then close
    GARBAGE_BINARY = "garbage-binary"  # a binary frame that is no protocol message
    STALL = "stall"  # reads the request and never answers
    NOT_MP3 = "not-mp3"  # a complete turn whose audio/mpeg frames are not MP3


@dataclass(frozen=True)
class ReadAloudHandshake:
    """One WebSocket upgrade request as the stand-in saw it."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]


@dataclass(frozen=True)
class ReadAloudRequest:
    """One synthesis turn: the speech.config body and the parsed SSML request."""

    handshake: ReadAloudHandshake
    speech_config: dict[str, Any]
    ssml_headers: dict[str, str]
    ssml: str
    voice: str
    rate: str
    pitch: str
    volume: str
    text: str

    @property
    def voice_short_name(self) -> str:
        """``zh-CN-XiaoxiaoNeural`` for the wire name
        ``Microsoft Server Speech Text to Speech Voice (zh-CN, XiaoxiaoNeural)``."""
        found = re.fullmatch(r".*\((\S+), (\S+)\)", self.voice)
        return f"{found[1]}-{found[2]}" if found else self.voice


class ReadAloudProtocolError(Exception):
    """A client message that does not follow the read-aloud protocol."""


@dataclass
class ReadAloudSimulator:
    """The read-aloud service on a local port; ``async with`` starts and stops it."""

    fault: ReadAloudFault = ReadAloudFault.NONE
    tone_hz: float = 660.0
    seconds_per_char: float = 0.05
    min_seconds: float = 0.6
    frame_bytes: int = 1800
    frames_before_close: int = 0
    garbage: bytes = GARBAGE_FRAME
    handshakes: list[ReadAloudHandshake] = field(default_factory=list)
    requests: list[ReadAloudRequest] = field(default_factory=list)
    protocol_errors: list[str] = field(default_factory=list)
    audio_sent: list[bytes] = field(default_factory=list)
    audio_frames: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._released = asyncio.Event()
        self._tones: dict[float, bytes] = {}

    @property
    def url(self) -> str:
        """The service URL of edge_tts with only the scheme and address replaced."""
        parts = urlsplit(edge_tts.constants.WSS_URL)
        return urlunsplit(("ws", f"127.0.0.1:{self._port}", parts.path, parts.query, ""))

    def seconds_for(self, text: str) -> float:
        """Length of the tone the stand-in speaks for ``text``."""
        return round(max(self.min_seconds, self.seconds_per_char * len(text)), 2)

    async def __aenter__(self) -> ReadAloudSimulator:
        app = web.Application()
        app.router.add_get(SERVICE_PATH, self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = self._runner.addresses[0][1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._released.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        handshake = ReadAloudHandshake(request.path, dict(request.query), dict(request.headers))
        self.handshakes.append(handshake)
        refusal = _handshake_refusal(handshake)
        if refusal or self.fault is ReadAloudFault.REFUSE_HANDSHAKE:
            return web.Response(status=403, text=refusal or "refused by the stand-in")
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        try:
            await self._serve(socket, handshake)
        except ReadAloudProtocolError as exc:
            self.protocol_errors.append(str(exc))
        except ConnectionResetError:
            # The client gave up on this turn (its caller was cancelled): nothing to answer.
            pass
        finally:
            await socket.close()
        return socket

    async def _serve(self, socket: web.WebSocketResponse, handshake: ReadAloudHandshake) -> None:
        config: dict[str, Any] | None = None
        async for message in socket:
            if message.type is not WSMsgType.TEXT:
                raise ReadAloudProtocolError(f"unexpected {message.type.name} frame from client")
            headers, body = parse_text_frame(message.data)
            if headers.get("Path") == "speech.config":
                config = parse_speech_config(body)
            elif headers.get("Path") == "ssml":
                if config is None:
                    raise ReadAloudProtocolError("ssml before speech.config")
                turn = parse_ssml_request(handshake, config, headers, body)
                self.requests.append(turn)
                if not await self._answer(socket, turn):
                    return
            else:
                raise ReadAloudProtocolError(f"unknown path {headers.get('Path')!r}")

    async def _answer(self, socket: web.WebSocketResponse, turn: ReadAloudRequest) -> bool:
        """Answer one turn; False when the fault ends the connection here."""
        request_id = turn.ssml_headers["X-RequestId"]
        if self.fault is ReadAloudFault.STALL:
            await self._released.wait()
            return False
        await socket.send_str(text_frame(request_id, "turn.start", {"context": {}}))
        if self.fault is ReadAloudFault.GARBAGE_BINARY:
            await socket.send_bytes(self.garbage)
            return False
        seconds = self.seconds_for(turn.text)
        audio = NOT_MP3 if self.fault is ReadAloudFault.NOT_MP3 else await self._tone(seconds)
        frames = [
            audio[start : start + self.frame_bytes]
            for start in range(0, len(audio), self.frame_bytes)
        ]
        if self.fault is ReadAloudFault.CLOSE_BEFORE_TURN_END:
            frames = frames[: self.frames_before_close]
        await socket.send_str(text_frame(request_id, "audio.metadata", _boundaries(turn, seconds)))
        for chunk in frames:
            await socket.send_bytes(audio_frame(request_id, chunk))
        if self.fault is ReadAloudFault.CLOSE_BEFORE_TURN_END:
            return False
        self.audio_sent.append(audio)
        self.audio_frames.append(len(frames))
        await socket.send_bytes(audio_frame(request_id, b""))
        await socket.send_str(text_frame(request_id, "turn.end", {}))
        return True

    async def _tone(self, seconds: float) -> bytes:
        if seconds not in self._tones:
            self._tones[seconds] = await encode_tone(self.tone_hz, seconds)
        return self._tones[seconds]


def _handshake_refusal(handshake: ReadAloudHandshake) -> str:
    query = handshake.query
    if handshake.path != SERVICE_PATH:
        return f"unknown path {handshake.path}"
    if query.get("TrustedClientToken") != edge_tts.constants.TRUSTED_CLIENT_TOKEN:
        return "bad TrustedClientToken"
    if not re.fullmatch(r"[0-9a-f]{32}", query.get("ConnectionId", "")):
        return "bad ConnectionId"
    if not re.fullmatch(r"[0-9A-F]{16}-[0-9A-F]{64}", query.get("Sec-MS-GEC", "")):
        return "bad Sec-MS-GEC"
    if not query.get("Sec-MS-GEC-Version"):
        return "missing Sec-MS-GEC-Version"
    return ""


def parse_text_frame(data: str) -> tuple[dict[str, str], str]:
    """Header lines and body of a text frame (``Name:value`` lines, blank line, body)."""
    head, separator, body = data.partition("\r\n\r\n")
    if not separator:
        raise ReadAloudProtocolError("text frame without the blank line after its headers")
    headers = {}
    for line in head.split("\r\n"):
        name, colon, value = line.partition(":")
        if not colon:
            raise ReadAloudProtocolError(f"header line without a colon: {line!r}")
        headers[name] = value
    return headers, body


def parse_speech_config(body: str) -> dict[str, Any]:
    """The JSON body of ``Path:speech.config``; it must name the boundaries to report."""
    try:
        config: dict[str, Any] = json.loads(body)
        options = config["context"]["synthesis"]["audio"]["metadataoptions"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ReadAloudProtocolError(f"unusable speech.config: {exc!r}") from exc
    if not isinstance(options, dict):
        raise ReadAloudProtocolError("speech.config without a metadataoptions object")
    return config


def parse_ssml_request(
    handshake: ReadAloudHandshake,
    config: dict[str, Any],
    headers: dict[str, str],
    body: str,
) -> ReadAloudRequest:
    """The voice, prosody and text of one ``Path:ssml`` message."""
    for name in ("X-RequestId", "X-Timestamp", "Content-Type"):
        if name not in headers:
            raise ReadAloudProtocolError(f"ssml message without {name}")
    try:
        speak = ElementTree.fromstring(body)
    except ElementTree.ParseError as exc:
        raise ReadAloudProtocolError(f"ssml is not well-formed XML: {exc}") from exc
    voice = speak.find(f"{SYNTHESIS_NS}voice")
    prosody = voice.find(f"{SYNTHESIS_NS}prosody") if voice is not None else None
    if voice is None or prosody is None:
        raise ReadAloudProtocolError("ssml without voice and prosody elements")
    return ReadAloudRequest(
        handshake=handshake,
        speech_config=config,
        ssml_headers=headers,
        ssml=body,
        voice=voice.get("name", ""),
        rate=prosody.get("rate", ""),
        pitch=prosody.get("pitch", ""),
        volume=prosody.get("volume", ""),
        text=prosody.text or "",
    )


def text_frame(request_id: str, path: str, body: object) -> str:
    """A service text frame carrying a JSON body."""
    return (
        f"X-RequestId:{request_id}\r\n"
        "Content-Type:application/json; charset=utf-8\r\n"
        f"Path:{path}\r\n\r\n"
        f"{json.dumps(body, ensure_ascii=False)}"
    )


def audio_frame(request_id: str, audio: bytes) -> bytes:
    """A service binary frame; without audio it is the end-of-stream frame (no Content-Type)."""
    content_type = "Content-Type:audio/mpeg\r\n" if audio else ""
    header = (
        f"X-RequestId:{request_id}\r\n{content_type}X-StreamId:{uuid.uuid4().hex}\r\nPath:audio\r\n"
    ).encode("ascii")
    return len(header).to_bytes(2, "big") + header + audio


def _boundaries(turn: ReadAloudRequest, seconds: float) -> dict[str, object]:
    metadata = turn.speech_config["context"]["synthesis"]["audio"]["metadataoptions"]
    kind = "WordBoundary" if metadata.get("wordBoundaryEnabled") == "true" else "SentenceBoundary"
    words = turn.text.split() if kind == "WordBoundary" else [turn.text]
    step = round(seconds * TICKS_PER_SECOND) // max(1, len(words))
    # The service echoes the text escaped, as it appeared in the SSML.
    entries = [
        {
            "Type": kind,
            "Data": {
                "Offset": index * step,
                "Duration": step,
                "text": {"Text": _escape(word), "Length": len(word), "BoundaryType": kind},
            },
        }
        for index, word in enumerate(words)
    ]
    return {"Metadata": entries}


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


async def encode_tone(frequency: float, seconds: float) -> bytes:
    """A sine tone as the service's MP3 format (24 kHz mono, 48 kbit/s CBR), from ffmpeg."""
    proc = await asyncio.create_subprocess_exec(
        "ffmpeg",
        "-nostdin",
        "-v",
        "error",
        "-f",
        "lavfi",
        "-i",
        f"sine=frequency={frequency:g}:sample_rate=24000:duration={seconds:g}",
        "-ac",
        "1",
        "-c:a",
        "libmp3lame",
        "-b:a",
        "48k",
        "-write_xing",
        "0",
        "-id3v2_version",
        "0",
        "-f",
        "mp3",
        "pipe:1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg could not encode the tone: {err.decode(errors='replace')}")
    return out
