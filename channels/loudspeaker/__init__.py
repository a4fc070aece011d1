"""The loudspeaker channel: alerts spoken by village loudspeaker boxes, with per-box
confirmation (docs/protocols/speaker.md; the wire is ``drivers.speaker``).

Registered as ``loudspeaker = "channels.loudspeaker:LoudspeakerChannel"`` in the entry-point
group ``broadcaster.channels``. Modules::

    config    LoudspeakerChannelConfig: hub transports, keys, priorities, volume, clips, simulate
    boxes     registry targets and keys into hub registrations; simulated boxes (demo)
    commands  play_url / play_clip / stop for a delivery; GY/T class, priority and volume
    media     AudioLibrary: one render per alert and language, served over HTTP
    channel   LoudspeakerChannel: plan, send, cancel, confirmations, health, probe, preview
"""

from __future__ import annotations

from channels.loudspeaker.channel import LoudspeakerChannel
from channels.loudspeaker.config import (
    ClipSettings,
    LoudspeakerChannelConfig,
    MqttSettings,
    SerialLineSettings,
    TcpSettings,
)

__all__ = [
    "ClipSettings",
    "LoudspeakerChannel",
    "LoudspeakerChannelConfig",
    "MqttSettings",
    "SerialLineSettings",
    "TcpSettings",
]
