"""The text settings every SMS channel shares: message templates, signatures, segment budget.

Both the GSM-modem channel (``sms``) and the operator-gateway channel (``gateway-sms``)
subclass :class:`SmsTextConfig`, so one ``[channels.<name>]`` table reads the same way for
either: ``templates`` per language (``zh`` also serves ``zh-CN``), ``signature`` /
``signatures``, ``max_segments`` (the budget a warning is shortened to) and ``segment_limit``
(the hard cap when the headline alone is longer).
"""

from __future__ import annotations

import string

from pydantic import Field, field_validator, model_validator

from audio.languages import lookup
from broadcaster.config import ChannelConfig

TEMPLATE_FIELDS = frozenset(
    {
        "signature",
        "title",
        "marker",
        "headline",
        "event",
        "description",
        "instruction",
        "area",
        "sender",
        "severity",
        "urgency",
    }
)
"""Placeholders a message template may use; ``{title}`` (marker + headline) is required."""

DEFAULT_TEMPLATE = "{signature}{title}\n{description}\n{instruction}"


class SmsTextConfig(ChannelConfig):
    """The keys that shape an SMS channel's text (see the module docstring)."""

    signature: str | None = Field(
        None, description="sender signature, e.g. 【乌兰察布市应急管理局】; default: server name"
    )
    signatures: dict[str, str] = Field(
        default_factory=dict, description="signature per language (en, mn, ...) over signature"
    )
    templates: dict[str, str] = Field(
        default_factory=dict, description="message template per language (zh, mn, en, ...)"
    )
    max_segments: int = Field(3, ge=1, le=10, description="segment budget of one message")
    segment_limit: int = Field(
        6, ge=1, le=20, description="hard cap when the headline alone exceeds the budget"
    )

    @field_validator("templates")
    @classmethod
    def _check_templates(cls, templates: dict[str, str]) -> dict[str, str]:
        for language, template in templates.items():
            check_template(template, f"templates.{language}")
        return templates

    @model_validator(mode="after")
    def _check_budget(self) -> SmsTextConfig:
        if self.segment_limit < self.max_segments:
            raise ValueError("segment_limit must be at least max_segments")
        return self

    def template_for(self, language: str) -> str:
        """The template of ``language`` (``zh-CN`` falls back to ``zh``), else the default."""
        return _for_language(self.templates, language) or DEFAULT_TEMPLATE

    def signature_for(self, language: str) -> str | None:
        """The configured signature of ``language``; None: use the default one."""
        found = _for_language(self.signatures, language)
        return found if found is not None else self.signature


def _for_language(table: dict[str, str], language: str) -> str | None:
    key = lookup((language,), table)
    return None if key is None else table[key]


def check_template(template: str, key: str = "template") -> None:
    """Raise ValueError unless ``template`` uses only known placeholders and has ``{title}``."""
    try:
        parsed = [item for item in string.Formatter().parse(template) if item[1] is not None]
    except ValueError as exc:
        raise ValueError(f"{key}: not a valid template: {exc}") from None
    if any(spec or conversion for _, _, spec, conversion in parsed):
        # a format spec such as {title:.5} could cut the marker off
        raise ValueError(f"{key}: placeholders take no format spec or conversion")
    fields = {name for _, name, _, _ in parsed if name is not None}
    unknown = sorted(fields - TEMPLATE_FIELDS)
    if unknown:
        raise ValueError(f"{key}: unknown placeholders {unknown}; known: {sorted(TEMPLATE_FIELDS)}")
    if "title" not in fields:
        raise ValueError(f"{key}: must contain {{title}} (the marker and the headline)")
