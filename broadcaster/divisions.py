"""China's administrative division codes and the division tree a deployment covers.

A full code has 12 digits (the statistical division code built on GB/T 2260)::

    15 09 21 001 002
    │  │  │  │   └── village (村委会 / 嘎查 / 社区), 3 digits
    │  │  │  └────── township (乡 / 镇 / 苏木 / 街道), 3 digits
    │  │  └───────── county level (县 / 旗 / 区 / 县级市), 2 digits  ┐
    │  └──────────── city level (地级市 / 盟), 2 digits                ├ GB/T 2260, 6 digits
    └─────────────── province level (省 / 自治区 / 直辖市), 2 digits   ┘

Trailing zero parts mark a higher level: ``150900000000`` is the city of Ulanqab,
``150921000000`` the county of Zhuozi. A few cities have townships directly under them with
no county (Dongguan ``441900003000``), so a township's parent is its county, or its city when
the county part is ``00``. CAP alerts from China carry such codes in ``<geocode>``, in 6-, 9- or
12-digit form; ``normalize_code`` pads them all to 12.

``DivisionTree.load`` reads a division list (``config/demo/divisions.json`` is one) and refuses
it, naming every faulty entry, when a code is malformed, appears twice, has a level that does
not match its digits, or names a parent that is missing or is not the code's own parent.

Exceptions::

    DivisionCodeError (BroadcasterError, ValueError)   a code string is malformed
    UnknownDivisionError (BroadcasterError, LookupError)  a well-formed code is not in the tree
    DivisionFileError (ConfigError)                    a division list is invalid
"""

from __future__ import annotations

import json
import math
import numbers
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Literal, get_args

from broadcaster.errors import BroadcasterError, ConfigError

Level = Literal["province", "city", "county", "township", "village"]
LEVELS: tuple[Level, ...] = get_args(Level)
"""Levels from the top down; a division's parent is always of a lower index."""

_PROVINCE_RANGES = ((11, 15), (21, 23), (31, 37), (41, 46), (50, 54), (61, 65), (71, 71), (81, 82))
PROVINCE_CODES = frozenset(
    str(code) for first, last in _PROVINCE_RANGES for code in range(first, last + 1)
)
"""The province-level prefixes of GB/T 2260."""

_DIGITS = re.compile(r"[0-9]+")
_SIGNIFICANT_LENGTH: dict[Level, int] = {
    "province": 2,
    "city": 4,
    "county": 6,
    "township": 9,
    "village": 12,
}


class DivisionCodeError(BroadcasterError, ValueError):
    """An administrative division code is malformed; the message says how."""


class UnknownDivisionError(BroadcasterError, LookupError):
    """A well-formed division code is not in the tree."""


class DivisionFileError(ConfigError):
    """A division list is invalid; ``problems`` names every faulty entry."""

    def __init__(self, source: str, problems: list[str]) -> None:
        shown = problems[:20]
        more = f"\n  … and {len(problems) - 20} more" if len(problems) > 20 else ""
        listing = "".join(f"\n  - {problem}" for problem in shown)
        super().__init__(f"{source}: invalid division list:{listing}{more}")
        self.source = source
        self.problems = problems


def normalize_code(code: str) -> str:
    """Return ``code`` as 12 digits, padding 6- (county) and 9-digit (township) forms.

    Surrounding whitespace is ignored. Raises ``DivisionCodeError`` (a ``ValueError``) for
    anything that is not 6, 9 or 12 ASCII digits or whose parts contradict each other.
    """
    if not isinstance(code, str):
        raise DivisionCodeError(f"division code must be a string of digits, got {code!r}")
    digits = code.strip()
    if not _DIGITS.fullmatch(digits):
        raise DivisionCodeError(f"division code {code!r} must contain only the digits 0-9")
    if len(digits) not in (6, 9, 12):
        raise DivisionCodeError(
            f"division code {code!r} has {len(digits)} digits; expected 6 (county, GB/T 2260), "
            "9 (township) or 12 (village)"
        )
    full = digits.ljust(12, "0")
    province, city, township, village = full[0:2], full[2:4], full[6:9], full[9:12]
    if province not in PROVINCE_CODES:
        raise DivisionCodeError(
            f"division code {code!r} starts with {province!r}, which is no province of GB/T 2260"
        )
    if city == "00" and full[4:] != "0" * 8:
        raise DivisionCodeError(
            f"division code {code!r} has county or township digits but no city part"
        )
    if village != "000" and township == "000":
        raise DivisionCodeError(
            f"division code {code!r} has a village part {village!r} but no township part"
        )
    return full


def code_level(code: str) -> Level:
    """The level the code names: the lowest part that is not all zeros."""
    full = normalize_code(code)
    if full[9:12] != "000":
        return "village"
    if full[6:9] != "000":
        return "township"
    if full[4:6] != "00":
        return "county"
    if full[2:4] != "00":
        return "city"
    return "province"


