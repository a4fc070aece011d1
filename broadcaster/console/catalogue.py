"""The console's message catalogue: every word it shows for a code, once, in Chinese and English.

One table per kind of code (CAP enumerations, alert, approval and delivery states, roles, audit
actions and the keys of their details, receiver units, channel types) and the validation
messages of the compose form, each keyed once. Templates show a code through the ``label``
filter (both languages, the page's toggle picks one); the pages' scripts get the same tables as
JSON (:func:`catalogue_json`), so server and browser never word one thing two ways.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, tzinfo
from typing import Any

from markupsafe import Markup, escape

Words = tuple[str, str]

CAP_VALUES: dict[str, Words] = {
    # status
    "Actual": ("正式", "Actual"),
    "Exercise": ("演练", "Exercise"),
    "System": ("系统", "System"),
    "Test": ("测试", "Test"),
    "Draft": ("草稿", "Draft"),
    # msgType
    "Alert": ("预警", "Alert"),
    "Update": ("更新", "Update"),
    "Cancel": ("解除", "Cancel"),
    "Ack": ("确认", "Ack"),
    "Error": ("错误", "Error"),
    # scope
    "Public": ("公开", "Public"),
    "Restricted": ("受限", "Restricted"),
    "Private": ("定向", "Private"),
    # category
    "Geo": ("地质", "Geophysical"),
    "Met": ("气象", "Meteorological"),
    "Safety": ("公共安全", "Safety"),
    "Security": ("治安", "Security"),
    "Rescue": ("救援", "Rescue"),
    "Fire": ("火灾", "Fire"),
    "Health": ("卫生", "Health"),
    "Env": ("环境", "Environmental"),
    "Transport": ("交通", "Transport"),
    "Infra": ("基础设施", "Infrastructure"),
    "CBRNE": ("化生放核爆", "CBRNE"),
    "Other": ("其他", "Other"),
    # responseType
    "Shelter": ("就地避险", "Shelter"),
    "Evacuate": ("撤离", "Evacuate"),
    "Prepare": ("做好准备", "Prepare"),
    "Execute": ("执行预案", "Execute"),
    "Avoid": ("避开", "Avoid"),
    "Monitor": ("关注", "Monitor"),
    "Assess": ("评估", "Assess"),
    "AllClear": ("解除", "All clear"),
    "None": ("无", "None"),
    # urgency
    "Immediate": ("立即", "Immediate"),
    "Expected": ("预期", "Expected"),
    "Future": ("将来", "Future"),
    "Past": ("已过", "Past"),
    "Unknown": ("未知", "Unknown"),
    # severity
    "Extreme": ("特别严重", "Extreme"),
    "Severe": ("严重", "Severe"),
    "Moderate": ("较重", "Moderate"),
    "Minor": ("一般", "Minor"),
    # certainty
    "Observed": ("已发生", "Observed"),
    "Likely": ("很可能", "Likely"),
    "Possible": ("可能", "Possible"),
    "Unlikely": ("不太可能", "Unlikely"),
}
"""CAP 1.2 enumeration values (status, msgType, scope, category, responseType, urgency,
severity, certainty)."""

STATES: dict[str, Words] = {
    # alerts
    "active": ("生效中", "active"),
    "held": ("暂存", "held"),
    "reaches no one": ("无接收对象", "reaches no one"),
    "superseded": ("已被更新", "superseded"),
    # approvals
    "pending": ("待审批", "pending"),
    "approved": ("已批准", "approved"),
    "rejected": ("已驳回", "rejected"),
    # deliveries
    "planned": ("计划", "planned"),
    "queued": ("排队", "queued"),
    "sending": ("发送中", "sending"),
    "accepted": ("已接收", "accepted"),
    "confirmed": ("已确认", "confirmed"),
    "failed": ("失败", "failed"),
    "expired": ("已过期", "expired"),
    "cancelled": ("已取消", "cancelled"),
    # scheduled test runs
    "running": ("运行中", "running"),
    "passed": ("通过", "passed"),
    "missed": ("错过", "missed"),
    "interrupted": ("中断", "interrupted"),
    "reached": ("已到达", "reached"),
    # board filters
    "all": ("全部", "all"),
    "retrying": ("重试中", "retrying"),
    "offline": ("离线", "offline"),
}
"""Alert, approval and delivery states; one word each wherever they appear."""

ROLES: dict[str, Words] = {
    "viewer": ("查看员", "viewer"),
    "drafter": ("编制员", "drafter"),
    "approver": ("审批员", "approver"),
    "admin": ("管理员", "admin"),
}

SCHEDULES: dict[str, Words] = {
    "silent": ("静默测试", "silent test"),
    "audible-test": ("鸣响测试", "audible test"),
    "exercise": ("演练", "exercise"),
    "cron": ("定时", "scheduled"),
    "catch-up": ("补测", "catch-up"),
    "manual": ("手动", "manual"),
    "config": ("配置文件", "configuration"),
    "api": ("接口", "API"),
}
"""Kinds, triggers and sources of scheduled tests."""

ACTIONS: dict[str, Words] = {
    "login": ("登录", "login"),
    "logout": ("退出", "logout"),
    "login.failed": ("登录失败", "login failed"),
    "login.locked": ("账户锁定", "account locked"),
    "login.rate_limited": ("登录过于频繁", "login rate limited"),
    "login.csrf_refused": ("登录请求被拒（CSRF）", "login refused (CSRF)"),
    "csrf.refused": ("请求被拒（CSRF）", "request refused (CSRF)"),
    "alert.draft": ("提交待审批", "submitted for approval"),
    "alert.send": ("发布", "sent"),
    "alert.store": ("存档（不发布）", "stored, not sent"),
    "alert.update": ("发布更新", "update issued"),
    "alert.approve": ("批准", "approved"),
    "alert.approve.refused": ("批准被拒", "approval refused"),
    "alert.reject": ("驳回", "rejected"),
    "alert.reject.refused": ("驳回被拒", "rejection refused"),
    "alert.withdraw": ("撤回", "withdrawn"),
    "alert.cancel": ("解除", "cancelled"),
    "alert.submit.refused": ("提交被拒", "submission refused"),
    "recording.upload": ("上传录音", "recording uploaded"),
    "apitoken.create": ("签发接口令牌", "API token issued"),
    "apitoken.revoke": ("吊销接口令牌", "API token revoked"),
    "notice.ack": ("确认通知", "notice acknowledged"),
    "user.add": ("新增用户", "officer added"),
    "user.set": ("修改用户", "officer changed"),
    "user.password": ("修改密码", "password changed"),
    "user.password.refused": ("修改密码被拒", "password change refused"),
}
"""Audit-log actions."""

DETAIL_KEYS: dict[str, Words] = {
    "reason": ("原因", "reason"),
    "public_note": ("致公众说明", "note for residents"),
    "cancel_id": ("解除通知", "Cancel"),
    "cancel": ("解除通知", "Cancel"),
    "planned": ("计划投递", "planned"),
    "channels": ("渠道", "channels"),
    "headline": ("标题", "headline"),
    "identifier": ("标识", "identifier"),
    "severity": ("级别", "severity"),
    "status": ("类别", "status"),
    "updates": ("更新对象", "updates"),
    "address": ("地址", "address"),
    "error": ("错误", "error"),
    "role": ("角色", "role"),
    "name": ("名称", "name"),
    "display_name": ("显示名", "display name"),
    "requires_approval": ("需审批", "requires approval"),
    "enabled": ("启用", "enabled"),
    "unlock": ("解锁", "unlock"),
    "by": ("操作人", "by"),
    "language": ("语言", "language"),
    "size": ("大小（字节）", "size (bytes)"),
    "seconds": ("时长（秒）", "seconds"),
}
"""Keys of audit-log details."""

UNITS: dict[str, Words] = {
    "recipients": ("人", "recipients"),
    "groups": ("个群组", "groups"),
    "boxes": ("台音箱", "boxes"),
    "transmitters": ("部发射机", "transmitters"),
    "subscriptions": ("个订阅", "subscriptions"),
    "endpoints": ("个接收端", "endpoints"),
    "targets": ("个目标", "targets"),
}
"""Each channel's unit of receivers."""

