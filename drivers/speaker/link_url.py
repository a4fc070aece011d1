"""Box link addresses written as URLs, and the uplink each one opens
(docs/protocols/speaker.md, section 4).

``tcp://host:port``, ``tls://host:port``, ``mqtt://host:port[/prefix]``,
``mqtts://host:port[/prefix]`` (MQTT links may name several brokers of a cluster,
``mqtt://a:1883,b:1883,c:1883/prefix``: the box fails over from one to the next), and
``serial:///dev/ttyUSB0?baudrate=19200`` (any pyserial URL or device path after
``serial://``). TLS links verify the server against the system CAs or ``ca_file``;
``server_tls_context`` builds the hub's side.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from drivers.mqtt import MqttUsageError
from drivers.mqtt.brokers import BrokerAddress, parse_hosts
from drivers.speaker.agent import BoxAgent
from drivers.speaker.errors import SpeakerConfigError
from drivers.speaker.topics import DEFAULT_PREFIX, SpeakerTopics
from drivers.speaker.uplinks import MqttCredentials, MqttUplink, TcpUplink

DEFAULT_PORTS = {"tcp": 7700, "tls": 7701, "mqtt": 1883, "mqtts": 8883}


@dataclass(frozen=True, slots=True)
class LinkAddress:
    """A parsed link URL."""

    scheme: str
    host: str = ""
    port: int = 0
    prefix: str = DEFAULT_PREFIX
    serial_url: str = ""
    baudrate: int = 115200
    failover: tuple[BrokerAddress, ...] = ()

    @property
    def brokers(self) -> tuple[BrokerAddress, ...]:
        """Every broker of an MQTT link, the first one first."""
        return ((self.host, self.port), *self.failover)

    @property
    def uses_tls(self) -> bool:
        return self.scheme in ("tls", "mqtts")


def parse_link_url(url: str) -> LinkAddress:
    """Parse a link URL; raises SpeakerConfigError naming what is wrong."""
    if url.startswith("serial://"):
        rest = url[len("serial://") :]
        path, _, query = rest.partition("?")
        if not path:
            raise SpeakerConfigError(f"link {url!r}: no serial device")
        params = parse_qs(query)
        try:
            baudrate = int(params.get("baudrate", ["115200"])[0])
        except ValueError as exc:
            raise SpeakerConfigError(f"link {url!r}: baudrate must be a number") from exc
        return LinkAddress(scheme="serial", serial_url=path, baudrate=baudrate)
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS:
        raise SpeakerConfigError(f"link {url!r}: scheme must be tcp, tls, mqtt, mqtts or serial")
    if "," in parts.netloc:
        return _parse_broker_list(url, parts.scheme, parts.netloc, parts.path)
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError as exc:
        raise SpeakerConfigError(f"link {url!r}: invalid port") from exc
    if not parts.hostname:
        raise SpeakerConfigError(f"link {url!r}: no host")
    prefix = parts.path.strip("/") or DEFAULT_PREFIX
    SpeakerTopics(prefix)
    return LinkAddress(scheme=parts.scheme, host=parts.hostname, port=port, prefix=prefix)


def _parse_broker_list(url: str, scheme: str, authority: str, path: str) -> LinkAddress:
    if scheme not in ("mqtt", "mqtts"):
        raise SpeakerConfigError(f"link {url!r}: only MQTT links may name several hosts")
    try:
        brokers = parse_hosts(authority, DEFAULT_PORTS[scheme])
    except MqttUsageError as exc:
        raise SpeakerConfigError(f"link {url!r}: {exc}") from exc
    prefix = path.strip("/") or DEFAULT_PREFIX
    SpeakerTopics(prefix)
    (host, port), *failover = brokers
    return LinkAddress(scheme, host, port, prefix, failover=tuple(failover))


def parse_link_urls(urls: list[str]) -> LinkAddress:
    """Several MQTT link URLs of one cluster, same scheme and prefix, as one link."""
    if not urls:
        raise SpeakerConfigError("link: the list names no URL")
    links = [parse_link_url(url) for url in urls]
    first = links[0]
    if len(links) > 1 and first.scheme not in ("mqtt", "mqtts"):
        raise SpeakerConfigError("link: only MQTT links may list several brokers")
    if any((link.scheme, link.prefix) != (first.scheme, first.prefix) for link in links):
        raise SpeakerConfigError("link: every broker in the list needs the same scheme and prefix")
    brokers = [broker for link in links for broker in link.brokers]
    failover = tuple(brokers[1:])
    return LinkAddress(first.scheme, first.host, first.port, first.prefix, failover=failover)


def client_tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """A verifying client TLS context; raises SpeakerConfigError if ``ca_file`` is unusable."""
    try:
        return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise SpeakerConfigError(f"cannot load CA file {ca_file}: {exc}") from exc


def server_tls_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """A TLS server context for the hub's TCP listener; raises SpeakerConfigError."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as exc:
        raise SpeakerConfigError(f"cannot load TLS certificate {cert_file}: {exc}") from exc
    return context


def open_uplink(
    agent: BoxAgent,
    address: LinkAddress,
    tls: ssl.SSLContext | None = None,
    mqtt_credentials: MqttCredentials | None = None,
    command_qos: int = 1,
) -> TcpUplink | MqttUplink:
    """The uplink for one agent over TCP/TLS or MQTT (serial lines are built per line);
    ``command_qos``: of the MQTT command subscriptions."""
    if address.uses_tls and tls is None:
        tls = client_tls_context(None)
    if address.scheme in ("tcp", "tls"):
        return TcpUplink(agent, address.host, address.port, tls if address.uses_tls else None)
    if address.scheme in ("mqtt", "mqtts"):
        topics = SpeakerTopics(address.prefix)
        return MqttUplink(
            agent,
            address.host,
            address.port,
            topics,
            tls if address.uses_tls else None,
            credentials=mqtt_credentials,
            failover=address.failover,
            command_qos=command_qos,
        )
    raise SpeakerConfigError(f"{address.scheme} links are opened per line, not per box")
