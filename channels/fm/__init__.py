"""The FM channel: RDS alarm (TA/TP, PTY 31/30, PS, RT over UECP or ASCII encoders) and the
spoken warning played into each transmitter, with per-step acknowledgement and restore.

Registered as ``fm = "channels.fm:FmChannel"`` in the entry-point group
``broadcaster.channels``. Modules::

    config       FmChannelConfig: encoders, normal station state, PS/RT texts, player, SAME
    onair        PS and RT in the RDS character set, Latin fallback, priority, SAME header
    player       AudioPlayer: the player command as a subprocess, killed on Cancel
    transmitter  TransmitterLink: one alert per encoder, preemption
    restore      EncoderRestorer and OnAirJournal: TA taken down after link loss and restarts
    channel      FmChannel: plan, send, cancel, confirm, health, probe, preview
"""

from __future__ import annotations

from channels.fm.channel import FmChannel
from channels.fm.config import FmChannelConfig, SameConfig, StationConfig, TransmitterConfig

__all__ = ["FmChannel", "FmChannelConfig", "SameConfig", "StationConfig", "TransmitterConfig"]
