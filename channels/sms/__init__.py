"""The ``sms`` channel: CAP warnings as SMS to subscriber groups through a GSM modem pool.

Entry point ``sms = "channels.sms:SmsChannel"`` in the group ``broadcaster.channels``. See
``channels/sms/README.md`` for the configuration and ``channels.sms.channel`` for behaviour.
"""

from channels.sms.channel import SmsChannel, channel_error
from channels.sms.config import SmsChannelConfig, SmsModemSettings
from channels.sms.groups import GroupImport, SmsImportError, import_groups
from channels.sms.sending import SmsSender
from channels.sms.submissions import SubmissionRecord, SubmissionStore, SubmissionStoreError
from channels.sms.tracking import SegmentTracker
from channels.smstext import SmsText, group_entries, render_sms

__all__ = [
    "GroupImport",
    "SegmentTracker",
    "SmsChannel",
    "SmsChannelConfig",
    "SmsImportError",
    "SmsModemSettings",
    "SmsSender",
    "SmsText",
    "SubmissionRecord",
    "SubmissionStore",
    "SubmissionStoreError",
    "channel_error",
    "group_entries",
    "import_groups",
    "render_sms",
]
