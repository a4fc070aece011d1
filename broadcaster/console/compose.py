"""The compose form: officer's fields in, a CAP 1.2 alert out, with every problem named by field.

Form fields (the same for preview and submit):

- ``hazard``, ``level`` (blue/yellow/orange/red): the template chosen; the colour and the Ⅰ–Ⅳ
  level go into ``<parameter>``s (预警颜色, 预警级别);
- ``status`` (Actual/Exercise/Test), ``category``, ``response``, ``severity``, ``urgency``,
  ``certainty``;
- ``lang`` (repeated: ``en``, ``mn``; ``zh-CN`` is always there) and per language
  ``<lang>.event``, ``<lang>.headline``, ``<lang>.description``, ``<lang>.instruction``;
- ``division`` (repeated 12-digit codes from the administrative tree) and/or ``polygon``
  (``lat,lon lat,lon …`` drawn on the map, closed here if the officer did not close it; at
  most :data:`MAX_POLYGON_POINTS` pairs), named in ``<areaDesc>`` after the counties it
  covers (:mod:`broadcaster.areanames`); a headline still holding the templates' ``{area}``
  (a drawn area that covers no county) is a problem: the officer types the area;
- ``channel`` (repeated), ``effective`` and ``expires`` (``YYYY-MM-DDTHH:MM`` local time of
  the browser, whose UTC offset comes in ``tz_offset``, minutes east of UTC, at most 14 hours);
- ``update_of``: the store id of the alert this one updates (an Update with references);
- ``<lang>.recording``: the store URI of the officer's recording of that language
  (:mod:`broadcaster.console.recordings`), carried as the ``<info>``'s ``<resource>``.

Problems come back as CAP :class:`~broadcaster.cap.Problem` values whose ``path`` is the form
field (``zh-CN.headline``, ``division``, ``expires``) where one is known, so the page shows each
message beside its field; the core's own messages are used for CAP rules (strict validation,
as for any alert this system writes).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from broadcaster.areanames import drawn_area_name
from broadcaster.cap import (
    Alert,
    Area,
    Category,
    Certainty,
    Info,
    MsgType,
    NamedValue,
    Polygon,
    Problem,
    Reference,
    Resource,
    ResponseType,
    Scope,
    Severity,
    Status,
    Urgency,
    validate_alert,
)
from broadcaster.console import catalogue
from broadcaster.console.hazards import LEVEL_NAMES, LEVELS, ROMAN_LEVEL
from broadcaster.divisions import DivisionCodeError, DivisionTree, normalize_code

OPTIONAL_LANGUAGES = ("en", "mn")
AREA_PLACEHOLDER = "{area}"
"""What the templates' headlines hold until the area has a name."""
TEXT_FIELDS = ("event", "headline", "description", "instruction")
STATUSES = (Status.ACTUAL, Status.EXERCISE, Status.TEST)
DIVISION_GEOCODE = "CPEAS Geographic Code"
MAX_POLYGON_POINTS = 1000
"""The most ``lat,lon`` pairs a drawn polygon may have (a county's outline needs far fewer)."""
MAX_UTC_OFFSET_MINUTES = 14 * 60
"""Local time is never further from UTC than this (UTC-12 to UTC+14)."""
_INFO_PATH = re.compile(r"^/alert/info\[(\d+)\]/(\w+)")
_FIELD_OF_ELEMENT = {
    "event": "event",
    "headline": "headline",
    "description": "description",
    "instruction": "instruction",
}


