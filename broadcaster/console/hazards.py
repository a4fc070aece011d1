"""Hazard templates: one TOML file per hazard, four colour levels each, that prefill a warning.

A template names the hazard (``event`` per language), its CAP category and response type, and
for each colour level (``blue``, ``yellow``, ``orange``, ``red``) the urgency, certainty,
description and instruction per language; ``zh-CN`` is required, ``en`` and ``mn`` optional.
Keys are language tags matched by :func:`audio.languages.lookup`, so the Mongolian texts may be
written ``mn-Mong`` (traditional script, what ``mn`` means here); ``review`` notes per language
which texts still need a native speaker's review.
Severity follows the colour as in China's national warning system (PROTOCOLS.md): red →
Extreme, orange → Severe, yellow → Moderate, blue → Minor. The headline is built from the
area, the event and the colour unless a level gives its own (``{area}`` is replaced); in
English and Mongolian it names the colour and the event only.

The shipped templates are in ``config/templates/``; ``[console] templates`` points elsewhere.
A faulty file is refused with a ConfigError naming the file and the key.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audio.languages import lookup
from broadcaster.cap import Category, Certainty, ResponseType, Severity, Urgency
from broadcaster.errors import ConfigError

LEVELS = ("blue", "yellow", "orange", "red")
SEVERITY_OF_LEVEL = {
    "blue": Severity.MINOR,
    "yellow": Severity.MODERATE,
    "orange": Severity.SEVERE,
    "red": Severity.EXTREME,
}
LEVEL_NAMES = {
    "zh-CN": {"blue": "蓝色", "yellow": "黄色", "orange": "橙色", "red": "红色"},
    "en": {"blue": "Blue", "yellow": "Yellow", "orange": "Orange", "red": "Red"},
    "mn": {"blue": "ᠬᠥᠬᠡ", "yellow": "ᠰᠢᠷ᠎ᠠ", "orange": "ᠤᠯᠠᠪᠳᠤᠷ", "red": "ᠤᠯᠠᠭᠠᠨ"},
}
ROMAN_LEVEL = {"blue": "Ⅳ", "yellow": "Ⅲ", "orange": "Ⅱ", "red": "Ⅰ"}
LANGUAGES = ("zh-CN", "en", "mn")


def default_templates_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "config" / "templates"


@dataclass(frozen=True, slots=True)
class LevelText:
    headline: str
    description: str
    instruction: str


@dataclass(frozen=True, slots=True)
class HazardLevel:
    level: str
    severity: Severity
    urgency: Urgency
    certainty: Certainty
    texts: Mapping[str, LevelText]


@dataclass(frozen=True, slots=True)
class HazardTemplate:
    code: str
    event: Mapping[str, str]
    category: Category
    response: ResponseType
    levels: Mapping[str, HazardLevel]
    review: Mapping[str, str] = field(default_factory=dict)

    def prefill(self, level: str, area: str) -> dict[str, Any]:
        """The form values for ``level`` and an area name: CAP fields and texts per language."""
        chosen = self.levels[level]
        texts = {}
        for language, text in chosen.texts.items():
            headline = text.headline or _default_headline(
                language, self.event.get(language, self.event["zh-CN"]), level
            )
            texts[language] = {
                "event": self.event.get(language, self.event["zh-CN"]),
                "headline": headline.replace("{area}", area).strip(),
                "description": text.description,
                "instruction": text.instruction,
            }
        return {
            "hazard": self.code,
            "level": level,
            "category": str(self.category),
            "response": str(self.response),
            "severity": str(chosen.severity),
            "urgency": str(chosen.urgency),
            "certainty": str(chosen.certainty),
            "texts": texts,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "event": dict(self.event),
            "levels": {name: self.prefill(name, "{area}") for name in self.levels},
        }


def _default_headline(language: str, event: str, level: str) -> str:
    colour = LEVEL_NAMES.get(language, LEVEL_NAMES["en"])[level]
    if language == "zh-CN":
        return f"{{area}}{event}{colour}预警"
    if language == "mn":
        return f"{event} {colour} ᠤᠷᠢᠳᠴᠢᠯᠠᠨ ᠰᠡᠷᠡᠮᠵᠢᠯᠡᠭᠦᠯᠦᠯ"
    # Other languages name no place: division names are Chinese, and RDS and many phones
    # show only Latin text.
    return f"{colour} {event[:1].lower()}{event[1:]} warning"


class _Reader:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.source}: {key}: {message}")

    def text(self, table: Mapping[str, Any], key: str, where: str, required: bool = True) -> str:
        value = table.get(key, "")
        if not isinstance(value, str):
            raise self.fail(f"{where}.{key}", "must be text")
        if required and not value.strip():
            raise self.fail(f"{where}.{key}", "required text is missing")
        return value.strip()

    def enum(self, enum: Any, value: object, key: str) -> Any:
        try:
            return enum(value)
        except ValueError:
            known = ", ".join(str(v) for v in enum)
            raise self.fail(key, f"{value!r} is not one of {known}") from None


def parse_template(data: Mapping[str, Any], source: str) -> HazardTemplate:
    reader = _Reader(source)
    code = reader.text(data, "code", "template")
    event = data.get("event")
    if not isinstance(event, Mapping) or not isinstance(event.get("zh-CN"), str):
        raise reader.fail("event", 'needs at least zh-CN = "…"')
    levels_data = data.get("levels")
    if not isinstance(levels_data, Mapping) or set(levels_data) != set(LEVELS):
        raise reader.fail("levels", f"needs exactly the tables {', '.join(LEVELS)}")
    levels = {}
    for name in LEVELS:
        table = levels_data[name]
        where = f"levels.{name}"
        texts = {}
        for language in LANGUAGES:
            given = table.get(lookup((language,), table) or language)
            if given is None and language != "zh-CN":
                continue
            if not isinstance(given, Mapping):
                raise reader.fail(f"{where}.{language}", "must be a table")
            texts[language] = LevelText(
                headline=reader.text(given, "headline", f"{where}.{language}", required=False),
                description=reader.text(given, "description", f"{where}.{language}"),
                instruction=reader.text(given, "instruction", f"{where}.{language}"),
            )
        levels[name] = HazardLevel(
            level=name,
            severity=SEVERITY_OF_LEVEL[name],
            urgency=reader.enum(Urgency, table.get("urgency", "Expected"), f"{where}.urgency"),
            certainty=reader.enum(
                Certainty, table.get("certainty", "Likely"), f"{where}.certainty"
            ),
            texts=texts,
        )
    review = data.get("review", {})
    if not isinstance(review, Mapping) or not all(isinstance(v, str) for v in review.values()):
        raise reader.fail("review", 'must be a table of texts, e.g. review = { mn-Mong = "…" }')
    return HazardTemplate(
        code=code,
        event={
            language: str(event[key])
            for language in LANGUAGES
            if (key := lookup((language,), event)) is not None
        },
        review={str(k): v for k, v in review.items()},
        category=reader.enum(Category, data.get("category", "Met"), "category"),
        response=reader.enum(ResponseType, data.get("response", "Prepare"), "response"),
        levels=levels,
    )


def load_templates(directory: Path) -> dict[str, HazardTemplate]:
    """Every ``*.toml`` template in ``directory``, by code, in file-name order."""
    if not directory.is_dir():
        raise ConfigError(f"hazard templates folder {directory} does not exist")
    templates: dict[str, HazardTemplate] = {}
    for path in sorted(directory.glob("*.toml")):
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read the template: {exc}") from None
        template = parse_template(data, str(path))
        if template.code in templates:
            raise ConfigError(f"{path}: code {template.code!r} is used by another template")
        templates[template.code] = template
    if not templates:
        raise ConfigError(f"no hazard templates (*.toml) in {directory}")
    return templates