CHANNEL_TYPES: dict[str, Words] = {
    "log": ("发送日志", "delivery log"),
    "webhook": ("数据接口", "webhook"),
    "sms": ("短信", "SMS"),
    "loudspeaker": ("应急广播大喇叭", "loudspeakers"),
    "fm": ("调频广播", "FM radio"),
    "webpush": ("网页推送", "web push"),
    "gateway-sms": ("短信网关", "SMS gateway"),
}
"""Default display names of the shipped channel types (``display_name`` overrides them)."""

MESSAGES: dict[str, Words] = {
    "required.event": ("请填写事件", "the event is required"),
    "required.headline": ("请填写标题", "the headline is required"),
    "required.channel": ("请至少选择一个渠道", "choose at least one channel"),
    "required.expires": ("请填写失效时间", "the expiry time is required"),
    "area.none": (
        "请选择区域：在行政区划中勾选，或在地图上划定",
        "choose an area: divisions from the tree or a polygon",
    ),
    "recording.missing": (
        "录音不在本服务器的录音库中，请重新录制或上传",
        "the recording is not in this server's store: record or upload it again",
    ),
    "area.unnamed": (
        "划定的区域不含任何旗县：请在标题中写明预警地区",
        "the drawn area covers no county of the registry: type where the warning is for",
    ),
    "polygon.corners": ("多边形至少需要三个顶点", "a polygon needs at least three corners"),
    "polygon.points": (
        "多边形最多 {limit} 个顶点：请简化后重画",
        "a polygon has at most {limit} corners: draw a simpler one",
    ),
    "polygon.pair": ("“{pair}”不是“纬度,经度”", "{pair!r} is not a lat,lon pair"),
    "time.invalid": ("“{text}”不是有效的日期时间", "{text!r} is not a date and time"),
    "tz_offset.invalid": (
        "“{text}”不是有效的时区偏移（分钟，±14 小时以内）",
        "{text!r} is not a UTC offset in minutes within 14 hours",
    ),
    "expires.past": ("失效时间须晚于当前时间", "the expiry must be later than now"),
    "status.console": (
        "控制台只发布正式、演练或测试预警",
        "the console sends Actual, Exercise or Test",
    ),
    "enum.invalid": ("“{value}”不是有效的取值", "{value!r} is not a valid {name}"),
    "division.invalid": ("行政区划代码有误：{detail}", "{detail}"),
    "division.unknown": ("行政区划 {code} 不在登记册中", "division {code} is not in the registry"),
    "update.missing": ("要更新的预警不存在", "the alert to update does not exist"),
    "channel.unknown": (
        "渠道未知或已停止：{channels}",
        "unknown or stopped channel(s): {channels}",
    ),
    "cap.rule": ("不符合 CAP 1.2 规范", "{message}"),
    "outside-division": ("超出本中心的预警发布范围：{message}", "{message}"),
}
"""Validation messages of the compose form, by key; ``{…}`` are filled from the problem."""

