"""Public alert pages for residents: no login, no external resources, Chinese with English.

::

    GET /alerts           the active public alerts, newest first
    GET /alerts/{id}      one alert: every language it carries, the instruction first, the
                          area drawn as SVG (:mod:`broadcaster.web.areamap`), and a banner
                          for Test and Exercise alerts and for cancelled, updated or expired
                          ones
    GET /public/…         the pages' style sheet

Only alerts released to the public are shown (:func:`released`): of scope Public, broadcast,
and approved if they waited for approval. Any other id (an alert awaiting approval, a rejected
or withdrawn one, a held System or Draft message, a Restricted one) gives the same 404 page as
an unknown one, here and in the CAP feed. Web push notifications link to ``/alerts/{id}``.
HTML comes from the Jinja2 templates in ``templates/`` (autoescaped).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

from aiohttp import web
from jinja2 import Environment, PackageLoader, select_autoescape

from broadcaster.api.keys import SERVICE
from broadcaster.cap import Alert, Info, MsgType, Scope, Severity, Status, from_json
from broadcaster.console import catalogue
from broadcaster.intake import broadcasts
from broadcaster.rendition import MessageText, render
from broadcaster.web.areamap import build_map

routes = web.RouteTableDef()

STATIC_DIR = Path(__file__).resolve().parent / "static"

_templates = Environment(
    loader=PackageLoader("broadcaster.web", "templates"),
    autoescape=select_autoescape(default=True),
)
_templates.filters["cap_words"] = catalogue.words
"""CAP values (severity, urgency, certainty) in Chinese and English, as the console words them."""

LEVELS = {
    Severity.EXTREME: ("red", "红色预警 Ⅰ级", "Red · Level Ⅰ"),
    Severity.SEVERE: ("orange", "橙色预警 Ⅱ级", "Orange · Level Ⅱ"),
    Severity.MODERATE: ("yellow", "黄色预警 Ⅲ级", "Yellow · Level Ⅲ"),
    Severity.MINOR: ("blue", "蓝色预警 Ⅳ级", "Blue · Level Ⅳ"),
}
"""China's warning colours (12379) by CAP severity."""

NOT_REAL = {
    Status.TEST: ("测试信息", "TEST MESSAGE"),
    Status.EXERCISE: ("演练信息", "EXERCISE"),
}

STATE_NOTES = {
    "cancelled": ("本预警已解除。", "This warning has been cancelled."),
    "superseded": ("本预警已被更新，请查看最新信息。", "This warning has been updated."),
    "expired": ("本预警已过期。", "This warning has expired."),
}


@dataclass(frozen=True, slots=True)
class InfoView:
    """One ``<info>`` block with its rendered texts, as the template shows it."""

    info: Info
    text: MessageText
    colour: str
    level_zh: str
    level_en: str


def released(record: Mapping[str, Any] | None) -> bool:
    """Whether the public may see a stored alert (a record of ``AlertTable.get``).

    It must be of scope Public, of a status and type that is broadcast, not held, and approved
    if it waited for approval: one awaiting approval, rejected or withdrawn stays unseen
    whatever its state becomes (a pending alert can still expire or be cancelled).
    """
    if record is None or record["scope"] != "Public" or record["state"] == "held":
        return False
    approval = record["approval"]
    if approval is not None and approval["state"] != "approved":
        return False
    return broadcasts(Status(record["status"]), MsgType(record["msg_type"]))


def _time(value: datetime | None, zone: tzinfo) -> str:
    """A time in the deployment's zone (``[server] timezone``), its offset shown."""
    if value is None:
        return ""
    value = value.astimezone(zone)
    offset = value.strftime("%z")
    shown = f"UTC{offset[:3]}:{offset[3:]}" if offset else "UTC"
    return f"{value:%Y-%m-%d %H:%M} ({shown})"


def _info_views(alert: Alert, sender_name: str) -> list[InfoView]:
    rendition = render(alert, sender_name=sender_name)
    views = []
    for info, text in zip(alert.infos, rendition.texts, strict=False):
        colour, zh, en = LEVELS.get(info.severity, ("none", "", ""))
        views.append(InfoView(info, text, colour, zh, en))
    return views


def _html(template: str, status: int = 200, **context: Any) -> web.Response:
    body = _templates.get_template(template).render(**context)
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")


def _not_found() -> web.Response:
    return _html("not_found.html", status=404)


def _state(record: dict[str, Any], now: float) -> str:
    state = str(record["state"])
    if state == "active" and float(record["expires_at"]) <= now:
        return "expired"
    return state


@routes.get("/alerts/{alert_id}")
async def alert_page(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    alert_id = request.match_info["alert_id"]
    record = await service.store.alerts.get(alert_id)
    document = await service.store.alerts.document(alert_id)
    if record is None or document is None or not released(record):
        return _not_found()
    alert = from_json(document)
    if alert.scope is not Scope.PUBLIC:
        return _not_found()
    state = _state(record, service.clock())
    sender_name = service.config.server.sender_name
    zone = service.config.server.zone
    views = _info_views(alert, sender_name)
    return _html(
        "alert.html",
        alert=alert,
        alert_id=alert_id,
        views=views,
        not_real=NOT_REAL.get(alert.status),
        state_note=STATE_NOTES.get(state),
        area_map=build_map(alert, service.divisions),
        sent=_time(alert.sent, zone),
        time=lambda value: _time(value, zone),
        sender_name=sender_name,
        lang=views[0].text.language if views else "zh-CN",
        references=[r["alert_id"] for r in record["references"] if r["alert_id"]],
    )


@routes.get("/alerts")
async def alert_list(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    active = await service.store.alerts.active(service.clock())
    public = [a for a in active if a.get("scope", "Public") == "Public"]
    for row in public:
        row["received"] = datetime.fromtimestamp(row["received_at"], UTC)
        row["not_real"] = NOT_REAL.get(Status(row["status"]))
        severity = Severity(row["severity"]) if row.get("severity") else Severity.UNKNOWN
        row["colour"] = LEVELS.get(severity, ("none", "", ""))[0]
    return _html(
        "alerts.html",
        alerts=public,
        sender_name=service.config.server.sender_name,
        time=lambda value: _time(value, service.config.server.zone),
    )


routes.static("/public/", STATIC_DIR)