def code_prefix(code: str) -> str:
    """The significant digits of ``code``: every code under it starts with them.

    ``150921000000`` gives ``150921``; usable as ``column LIKE prefix || '%'``.
    """
    return normalize_code(code)[: _SIGNIFICANT_LENGTH[code_level(code)]]


def covers(area_code: str, target_code: str) -> bool:
    """True if ``target_code`` lies in the area ``area_code`` names, or is that area."""
    return normalize_code(target_code).startswith(code_prefix(area_code))


def parent_code(code: str) -> str | None:
    """The code of the division directly above ``code`` (``None`` for a province).

    Dropping the last significant part does it; for a township directly under a city (county
    part ``00``) that yields the city.
    """
    level = code_level(code)
    if level == "province":
        return None
    above = LEVELS[LEVELS.index(level) - 1]
    return normalize_code(code)[: _SIGNIFICANT_LENGTH[above]].ljust(12, "0")


@dataclass(frozen=True, slots=True)
class Division:
    """One administrative division; ``code`` and ``parent`` are 12-digit codes."""

    code: str
    name: str
    name_mn: str | None
    level: Level
    parent: str | None
    lat: float
    lon: float
    generated: bool = False


_ENTRY_KEYS = frozenset(Division.__dataclass_fields__)
_TOP_KEYS = frozenset({"description", "divisions"})


class _EntryReader:
    """Reads the fields of one JSON entry, recording each problem under the entry's label."""

    def __init__(self, entry: Mapping[str, object], label: str, problems: list[str]) -> None:
        self.entry, self.label, self.problems = entry, label, problems

    def fail(self, message: str) -> None:
        self.problems.append(f"{self.label}: {message}")

    def text(self, key: str, *, required: bool = True) -> str | None:
        value = self.entry.get(key)
        if isinstance(value, str) or (value is None and not required):
            return value
        if key not in self.entry:
            self.fail(f"missing key {key!r}")
        else:
            self.fail(f"{key} must be a string{'' if required else ' or null'}, got {value!r}")
        return None

    def number(self, key: str) -> float | None:
        if key not in self.entry:
            self.fail(f"missing key {key!r}")
            return None
        value = self.entry[key]
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            self.fail(f"{key} must be a number, got {value!r}")
            return None
        return float(value)


def _division_from_entry(entry: object, index: int, problems: list[str]) -> Division | None:
    if not isinstance(entry, dict):
        problems.append(f"divisions[{index}]: must be an object, got {entry!r}")
        return None
    name = entry.get("name")
    reader = _EntryReader(entry, _label(index, entry.get("code"), name), problems)
    before = len(problems)
    for key in sorted(set(entry) - _ENTRY_KEYS):
        reader.fail(f"unknown key {key!r}")
    code, name, level_text = reader.text("code"), reader.text("name"), reader.text("level")
    parent, name_mn = reader.text("parent", required=False), reader.text("name_mn", required=False)
    lat, lon = reader.number("lat"), reader.number("lon")
    generated = entry.get("generated", False)
    if not isinstance(generated, bool):
        reader.fail(f"generated must be true or false, got {generated!r}")
    level = next((level for level in LEVELS if level == level_text), None)
    if level_text is not None and level is None:
        reader.fail(f"level {level_text!r} is not one of {', '.join(LEVELS)}")
    if len(problems) > before or code is None or name is None or level is None:
        return None
    if lat is None or lon is None or not isinstance(generated, bool):
        return None
    return Division(code, name, name_mn, level, parent, lat, lon, generated)


def _label(index: int, code: object, name: object) -> str:
    shown = " ".join(str(part) for part in (code, name) if isinstance(part, str))
    return f"divisions[{index}] ({shown})" if shown else f"divisions[{index}]"


def _checked(division: Division, label: str, problems: list[str]) -> Division | None:
    """``division`` with 12-digit codes after recording what is wrong with it; ``None`` when
    its code is unusable. Other faults keep it in, so its children do not report it missing."""
    try:
        code = normalize_code(division.code)
    except DivisionCodeError as error:
        problems.append(f"{label}: {error}")
        return None
    if code_level(code) != division.level:
        problems.append(
            f"{label}: level {division.level!r} does not match the code, "
            f"which names a {code_level(code)}"
        )
    parent = division.parent
    if parent is not None:
        try:
            parent = normalize_code(parent)
        except DivisionCodeError as error:
            problems.append(f"{label}: parent: {error}")
        else:
            if parent != parent_code(code):
                problems.append(
                    f"{label}: parent {parent} is not the division directly above {code} "
                    f"(expected {parent_code(code)})"
                )
    if not division.name.strip():
        problems.append(f"{label}: name is empty")
    if division.name_mn is not None and not division.name_mn.strip():
        problems.append(f"{label}: name_mn is empty; use null when there is none")
    if not (math.isfinite(division.lat) and -90.0 <= division.lat <= 90.0):
        problems.append(f"{label}: lat {division.lat} is outside -90..90")
    if not (math.isfinite(division.lon) and -180.0 <= division.lon <= 180.0):
        problems.append(f"{label}: lon {division.lon} is outside -180..180")
    return replace(division, code=code, parent=parent)