ACTORS: dict[str, Words] = {
    "system": ("系统", "system"),
    "scheduler": ("定时任务", "scheduler"),
    "cli": ("命令行", "command line"),
}
"""Actors of the audit log that are no officer or API client."""

_LABELS: dict[str, Words] = CAP_VALUES | STATES | ROLES | ACTIONS | SCHEDULES


def words(value: str, table: dict[str, Words] | None = None) -> Words:
    """The Chinese and English words for ``value``; the value itself when it has none."""
    return (table or _LABELS).get(value, (value, value))


def bilingual(zh: str, en: str) -> Markup:
    """Both words, the page's language toggle shows one (the ``t`` macro's markup)."""
    return Markup(
        '<span class="zh" lang="zh-CN">{}</span><span class="en" lang="en">{}</span>'
    ).format(escape(zh), escape(en))


def label(value: Any, kind: str = "") -> Markup:
    """The ``label`` filter: a code in both languages (``kind`` picks a table)."""
    table = {"detail": DETAIL_KEYS, "unit": UNITS, "type": CHANNEL_TYPES}.get(kind)
    return bilingual(*words(str(value), table))


def message(key: str, **values: Any) -> Words:
    """A validation message in both languages, filled with ``values``."""
    zh, en = MESSAGES[key]
    return zh.format(**values), en.format(**values)


