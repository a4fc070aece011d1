"""Language tags matched the way BCP 47 (RFC 5646) and RFC 4647 describe, for every channel and
the audio chain: one place that decides whether ``zh-CN`` text suits a ``zh-Hans`` listener or
an ``mn`` template speaks ``mn-Mong``.

Tags are compared by language, script and region after three normalisations:

- case and separators (RFC 5646 section 2.1.1: ``ZH_cn`` is ``zh-CN``) and the macrolanguage
  aliases used for Chinese (``cmn`` → ``zh``, ``khk``/``mvf`` → ``mn``);
- the script a tag implies when it names none (``SCRIPT_DEFAULTS``, in the spirit of CLDR's
  likely subtags, RFC 5646 section 4.1): Chinese of mainland China and Singapore is Simplified
  (``zh``, ``zh-CN`` ≈ ``zh-Hans``), of Taiwan, Hong Kong and Macao Traditional; Mongolian is
  the traditional script (``mn`` ≈ ``mn-Mong``) as written in Inner Mongolia, except in the
  State of Mongolia (``mn-MN`` ≈ ``mn-Cyrl``);
- extensions and private-use subtags are ignored.

Two tags *match* when language and script agree and their regions do not contradict (one of
them has none, or both the same). ``filter_tags`` is RFC 4647 section 3.3 filtering (every
available tag a range matches, ranges in priority order); ``lookup`` is section 3.4 lookup (the
single best tag: an exact match before a compatible one, earlier ranges first). A range ``*``
matches everything.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

#: Primary languages known by another code: ISO 639-3 individual languages of a macrolanguage.
ALIASES: dict[str, str] = {"cmn": "zh", "khk": "mn", "mvf": "mn"}

#: The script a tag implies: by (language, region), then by language alone.
SCRIPT_DEFAULTS: dict[tuple[str, str], str] = {
    ("zh", ""): "Hans",
    ("zh", "CN"): "Hans",
    ("zh", "SG"): "Hans",
    ("zh", "TW"): "Hant",
    ("zh", "HK"): "Hant",
    ("zh", "MO"): "Hant",
    ("mn", ""): "Mong",
    ("mn", "CN"): "Mong",
    ("mn", "MN"): "Cyrl",
}

_SUBTAG = re.compile(r"^[A-Za-z0-9]{1,8}$")


class LanguageTagError(ValueError):
    """A string that is not a well-formed language tag."""


@dataclass(frozen=True, slots=True)
class LanguageTag:
    """The parts of a tag that matter for matching, normalised."""

    language: str
    script: str
    region: str

    def __str__(self) -> str:
        return "-".join(p for p in (self.language, self.script, self.region) if p)

    @property
    def base(self) -> str:
        """Language and script: ``mn-Mong``, ``zh-Hans``, ``en`` (no default script)."""
        return "-".join(p for p in (self.language, self.script) if p)


@functools.lru_cache(maxsize=4096)
def parse(tag: str) -> LanguageTag:
    """Normalise ``tag`` (case, aliases, implied script); raises LanguageTagError.

    Cached: every delivery of an alert asks about the same few tags."""
    parts = tag.strip().replace("_", "-").split("-")
    if not parts[0] or not all(_SUBTAG.fullmatch(p) for p in parts):
        raise LanguageTagError(f"{tag!r} is not a language tag")
    language = parts[0].lower()
    if not language.isalpha() or not 2 <= len(language) <= 3:
        raise LanguageTagError(f"{tag!r} is not a language tag: {parts[0]!r} is not a language")
    language = ALIASES.get(language, language)
    script = region = ""
    for part in parts[1:]:
        if len(part) == 1:
            break  # an extension or private use: not compared
        if not script and not region and len(part) == 4 and part.isalpha():
            script = part.title()
        elif not region and (
            (len(part) == 2 and part.isalpha()) or (len(part) == 3 and part.isdigit())
        ):
            region = part.upper()
    if not script:
        script = SCRIPT_DEFAULTS.get((language, region)) or SCRIPT_DEFAULTS.get((language, ""), "")
    return LanguageTag(language, script, region)


def canonical(tag: str) -> str:
    """``tag`` normalised with its implied script: ``mn`` → ``mn-Mong``, ``zh-CN`` →
    ``zh-Hans-CN``; a malformed tag is returned as given, so it matches only itself."""
    try:
        return str(parse(tag))
    except LanguageTagError:
        return tag


def matches(language_range: str, tag: str) -> bool:
    """Whether text or speech in ``tag`` suits someone asking for ``language_range``."""
    if language_range.strip() == "*":
        return True
    try:
        wanted, offered = parse(language_range), parse(tag)
    except LanguageTagError:
        return language_range.strip().lower() == tag.strip().lower()
    if (wanted.language, wanted.script) != (offered.language, offered.script):
        return False
    return not wanted.region or not offered.region or wanted.region == offered.region


def filter_tags(ranges: Sequence[str], available: Iterable[T], key: Callable[[T], str]) -> list[T]:
    """Every item of ``available`` whose tag (``key(item)``) a range matches, by the order of
    ``ranges`` and then of ``available``; each item once."""
    items = list(available)
    chosen: dict[int, T] = {}
    for language_range in ranges:
        for index, item in enumerate(items):
            if index not in chosen and matches(language_range, key(item)):
                chosen[index] = item
    return list(chosen.values())


def lookup(ranges: Sequence[str], available: Iterable[str]) -> str | None:
    """The one available tag that best serves ``ranges`` (earlier ranges first, an exact match
    before a compatible one), or None."""
    tags = list(available)
    for language_range in ranges:
        exact = canonical(language_range)
        for tag in tags:
            if canonical(tag) == exact:
                return tag
        for tag in tags:
            if matches(language_range, tag):
                return tag
    return None