class FormValues:
    """Read access to a submitted form (an aiohttp ``MultiDictProxy`` or a plain mapping)."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data

    def get(self, name: str, default: str = "") -> str:
        value = self.data.get(name, default)
        return value.strip() if isinstance(value, str) else default

    def all(self, name: str) -> list[str]:
        getall = getattr(self.data, "getall", None)
        values = getall(name, []) if getall else self.data.get(name, [])
        if isinstance(values, str):
            values = [values]
        return [v.strip() for v in values if isinstance(v, str) and v.strip()]


@dataclass
class Draft:
    """A parsed compose form: what the alert will be, before it becomes CAP."""

    status: Status = Status.ACTUAL
    level: str = ""
    category: Category = Category.MET
    response: ResponseType = ResponseType.PREPARE
    severity: Severity = Severity.UNKNOWN
    urgency: Urgency = Urgency.UNKNOWN
    certainty: Certainty = Certainty.UNKNOWN
    languages: list[str] = field(default_factory=lambda: ["zh-CN"])
    texts: dict[str, dict[str, str]] = field(default_factory=dict)
    divisions: list[str] = field(default_factory=list)
    polygon: list[tuple[float, float]] = field(default_factory=list)
    channels: list[str] = field(default_factory=list)
    effective: datetime | None = None
    expires: datetime | None = None
    update_of: str = ""
    recordings: dict[str, str] = field(default_factory=dict)
    """The store URI of each language's recording, as the form gave it."""
    resources: dict[str, Resource] = field(default_factory=dict)
    """The ``<resource>`` of each language's recording, once found in the store."""
    problems: list[Problem] = field(default_factory=list)
    chinese: dict[tuple[str, str], str] = field(default_factory=dict)
    """The Chinese wording of each problem, by (path, English message)."""

    def problem(self, path: str, rule: str, key: str, **values: Any) -> None:
        """Record a problem worded by the catalogue's message ``key``."""
        zh, en = catalogue.message(key, **values)
        self.problems.append(Problem(path, rule, en))
        self.chinese[(path, en)] = zh


def _enum(draft: Draft, form: FormValues, name: str, enum: Any, default: Any) -> Any:
    value = form.get(name)
    if not value:
        return default
    try:
        return enum(value)
    except ValueError:
        draft.problem(name, "enumeration", "enum.invalid", value=value, name=name)
        return default


def _utc_offset(draft: Draft, text: str) -> timezone:
    """The browser's UTC offset (``tz_offset``, minutes east; UTC+8 when not sent)."""
    minutes: int | None
    try:
        minutes = int(text or "480")
    except ValueError:
        minutes = None
    if minutes is None or abs(minutes) > MAX_UTC_OFFSET_MINUTES:
        draft.problem("tz_offset", "time", "tz_offset.invalid", text=text)
        return timezone(timedelta(hours=8))
    return timezone(timedelta(minutes=minutes))


def _local_time(draft: Draft, text: str, name: str, offset: timezone) -> datetime | None:
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        draft.problem(name, "time", "time.invalid", text=text)
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=offset)
    return parsed.replace(microsecond=0)


def polygon_of(draft: Draft, text: str) -> list[tuple[float, float]]:
    pairs = text.split()
    if len(pairs) > MAX_POLYGON_POINTS:
        draft.problem("polygon", "polygon", "polygon.points", limit=MAX_POLYGON_POINTS)
        return []
    points: list[tuple[float, float]] = []
    for pair in pairs:
        try:
            lat_text, lon_text = pair.split(",")
            points.append((round(float(lat_text), 5), round(float(lon_text), 5)))
        except ValueError:
            draft.problem("polygon", "polygon", "polygon.pair", pair=pair)
            return []
    if points and points[0] != points[-1]:
        points.append(points[0])
    if points and len(points) < 4:
        draft.problem("polygon", "polygon", "polygon.corners")
        return []
    return points