def who(actor: str) -> Markup:
    """The ``who`` filter: an audit actor or author as officers read it."""
    kind, _, name = actor.partition(":")
    if kind == "console" and name:
        return escape(name)
    if kind == "api" and name:
        return bilingual(f"接口 {name}", f"API {name}")
    if kind == "upstream" and name:
        return bilingual(f"上游 {name}", f"upstream {name}")
    return bilingual(*words(actor, ACTORS))


def local_time(ts: float | None, zone: tzinfo) -> str:
    """The ``localtime`` filter: a UNIX time in the deployment's zone, its offset shown."""
    if ts is None:
        return "—"
    moment = datetime.fromtimestamp(float(ts), zone)
    offset = moment.strftime("%z")
    return f"{moment:%Y-%m-%d %H:%M:%S} (UTC{offset[:3]}:{offset[3:]})"


def _detail_value(value: Any, names: dict[str, Words]) -> Markup | str:
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        found = names.get(value) or _LABELS.get(value)
        return bilingual(*found) if found else value
    if isinstance(value, list):
        return Markup("、").join(_detail_value(v, names) for v in value)
    if isinstance(value, dict):
        return Markup("，").join(
            Markup("{} {}").format(_detail_value(k, names), _detail_value(v, names))
            for k, v in value.items()
        )
    return json.dumps(value, ensure_ascii=False)


def detail_items(detail: Any, names: dict[str, Words]) -> list[tuple[Markup, Markup | str]]:
    """The ``detail`` filter: an audit entry's details as (key in both languages, value) with
    readable values (no JSON escapes; codes and channels by their names)."""
    if not isinstance(detail, dict):
        return [(bilingual("详情", "detail"), str(detail))]
    items = []
    for key, value in detail.items():
        items.append((bilingual(*words(key, DETAIL_KEYS)), _detail_value(value, names)))
    return items


_STOPPED = re.compile(r"^(cancelled|superseded) by (Cancel|Update) (\S+)$")


def stopped_by(error: str | None) -> str | None:
    """The Chinese for the core's "cancelled by Cancel <id>" of a delivery that never went
    out; None for any other error (a device's own words, shown as they are)."""
    match = _STOPPED.match(error or "")
    if match is None:
        return None
    state, message_type, alert_id = match.groups()
    return f"{words(state)[0]}（{words(message_type)[0]} {alert_id}）"


_REACHED = re.compile(r"^(\d+) of (\d+) targets reached$")
_MISSED = re.compile(
    r"^(\d+) run\(s\) missed while the server was down, the last due at (\S+);"
    r" past the grace time of (\S+) min$"
)
_RUN_WORDS: dict[str, Words] = {
    "no targets to test": ("没有可测试的目标", "no targets to test"),
    "the server stopped during the run": (
        "运行期间服务器停止",
        "the server stopped during the run",
    ),
}


def run_detail(detail: str | None) -> Markup | None:
    """The ``run_detail`` filter: a scheduled test run's summary in both languages when it is
    one the scheduler words itself; None for other details (a device's words, shown as they
    are)."""
    text = detail or ""
    if text in _RUN_WORDS:
        return bilingual(*_RUN_WORDS[text])
    match = _REACHED.match(text)
    if match is not None:
        return bilingual(f"已到达 {match[1]}/{match[2]} 个目标", text)
    match = _MISSED.match(text)
    if match is not None:
        count, due, grace = match.groups()
        zh = f"服务器停机期间错过 {count} 次运行，最近一次应于 {due}；已超过 {grace} 分钟的宽限时间"
        return bilingual(zh, text)
    return None


def catalogue_json() -> dict[str, dict[str, Words]]:
    """The tables the pages' scripts need."""
    return {"labels": _LABELS, "units": UNITS, "details": DETAIL_KEYS}
