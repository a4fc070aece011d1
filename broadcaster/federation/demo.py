"""``broadcaster demo federation``: a city node and two county nodes on this machine, wired up.

The city of Ulanqab (乌兰察布 150900) relays to 卓资县 (150921) and 凉城县 (150925). Each node
is its own ``broadcaster serve`` process with its own configuration, data directory and port
(the city on ``--base-port``, the counties on the next two). Tokens are generated: the city's
relay token at each county (``[[api.tokens]]`` ``city``), each county's report token at the
city (``[[api.tokens]]`` with ``node``), and an officer's API token and console password per
node. A county delivers on simulated devices of its own villages and townships (loudspeaker
boxes over TCP, GSM modems on ptys, and the ``log`` channel) or, with ``devices="log"``, on
the ``log`` channel only. The configurations are written under ``--data-dir`` (mode 0600:
they hold the tokens); Ctrl-C stops all three processes.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from broadcaster.config import demo_config_path

CITY = ("city", "150900", "乌兰察布市")
COUNTIES = (("zhuozi", "150921", "卓资县"), ("liangcheng", "150925", "凉城县"))
Devices = Literal["simulated", "log"]
_DEVICE_CHANNELS = {"simulated": ("log", "loudspeaker", "sms"), "log": ("log",)}


@dataclass(frozen=True, slots=True)
class NodeLayout:
    """One node of the demo: where it lives and the secrets to reach it."""

    name: str
    division: str
    label: str
    port: int
    directory: Path
    officer_token: str
    admin_password: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config(self) -> Path:
        return self.directory / "config.toml"


@dataclass(slots=True)
class FederationLayout:
    city: NodeLayout
    counties: list[NodeLayout] = field(default_factory=list)

    @property
    def nodes(self) -> list[NodeLayout]:
        return [self.city, *self.counties]


def _q(value: object) -> str:
    """A TOML value (strings quoted and escaped as JSON does, which TOML reads the same)."""
    return json.dumps(str(value) if isinstance(value, Path) else value, ensure_ascii=False)


def _token() -> str:
    return secrets.token_urlsafe(24)


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


def _common(node: NodeLayout, sender: str) -> str:
    divisions = demo_config_path().parent / "demo" / "divisions.json"
    return f"""# {node.label} node of `broadcaster demo federation` (generated; holds tokens).
[server]
host = "127.0.0.1"
port = {node.port}
data_dir = {_q(node.directory / "data")}
sender = {_q(sender)}
sender_name = {_q(node.label + "应急管理局")}

[dispatcher]
idle_poll_seconds = 0.1
retry_base_seconds = 1
retry_max_seconds = 5

[registry]
divisions = {_q(divisions)}

