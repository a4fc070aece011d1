"""The preview before sending: what each channel sends, to how many receivers, and the audio.

Everything comes from the channels' own code (:meth:`BroadcasterService.preview`, which calls
each channel's ``preview``, made by the same ``content`` its ``send`` reports): SMS texts with
their segments and encoding, FM PS, RT and PTY, loudspeaker audio, push titles and bodies.
Receivers are counted in each channel's own unit (recipients, boxes, transmitters,
subscriptions), named here for the officer. The audio is rendered by the publisher (:mod:`audio`,
the same pipeline and cache as sending).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from broadcaster.cap import Alert
from broadcaster.channel import AlertMessage
from broadcaster.console import catalogue
from broadcaster.errors import CapError
from broadcaster.rendition import render
from broadcaster.service import BroadcasterService


def message_for(alert: Alert, service: BroadcasterService) -> AlertMessage:
    expires = alert.expires_at()
    return AlertMessage(
        id="preview",
        alert=alert,
        rendition=render(alert, sender_name=service.config.server.sender_name),
        expires_at=expires.timestamp() if expires else 0.0,
    )


def unit_name(unit: str) -> dict[str, str]:
    zh, en = catalogue.words(unit, catalogue.UNITS)
    return {"zh": zh, "en": en}


async def build_preview(
    service: BroadcasterService, alert: Alert, channels: list[str]
) -> dict[str, Any]:
    """Everything the preview shows except the audio (which takes longer: :func:`audio`)."""
    texts = render(alert, sender_name=service.config.server.sender_name).texts
    try:
        previews = await service.preview(alert, channels=channels)
    except CapError:
        previews = {}  # the form's problems, listed beside the preview, say why
    shown = {}
    for name, preview in previews.items():
        shown[name] = preview.to_json() | {"unit_name": unit_name(preview.unit)}
    return {"marker": texts[0].marker if texts else "", "channels": shown}


@dataclass(frozen=True, slots=True)
class AudioPreview:
    files: dict[str, Path]
    duration_s: float
    engine: str
    fallback: bool
    has_marker: bool


async def audio_preview(service: BroadcasterService, alert: Alert) -> AudioPreview:
    """The Chinese audio as loudspeakers would play it, rendered by the real pipeline."""
    message = message_for(alert, service)
    renders = await service.audio.render(message, "loudspeaker", ("zh-CN",))
    first = renders[0]
    return AudioPreview(
        files={str(fmt): path for fmt, path in first.files.items()},
        duration_s=first.duration_s,
        engine=first.engine,
        fallback=first.fallback,
        has_marker=first.has_marker,
    )
