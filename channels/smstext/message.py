"""The SMS form of an alert: one text per language from a template, within a segment budget.

The text is ``template`` filled from the rendered CAP ``<info>`` (``broadcaster.rendition``):
the sender signature (【乌兰察布市应急管理局】), ``{title}`` (the core's test/exercise/update
marker plus the headline, which every template must contain), the description and the
instruction. Empty lines are dropped.

Budget: a warning should fit ``max_segments`` segments (3 by default: 201 Chinese characters in
UCS-2, 459 in GSM-7; TS 23.040 §9.2.3.24.1 and the driver's codec count them, surrogate pairs
included). When it does not, the description is shortened first, then the instruction: to whole
sentences when one fits, else to a character cut marked with an ellipsis. The signature, the
marker and the headline are never shortened; if they alone exceed the budget the message keeps
them whole and takes more segments, up to the channel's ``segment_limit``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from broadcaster.rendition import MessageText
from channels.smstext.templates import check_template
from drivers.gsm import SmsEncoding, segment_count
from drivers.gsm.codec import choose_encoding

# Chinese, Latin and Mongolian (᠃ full stop, ᠉ four dots) sentence ends.
_SENTENCE_END = re.compile(r"[。！？；.!?;᠃᠉](?=\s|$)|[。！？；᠃᠉]")


@dataclass(frozen=True, slots=True)
class SmsText:
    """One language's SMS: its text, how it is encoded, its segments and what was cut."""

    language: str
    text: str
    encoding: SmsEncoding
    segments: int
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """What is sent, as the channel reports it: language, text, segments and encoding."""
        return {
            "language": self.language,
            "text": self.text,
            "segments": self.segments,
            "encoding": "UCS-2" if self.encoding is SmsEncoding.UCS2 else "GSM-7",
        }


def _fill(template: str, values: dict[str, str]) -> str:
    filled = template.format_map(values)
    return "\n".join(line.strip() for line in filled.splitlines() if line.strip())


def _sentence_cuts(value: str) -> list[str]:
    """Prefixes of ``value`` that end a sentence, longest first (the whole value excluded)."""
    cuts = [value[: match.end()].rstrip() for match in _SENTENCE_END.finditer(value)]
    return sorted({cut for cut in cuts if cut and cut != value.strip()}, key=len, reverse=True)


def _shorten(value: str, fits: Callable[[str], bool], ellipsis: str) -> str:
    """The longest form of ``value`` that fits: whole sentences, else a cut with an ellipsis."""
    for cut in _sentence_cuts(value):
        if fits(cut):
            return cut
    low, high = 0, len(value) - 1  # characters kept before the ellipsis
    best = ""
    while low <= high:
        middle = (low + high) // 2
        candidate = value[:middle].rstrip() + ellipsis if middle else ""
        if fits(candidate):
            best, low = candidate, middle + 1
        else:
            high = middle - 1
    return best


def _fits_with(fits: Callable[..., bool], key: str, value: str) -> bool:
    return fits(**{key: value})


def render_sms(
    text: MessageText,
    *,
    template: str,
    signature: str,
    max_segments: int,
    count: Callable[[str], int] = segment_count,
) -> SmsText:
    """The SMS of ``text`` within ``max_segments`` (see the module docstring); ``count``
    gives the segments of a text as the carrier sends it (by default as a GSM modem does:
    GSM-7 where it can, else UCS-2)."""
    check_template(template)
    values = {
        "signature": signature,
        "title": text.title,
        "marker": text.marker,
        "headline": text.headline or text.event,
        "event": text.event,
        "description": text.description,
        "instruction": text.instruction,
        "area": text.area_desc,
        "sender": text.sender_name,
        "severity": text.severity,
        "urgency": text.urgency,
    }
    full = _fill(template, values)
    ellipsis = "..." if choose_encoding(full) is SmsEncoding.GSM7 else "…"

    def fits(**changed: str) -> bool:
        return count(_fill(template, values | changed)) <= max_segments

    notes: list[str] = []
    if not fits():
        for key in ("description", "instruction"):
            original = values[key]
            if not original:
                continue
            values[key] = _shorten(original, functools.partial(_fits_with, fits, key), ellipsis)
            notes.append(
                f"{key} shortened from {len(original)} to {len(values[key])} characters"
                f" to fit {max_segments} segments"
            )
            if fits():
                break
    final = _fill(template, values)
    segments = count(final)
    if segments > max_segments:
        notes.append(
            f"signature, marker and headline alone take {segments} segments,"
            f" over the budget of {max_segments}; they are never cut"
        )
    return SmsText(
        language=text.language,
        text=final,
        encoding=choose_encoding(final),
        segments=segments,
        notes=tuple(notes),
    )
