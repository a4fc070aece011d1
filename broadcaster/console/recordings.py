"""Officers' recordings: the voice of a language no synthesiser speaks, recorded in the console.

- ``POST /console/compose/recording?lang=mn`` (drafter; session and CSRF like every console
  POST): the body is the recording (``Content-Type: audio/*``: what the browser's MediaRecorder
  made, or a file the officer chose). It is normalised by the audio chain
  (:func:`audio.recording.prepare_recording`) and kept in the server's upload store
  (:mod:`broadcaster.uploads`), the one API uploads go to; the answer gives its ``uri`` (the form
  sends it back as ``<lang>.recording``), ``mimeType``, ``size``, ``digest`` and the console
  address that plays it;
- ``GET /console/recordings/{sha256}`` (any officer): a stored recording, for the compose
  preview and the approver's review.

The alert carries the recording as a ``<resource>`` of that language's ``<info>`` whose
``mimeType``, ``size`` and SHA-1 ``digest`` are those of the stored bytes (CAP 1.2 §3.2.3);
loudspeakers and FM play it in place of synthesis (:mod:`broadcaster.publisher`).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from audio.errors import AudioError
from audio.recording import RECORDING_MIME_TYPE, prepare_recording
from broadcaster.auth import Permission
from broadcaster.cap import Resource
from broadcaster.console.compose import OPTIONAL_LANGUAGES
from broadcaster.console.web import PREFIX, actor_of, require, state_of
from broadcaster.uploads import UploadStore

routes = web.RouteTableDef()
RESOURCE_DESC = "recording"
_OGG_MAGIC = b"OggS"
_LANGUAGES = ("zh-CN", *OPTIONAL_LANGUAGES)


def _store(request: web.Request) -> UploadStore:
    store = state_of(request).service.audio.uploads
    if store is None:
        raise web.HTTPNotFound(text="this server keeps no recordings")
    return store


def _refusal(status: int, error: str, error_zh: str) -> web.Response:
    return web.json_response({"error": error, "error_zh": error_zh}, status=status)


def player_url(store: UploadStore, uri: str) -> str | None:
    """The console address that plays the recording ``uri`` names, if it is in ``store``."""
    name = store.name_of(uri)
    return f"{PREFIX}/recordings/{name}" if name else None


def resource_of(store: UploadStore, uri: str) -> Resource | None:
    """The ``<resource>`` of a recording the console stored (blocking: reads the store);
    None when ``uri`` names nothing there or something the console did not normalise."""
    data = store.read(uri)
    if data is None or not data.startswith(_OGG_MAGIC):
        return None
    return Resource(
        resource_desc=RESOURCE_DESC,
        mime_type=RECORDING_MIME_TYPE,
        size=len(data),
        uri=store.uri_of(hashlib.sha256(data).hexdigest()),
        digest=hashlib.sha1(data).hexdigest(),  # noqa: S324 - CAP 1.2 names SHA-1
    )


def recordings_of(document: Mapping[str, Any], store: UploadStore | None) -> dict[str, str]:
    """The console address of each recording a stored alert (CAP JSON form) carries, by
    language, for the review page's players."""
    found: dict[str, str] = {}
    if store is None:
        return found
    for info in document.get("info", []):
        for resource in info.get("resource", []):
            uri = resource.get("uri")
            url = player_url(store, uri) if isinstance(uri, str) else None
            if url and str(resource.get("mimeType", "")).startswith("audio/"):
                found.setdefault(str(info.get("language", "")), url)
    return found


@routes.post("/compose/recording")
async def upload_recording(request: web.Request) -> web.Response:
    require(request, Permission.DRAFT)
    state = state_of(request)
    store = _store(request)
    language = request.query.get("lang", "")
    if language not in _LANGUAGES:
        return _refusal(400, f"unknown language {language!r}", "未知语言")
    if not request.content_type.startswith("audio/"):
        return _refusal(415, "the recording must be sent as audio/*", "录音须为音频格式")
    data = await request.read()
    if not data:
        return _refusal(400, "the recording is empty", "录音为空")
    try:
        prepared = await asyncio.to_thread(prepare_recording, data)
    except AudioError as exc:
        return _refusal(400, str(exc), "无法使用该录音（无法解码、过短、过长或无声）")
    name = await asyncio.to_thread(store.store, prepared.data)
    uri = store.uri_of(name)
    await state.audit(
        actor_of(request),
        "recording.upload",
        name,
        {"language": language, "size": len(prepared.data), "seconds": prepared.duration_s},
    )
    return web.json_response(
        {
            "uri": uri,
            "mimeType": RECORDING_MIME_TYPE,
            "size": len(prepared.data),
            "digest": hashlib.sha1(prepared.data).hexdigest(),  # noqa: S324 - CAP 1.2 names SHA-1
            "url": player_url(store, uri),
            "duration_s": round(prepared.duration_s, 1),
        },
        status=201,
    )


@routes.get("/recordings/{name}")
async def play_recording(request: web.Request) -> web.Response:
    require(request, Permission.VIEW)
    store = _store(request)
    data = await asyncio.to_thread(store.read, store.uri_of(request.match_info["name"]))
    if data is None:
        raise web.HTTPNotFound(text="no such recording")
    return web.Response(body=data, content_type=RECORDING_MIME_TYPE)