def parse_form(data: Mapping[str, Any], *, now: datetime, divisions: DivisionTree | None) -> Draft:
    """Read the compose form; form-level problems are collected in ``draft.problems``."""
    form = FormValues(data)
    draft = Draft()
    draft.status = _enum(draft, form, "status", Status, Status.ACTUAL)
    if draft.status not in STATUSES:
        draft.problem("status", "enumeration", "status.console")
    draft.category = _enum(draft, form, "category", Category, Category.MET)
    draft.response = _enum(draft, form, "response", ResponseType, ResponseType.PREPARE)
    draft.severity = _enum(draft, form, "severity", Severity, Severity.UNKNOWN)
    draft.urgency = _enum(draft, form, "urgency", Urgency, Urgency.UNKNOWN)
    draft.certainty = _enum(draft, form, "certainty", Certainty, Certainty.UNKNOWN)
    level = form.get("level")
    draft.level = level if level in LEVELS else ""
    draft.languages = ["zh-CN"] + [lang for lang in OPTIONAL_LANGUAGES if lang in form.all("lang")]
    for language in draft.languages:
        draft.texts[language] = {name: form.get(f"{language}.{name}") for name in TEXT_FIELDS}
        for name in ("event", "headline"):
            if not draft.texts[language][name]:
                draft.problem(f"{language}.{name}", "required", f"required.{name}")
        if AREA_PLACEHOLDER in draft.texts[language]["headline"]:
            draft.problem(f"{language}.headline", "area", "area.unnamed")
        recording = form.get(f"{language}.recording")
        if recording:
            draft.recordings[language] = recording
    for code in form.all("division"):
        try:
            normal = normalize_code(code)
        except DivisionCodeError as exc:
            draft.problem("division", "division", "division.invalid", detail=str(exc))
            continue
        if divisions is not None and normal not in divisions:
            draft.problem("division", "division", "division.unknown", code=normal)
            continue
        draft.divisions.append(normal)
    draft.polygon = polygon_of(draft, form.get("polygon"))
    if not draft.divisions and not draft.polygon:
        draft.problem("division", "area", "area.none")
    draft.channels = form.all("channel")
    if not draft.channels:
        draft.problem("channel", "required", "required.channel")
    offset = _utc_offset(draft, form.get("tz_offset"))
    draft.effective = _local_time(draft, form.get("effective"), "effective", offset)
    draft.expires = _local_time(draft, form.get("expires"), "expires", offset)
    if draft.expires is None and not any(p.path == "expires" for p in draft.problems):
        draft.problem("expires", "required", "required.expires")
    elif draft.expires is not None and draft.expires <= now:
        # An expiry before the effective time is the core's rule, reported with the very
        # message the API gives (see field_problems).
        draft.problem("expires", "expires", "expires.past")
    draft.update_of = form.get("update_of")
    return draft


def area_description(draft: Draft, divisions: DivisionTree | None) -> str:
    names = []
    for code in draft.divisions:
        found = divisions.get(code) if divisions is not None else None
        names.append(found.name if found else code)
    if draft.polygon and divisions is not None:
        drawn = drawn_area_name(divisions, draft.polygon)
        if drawn:
            names.append(drawn)
    return "、".join(names)


def new_identifier(now: datetime) -> str:
    return f"console-{now:%Y%m%d%H%M%S}-{secrets.token_hex(3)}"


def build_alert(
    draft: Draft,
    *,
    sender: str,
    sender_name: str,
    divisions: DivisionTree | None,
    now: datetime,
    identifier: str,
    updates: Alert | None = None,
) -> Alert:
    """The CAP alert of a draft (``updates``: the alert an Update replaces)."""
    area = Area(
        area_desc=area_description(draft, divisions) or "—",
        geocodes=[NamedValue(DIVISION_GEOCODE, code) for code in draft.divisions],
        polygons=[Polygon(tuple(draft.polygon))] if draft.polygon else [],
    )
    parameters = []
    if draft.level:
        parameters = [
            NamedValue("预警颜色", LEVEL_NAMES["zh-CN"][draft.level]),
            NamedValue("预警级别", f"{ROMAN_LEVEL[draft.level]}级"),
        ]
    infos = []
    for language in draft.languages:
        text = draft.texts[language]
        infos.append(
            Info(
                language=language,
                categories=[draft.category],
                event=text["event"],
                response_types=[draft.response],
                urgency=draft.urgency,
                severity=draft.severity,
                certainty=draft.certainty,
                effective=draft.effective,
                expires=draft.expires,
                sender_name=sender_name or None,
                headline=text["headline"] or None,
                description=text["description"] or None,
                instruction=text["instruction"] or None,
                parameters=list(parameters),
                resources=[draft.resources[language]] if language in draft.resources else [],
                areas=[area],
            )
        )
    references: list[Reference] = []
    if updates is not None:
        references = [*updates.references, updates.reference]
    return Alert(
        identifier=identifier,
        sender=sender,
        sent=now.astimezone(UTC).replace(microsecond=0),
        status=draft.status,
        msg_type=MsgType.UPDATE if updates is not None else MsgType.ALERT,
        scope=Scope.PUBLIC,
        references=references,
        incidents=updates.incidents if updates is not None else None,
        infos=infos,
    )


