"""What the SMS channels share: templates and signatures, the segment budget, subscriber
groups resolved to numbers, and the one renderer both the GSM-modem channel (``sms``) and the
operator-gateway channel (``gateway-sms``) send and preview with."""

from channels.smstext.message import SmsText, render_sms
from channels.smstext.recipients import (
    LANGUAGE_STRIDE,
    GroupEntry,
    count_numbers,
    group_entries,
    plan_numbers,
    probe_group,
    recipient,
)
from channels.smstext.renderer import SmsRenderer
from channels.smstext.templates import DEFAULT_TEMPLATE, SmsTextConfig, check_template

__all__ = [
    "DEFAULT_TEMPLATE",
    "LANGUAGE_STRIDE",
    "GroupEntry",
    "SmsRenderer",
    "SmsText",
    "SmsTextConfig",
    "check_template",
    "count_numbers",
    "group_entries",
    "plan_numbers",
    "probe_group",
    "recipient",
    "render_sms",
]
