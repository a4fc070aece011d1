"""Subscriber groups: the recipients of the ``sms`` channel, from the registry or from CSV.

A registry target of the channel is a group (village information officers of one township, the
officials of a county) whose ``address`` is a comma-separated list of numbers. The planner
selects groups by the alert's area like any target; the channel then plans one delivery per
number, numbered by ``part`` (1 = the first entry of ``address``; the outbox keeps the group as
it was when the alert was planned, so the part always points at the same number).

CSV import (``python -m channels.sms import FILE.csv`` or ``groups_csv`` in the channel config):
UTF-8, a header row, one member per row::

    group,name,division,number
    zhuozi-officials,卓资县县级干部,150921000000,+8613800471001

Optional columns: ``lat``, ``lon``, ``languages`` (``zh-CN;mn``). Every problem names its line
(bad number, missing group, a group whose name or division differs between lines); bad rows are
not imported, and a group left without any number is an error of its own.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from broadcaster.delivery import Target
from broadcaster.divisions import normalize_code
from broadcaster.errors import ConfigError
from drivers.gsm import GsmInvalidNumberError, normalize_number

REQUIRED_COLUMNS = ("group", "name", "division", "number")
OPTIONAL_COLUMNS = ("lat", "lon", "languages")


class SmsImportError(ConfigError):
    """A subscriber CSV could not be imported; ``problems`` lists each, with its line."""

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__("\n  ".join([message, *problems]))
        self.problems = list(problems)


@dataclass(slots=True)
class _Group:
    line: int
    name: str
    division: str
    numbers: list[str] = field(default_factory=list)
    lat: float | None = None
    lon: float | None = None
    languages: tuple[str, ...] = ("zh-CN",)


@dataclass(frozen=True, slots=True)
class GroupImport:
    """What a CSV import produced: the groups as targets and the rows it refused."""

    targets: tuple[Target, ...]
    problems: tuple[str, ...]
    members: int


def _coordinate(value: str, line: int, column: str, problems: list[str]) -> float | None:
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        problems.append(f"line {line}: {column} {value!r} is not a number")
        return None


def _read_rows(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            rows = [(reader.line_num, dict(row)) for row in reader]
            columns = list(reader.fieldnames or ())
    except OSError as exc:
        raise SmsImportError(f"cannot read {path}: {exc.strerror}") from exc
    except (UnicodeDecodeError, csv.Error) as exc:
        raise SmsImportError(f"{path} is not a UTF-8 CSV file: {exc}") from exc
    return columns, rows


def import_groups(path: Path, channel: str = "sms") -> GroupImport:
    """Read subscriber groups from a CSV file (see the module docstring).

    Raises SmsImportError if the file cannot be read, lacks a column, or yields no group at
    all; otherwise returns the groups and the problems of the rows left out.
    """
    columns, rows = _read_rows(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise SmsImportError(f"{path}: missing columns {missing} (need {list(REQUIRED_COLUMNS)})")
    problems: list[str] = []
    groups: dict[str, _Group] = {}
    for line, row in rows:
        values = {
            key: (row.get(key) or "").strip() for key in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)
        }
        group_id = values["group"]
        if not group_id:
            problems.append(f"line {line}: no group")
            continue
        if values["division"]:
            try:
                values["division"] = normalize_code(values["division"])
            except ValueError as exc:
                problems.append(f"line {line}: {exc}")
                continue
        group = groups.setdefault(
            group_id, _Group(line, values["name"] or group_id, values["division"])
        )
        if values["division"] and values["division"] != group.division:
            problems.append(
                f"line {line}: group {group_id} has division {group.division!r}"
                f" on line {group.line}, not {values['division']!r}"
            )
            continue
        try:
            number = normalize_number(values["number"])
        except GsmInvalidNumberError as exc:
            problems.append(f"line {line}: {exc}")
            continue
        if number in group.numbers:
            problems.append(f"line {line}: {number} is already in group {group_id}")
            continue
        group.numbers.append(number)
        group.lat = group.lat or _coordinate(values["lat"], line, "lat", problems)
        group.lon = group.lon or _coordinate(values["lon"], line, "lon", problems)
        if values["languages"]:
            group.languages = tuple(v.strip() for v in values["languages"].split(";") if v.strip())
    for group_id, group in groups.items():
        if not group.numbers:
            problems.append(f"group {group_id} (line {group.line}): no valid number, not imported")
    targets = tuple(
        _target(group_id, group, channel) for group_id, group in groups.items() if group.numbers
    )
    if not targets:
        raise SmsImportError(f"{path}: no group with a valid number", problems)
    return GroupImport(targets, tuple(problems), sum(len(t.address.split(",")) for t in targets))


def _target(group_id: str, group: _Group, channel: str) -> Target:
    return Target(
        id=group_id,
        channel=channel,
        name=group.name,
        address=",".join(group.numbers),
        division=group.division or None,
        lat=group.lat,
        lon=group.lon,
        languages=group.languages,
    )


def registry_entries(targets: Iterable[Target]) -> list[dict[str, Any]]:
    """Targets in the registry file's JSON form (``config/demo/targets.json``)."""
    return [
        {key: value for key, value in target.to_json().items() if value not in (None, {})}
        for target in targets
    ]


def read_ledger(path: Path) -> list[str]:
    """The group ids a CSV registered at the last start (empty if unknown)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [str(item) for item in data] if isinstance(data, list) else []


def write_ledger(path: Path, ids: list[str]) -> None:
    """Remember the group ids the CSV registered, to drop those it no longer has."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(ids, ensure_ascii=False), encoding="utf-8")