def field_problems(alert: Alert, draft: Draft) -> list[Problem]:
    """The core's strict CAP problems of ``alert``, with paths mapped to form fields."""
    mapped = []
    for problem in validate_alert(alert):
        path = problem.path
        match = _INFO_PATH.match(path)
        if match:
            index, element = int(match.group(1)) - 1, match.group(2)
            language = draft.languages[index] if index < len(draft.languages) else "zh-CN"
            if element in _FIELD_OF_ELEMENT:
                path = f"{language}.{_FIELD_OF_ELEMENT[element]}"
            elif element in ("effective", "expires"):
                path = element
            elif element == "area":
                path = "polygon" if "polygon" in problem.path else "division"
        mapped.append(Problem(path, problem.rule, problem.message, problem.severity))
    return mapped


def prefill_from_alert(alert: Alert, record: Mapping[str, Any]) -> dict[str, Any]:
    """Form values that start an Update from a stored alert."""
    first = alert.infos[0] if alert.infos else None
    texts = {
        info.language: {name: getattr(info, name) or "" for name in TEXT_FIELDS}
        for info in alert.infos
    }
    recordings = {
        info.language: resource.uri
        for info in alert.infos
        for resource in info.resources
        if resource.uri and resource.mime_type.startswith("audio/")
    }
    codes = [g.value for i in alert.infos[:1] for a in i.areas for g in a.geocodes]
    polygon = " ".join(
        f"{lat},{lon}"
        for i in alert.infos[:1]
        for a in i.areas
        for p in a.polygons
        for lat, lon in p.points
    )
    level = ""
    for parameter in first.parameters if first else []:
        for name, colour in LEVEL_NAMES["zh-CN"].items():
            if parameter.value == colour:
                level = name
    return {
        "status": str(alert.status),
        "level": level,
        "category": str(first.categories[0]) if first and first.categories else "Met",
        "response": str(first.response_types[0]) if first and first.response_types else "",
        "severity": str(first.severity) if first else "",
        "urgency": str(first.urgency) if first else "",
        "certainty": str(first.certainty) if first else "",
        "texts": texts,
        "recordings": recordings,
        "divisions": codes,
        "polygon": polygon,
        "channels": list(record.get("channels", [])),
        "update_of": record["id"],
    }


def sorted_problems(
    problems: Sequence[Problem], draft: Draft | None = None
) -> list[dict[str, str]]:
    """Problems as JSON for the page, errors first, each in Chinese and English. A field the
    form already faults is not faulted again by the core's CAP rules in other words."""
    chinese = draft.chinese if draft is not None else {}
    faulted = {path for path, _ in chinese}
    shown = [p for p in problems if (p.path, p.message) in chinese or p.path not in faulted]
    ordered = sorted(shown, key=lambda p: (p.severity != "error", p.path))
    return [
        {
            "path": p.path,
            "rule": p.rule,
            "message": p.message,
            "message_zh": chinese.get((p.path, p.message))
            or catalogue.message(
                p.rule if p.rule in catalogue.MESSAGES else "cap.rule", message=p.message
            )[0],
            "severity": p.severity,
        }
        for p in ordered
    ]
