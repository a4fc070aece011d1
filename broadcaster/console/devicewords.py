"""The console's words for what channels and devices report: states, health and probe phrases,
the fields of a device's health and the kinds of scheduler notices, in Chinese and English.

Channels and drivers report in English and in their own words. A phrase or state that is a
known code gets its label here (the pages show it through the ``device_words`` filter); any
other text a device reports — an error, an address, a value of its own — stays as received
and the templates mark it as raw (see the ``said`` macro): it is evidence, not console text.
"""

from __future__ import annotations

import re
from typing import Any

from markupsafe import Markup

from broadcaster.console.catalogue import STATES, Words, bilingual

DEVICE_STATES: dict[str, Words] = {
    # a channel's health as a whole
    "ok": ("正常", "OK"),
    "fault": ("故障", "fault"),
    "healthy": ("正常", "healthy"),
    "unhealthy": ("故障", "unhealthy"),
    "not running": ("未运行", "not running"),
    "channel healthy": ("渠道正常", "channel healthy"),
    "channel unhealthy": ("渠道故障", "channel unhealthy"),
    "channel not running": ("渠道未运行", "channel not running"),
    "health check timed out": ("健康检查超时", "health check timed out"),
    # devices
    "online": ("在线", "online"),
    "offline": ("离线", "offline"),
    "connecting": ("连接中", "connecting"),
    "ready": ("就绪", "ready"),
    "no-service": ("无网络", "no service"),
    "failed": ("失败", "failed"),
    "stopped": ("已停止", "stopped"),
    "idle": ("空闲", "idle"),
    "playing": ("播放中", "playing"),
    "error": ("故障", "error"),
    "reachable": ("可连接", "reachable"),
    "unreachable": ("无法连接", "unreachable"),
}
"""States and whole phrases of health and probes that channels commonly report."""

DEVICE_FIELDS: dict[str, Words] = {
    # the columns shown first (KNOWN_FIELDS of the devices page)
    "online": ("在线", "Online"),
    "link": ("链路", "Link"),
    "state": ("状态", "State"),
    "last_heartbeat": ("最后心跳", "Last heartbeat"),
    "signal": ("信号", "Signal"),
    "queue": ("队列", "Queue"),
    "on_air": ("正在播发", "On air"),
    "subscriptions": ("订阅", "Subscriptions"),
    "last_error": ("最近错误", "Last error"),
    # other fields of the shipped channels' devices
    "transport": ("连接方式", "transport"),
    "volume": ("音量", "volume"),
    "url": ("地址", "address"),
    "restore_pending": ("待恢复原节目", "restore pending"),
    "registered": ("已注册网络", "registered"),
    "busy": ("忙", "busy"),
    "sent_segments": ("已发短信段", "segments sent"),
    "failures": ("失败次数", "failures"),
    "unreadable_lines": ("无法识别的应答", "unreadable lines"),
    "since": ("起始", "since"),
    "updated_at": ("更新时间", "updated"),
}
"""Fields of a device's health, by the names channels report them under."""

NOTICE_KINDS: dict[str, Words] = {
    "link": ("链路检查", "link check"),
    "test-run": ("定时测试", "test run"),
}
"""Kinds of the scheduler's notices."""


def device_words(text: Any) -> Words | None:
    """The ``device_words`` filter: the words for a state or phrase a channel reports, or None
    when it is the device's own text (shown as received)."""
    return DEVICE_STATES.get(str(text).strip()) if text is not None else None


def field_words(name: str) -> Words | None:
    """The ``field_words`` filter: a device field's name in both languages, or None for a field
    only its channel knows."""
    return DEVICE_FIELDS.get(name)


def notice_kind(kind: str) -> Markup:
    """The ``notice_kind`` filter: a scheduler notice's kind in both languages."""
    return bilingual(*NOTICE_KINDS.get(kind, (kind, kind)))


def ago(seconds: int) -> Words:
    """How long ago, in both languages."""
    if seconds < 120:
        return f"{seconds} 秒前", f"{seconds} s ago"
    return f"{seconds // 60} 分钟前", f"{seconds // 60} min ago"


_TARGET_WORDS: dict[str, Words] = {
    "confirmed": STATES["confirmed"],
    "accepted (the channel cannot confirm)": (
        "已接收（该渠道无法确认）",
        "accepted (the channel cannot confirm)",
    ),
    "not confirmed": ("未确认", "not confirmed"),
}
_STATE_AND_ERROR = re.compile(r"^([a-z ]+): (.+)$", re.DOTALL)


def target_detail(detail: str | None) -> tuple[Words | None, str]:
    """The ``target_detail`` filter: a test report's detail for one target as (the words for
    its kind of state, or None; the rest as the device or channel reported it)."""
    text = (detail or "").strip()
    known = _TARGET_WORDS.get(text) or DEVICE_STATES.get(text)
    if known is not None:
        return known, ""
    match = _STATE_AND_ERROR.match(text)
    if match is not None and match[1] in STATES:
        (zh, en), rest = STATES[match[1]], match[2]
        if rest in _TARGET_WORDS:
            rest_zh, rest_en = _TARGET_WORDS[rest]
            return (f"{zh}：{rest_zh}", f"{en}: {rest_en}"), ""
        return (zh, en), rest
    return None, text
