"""Settings of the ``loudspeaker`` channel: where the hub listens for boxes, where box keys come
from, and how alerts play (priority per broadcast class, volume, repeats, stored clips).

Example (``[channels.loudspeaker]`` in the TOML configuration)::

    [channels.loudspeaker]
    type = "loudspeaker"
    concurrency = 512
    master_secret = { env = "BROADCASTER_BOX_SECRET" } # box keys: HMAC-SHA256(secret, "box:<id>")
    key_file = "box-keys.json"                         # or explicit keys, {"<box id>": "<hex>"}
    tcp = { host = "0.0.0.0", port = 7700 }
    serial_lines = [{ name = "line1", url = "/dev/ttyUSB0" }]
    mqtt = { host = "broker.example.cn", username = "bc", password = { env = "MQTT_PASSWORD" } }
    # or the nodes of a broker cluster, with commands published over several sessions:
    # mqtt = { brokers = ["mqtt://mq1:1883", "mqtt://mq2:1883", "mqtt://mq3:1883"],
    #          publish_sessions = 16, client_id = "broadcaster-node1" }
    audio_over_mqtt = true                             # with mqtt: audio retained on the broker
    repeat = 2
    clips = { default = { id = "generic-warning", sha256 = "9f86…" } }

Relative paths are relative to the server's data directory. A box's key comes from
``key_file`` when the file names it, else from ``master_secret`` (the derivation of
docs/protocols/speaker.md section 2.2, the same one the fleet simulator and ``broadcaster-box``
provisioning use). Every value is checked once, at load.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from broadcaster.config import ChannelConfig, SecretValue
from drivers.mqtt import MqttUsageError
from drivers.mqtt.brokers import parse_broker_url
from drivers.speaker import (
    BroadcastClass,
    MqttBrokerConfig,
    Priority,
    SerialLineConfig,
    SpeakerHubConfig,
    TcpListenConfig,
)

BoxTransport = Literal["tcp", "serial", "mqtt"]
HELLO_STATE_FILE = "tcp-hellos.json"
"""In the channel's directory: the boxes' last accepted TCP hellos (docs/protocols/speaker.md
section 4.1)."""

_DEFAULT_PRIORITIES = {
    BroadcastClass.ROUTINE: int(Priority.ROUTINE),
    BroadcastClass.SYSTEM_DRILL: int(Priority.SYSTEM_DRILL),
    BroadcastClass.SIMULATED_DRILL: int(Priority.SIMULATED_DRILL),
    BroadcastClass.LIVE_DRILL: int(Priority.LIVE_DRILL),
    BroadcastClass.EMERGENCY: int(Priority.EMERGENCY),
}


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


class TcpSettings(_Settings):
    """Where boxes connect over TCP (docs/protocols/speaker.md section 4.1)."""

    host: str = "0.0.0.0"  # noqa: S104 - boxes connect from other hosts
    port: int = Field(7700, ge=0, le=65535, description="0 picks a free port (tests)")
    hello_timeout_seconds: float = Field(10.0, gt=0)
    max_pending_hellos: int = Field(
        256, ge=1, description="connections awaiting their hello at once; more are closed"
    )


class SerialLineSettings(_Settings):
    """One RS-485 line with boxes on it (section 4.2)."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    url: str = Field(min_length=1)
    baudrate: int = Field(115200, gt=0)
    reply_timeout_seconds: float = Field(0.25, gt=0)
    poll_interval_seconds: float = Field(0.2, gt=0)


class MqttSettings(_Settings):
    """The broker the boxes and the hub meet at (section 4.3)."""

    host: str = "localhost"
    port: int = Field(1883, ge=1, le=65535)
    prefix: str = "broadcaster/speaker"
    connect_timeout_seconds: float = Field(10.0, gt=0)
    client_id: str = Field(
        "broadcaster-hub",
        min_length=1,
        max_length=64,
        description="the server's persistent session: unique per server on the broker",
    )
    username: str | None = None
    password: SecretValue | None = None
    brokers: list[str] = Field(
        default_factory=list,
        description="the nodes of a broker cluster, mqtt://host:port each, in the order tried"
        " (instead of host and port); the session moves to the next node when it loses one",
    )
    publish_sessions: int = Field(
        0,
        ge=0,
        le=256,
        description="more connections, spread over the brokers, that publish the commands"
        " (0: the session itself); a cluster that replicates each message before its PUBACK"
        " needs several",
    )

    @model_validator(mode="after")
    def _check_brokers(self) -> Self:
        if self.brokers and {"host", "port"} & self.model_fields_set:
            raise ValueError("brokers: give either host and port or brokers, not both")
        self.broker_addresses()
        return self

    def broker_addresses(self) -> list[tuple[str, int]]:
        """Every broker, in the order tried."""
        if not self.brokers:
            return [(self.host, self.port)]
        try:
            return [a for url in self.brokers for a in parse_broker_url(url)]
        except MqttUsageError as exc:
            raise ValueError(str(exc)) from exc


