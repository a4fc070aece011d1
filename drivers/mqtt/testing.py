"""Test and bench equipment for MQTT, shipped so integrators can use it too.

- ``MosquittoBroker``: a real Mosquitto (Debian package ``mosquitto``) on a free port of
  127.0.0.1, with unlimited queues (a server session may receive a whole fleet's messages at
  once) and listener settings of the caller's choosing (passwords, TLS); it can be frozen
  (SIGSTOP) and killed to test a broker that stops answering or dies.
- ``password_listener``: listener settings that admit only given users and passwords.
- ``free_port``: a TCP port free on 127.0.0.1.
"""

from __future__ import annotations

import select
import signal
import socket
import subprocess
import threading
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from drivers.mqtt.errors import MqttConnectionError

ANONYMOUS = "allow_anonymous true\n"


def password_listener(work_dir: Path, users: Mapping[str, str]) -> str:
    """Listener settings that admit only ``users`` (name: password), for ``MosquittoBroker``.

    The password file is written with ``mosquitto_passwd`` (Debian package ``mosquitto``).
    """
    passwords = work_dir / "mosquitto-passwd"
    passwords.touch()
    for name, password in users.items():
        subprocess.run(
            ["mosquitto_passwd", "-b", str(passwords), name, password],
            check=True,
            capture_output=True,
        )
    return f"allow_anonymous false\npassword_file {passwords}\n"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class MosquittoBroker:
    """Runs ``mosquitto`` on 127.0.0.1 with a generated config until the context exits.

    ``listener_config`` holds the listener's own settings, e.g. ``allow_anonymous false`` and
    a ``password_file``, or ``certfile``/``keyfile`` for TLS; ``port`` restarts a broker where
    an earlier one listened. Raises MqttConnectionError when the broker does not start.
    """

    def __init__(
        self,
        work_dir: Path,
        listener_config: str = ANONYMOUS,
        start_timeout_s: float = 5.0,
        port: int | None = None,
    ) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self._conf = work_dir / f"mosquitto-{self.port}.conf"
        self._listener_config = listener_config
        self._timeout = start_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self._drain: threading.Thread | None = None
        self.log_tail: deque[str] = deque(maxlen=200)

    def __enter__(self) -> Self:
        # "user root" keeps a broker started by root able to read files in the test's
        # private directories; it has no effect for other users.
        self._conf.write_text(
            "per_listener_settings true\nuser root\npersistence false\n"
            "max_inflight_messages 0\nmax_queued_messages 0\nconnection_messages false\n"
            f"log_dest stderr\nlistener {self.port} {self.host}\n{self._listener_config}"
        )
        try:
            self._process = subprocess.Popen(
                ["mosquitto", "-c", str(self._conf)],
                stderr=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                bufsize=0,
            )
        except OSError as exc:
            raise MqttConnectionError(f"cannot start mosquitto: {exc}") from exc
        stderr = self._process.stderr
        assert stderr is not None
        while True:
            ready, _, _ = select.select([stderr], [], [], self._timeout)
            line = stderr.readline() if ready else b""
            if not line:
                self.__exit__(None, None, None)
                raise MqttConnectionError(f"mosquitto did not start: {list(self.log_tail)}")
            self.log_tail.append(line.decode(errors="replace").rstrip())
            if b" running" in line:
                # Keep draining the log so a full pipe never stalls the broker.
                self._drain = threading.Thread(
                    target=self._drain_log, args=(stderr,), name="mosquitto-log", daemon=True
                )
                self._drain.start()
                return self

    @property
    def pid(self) -> int | None:
        """The broker's process id while it runs."""
        return self._process.pid if self._process is not None else None

    def _drain_log(self, stderr: IO[bytes]) -> None:
        for line in stderr:
            self.log_tail.append(line.decode(errors="replace").rstrip())

    def freeze(self) -> None:
        """Stop the broker process (SIGSTOP): it keeps its sockets but answers nothing."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)

    def kill(self) -> None:
        """Kill the broker at once (SIGKILL): the kernel resets its connections."""
        assert self._process is not None
        self._process.kill()
        self._process.wait(5)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait(5)
        if self._drain is not None:
            self._drain.join()
            self._drain = None
        if self._process.stderr is not None:
            self._process.stderr.close()
        self._process = None
