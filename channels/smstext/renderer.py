"""The one SMS renderer of the SMS channels: a delivery's text, content and preview.

``SmsRenderer`` holds a channel's text settings (``channels.smstext.templates``), its
default signature and how its carrier counts segments (a modem: GSM-7 where it can; a
gateway: UCS-2 or GBK); ``send``, ``content`` and ``preview`` of both the GSM-modem channel and the
operator-gateway channel go through it, so officers preview exactly what either sends.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from broadcaster.channel import AlertMessage, ChannelPreview
from broadcaster.errors import UnsupportedError
from channels.smstext.message import SmsText, render_sms
from channels.smstext.recipients import LANGUAGE_STRIDE
from channels.smstext.templates import SmsTextConfig
from drivers.gsm import segment_count


class SmsRenderer:
    """Renders one channel's SMS from its settings; ``sender_name`` signs by default."""

    def __init__(
        self,
        config: SmsTextConfig,
        sender_name: Callable[[], str],
        count: Callable[[str], int] = segment_count,
    ) -> None:
        self.config = config
        self._sender_name = sender_name
        self._count = count

    def signature(self, language: str) -> str:
        """The sender signature for ``language``: configured, else 【server name】."""
        configured = self.config.signature_for(language)
        if configured is not None:
            return configured
        name = self._sender_name()
        return f"【{name}】" if name else ""

    def render(self, message: AlertMessage, languages: Sequence[str], index: int = 0) -> SmsText:
        """The SMS for ``message`` in the ``index``-th of ``languages`` the alert has (the
        first text of the alert when it has none of them); UnsupportedError past the last."""
        texts = message.rendition.for_languages(tuple(languages))
        if index >= len(texts):
            raise UnsupportedError(
                f"the alert has {len(texts)} of the languages {', '.join(languages)}, not a"
                f" language #{index + 1}"
            )
        text = texts[index]
        return render_sms(
            text,
            template=self.config.template_for(text.language),
            signature=self.signature(text.language),
            max_segments=self.config.max_segments,
            count=self._count,
        )

    def for_part(self, message: AlertMessage, languages: Sequence[str], part: int) -> SmsText:
        """The SMS of the delivery with ``part``, checked against ``segment_limit``."""
        sms = self.render(message, languages, part // LANGUAGE_STRIDE)
        if sms.segments > self.config.segment_limit:
            raise UnsupportedError(
                f"the SMS takes {sms.segments} segments, over segment_limit"
                f" {self.config.segment_limit}, although only the headline is left"
            )
        return sms

    def preview(
        self, base: ChannelPreview, message: AlertMessage
    ) -> tuple[dict[str, Any], list[str]]:
        """Counts (segments, budget) and notes (what was shortened) for a channel's preview."""
        forms = [self.render(message, (text.language,)) for text in message.rendition.texts]
        notes = [*base.notes, *(f"{sms.language}: {note}" for sms in forms for note in sms.notes)]
        counts = {
            "segments": max((c["segments"] for c in base.contents), default=0),
            "segment_budget": self.config.max_segments,
        }
        return counts, notes