class DivisionTree:
    """The divisions a deployment covers, from its top division(s) down to villages.

    Every method takes codes in any form ``normalize_code`` accepts and raises
    ``DivisionCodeError`` for a malformed code and ``UnknownDivisionError`` for a code that is
    not in the tree. Lists come in code order. Immutable once built.
    """

    __slots__ = ("_by_code", "_children", "_roots")

    def __init__(self, divisions: Iterable[Division], *, source: str = "division list") -> None:
        """Check ``divisions`` and index them; raises ``DivisionFileError`` naming each fault."""
        problems: list[str] = []
        by_code: dict[str, Division] = {}
        labels: dict[str, str] = {}
        for index, given in enumerate(divisions):
            label = _label(index, given.code, given.name)
            division = _checked(given, label, problems)
            if division is None:
                continue
            if division.code in by_code:
                problems.append(
                    f"{label}: code {division.code} is already used by {labels[division.code]}"
                )
                continue
            by_code[division.code] = division
            labels[division.code] = label
        for code, division in by_code.items():
            parent = division.parent
            if parent == parent_code(code) and parent is not None and parent not in by_code:
                problems.append(f"{labels[code]}: parent {parent} is not in the list")
        if problems:
            raise DivisionFileError(source, problems)
        self._by_code = dict(sorted(by_code.items()))
        self._children: dict[str, list[str]] = {code: [] for code in self._by_code}
        self._roots: list[str] = []
        for code, division in self._by_code.items():
            siblings = self._roots if division.parent is None else self._children[division.parent]
            siblings.append(code)

    @classmethod
    def from_data(cls, data: object, *, source: str = "division list") -> DivisionTree:
        """Build a tree from parsed JSON: ``{"divisions": [entry, ...]}`` (see the README)."""
        if not isinstance(data, dict):
            raise DivisionFileError(source, ["the top level must be an object with 'divisions'"])
        problems = [f"unknown top-level key {key!r}" for key in sorted(set(data) - _TOP_KEYS)]
        entries = data.get("divisions")
        if not isinstance(entries, list):
            problems.append("'divisions' must be a list of entries")
            raise DivisionFileError(source, problems)
        divisions = [_division_from_entry(entry, i, problems) for i, entry in enumerate(entries)]
        if problems:
            raise DivisionFileError(source, problems)
        return cls([division for division in divisions if division is not None], source=source)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> DivisionTree:
        """Read and check a division list from a UTF-8 JSON file."""
        source = os.fspath(path)
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        except OSError as error:
            raise DivisionFileError(source, [f"cannot read the file: {error.strerror}"]) from error
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise DivisionFileError(source, [f"not valid UTF-8 JSON: {error}"]) from error
        return cls.from_data(data, source=source)

    def __len__(self) -> int:
        return len(self._by_code)

    def __iter__(self) -> Iterator[Division]:
        return iter(self._by_code.values())

    def __contains__(self, code: object) -> bool:
        try:
            return isinstance(code, str) and normalize_code(code) in self._by_code
        except DivisionCodeError:
            return False

    def get(self, code: str) -> Division | None:
        """The division with this code, or ``None`` if the tree does not hold it."""
        return self._by_code.get(normalize_code(code))

    def require(self, code: str) -> Division:
        """The division with this code; raises ``UnknownDivisionError`` if absent."""
        division = self.get(code)
        if division is None:
            raise UnknownDivisionError(f"division {normalize_code(code)} is not in the tree")
        return division

    def roots(self) -> list[Division]:
        """The divisions without a parent in the tree (the city, for the demo)."""
        return [self._by_code[code] for code in self._roots]

    def children(self, code: str) -> list[Division]:
        """The divisions directly under ``code``."""
        return [self._by_code[child] for child in self._children[self.require(code).code]]

    def descendants(self, code: str) -> list[Division]:
        """Every division under ``code`` (not ``code`` itself), parents before children."""
        found: list[Division] = []
        stack = list(reversed(self._children[self.require(code).code]))
        while stack:
            division = self._by_code[stack.pop()]
            found.append(division)
            stack.extend(reversed(self._children[division.code]))
        return found

    def ancestors(self, code: str) -> list[Division]:
        """The divisions above ``code``, from the top of the tree down to its parent."""
        found: list[Division] = []
        parent = self.require(code).parent
        while parent is not None:
            division = self._by_code[parent]
            found.append(division)
            parent = division.parent
        return found[::-1]

    def path_names(self, code: str, separator: str = " / ") -> str:
        """Names from the top down to ``code``: ``乌兰察布市 / 卓资县 / … / …村``."""
        chain = [*self.ancestors(code), self.require(code)]
        return separator.join(division.name for division in chain)

    def covered_by(self, area_code: str) -> list[Division]:
        """Every division in the tree that ``area_code`` covers, itself included.

        ``area_code`` need not be in the tree: a province code covers the whole demo city.
        """
        prefix = code_prefix(area_code)
        return [division for code, division in self._by_code.items() if code.startswith(prefix)]
