"""The CAP Cancel of a stored alert, with a public text that names the warning it lifts.

Residents read a Cancel: its text must say which warning is over, not repeat an officer's
internal note. Each ``<info>`` of the original gets one in the Cancel, in the same language:

- ``headline``: the warning as residents knew it, area, event and level
  ("卓资县暴雪橙色预警"); the core's marker makes it "【解除】卓资县暴雪橙色预警";
- ``description``: when it was issued, in the deployment's time zone, and that it is lifted
  ("乌兰察布市气象台2026年12月06日09时00分发布的卓资县暴雪橙色预警现予解除。"), then the
  officer's optional public note;
- ``responseType`` AllClear; event, category, urgency, severity, certainty, parameters,
  expiry and areas of the original.

The officer's reason for cancelling is internal: it is recorded on the Cancel's record and in
the audit log, never written into the CAP document (which the public feed carries).
"""

from __future__ import annotations

import secrets
from dataclasses import replace
from datetime import datetime, tzinfo

from audio.speechtext import Level
from broadcaster.cap import Alert, Info, MsgType, ResponseType
from broadcaster.publisher import warning_level

_LEVEL_WORDS = {
    "zh": {Level.RED: "红色", Level.ORANGE: "橙色", Level.YELLOW: "黄色", Level.BLUE: "蓝色"},
    "en": {Level.RED: "red", Level.ORANGE: "orange", Level.YELLOW: "yellow", Level.BLUE: "blue"},
}


def _language(info: Info) -> str:
    return "zh" if info.language.lower().startswith("zh") else "en"


def lifted_headline(info: Info) -> str:
    """The warning an ``<info>`` announced, as residents knew it: area, event, level."""
    language = _language(info)
    level = _LEVEL_WORDS[language].get(warning_level(info), "")
    if language == "zh":
        return f"{'、'.join(a.area_desc for a in info.areas)}{info.event}{level}预警"
    areas = "; ".join(a.area_desc for a in info.areas)
    warning = " ".join(w for w in (info.event, level, "warning") if w)
    return f"{warning} for {areas}" if areas else warning


def lifted_description(info: Info, original: Alert, zone: tzinfo, note: str) -> str:
    """When the lifted warning was issued and that it is over, then the public note."""
    issued = original.sent.astimezone(zone)
    offset = issued.strftime("%z")
    offset = f"UTC{offset[:3]}:{offset[3:]}"
    sender = info.sender_name or ""
    if _language(info) == "zh":
        when = f"{issued:%Y年%m月%d日%H时%M分}（{offset}）"
        text = f"{sender}{when}发布的{lifted_headline(info)}现予解除。"
    else:
        by = f" by {sender}" if sender else ""
        when = f"{issued:%Y-%m-%d %H:%M} ({offset})"
        text = f"The {lifted_headline(info)} issued{by} on {when} is lifted."
    return f"{text}\n{note}" if note else text


def cancel_of(
    original: Alert, *, sender: str, now: datetime, zone: tzinfo, public_note: str = ""
) -> Alert:
    """The CAP Cancel of ``original`` with its public texts (see the module docstring)."""
    note = public_note.strip()
    infos = [
        replace(
            info,
            headline=lifted_headline(info),
            description=lifted_description(info, original, zone, note),
            instruction=None,
            audience=None,
            web=None,
            resources=[],
            response_types=[ResponseType.ALL_CLEAR],
        )
        for info in original.infos
    ]
    return Alert(
        # Not to be guessed: a Draft stored under it first would block the Cancel.
        identifier=f"{original.identifier}.cancel.{int(now.timestamp())}.{secrets.token_hex(4)}",
        sender=sender,
        sent=now,
        status=original.status,
        msg_type=MsgType.CANCEL,
        scope=original.scope,
        restriction=original.restriction,
        addresses=original.addresses,
        references=[original.reference],
        incidents=original.incidents,
        infos=infos,
    )
