"""Officers' recordings over a real socket: the compose page offers a recorder only for the
languages no configured synthesiser speaks; a recording goes through the console (session and
CSRF), is loudness-normalised by the audio chain and stored in the upload store; the submitted
alert carries it as that language's ``<resource>`` (mimeType, size and SHA-1 digest of the stored
bytes); the review page plays it; bad recordings are refused with nothing stored."""

from __future__ import annotations

import hashlib
import io
import json
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from audio.loudness import integrated_loudness
from audio.pcm import decode
from broadcaster.cap import from_json
from tests.console.support import (
    ConsoleClient,
    ConsoleServer,
    compose_form,
    console_config,
    console_server,
    demo_targets,
)

CHANNELS = {"speaker": {"type": "tests.console.support:BoxChannel"}}
RATE = 16000


def tone_wav(seconds: float = 2.0, amplitude: float = 0.02) -> bytes:
    """A quiet 440 Hz tone as 16-bit mono WAV (the normaliser has to lift it)."""
    t = np.arange(int(seconds * RATE)) / RATE
    pcm = (amplitude * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2")
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(pcm.tobytes())
    return out.getvalue()


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ConsoleServer]:
    config = console_config(tmp_path, CHANNELS, demo_targets("speaker"), audio_preview=False)
    async with console_server(config) as running:
        yield running


@pytest.fixture
async def drafter(server: ConsoleServer) -> AsyncIterator[ConsoleClient]:
    client = ConsoleClient(server)
    await client.login("drafter")
    await client.get("/console/compose")
    yield client
    await client.close()


async def _upload(
    client: ConsoleClient,
    body: bytes,
    *,
    lang: str = "mn",
    csrf: bool = True,
    kind: str = "audio/wav",
) -> tuple[int, dict]:  # type: ignore[type-arg]
    headers = {"Content-Type": kind, "Accept": "application/json"}
    if csrf:
        headers["X-CSRF-Token"] = client.csrf
    async with client.session.post(
        f"/console/compose/recording?lang={lang}", data=body, headers=headers
    ) as response:
        if response.content_type == "application/json":
            return response.status, await response.json()
        return response.status, {"text": await response.text()}


def _stored(server: ConsoleServer) -> list[Path]:
    store = server.service.audio.uploads
    assert store is not None
    return sorted(store.directory.glob("*")) if store.directory.exists() else []


async def test_the_recorder_is_offered_only_where_no_voice_speaks(drafter: ConsoleClient) -> None:
    status, page = await drafter.get("/console/compose")
    assert status == 200
    # espeak-ng (the configured engine) speaks Chinese and English but not Mongolian.
    assert 'data-field="mn.recording"' in page and 'name="mn.recording"' in page
    assert 'data-field="zh-CN.recording"' not in page and 'data-field="en.recording"' not in page
    assert "/console/static/recorder.js" in page
    status, script = await drafter.get("/console/static/recorder.js")
    assert status == 200 and "MediaRecorder" in script


async def test_a_recording_is_normalised_stored_and_played(
    server: ConsoleServer, drafter: ConsoleClient
) -> None:
    original = tone_wav()
    assert integrated_loudness(decode(original)) < -30
    status, body = await _upload(drafter, original)
    assert status == 201, body
    stored = _stored(server)
    assert len(stored) == 1
    data = stored[0].read_bytes()
    assert data.startswith(b"OggS") and body["mimeType"] == "audio/ogg"
    assert body["size"] == len(data) and body["digest"] == hashlib.sha1(data).hexdigest()
    assert body["uri"].endswith(f"/api/v1/uploads/{stored[0].name}")
    # Normalised as speech is for loudspeakers: -16 LUFS, within the normaliser's tolerance
    # plus what the Opus encoder shifts.
    assert abs(integrated_loudness(decode(data)) - -16.0) < 1.0
    assert body["duration_s"] == pytest.approx(2.0, abs=0.1)
    async with drafter.session.get(body["url"]) as response:
        assert response.status == 200 and response.content_type == "audio/ogg"
        assert await response.read() == data


