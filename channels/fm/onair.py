"""What an alert shows on air: PS and RadioText in the RDS character set, the alert's
priority on a transmitter, and its EAS SAME header.

RT (EN 50067 §3.1.5.3, at most 64 characters of the basic character set, Annex E) comes from
the headline (the rendition's ``title``, marker included) of the first text, in the target's
languages first, then the alert's others, that the set can carry once typographic characters
are folded (full-width forms, curly quotes, dashes and the minus sign, "≥" and "≤", accents).
A symbol that still has no RDS character is left out, and the delivery and the preview carry
a warning naming it. Chinese and Mongolian cannot be carried: enhanced RadioText is not
produced by the driver, so the RT is then a configured Latin text per hazard and warning
level (``rt_fallback``), or a built-in one, prefixed with a Latin marker for tests,
exercises, updates and cancellations. Text over 64 characters is
cut at a word boundary. Nothing here raises for odd text: every alert gets a valid RT.

The SAME header (47 CFR §11.31) uses the target's 6-digit county code as its location, an
event code per hazard (RWT for tests, DMO for exercises), the purge time from the alert's
expiry and the issue time from its ``sent``.
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from broadcaster.cap import Info, MsgType, Severity, Status, Urgency
from broadcaster.channel import AlertMessage
from broadcaster.delivery import Target
from broadcaster.publisher import hazard_of, warning_level
from channels.fm.config import FmChannelConfig
from drivers.rds import AlertContent
from drivers.rds.charset import RT_MAX_LENGTH, is_rds_text

_FOLDED = {
    "\u2018": "'",
    "\u2019": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u2010": "-",  # hyphen
    "\u2012": "-",  # figure dash
    "\u2013": "-",
    "\u2014": "-",
    "\u2015": "-",  # horizontal bar
    "\u2212": "-",  # minus sign: "−35 °C" must not become "35 °C"
    "\u2264": "<=",
    "\u2265": ">=",
    "\u2026": "...",
    "^": "'",
    "`": "'",
    "~": "-",
    "\u3000": " ",
    "\u3001": ",",
    "\u3002": ".",
}
_HAZARD_WORDS = {
    "rainstorm": "RAINSTORM",
    "blizzard": "SNOWSTORM",
    "cold-wave": "COLD WAVE",
    "gale": "GALE",
    "sandstorm": "SANDSTORM",
    "wildfire": "FIRE",
    "earthquake": "EARTHQUAKE",
    "flood": "FLOOD",
    "hazmat": "CHEMICAL HAZARD",
    "generic": "EMERGENCY",
}
_SAME_EVENTS = {
    "rainstorm": "FFW",
    "blizzard": "BZW",
    "cold-wave": "WSW",
    "gale": "HWW",
    "sandstorm": "DSW",
    "wildfire": "FRW",
    "earthquake": "EQW",
    "flood": "FLW",
    "hazmat": "HMW",
    "generic": "CEM",
}
_SEVERITY_RANK = {
    Severity.EXTREME: 4,
    Severity.SEVERE: 3,
    Severity.MODERATE: 2,
    Severity.MINOR: 1,
}
_MAX_PURGE_MINUTES = 99 * 60 + 45


@dataclass(frozen=True, slots=True)
class OnAirText:
    """PS and RT for one alert on one transmitter, and where the RT came from.

    ``notes`` tell the preview how the RT was made; ``warnings`` name what the RT lost (they
    go on the delivery's record and in the preview too)."""

    content: AlertContent
    source: str
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """What the encoder is given, as the channel reports it: PS, RT and PTY."""
        return {"ps": self.content.ps, "rt": self.content.rt, "pty": self.content.pty}


@dataclass(frozen=True, slots=True)
class FoldedText:
    """Text in the RDS character set and the visible symbols that had to be left out."""

    text: str
    dropped: str = ""


def fold_to_rds(text: str) -> FoldedText | None:
    """``text`` in the RDS character set, or None when a letter or digit has no code.

    Full-width and compatibility forms, typographic punctuation, mathematical signs and
    accented letters are folded to their nearest RDS character (table ``_FOLDED``); other
    stray symbols are dropped and named in ``dropped`` (each once); runs of spaces and line
    ends become one space.
    """
    out: list[str] = []
    dropped: list[str] = []
    for char in unicodedata.normalize("NFKC", text):
        if is_rds_text(char):
            out.append(char)
        elif char in _FOLDED:
            out.append(_FOLDED[char])
        elif char.isspace():
            out.append(" ")
        else:
            base = unicodedata.normalize("NFKD", char)[:1]
            if base and is_rds_text(base) and base.isalnum():
                out.append(base)
            elif unicodedata.category(char)[0] in "LN":
                return None
            elif char.isprintable() and char not in dropped:
                dropped.append(char)
    return FoldedText(" ".join("".join(out).split()), "".join(dropped))


def cut_to(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, at the last word boundary when there is one."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip(" ,;:-")


def latin_marker(message: AlertMessage) -> str:
    """The Latin marker of a test, exercise, update or cancellation ("TEST: "), or ""."""
    words = []
    status = message.alert.status
    if status is Status.EXERCISE:
        words.append("EXERCISE")
    elif status is not Status.ACTUAL:
        words.append("TEST")
    if message.alert.msg_type is MsgType.UPDATE:
        words.append("UPDATE")
    elif message.alert.msg_type is MsgType.CANCEL:
        words.append("CANCELLED")
    return f"{' '.join(words)}: " if words else ""


def _first_info(message: AlertMessage) -> Info | None:
    return message.alert.infos[0] if message.alert.infos else None


def fallback_rt(message: AlertMessage, settings: FmChannelConfig) -> str:
    """The Latin RT for an alert whose texts RDS cannot carry."""
    event = message.rendition.texts[0].event if message.rendition.texts else ""
    hazard = hazard_of(event)
    level = warning_level(_first_info(message)).value
    configured = settings.rt_fallback
    text = (
        configured.get(f"{hazard}.{level}") or configured.get(hazard) or configured.get("default")
    )
    if text is None:
        words = _HAZARD_WORDS.get(hazard, "EMERGENCY")
        shown = f" {level.upper()}" if level != "none" else ""
        text = f"{words} WARNING{shown} - LISTEN NOW"
    return cut_to(latin_marker(message) + text, RT_MAX_LENGTH)


def alert_ps(message: AlertMessage, settings: FmChannelConfig) -> str:
    """The PS while the alert is on air, by status."""
    status = message.alert.status
    if status is Status.ACTUAL:
        return settings.ps.actual
    return settings.ps.exercise if status is Status.EXERCISE else settings.ps.test


def on_air_text(message: AlertMessage, target: Target, settings: FmChannelConfig) -> OnAirText:
    """PS and RT for ``message`` on ``target``'s transmitter."""
    ps = alert_ps(message, settings)
    notes: list[str] = []
    preferred = message.rendition.for_languages(target.languages)
    others = [t for t in message.rendition.texts if t not in preferred]
    for text in preferred + others:
        folded = fold_to_rds(text.title)
        if folded is not None and folded.text:
            rt = cut_to(folded.text, RT_MAX_LENGTH)
            if len(folded.text) > RT_MAX_LENGTH:
                notes.append(f"RT cut from {len(folded.text)} to {len(rt)} characters")
            warnings: tuple[str, ...] = ()
            if folded.dropped:
                symbols = " ".join(f"{c!r} (U+{ord(c):04X})" for c in folded.dropped)
                warnings = (f"RT leaves out what RDS cannot show: {symbols}",)
            content = AlertContent(ps=ps, rt=rt, test=message.is_test)
            source = f"headline ({text.language})"
            return OnAirText(content, source, notes=tuple(notes), warnings=warnings)
    notes.append("headline outside the RDS character set: Latin RT from the hazard and level")
    content = AlertContent(ps=ps, rt=fallback_rt(message, settings), test=message.is_test)
    return OnAirText(content, source="fallback", notes=tuple(notes))


def priority(message: AlertMessage) -> tuple[int, int, int]:
    """How urgent an alert is on a transmitter: real over test, then severity, then urgency."""
    info = _first_info(message)
    severity = _SEVERITY_RANK.get(info.severity, 0) if info is not None else 0
    immediate = int(info is not None and info.urgency is Urgency.IMMEDIATE)
    return (0 if message.is_test else 1, severity, immediate)


def same_header(message: AlertMessage, target: Target, settings: FmChannelConfig) -> str | None:
    """The SAME header for ``message`` on ``target``, or None when SAME is off."""
    same = settings.same
    if not same.enabled:
        return None
    alert = message.alert
    if alert.status is Status.EXERCISE:
        event = "DMO"
    elif alert.status is not Status.ACTUAL:
        event = "RWT"
    else:
        text = message.rendition.texts[0] if message.rendition.texts else None
        hazard = hazard_of(text.event if text else "")
        event = same.events.get(hazard) or _SAME_EVENTS.get(hazard, "CEM")
    division = target.division or ""
    location = division[:6] if len(division) >= 6 and division[:6].isdigit() else "000000"
    minutes = (message.expires_at - alert.sent.timestamp()) / 60
    purge = min(_MAX_PURGE_MINUTES, max(15, math.ceil(minutes / 15) * 15))
    issued = alert.sent.astimezone(UTC).strftime("%j%H%M")
    station = same.station.ljust(8)
    duration = f"{purge // 60:02d}{purge % 60:02d}"
    return f"ZCZC-{same.originator}-{event}-{location}+{duration}-{issued}-{station}-"
