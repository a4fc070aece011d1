"""Telling the configured officers that a scheduled test or a link failed, through a channel.

A notice goes straight to the ``[scheduler.notify]`` channel's ``send`` for each officer (an
officer is not a registry target and a notice is not a warning to residents, so it takes no
outbox row): the CAP message is ``Actual`` with scope ``Restricted`` and category ``Infra``,
addressed to the officers only. Choose a channel that reaches officers, not residents (an SMS
modem group, a webhook to the duty system). Each officer's outcome is returned and stored with
the notice; a failed notification is logged, never raised.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from broadcaster.cap import Alert, Category, Certainty, Info, MsgType, Scope, Severity, Status
from broadcaster.cap.model import Urgency
from broadcaster.channel import AlertMessage, Channel, OutgoingDelivery
from broadcaster.delivery import Target
from broadcaster.errors import ChannelError
from broadcaster.rendition import render
from broadcaster.scheduler.config import NotifyConfig
from broadcaster.scheduler.store import TargetOutcome

log = logging.getLogger(__name__)

NOTICE_DELIVERY_ID = 0
"""Notices take no outbox row; this id never names a stored delivery."""

_TEXTS = {
    "zh": {
        "event": "系统通知",
        "run_failed": "定时{kind}“{schedule}”：{failed}/{total}个目标失败",
        "run_empty": "定时{kind}“{schedule}”失败：{detail}",
        "link_down": "链路故障：{channel} {target} 连续{count}次检查失败：{detail}",
        "link_up": "链路恢复：{channel} {target}",
        "channel_down": "通道故障：{channel} 无法启动：{detail}",
        "silent": "静默检测",
        "audible-test": "测试广播",
        "exercise": "演练广播",
        "sep": "；",
        "more": "……另有{count}处",
    },
    "en": {
        "event": "system notice",
        "run_failed": "Scheduled {kind} '{schedule}': {failed} of {total} targets failed",
        "run_empty": "Scheduled {kind} '{schedule}' failed: {detail}",
        "link_down": "Link down: {channel} {target} failed {count} checks in a row: {detail}",
        "link_up": "Link restored: {channel} {target}",
        "channel_down": "Channel down: {channel} could not start: {detail}",
        "silent": "silent check",
        "audible-test": "test broadcast",
        "exercise": "exercise",
        "sep": "; ",
        "more": "… and {count} more",
    },
}
_EXAMPLES = 5


class NoticeTexts:
    """The wording of notices in the configured language, short enough for an SMS or two."""

    def __init__(self, language: str) -> None:
        self.words = _TEXTS[language]

    def run_failed(
        self, schedule: str, kind: str, outcomes: Sequence[TargetOutcome], detail: str
    ) -> str:
        failed = [o for o in outcomes if not o.reached]
        kind_word = self.words.get(kind, kind)
        if not failed:
            return self.words["run_empty"].format(kind=kind_word, schedule=schedule, detail=detail)
        head = self.words["run_failed"].format(
            kind=kind_word, schedule=schedule, failed=len(failed), total=len(outcomes)
        )
        examples = [f"{o.target_name} ({o.channel}): {o.detail}" for o in failed[:_EXAMPLES]]
        more = ["…"] if len(failed) > _EXAMPLES else []
        return head + self.words["sep"] + self.words["sep"].join(examples + more)

    def link_down(self, channel: str, target: str, count: int, detail: str) -> str:
        return self.words["link_down"].format(
            channel=channel, target=target, count=count, detail=detail
        )

    def joined(self, texts: Sequence[str]) -> str:
        """Several notices in one message: the first few, and how many more."""
        head = self.words["sep"].join(texts[:_EXAMPLES])
        rest = len(texts) - _EXAMPLES
        return head + (self.words["more"].format(count=rest) if rest > 0 else "")

    def link_up(self, channel: str, target: str) -> str:
        return self.words["link_up"].format(channel=channel, target=target)

    def channel_down(self, channel: str, detail: str) -> str:
        return self.words["channel_down"].format(channel=channel, detail=detail)


class OfficerNotifier:
    """Sends a notice text to every configured officer through the notify channel."""

    def __init__(
        self,
        config: NotifyConfig,
        channels: Mapping[str, Channel],
        *,
        sender: str,
        sender_name: str,
        clock: Callable[[], float],
        send_timeout: float = 60.0,
    ) -> None:
        self.config = config
        self.channels = channels
        self.sender = sender
        self.sender_name = sender_name
        self.clock = clock
        self.send_timeout = send_timeout
        self.texts = NoticeTexts(config.language)
        self._serial = itertools.count(1)

    @property
    def configured(self) -> bool:
        return self.config.channel is not None and bool(self.config.officers)

    def _message(self, text: str) -> AlertMessage:
        now = datetime.fromtimestamp(self.clock(), UTC).replace(microsecond=0)
        identifier = f"notice.{int(now.timestamp())}.{next(self._serial)}"
        language = "zh-CN" if self.config.language == "zh" else "en-US"
        alert = Alert(
            identifier=identifier,
            sender=self.sender,
            sent=now,
            status=Status.ACTUAL,
            msg_type=MsgType.ALERT,
            scope=Scope.RESTRICTED,
            restriction="officers",
            infos=[
                Info(
                    language=language,
                    categories=[Category.INFRA],
                    event=self.texts.words["event"],
                    urgency=Urgency.UNKNOWN,
                    severity=Severity.UNKNOWN,
                    certainty=Certainty.OBSERVED,
                    expires=now + timedelta(hours=1),
                    sender_name=self.sender_name,
                    headline=text,
                )
            ],
        )
        return AlertMessage(
            id=identifier,
            alert=alert,
            rendition=render(alert, sender_name=self.sender_name),
            expires_at=now.timestamp() + 3600,
        )

    async def notify(self, text: str) -> list[dict[str, Any]]:
        """Send ``text`` to every officer; one ``{officer, ok, detail}`` each."""
        if not self.configured:
            return []
        name = str(self.config.channel)
        channel = self.channels.get(name)
        if channel is None:
            log.error("notice not sent: channel %s is not running: %s", name, text)
            return [
                {"officer": o.name, "ok": False, "detail": f"channel {name} is not running"}
                for o in self.config.officers
            ]
        message = self._message(text)
        sends = [
            self._send(channel, message, n, officer.name, officer.address, officer.languages)
            for n, officer in enumerate(self.config.officers)
        ]
        return list(await asyncio.gather(*sends))

    async def _send(
        self,
        channel: Channel,
        message: AlertMessage,
        n: int,
        name: str,
        address: str,
        languages: list[str],
    ) -> dict[str, Any]:
        target = Target(
            id=f"officer-{n}",
            channel=channel.name,
            name=name,
            address=address,
            languages=tuple(languages),
        )
        delivery = OutgoingDelivery(
            id=NOTICE_DELIVERY_ID,
            message=message,
            target=target,
            part=0,
            attempt=1,
            idempotency_key=f"{message.id}:{channel.name}:{target.id}",
            expires_at=message.expires_at,
        )
        try:
            async with asyncio.timeout(self.send_timeout):
                result = await channel.send(delivery)
        except ChannelError as exc:
            log.warning("notice to %s through %s failed: %s", name, channel.name, exc)
            return {"officer": name, "ok": False, "detail": str(exc) or type(exc).__name__}
        except TimeoutError:
            return {"officer": name, "ok": False, "detail": "no answer from the channel"}
        except Exception as exc:
            log.exception("channel %s raised while sending a notice", channel.name)
            return {"officer": name, "ok": False, "detail": f"{type(exc).__name__}: {exc}"}
        return {"officer": name, "ok": True, "detail": result.detail or str(result.outcome)}
