"""The preview before sending: what each channel sends, to how many receivers, and the audio.

Everything comes from the channels' own code (:meth:`BroadcasterService.preview`, which calls
each channel's ``preview``, made by the same ``content`` its ``send`` reports): SMS texts with
their segments and encoding, FM PS, RT and PTY, loudspeaker audio, push titles and bodies.
Receivers are counted in each channel's own unit (recipients, boxes, transmitters,
subscriptions), named here for the officer. The audio is what the channels' previews hand over
(:class:`~broadcaster.channel.PreviewAudio`): each sound their deliveries will play, rendered
by the code that sends and published nowhere, with where each language is spoken in it, so
the officer hears every language the devices will speak, byte for byte as they will.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from broadcaster.cap import Alert
from broadcaster.channel import PreviewAudio
from broadcaster.console import catalogue
from broadcaster.errors import CapError
from broadcaster.rendition import render
from broadcaster.service import BroadcasterService


def unit_name(unit: str) -> dict[str, str]:
    zh, en = catalogue.words(unit, catalogue.UNITS)
    return {"zh": zh, "en": en}


async def build_preview(
    service: BroadcasterService, alert: Alert, channels: list[str]
) -> dict[str, Any]:
    """Everything the preview shows except the audio (:func:`channel_audio`)."""
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
class ChannelAudio:
    """One sound a channel's deliveries will play, and the unit its targets are counted in."""

    channel: str
    unit: str
    audio: PreviewAudio


#: The Chinese and English names of the languages officers write in, by primary subtag.
_LANGUAGE_NAMES = {
    "zh": ("中文", "Chinese"),
    "mn": ("蒙古文", "Mongolian"),
    "en": ("英文", "English"),
}


async def channel_audio(
    service: BroadcasterService, alert: Alert, channels: list[str]
) -> list[ChannelAudio]:
    """Every sound the ``channels`` would play for ``alert``, from the previews of those that
    carry audio (``capabilities.audio_formats``); raises CapError when the alert is invalid."""
    playing = [c for c in channels if service.channels[c].capabilities.audio_formats]
    if not playing:
        return []
    previews = await service.preview(alert, channels=playing)
    return [
        ChannelAudio(name, shown.unit, audio)
        for name, shown in previews.items()
        for audio in shown.audio
    ]


def audio_json(sound: ChannelAudio, url: str) -> dict[str, Any]:
    """A sound as the preview panel shows it: the URL that plays it, its SHA-256 (what the
    deliveries' ``audio`` names), and each language with its name and where it is spoken."""
    audio = sound.audio
    return {
        "channel": sound.channel,
        "url": url,
        "type": audio.content_type,
        "sha256": audio.sha256,
        "duration_s": round(audio.duration_s, 1),
        "targets": audio.targets,
        "unit_name": unit_name(sound.unit),
        "engine": audio.engine,
        "marker": audio.has_marker,
        "warnings": list(audio.warnings),
        "languages": [
            {
                "language": part.language,
                "name": _language_name(part.language),
                "start_s": round(part.start_s, 2),
                "end_s": round(part.end_s, 2),
            }
            for part in audio.spoken
        ],
    }


def _language_name(tag: str) -> dict[str, str]:
    zh, en = _LANGUAGE_NAMES.get(tag.split("-")[0].lower(), (tag, tag))
    return {"zh": f"{zh} {tag}", "en": f"{en} {tag}"}
