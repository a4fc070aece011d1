"""The preview before sending: message forms, targets per channel, channel previews, audio.

- SMS: the marked body as a phone shows it and its segment count (3GPP TS 23.040: GSM 7-bit
  160 characters, 153 per part when split; UCS-2 70, 67 per part; characters outside the BMP
  take two UCS-2 units; GSM extension characters take two septets);
- RDS: PS (8 characters: ``ALERT``, ``TEST``, ``EXERCISE``) and RT (at most 64 characters of
  the EBU Latin set, EBU SPB 490 §3.3.14), from the English text when there is one, since the
  RDS character set has no Chinese;
- push: the notification title and body as the web-push channel shows them;
- per configured channel: its own :class:`~broadcaster.channel.ChannelPreview` and the number
  of targets the area selects (``planner.select_targets`` over the channel's registry);
- audio: rendered by the publisher (:mod:`audio`, the same pipeline and cache as sending).
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from broadcaster.cap import Alert
from broadcaster.channel import AlertMessage, ChannelPreview
from broadcaster.errors import ChannelError
from broadcaster.planner import alert_areas, select_targets
from broadcaster.rendition import MessageText, Rendition, render
from broadcaster.service import BroadcasterService

_GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENSION = "^{}\\[~]|€\f"
RT_LIMIT = 64
PUSH_BODY_LIMIT = 240


@dataclass(frozen=True, slots=True)
class SmsForm:
    text: str
    encoding: str
    units: int
    segments: int


def sms_form(text: str) -> SmsForm:
    """How an SMS of ``text`` is encoded and how many segments it takes."""
    if all(c in _GSM7_BASIC or c in _GSM7_EXTENSION for c in text):
        units = sum(2 if c in _GSM7_EXTENSION else 1 for c in text)
        single, part, encoding = 160, 153, "GSM-7"
    else:
        units = sum(2 if ord(c) > 0xFFFF else 1 for c in text)
        single, part, encoding = 70, 67, "UCS-2"
    segments = 1 if units <= single else -(-units // part)
    return SmsForm(text, encoding, units, segments)


def _latin(text: str) -> bool:
    return all(0x20 <= ord(c) < 0x7F for c in text)


def rds_form(rendition: Rendition) -> dict[str, Any]:
    """PS and RT for the alert; RT from the first text the RDS character set can carry."""
    ps = "EXERCISE" if str(rendition.status) == "Exercise" else "ALERT"
    if rendition.is_test and ps != "EXERCISE":
        ps = "TEST"
    english = next((t for t in rendition.texts if t.language.startswith("en")), None)
    notes = []
    if english is not None and _latin(english.title):
        rt = english.title
    else:
        rt = f"{ps} - listen to local radio"
        notes.append("RDS has no Chinese characters: add an English text for a specific RT")
    if len(rt) > RT_LIMIT:
        notes.append(f"RT cut to {RT_LIMIT} characters")
    return {"ps": ps.ljust(8)[:8], "rt": rt[:RT_LIMIT], "notes": notes}


def push_form(text: MessageText) -> dict[str, str]:
    body = "\n".join(p for p in (text.description, text.instruction) if p)
    if len(body) > PUSH_BODY_LIMIT:
        body = body[: PUSH_BODY_LIMIT - 1] + "…"
    return {"title": text.title, "body": body}


def message_for(alert: Alert, service: BroadcasterService) -> AlertMessage:
    expires = alert.expires_at()
    return AlertMessage(
        id="preview",
        alert=alert,
        rendition=render(alert, sender_name=service.config.server.sender_name),
        expires_at=expires.timestamp() if expires else 0.0,
    )


async def target_counts(
    service: BroadcasterService, alert: Alert, channels: list[str]
) -> dict[str, int]:
    """How many targets of each channel the alert's area selects."""
    areas = alert_areas(alert)
    counts = {}
    for name in channels:
        registry = await service.database.run(service.targets.for_channel, name)
        counts[name] = len(await asyncio.to_thread(select_targets, areas, registry))
    return counts


def _preview_json(preview: ChannelPreview) -> dict[str, Any]:
    data = asdict(preview)
    data["lines"] = list(preview.lines)
    data["notes"] = list(preview.notes)
    return data


async def build_preview(
    service: BroadcasterService, alert: Alert, channels: list[str]
) -> dict[str, Any]:
    """Everything the preview shows except the audio (which takes longer: :func:`audio`)."""
    message = message_for(alert, service)
    texts = message.rendition.texts
    sms = [asdict(sms_form(t.body)) | {"language": t.language} for t in texts]
    counts = await target_counts(service, alert, [c for c in channels if c in service.channels])
    channel_previews = {}
    for name in channels:
        channel = service.channels.get(name)
        if channel is None:
            continue
        try:
            shown = await channel.preview(message)
            if not isinstance(shown, ChannelPreview):
                raise TypeError(f"preview returned {type(shown).__name__}, not a ChannelPreview")
            channel_previews[name] = _preview_json(shown)
        except Exception as exc:
            error = (
                str(exc)
                if isinstance(exc, ChannelError)
                else service.faults.record(name, "preview", exc)
            )
            channel_previews[name] = {
                "title": "",
                "lines": [],
                "counts": {},
                "notes": [f"this channel could not make a preview: {error}"],
            }
    return {
        "marker": texts[0].marker if texts else "",
        "sms": sms,
        "rds": rds_form(message.rendition),
        "push": push_form(texts[0]) if texts else {},
        "targets": counts,
        "total_targets": sum(counts.values()),
        "channels": channel_previews,
    }


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
