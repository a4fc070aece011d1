"""What a warning says: plain fields in, a normalised speech script out.

``SpeechText`` holds the plain fields of one CAP ``<info>`` block (language, status, event,
headline, description, instruction, sender name, level); the core fills it, this package never
sees CAP. ``build_script`` runs the per-language template and the text normaliser and returns a
``SpeechScript``: the body that is repeated, the closing phrase and, for every status other than
Actual, the spoken test/exercise marker spoken at the start and at the end. The marker is decided
here from the status alone; no option turns it off.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from audio.errors import SpeechTextError
from audio.languages import lookup
from audio.textnorm import normalize_for_speech


class Status(StrEnum):
    """CAP ``<status>`` values."""

    ACTUAL = "Actual"
    EXERCISE = "Exercise"
    SYSTEM = "System"
    TEST = "Test"
    DRAFT = "Draft"


class Level(StrEnum):
    """The four warning colours of the national system, plus none."""

    RED = "red"
    ORANGE = "orange"
    YELLOW = "yellow"
    BLUE = "blue"
    NONE = "none"


class MarkerKind(StrEnum):
    """Which spoken marker a non-Actual message carries."""

    EXERCISE = "exercise"
    TEST = "test"


@dataclass(frozen=True)
class LanguageTemplate:
    """Per-language wording: intro when no headline (with and without a sender), section
    joins, markers, closing."""

    intro: str
    intro_anonymous: str
    level_words: dict[Level, str]
    instruction_prefix: str
    sentence_end: str
    markers: dict[MarkerKind, str]
    closing: str


_ZH = LanguageTemplate(
    intro="{sender}发布{event}{level}预警",
    intro_anonymous="{event}{level}预警",
    level_words={
        Level.RED: "红色",
        Level.ORANGE: "橙色",
        Level.YELLOW: "黄色",
        Level.BLUE: "蓝色",
        Level.NONE: "",
    },
    instruction_prefix="防御指引：",
    sentence_end="。",
    markers={MarkerKind.EXERCISE: "这是一次演练", MarkerKind.TEST: "这是一次测试"},
    closing="播报完毕",
)

TEMPLATES: dict[str, LanguageTemplate] = {
    "zh": _ZH,
    # Spoken alike: the words of the template are heard, not read.
    "zh-Hant": _ZH,
    # Traditional Mongolian script, as written in Inner Mongolia. Not yet reviewed by a native
    # speaker: the wording is a careful draft (see config/templates/README.md).
    "mn-Mong": LanguageTemplate(
        intro="{sender} {event} {level}ᠤᠷᠢᠳᠴᠢᠯᠠᠨ ᠰᠡᠷᠡᠮᠵᠢᠯᠡᠭᠦᠯᠦᠯ ᠨᠡᠢᠲᠡᠯᠡᠪᠡ",
        intro_anonymous="{event} {level}ᠤᠷᠢᠳᠴᠢᠯᠠᠨ ᠰᠡᠷᠡᠮᠵᠢᠯᠡᠭᠦᠯᠦᠯ",
        level_words={
            Level.RED: "ᠤᠯᠠᠭᠠᠨ ",
            Level.ORANGE: "ᠤᠯᠠᠪᠳᠤᠷ ",
            Level.YELLOW: "ᠰᠢᠷ᠎ᠠ ",
            Level.BLUE: "ᠬᠥᠬᠡ ",
            Level.NONE: "",
        },
        instruction_prefix="ᠬᠠᠮᠠᠭᠠᠯᠠᠬᠤ ᠵᠢᠭᠠᠪᠤᠷᠢ᠄ ",
        sentence_end="᠃ ",
        markers={
            MarkerKind.EXERCISE: "ᠡᠨᠡ ᠪᠣᠯ ᠳᠠᠳᠤᠯᠭ᠎ᠠ",
            MarkerKind.TEST: "ᠡᠨᠡ ᠪᠣᠯ ᠲᠤᠷᠰᠢᠯᠲᠠ",
        },
        closing="ᠨᠡᠪᠲᠡᠷᠡᠭᠦᠯᠦᠯ ᠳᠠᠭᠤᠰᠪᠠ",
    ),
    "en": LanguageTemplate(
        intro="{event} warning{level}, issued by {sender}",
        intro_anonymous="{event} warning{level}",
        level_words={
            Level.RED: ", level red",
            Level.ORANGE: ", level orange",
            Level.YELLOW: ", level yellow",
            Level.BLUE: ", level blue",
            Level.NONE: "",
        },
        instruction_prefix="Instructions: ",
        sentence_end=". ",
        markers={MarkerKind.EXERCISE: "This is an exercise", MarkerKind.TEST: "This is a test"},
        closing="End of message",
    ),
}

_TRAILING_PUNCTUATION = " \t\n。.！!；;，,：:᠃᠂"


@dataclass(frozen=True)
class SpeechText:
    """The plain fields of one warning in one language, as the core hands them over."""

    language: str
    status: Status | str
    event: str
    headline: str = ""
    description: str = ""
    instruction: str = ""
    sender_name: str = ""
    level: Level | str = Level.NONE


@dataclass(frozen=True)
class SpeechScript:
    """The normalised sentences to speak, in the order the assembly uses them."""

    language: str
    body: str
    closing: str
    marker: str | None
    marker_kind: MarkerKind | None


def template_for(language: str) -> LanguageTemplate:
    """The template for a BCP 47 tag (``zh-CN`` → ``zh``, :func:`audio.languages.lookup`);
    unknown languages are an error."""
    key = lookup((language,), TEMPLATES)
    if key is None:
        known = ", ".join(sorted(TEMPLATES))
        raise SpeechTextError(f"no speech template for language {language!r} ({known})")
    return TEMPLATES[key]


def marker_kind(status: Status | str) -> MarkerKind | None:
    """The marker a status requires. Only Actual goes without; unknown statuses count as Test."""
    try:
        parsed = Status(status)
    except ValueError:
        return MarkerKind.TEST
    if parsed is Status.ACTUAL:
        return None
    if parsed is Status.EXERCISE:
        return MarkerKind.EXERCISE
    return MarkerKind.TEST


_LEVEL_ALIASES = {
    "红色": Level.RED,
    "橙色": Level.ORANGE,
    "黄色": Level.YELLOW,
    "蓝色": Level.BLUE,
    "extreme": Level.RED,
    "severe": Level.ORANGE,
    "moderate": Level.YELLOW,
    "minor": Level.BLUE,
    "unknown": Level.NONE,
    "": Level.NONE,
}


def parse_level(value: Level | str) -> Level:
    """A warning level from its colour (``red``, ``红色``) or CAP severity (``Extreme``)."""
    key = str(value).strip().lower()
    try:
        return _LEVEL_ALIASES.get(key) or Level(key)
    except ValueError:
        raise SpeechTextError(f"unknown warning level {value!r}") from None


def build_script(text: SpeechText) -> SpeechScript:
    """Fill the language template from ``text`` and normalise it for speech."""
    template = template_for(text.language)
    level = parse_level(text.level)
    sender, event = _clean(text.sender_name), _clean(text.event)
    pattern = template.intro if sender else template.intro_anonymous
    generated = pattern.format(sender=sender, event=event, level=template.level_words[level])
    intro = _clean(text.headline) or (generated if event else "")
    parts = [intro, _clean(text.description)]
    instruction = _clean(text.instruction)
    if instruction:
        parts.append(template.instruction_prefix + instruction)
    sentences = [_collapse_spaces(p) for p in parts if p.strip()]
    body_raw = template.sentence_end.join(sentences) + template.sentence_end.strip()
    body = normalize_for_speech(body_raw, text.language)
    if not body.strip(_TRAILING_PUNCTUATION):
        raise SpeechTextError("nothing to speak: event, headline and description are all empty")
    kind = marker_kind(text.status)
    return SpeechScript(
        language=text.language,
        body=body,
        closing=template.closing,
        marker=template.markers[kind] if kind else None,
        marker_kind=kind,
    )


def _clean(value: str) -> str:
    return value.strip().rstrip(_TRAILING_PUNCTUATION)


def _collapse_spaces(value: str) -> str:
    return " ".join(value.split())
