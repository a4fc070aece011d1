"""The ``gateway-sms`` channel: CAP warnings as SMS through operators' SMS gateways.

Entry point ``gateway-sms = "channels.gateway_sms:GatewaySmsChannel"`` in the group
``broadcaster.channels``. See ``channels/gateway_sms/README.md`` for the configuration and
``channels.gateway_sms.channel`` for behaviour.
"""

from channels.gateway_sms.channel import GatewaySmsChannel
from channels.gateway_sms.config import GatewaySmsChannelConfig
from channels.gateway_sms.errors import channel_error
from channels.gateway_sms.records import GatewayRecords, GatewayRecordsError

__all__ = [
    "GatewayRecords",
    "GatewayRecordsError",
    "GatewaySmsChannel",
    "GatewaySmsChannelConfig",
    "channel_error",
]
