"""Render an alert once into the texts every channel needs, per language.

The marker for Test and Exercise alerts (and for Update and Cancel messages) is added here, in
the core, so no channel can forget it: a channel gets ``MessageText.marker`` and the marked forms
``title`` and ``body``, never an unmarked headline for a non-Actual alert.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from audio.languages import filter_tags, lookup
from broadcaster.cap import Alert, Info, MsgType, Status

_MARKERS: dict[str, dict[str, str]] = {
    "zh": {
        Status.TEST: "【测试】",
        Status.EXERCISE: "【演练】",
        MsgType.UPDATE: "【更新】",
        MsgType.CANCEL: "【解除】",
    },
    "zh-Hant": {
        Status.TEST: "【測試】",
        Status.EXERCISE: "【演練】",
        MsgType.UPDATE: "【更新】",
        MsgType.CANCEL: "【解除】",
    },
    # Traditional script, as written in Inner Mongolia (``mn`` means this script here).
    "mn-Mong": {
        Status.TEST: "[ᠲᠤᠷᠰᠢᠯᠲᠠ]",
        Status.EXERCISE: "[ᠳᠠᠳᠤᠯᠭ᠎ᠠ]",
        MsgType.UPDATE: "[ᠰᠢᠨᠡᠴᠢᠯᠡᠯ]",
        MsgType.CANCEL: "[ᠬᠦᠴᠦᠨ ᠦᠭᠡᠢ]",
    },
    "mn-Cyrl": {
        Status.TEST: "[ТУРШИЛТ]",
        Status.EXERCISE: "[ДАДЛАГА]",
        MsgType.UPDATE: "[ШИНЭЧЛЭЛ]",
        MsgType.CANCEL: "[ЦУЦЛАВ]",
    },
    "en": {
        Status.TEST: "[TEST]",
        Status.EXERCISE: "[EXERCISE]",
        MsgType.UPDATE: "[UPDATE]",
        MsgType.CANCEL: "[CANCELLED]",
    },
}


def is_test_status(status: Status) -> bool:
    """True for alerts that must be marked as not real on every channel."""
    return status is not Status.ACTUAL


def marker_for(language: str, status: Status, msg_type: MsgType) -> str:
    """The prefix that marks a non-Actual alert, an Update or a Cancel; empty for neither."""
    table = _MARKERS[lookup((language,), _MARKERS) or "en"]
    parts = []
    if status in (Status.TEST, Status.EXERCISE):
        parts.append(table[status])
    elif is_test_status(status):
        parts.append(table[Status.TEST])
    if msg_type in (MsgType.UPDATE, MsgType.CANCEL):
        parts.append(table[msg_type])
    return "".join(parts)


@dataclass(frozen=True, slots=True)
class MessageText:
    """The texts of one ``<info>`` block, ready for channels."""

    language: str
    event: str
    headline: str
    description: str
    instruction: str
    sender_name: str
    area_desc: str
    severity: str
    urgency: str
    marker: str

    @property
    def title(self) -> str:
        """Marker + headline (or event): for RDS, notifications, the first SMS line."""
        return f"{self.marker}{self.headline or self.event}"

    @property
    def body(self) -> str:
        """Marker + headline, description and instruction, for SMS, push and logs."""
        parts = [self.title, self.description, self.instruction]
        return "\n".join(p for p in parts if p)

    def to_json(self) -> dict[str, Any]:
        return {
            "language": self.language,
            "event": self.event,
            "headline": self.headline,
            "description": self.description,
            "instruction": self.instruction,
            "sender_name": self.sender_name,
            "area_desc": self.area_desc,
            "severity": self.severity,
            "urgency": self.urgency,
            "marker": self.marker,
            "title": self.title,
            "body": self.body,
        }


@dataclass(frozen=True, slots=True)
class Rendition:
    """All texts of one alert, one per language, rendered once."""

    status: Status
    msg_type: MsgType
    texts: tuple[MessageText, ...]

    @property
    def is_test(self) -> bool:
        return is_test_status(self.status)

    def for_languages(self, preferred: tuple[str, ...]) -> list[MessageText]:
        """The texts in the target's preferred languages (:func:`audio.languages.filter_tags`),
        in the target's order, falling back to the first text."""
        return list(_texts_for(self.texts, tuple(preferred)))


@functools.lru_cache(maxsize=1024)
def _texts_for(
    texts: tuple[MessageText, ...], preferred: tuple[str, ...]
) -> tuple[MessageText, ...]:
    """The choice :meth:`Rendition.for_languages` makes, once per alert and set of languages
    (every target of an alert asks, most with the same few languages)."""
    chosen = filter_tags(preferred, texts, lambda t: t.language)
    return tuple(chosen) if chosen else texts[:1]


def _render_info(alert: Alert, info: Info, sender_name: str) -> MessageText:
    return MessageText(
        language=info.language,
        event=info.event,
        headline=(info.headline or "").strip(),
        description=(info.description or "").strip(),
        instruction=(info.instruction or "").strip(),
        sender_name=info.sender_name or sender_name,
        area_desc="; ".join(a.area_desc for a in info.areas),
        severity=str(info.severity),
        urgency=str(info.urgency),
        marker=marker_for(info.language, alert.status, alert.msg_type),
    )


def render(alert: Alert, *, sender_name: str = "") -> Rendition:
    """Render the texts of every ``<info>`` of ``alert``.

    An alert without ``<info>`` (a bare Cancel) still gets one text, carrying its marker and
    its note, so every channel has something true to say.
    """
    texts = tuple(_render_info(alert, info, sender_name) for info in alert.infos)
    if not texts:
        texts = (
            MessageText(
                language="zh-CN",
                event="",
                headline=(alert.note or "").strip(),
                description="",
                instruction="",
                sender_name=sender_name,
                area_desc="",
                severity="Unknown",
                urgency="Unknown",
                marker=marker_for("zh-CN", alert.status, alert.msg_type),
            ),
        )
    return Rendition(status=alert.status, msg_type=alert.msg_type, texts=texts)
