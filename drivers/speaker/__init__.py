"""The village loudspeaker box protocol: codec, transports, hub, box agent and fleet simulator.

Specification: docs/protocols/speaker.md. Layers, bottom up:

- ``codec`` (signed JSON, pure functions) and ``serial_frames`` (binary RS-485 framing);
- server side: ``SpeakerHub`` over ``hub_tcp``, ``hub_serial`` and ``hub_mqtt`` links;
- box side: ``BoxAgent`` over ``uplinks`` (TCP/TLS, MQTT, serial line), with ``store`` and
  ``player``; ``agent_cli`` is the ``broadcaster-box`` command;
- ``simulator``: many real agents in one process with a recording player.

Errors form one tree rooted at ``SpeakerError`` (see ``errors``).
"""

from drivers.speaker.agent import BoxAgent, BoxBehaviourConfig, BoxIdentity
from drivers.speaker.errors import (
    BoxOfflineError,
    BoxStorageError,
    DownloadInterruptedError,
    FrameError,
    MediaDownloadError,
    MediaIntegrityError,
    SignatureError,
    SpeakerConfigError,
    SpeakerConnectionError,
    SpeakerError,
    SpeakerPermanentError,
    SpeakerProtocolError,
    SpeakerRetryableError,
    SpeakerTimeoutError,
    UnknownBoxError,
)
from drivers.speaker.hub import (
    BoxRegistration,
    MqttBrokerConfig,
    SpeakerHub,
    SpeakerHubConfig,
    TcpListenConfig,
)
from drivers.speaker.hub_serial import SerialLineConfig
from drivers.speaker.messages import (
    ALL_ALERTS,
    AckStage,
    BoxAck,
    BoxPresence,
    BoxState,
    BoxStatus,
    BroadcastClass,
    Command,
    HubEvent,
    PlayClip,
    PlayUrl,
    Priority,
    SetVolume,
    Stop,
)
from drivers.speaker.simulator import FleetSimulatorConfig, SpeakerFleetSimulator

__all__ = [
    "ALL_ALERTS",
    "AckStage",
    "BoxAck",
    "BoxAgent",
    "BoxBehaviourConfig",
    "BoxIdentity",
    "BoxOfflineError",
    "BoxPresence",
    "BoxRegistration",
    "BoxState",
    "BoxStatus",
    "BoxStorageError",
    "BroadcastClass",
    "Command",
    "DownloadInterruptedError",
    "FleetSimulatorConfig",
    "FrameError",
    "HubEvent",
    "MediaDownloadError",
    "MediaIntegrityError",
    "MqttBrokerConfig",
    "PlayClip",
    "PlayUrl",
    "Priority",
    "SerialLineConfig",
    "SetVolume",
    "SignatureError",
    "SpeakerConfigError",
    "SpeakerConnectionError",
    "SpeakerError",
    "SpeakerFleetSimulator",
    "SpeakerHub",
    "SpeakerHubConfig",
    "SpeakerPermanentError",
    "SpeakerProtocolError",
    "SpeakerRetryableError",
    "SpeakerTimeoutError",
    "Stop",
    "TcpListenConfig",
    "UnknownBoxError",
]