class ClipSettings(_Settings):
    """A clip stored on the boxes: played when the download fails or nothing could be rendered."""

    id: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class LoudspeakerChannelConfig(ChannelConfig):
    """``[channels.loudspeaker]``; see the module docstring."""

    key_file: Path | None = Field(None, description='JSON object {"<box id>": "<hex key>"}')
    master_secret: SecretValue | None = None
    default_transport: BoxTransport = "tcp"
    tcp: TcpSettings | None = None
    serial_lines: list[SerialLineSettings] = Field(default_factory=list)
    mqtt: MqttSettings | None = None
    heartbeat_timeout_seconds: float = Field(90.0, gt=0)
    offline_retry_seconds: float | None = Field(
        15.0,
        gt=0,
        description="retry a delivery to an offline box after about this long (with jitter),"
        " so a box that reconnects gets a running alert quickly; None: the core's backoff",
    )
    priorities: dict[BroadcastClass, int] = Field(default_factory=lambda: dict(_DEFAULT_PRIORITIES))
    volume: int | None = Field(None, ge=0, le=100, description="None: the box's own volume")
    test_volume: int | None = Field(
        None, ge=0, le=100, description="volume of Test and Exercise alerts; None: as volume"
    )
    repeat: int = Field(2, ge=1, le=20)
    audio_format: Literal["mp3", "opus"] = "mp3"
    clips: dict[str, ClipSettings] = Field(
        default_factory=dict,
        description="stored clips by hazard (blizzard, gale, flood, ...) or 'default'",
    )
    simulate: bool = Field(
        False,
        description="run the registry's boxes as in-process simulated boxes over TCP on"
        " loopback, keys from master_secret (demo only)",
    )
    simulated_boxes_max: int = Field(5000, ge=1, description="simulate at most this many boxes")
    simulated_play_seconds: float = Field(5.0, ge=0, description="how long a simulated box plays")
    attention_clip: ClipSettings | None = Field(
        None,
        description="the attention signal stored on the boxes (broadcaster audio attention):"
        " a box holding it plays it at once while the warning downloads",
    )
    audio_over_mqtt: bool = Field(
        True,
        description="with mqtt: also retain each alert's sealed audio on the broker (once,"
        " with a seal note per command target), so boxes on MQTT take it from there instead"
        " of each downloading it from the server",
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.simulate and self.master_secret is None:
            raise ValueError("simulate: the simulated boxes need master_secret for their keys")
        missing = sorted(set(BroadcastClass) - set(self.priorities))
        if missing:
            raise ValueError(f"priorities: no priority for {', '.join(missing)}")
        bad = sorted(c for c, p in self.priorities.items() if not 0 <= p <= 255)
        if bad:
            raise ValueError(f"priorities: {', '.join(bad)} must be 0-255")
        names = [line.name for line in self.serial_lines]
        if len(set(names)) != len(names):
            raise ValueError("serial_lines: line names must be unique")
        return self

    def hub_config(self, directory: Path | None = None) -> SpeakerHubConfig:
        """The hub's settings; ``simulate`` serves TCP on loopback when no TCP is configured.
        In ``directory`` (the channel's own) the TCP listener keeps the boxes' last accepted
        hellos (``HELLO_STATE_FILE``), so that none can be replayed after a restart."""
        tcp = self.tcp
        if tcp is None and self.simulate:
            tcp = TcpSettings(host="127.0.0.1", port=0)
        mqtt = self.mqtt
        brokers = mqtt.broker_addresses() if mqtt else [("", 0)]
        return SpeakerHubConfig(
            tcp=TcpListenConfig(
                host=tcp.host,
                port=tcp.port,
                hello_timeout_s=tcp.hello_timeout_seconds,
                max_pending_hellos=tcp.max_pending_hellos,
                hello_state_file=directory / HELLO_STATE_FILE if directory else None,
            )
            if tcp
            else None,
            serial_lines=tuple(
                SerialLineConfig(
                    name=line.name,
                    url=line.url,
                    baudrate=line.baudrate,
                    reply_timeout_s=line.reply_timeout_seconds,
                    poll_interval_s=line.poll_interval_seconds,
                )
                for line in self.serial_lines
            ),
            mqtt=MqttBrokerConfig(
                host=brokers[0][0],
                port=brokers[0][1],
                prefix=mqtt.prefix,
                connect_timeout_s=mqtt.connect_timeout_seconds,
                client_id=mqtt.client_id,
                username=mqtt.username,
                password=mqtt.password.reveal() if mqtt.password else None,
                failover=tuple(brokers[1:]),
                publish_sessions=mqtt.publish_sessions,
            )
            if mqtt
            else None,
            heartbeat_timeout_s=self.heartbeat_timeout_seconds,
        )

    def clip_for(self, hazard: str) -> ClipSettings | None:
        """The stored clip for a hazard, else the default clip, else None."""
        return self.clips.get(hazard) or self.clips.get("default")