async def test_bad_recordings_are_refused_with_nothing_stored(
    server: ConsoleServer, drafter: ConsoleClient
) -> None:
    status, body = await _upload(drafter, b"this is not audio at all")
    assert status == 400 and "decoded" in body["error"] and body["error_zh"]
    status, body = await _upload(drafter, tone_wav(amplitude=0.0))
    assert status == 400 and "silent" in body["error"]
    status, body = await _upload(drafter, tone_wav(seconds=0.2))
    assert status == 400 and "shorter" in body["error"]
    status, body = await _upload(drafter, tone_wav(), kind="text/plain")
    assert status == 415
    status, body = await _upload(drafter, tone_wav(), lang="xx")
    assert status == 400 and "language" in body["error"]
    status, body = await _upload(drafter, tone_wav(), csrf=False)
    assert status == 403
    assert _stored(server) == []
    viewer = ConsoleClient(server)
    try:
        await viewer.login("viewer")
        await viewer.get("/console/")
        status, _ = await _upload(viewer, tone_wav())
        assert status == 403
    finally:
        await viewer.close()
    assert _stored(server) == []


def _mongolian(form: list[tuple[str, str]], recording: str) -> list[tuple[str, str]]:
    return [
        *form,
        ("lang", "mn"),
        ("mn.event", "ᠴᠠᠰᠤ"),
        ("mn.headline", "ᠴᠠᠰᠤᠨ ᠤ ᠤᠯᠠᠭᠠᠨ ᠰᠡᠷᠡᠮᠵᠢᠯᠡᠯᠭᠡ"),
        ("mn.recording", recording),
    ]


async def test_the_alert_carries_the_recording_and_the_review_plays_it(
    server: ConsoleServer, drafter: ConsoleClient
) -> None:
    status, body = await _upload(drafter, tone_wav())
    assert status == 201
    status, page = await drafter.post("/console/compose", _mongolian(compose_form(), body["uri"]))
    assert status == 200, page
    alert_id = drafter.last_path.rsplit("/", 1)[1]
    document = await server.service.database.run(server.service.alerts.document, alert_id)
    alert = from_json(document)
    chinese, mongolian = alert.infos
    assert chinese.resources == []
    (resource,) = mongolian.resources
    assert (resource.mime_type, resource.size, resource.digest, resource.uri) == (
        "audio/ogg",
        body["size"],
        body["digest"],
        body["uri"],
    )
    approver = ConsoleClient(server)
    try:
        await approver.login("approver")
        status, page = await approver.get(f"/console/alerts/{alert_id}")
        assert status == 200
        assert f'data-lang="mn" src="{body["url"]}"' in page
        status, _ = await approver.post(f"/console/alerts/{alert_id}/approve", {"reason": "ok"})
        assert status == 200
    finally:
        await approver.close()
    # An Update starts from the alert with its recording, which the page puts back.
    status, page = await drafter.get(f"/console/alerts/{alert_id}/update")
    assert status == 200
    data = json.loads(page.split('id="compose-data">', 1)[1].split("</script>", 1)[0])
    assert data["initial"]["recordings"] == {"mn": body["uri"]}


async def test_a_recording_not_in_the_store_is_a_field_problem(
    server: ConsoleServer, drafter: ConsoleClient
) -> None:
    elsewhere = "http://127.0.0.1:9/api/v1/uploads/" + "0" * 64
    status, page = await drafter.post("/console/compose", _mongolian(compose_form(), elsewhere))
    assert status == 400
    assert 'data-path="mn.recording"' in page and "record or upload it again" in page
    count = await server.service.database.run(
        server.service.database.query, "SELECT COUNT(*) AS n FROM alerts", ()
    )
    assert count[0]["n"] == 0