[[api.tokens]]
name = "officer"
token = {_q(node.officer_token)}
"""


def _county_channels(devices: Devices) -> str:
    text = '\n[channels.log]\ntype = "log"\npath = "deliveries.jsonl"\n'
    if devices == "simulated":
        text += (
            '\n[channels.loudspeaker]\ntype = "loudspeaker"\nconcurrency = 256\n'
            'master_secret = "demo-loudspeaker-provisioning-secret"\nsimulate = true\n'
            "simulated_play_seconds = 2\n"
            '[channels.loudspeaker.tcp]\nhost = "127.0.0.1"\nport = 0\n'
            '\n[channels.sms]\ntype = "sms"\nconcurrency = 4\nsimulate = true\n'
            "simulated_modems = 2\n"
        )
    return text


def _county_targets(division: str, devices: Devices) -> list[dict[str, Any]]:
    registry = demo_config_path().parent / "demo" / "targets.json"
    targets: list[dict[str, Any]] = json.loads(registry.read_text(encoding="utf-8"))
    wanted = _DEVICE_CHANNELS[devices]
    return [t for t in targets if t["division"].startswith(division) and t["channel"] in wanted]


def write_federation(
    directory: Path, base_port: int, devices: Devices = "simulated"
) -> FederationLayout:
    """Write the three nodes' configurations, registries and tokens under ``directory``."""
    directory = directory.resolve()

    def node(index: int, name: str, division: str, label: str) -> NodeLayout:
        folder = directory / name
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        return NodeLayout(name, division, label, base_port + index, folder, _token(), _token()[:16])

    layout = FederationLayout(node(0, *CITY))
    layout.counties = [node(i + 1, *county) for i, county in enumerate(COUNTIES)]
    relay_tokens = {c.name: _token() for c in layout.counties}
    report_tokens = {c.name: _token() for c in layout.counties}

    city = layout.city
    text = _common(city, "ulanqab.emergency@example.cn")
    for county in layout.counties:
        text += (
            f'\n[[api.tokens]]\nname = "county-{county.division}"\n'
            f"token = {_q(report_tokens[county.name])}\nnode = {_q(county.division)}\n"
        )
    text += f'\n[node]\nrole = "city"\ndivision = {_q(city.division)}\n'
    text += '\n[channels.relay]\ntype = "relay"\n'
    for county in layout.counties:
        text += (
            f"\n[[channels.relay.nodes]]\ndivision = {_q(county.division)}\n"
            f"url = {_q(county.url)}\ntoken = {_q(relay_tokens[county.name])}\n"
        )
    _write_private(city.config, text)

    for county in layout.counties:
        text = _common(county, f"{county.name}.emergency@example.cn")
        text = text.replace(
            "[registry]\n", f"[registry]\ntargets = {_q(county.directory / 'targets.json')}\n"
        )
        text += f'\n[[api.tokens]]\nname = "city"\ntoken = {_q(relay_tokens[county.name])}\n'
        text += f'\n[node]\nrole = "county"\ndivision = {_q(county.division)}\n'
        text += (
            f'\n[[node.report_to]]\nclient = "city"\nurl = {_q(city.url)}\n'
            f"token = {_q(report_tokens[county.name])}\n"
        )
        text += _county_channels(devices)
        targets = _county_targets(county.division, devices)
        _write_private(county.directory / "targets.json", json.dumps(targets, ensure_ascii=False))
        _write_private(county.config, text)
    return layout


def start_node(node: NodeLayout) -> subprocess.Popen[bytes]:
    """``broadcaster serve`` on the node's configuration, its first admin from the layout."""
    env = dict(os.environ, BROADCASTER_ADMIN_PASSWORD=node.admin_password)
    env.pop("BROADCASTER_API_TOKEN", None)
    with open(node.directory / "server.log", "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "broadcaster", "serve", "--config", str(node.config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )


def wait_answering(node: NodeLayout, process: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait until the node answers ``/healthz``; RuntimeError if it exits or takes too long."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"the {node.label} node exited ({process.returncode}); see"
                f" {node.directory / 'server.log'}"
            )
        try:
            with urllib.request.urlopen(f"{node.url}/healthz", timeout=1):  # noqa: S310
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"the {node.label} node did not answer within {timeout:g} s")


def stop_all(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _describe(layout: FederationLayout) -> str:
    lines = ["broadcaster demo federation: three nodes running", ""]
    for node in layout.nodes:
        lines += [
            f"{node.label} ({node.division}) {node.url}/console/",
            f"  console: admin / {node.admin_password}",
            f"  API token: {node.officer_token}",
            f"  configuration: {node.config}",
        ]
    lines += ["", "Ctrl-C stops all three."]
    return "\n".join(lines)


def cmd_demo_federation(args: argparse.Namespace) -> int:
    layout = write_federation(Path(args.data_dir), args.base_port)
    processes: list[subprocess.Popen[bytes]] = []

    def interrupted(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    # SIGINT too: a shell that starts the demo in the background has it ignored.
    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    try:
        for node in layout.nodes:
            processes.append(start_node(node))
        for node, process in zip(layout.nodes, processes, strict=True):
            wait_answering(node, process, timeout=120)
        print(_describe(layout), flush=True)
        while all(p.poll() is None for p in processes):
            time.sleep(0.5)
        print("a node stopped; stopping the others", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        stop_all(processes)


def register(subparsers: Any) -> None:
    demo = subparsers.add_parser("demo", help="demonstrations on this machine")
    kinds = demo.add_subparsers(dest="demo_cmd", required=True)
    federation = kinds.add_parser(
        "federation", help="a city node and two county nodes, wired together"
    )
    federation.add_argument("--base-port", type=int, default=8080, help="the city's port")
    federation.add_argument("--data-dir", default="data-federation", help="where nodes live")
    federation.set_defaults(func=cmd_demo_federation)
