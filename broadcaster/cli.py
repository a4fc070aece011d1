"""The ``broadcaster`` command line.

::

    broadcaster serve [--config FILE] [--data-dir DIR] [--host H] [--port P] [--dump-config]
    broadcaster cap validate FILE... [--json]
    broadcaster cap convert FILE [--to xml|json] [-o OUT]
    broadcaster send FILE [--url URL | --config FILE] [--token T] [--channels a,b]
    broadcaster status ID [--url URL | --config FILE] [--token T]
    broadcaster check-config [--config FILE] [--data-dir DIR] [--host H] [--port P]
    broadcaster channels [--config FILE]
    broadcaster new-channel NAME [--dir DIR]
    broadcaster sim NAME [simulator options]
    broadcaster audio render|same|clips-build [options]

``send`` and ``status`` talk to the server at ``--url``, else ``$BROADCASTER_URL``, else the
``[server]`` host and port of ``--config``, else http://127.0.0.1:8080; their token is
``--token``, else ``$BROADCASTER_API_TOKEN``, else the ``api-token`` the server generated in its
data directory (``--data-dir``, else that of ``--config``, else ``data``).

Errors are one line on stderr and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

from broadcaster.cap import Problem
from broadcaster.config import Config, demo_config_path, load_config
from broadcaster.errors import BroadcasterError, CapError, ConfigError

if TYPE_CHECKING:
    from broadcaster.preflight import PreflightReport

DEFAULT_URL = "http://127.0.0.1:8080"
URL_ENV = "BROADCASTER_URL"

COMMAND_GROUP = "broadcaster.commands"
"""Entry-point group through which plugins (channels) add subcommands without the core
importing them; each entry is a ``register(subparsers)`` function."""

COMMAND_MODULES: list[str] = [
    "broadcaster.deploy.cli",
    "broadcaster.console.cli",
    "broadcaster.federation.demo",
]
"""Modules that add subcommands: each has ``register(subparsers)``, which adds its parsers
and sets ``func`` (taking the parsed arguments, returning the exit status) on each."""


def _config(path: str | None) -> Config:
    return load_config(Path(path) if path else demo_config_path())


def cmd_serve(args: argparse.Namespace) -> int:
    if not args.dump_config:
        report = _preflight(args)
        if report.errors or report.config is None:
            print("broadcaster: not starting until these problems are fixed", file=sys.stderr)
            return 1
    config = _config(args.config)
    if args.dump_config:
        from broadcaster.plugins import masked_config

        print(json.dumps(masked_config(config), indent=2, ensure_ascii=False, default=str))
        return 0
    server = config.server.model_copy(
        update={k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    )
    config = config.model_copy(update={"server": server})
    data_dir = Path(args.data_dir) if args.data_dir else config.server.data_dir
    # Imported after the checks: the server and its audio stack take a while to load.
    from broadcaster.deploy.server import run_server

    run_server(config, data_dir=data_dir.resolve())
    return 0


def cmd_cap_validate(args: argparse.Namespace) -> int:
    from broadcaster.cap.parse import parse_cap

    failed = False
    report = []
    for name in args.files:
        path = Path(name)
        try:
            parsed = parse_cap(path.read_bytes())
            problems, ok = parsed.problems, True
        except OSError as exc:
            print(f"{name}: cannot read: {exc.strerror}", file=sys.stderr)
            failed = True
            continue
        except CapError as exc:
            problems, ok = exc.problems, False
        failed |= not ok
        report.append({"file": name, "valid": ok, "problems": [p.as_json() for p in problems]})
        if not args.json:
            for p in problems:
                print(f"{name}: {p}")
            print(f"{name}: {_verdict(problems) if not ok else 'valid'}")
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    return 1 if failed else 0


def _verdict(problems: list[Problem]) -> str:
    errors = [p for p in problems if p.severity == "error"]
    if errors and all(p.repairable for p in errors):
        return 'INVALID (every error is repairable: [cap] intake = "repair" accepts it repaired)'
    return "INVALID"


def cmd_cap_convert(args: argparse.Namespace) -> int:
    from broadcaster.cap.parse import parse_cap
    from broadcaster.cap.serialize import from_json, to_json, to_xml

    data = Path(args.file).read_bytes()
    if data.lstrip().startswith(b"{"):
        try:
            alert = from_json(json.loads(data))
        except json.JSONDecodeError as exc:
            raise CapError(f"{args.file}: not valid JSON: {exc}") from None
    else:
        alert = parse_cap(data).alert
    out = (
        to_xml(alert)
        if args.to == "xml"
        else (json.dumps(to_json(alert), indent=2, ensure_ascii=False) + "\n").encode()
    )
    if args.output:
        Path(args.output).write_bytes(out)
    else:
        sys.stdout.buffer.write(out)
    return 0


def _local_url(host: str, port: int) -> str:
    """The URL a client on this machine reaches a server listening on ``host``:``port`` at."""
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # noqa: S104
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _server_url(args: argparse.Namespace) -> str:
    if args.url:
        return str(args.url)
    if os.environ.get(URL_ENV):
        return os.environ[URL_ENV]
    if args.config:
        server = load_config(Path(args.config)).server
        return _local_url(server.host, server.port)
    return DEFAULT_URL


def _token(args: argparse.Namespace) -> str:
    token = args.token or os.environ.get("BROADCASTER_API_TOKEN")
    if not token:
        if args.data_dir:
            data_dir = Path(args.data_dir)
        else:
            data_dir = (
                load_config(Path(args.config)).server.data_dir if args.config else Path("data")
            )
        path = data_dir / "api-token"
        if path.exists():
            token = path.read_text(encoding="utf-8").strip()
    if not token:
        raise ConfigError(
            "no API token: use --token, BROADCASTER_API_TOKEN, --data-dir or --config"
        )
    return token


def _request(
    args: argparse.Namespace, method: str, path: str, body: bytes | None, ctype: str
) -> tuple[int, Any]:
    url = _server_url(args)
    request = urllib.request.Request(  # noqa: S310 - the URL is the operator's own server
        url.rstrip("/") + path,
        data=body,
        method=method,
        headers={"Authorization": f"Bearer {_token(args)}", "Content-Type": ctype},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, _answer(url, response.status, response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, _answer(url, exc.code, exc.read())
    except urllib.error.URLError as exc:
        raise BroadcasterError(f"cannot reach {url}: {exc.reason}") from None


def _answer(url: str, status: int, raw: bytes) -> Any:
    """The JSON a broadcaster server answers; anything else (a proxy's page) is an error."""
    try:
        return json.loads(raw or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BroadcasterError(
            f"{url} answered {status} with something other than JSON: is it a broadcaster server?"
        ) from None


def cmd_send(args: argparse.Namespace) -> int:
    data = Path(args.file).read_bytes()
    ctype = "application/json" if data.lstrip().startswith(b"{") else "application/cap+xml"
    query = f"?channels={args.channels}" if args.channels else ""
    status, body = _request(args, "POST", f"/api/v1/alerts{query}", data, ctype)
    print(json.dumps(body, indent=2, ensure_ascii=False))
    return 0 if status in (200, 201) else 1


def cmd_status(args: argparse.Namespace) -> int:
    status, body = _request(
        args, "GET", f"/api/v1/alerts/{args.id}/deliveries?limit=50", None, "application/json"
    )
    if status != 200:
        print(json.dumps(body, ensure_ascii=False), file=sys.stderr)
        return 1
    print(f"alert {args.id}: {body['alert_state']}, complete: {body['complete']}")
    for channel, states in body["summary"].items():
        counts = ", ".join(f"{s} {n}" for s, n in sorted(states.items()))
        print(f"  {channel}: {counts}")
    for d in body["deliveries"]:
        if d["state"] in ("failed", "queued", "expired") and d["last_error"]:
            print(f"  {d['channel']} {d['target_id']}: {d['state']}: {d['last_error']}")
    return 0


def _preflight(args: argparse.Namespace) -> PreflightReport:
    """Every check ``serve`` makes before binding, printed: errors, then warnings, on stderr."""
    from broadcaster.preflight import preflight

    path = Path(args.config) if args.config else demo_config_path()
    data_dir = Path(args.data_dir) if args.data_dir else None
    report = preflight(path, host=args.host, port=args.port, data_dir=data_dir)
    if report.errors:
        print(f"{path}: {len(report.errors)} problem(s):", file=sys.stderr)
    for line in report.errors:
        print(f"  {line}", file=sys.stderr)
    for line in report.warnings:
        print(f"warning: {line}", file=sys.stderr)
    return report


def cmd_check_config(args: argparse.Namespace) -> int:
    report = _preflight(args)
    if report.errors or report.config is None:
        return 1
    config = report.config
    print(f"{config.source}: configuration is valid ({len(config.channels)} channels)")
    return 0


def cmd_channels(args: argparse.Namespace) -> int:
    from broadcaster.channel import ChannelContext
    from broadcaster.plugins import available_plugins, build_channel, load_plugin

    status = 0
    for name in sorted(available_plugins()):
        try:
            cls = load_plugin(name)
            print(f"{name}: {cls.capabilities.description or cls.__name__}")
        except BroadcasterError as exc:
            print(f"{name}: BROKEN: {exc}")
            status = 1
    if args.config is None:
        return status
    config = _config(args.config)
    server = config.server
    context = ChannelContext(
        data_dir=server.data_dir,
        sender_name=server.sender_name,
        public_url=server.public_url or f"http://{server.host}:{server.port}",
    )
    print(f"channels of {config.source}:")
    for name, raw in config.channels.items():
        kind = raw.get("type", "")
        if not raw.get("enabled", True):
            print(f"  {name} ({kind}): disabled")
            continue
        try:
            build_channel(name, raw, context)
            print(f"  {name} ({kind}): ok")
        except BroadcasterError as exc:
            print(f"  {name} ({kind}): BROKEN: {exc}")
            status = 1
    return status


def cmd_new_channel(args: argparse.Namespace) -> int:
    from broadcaster.template import write_package

    root = write_package(args.name, Path(args.dir))
    print(f"{root}: channel package written; next: pip install -e {root} && pytest {root}")
    return 0


def cmd_sim(args: argparse.Namespace) -> int:
    sims = {ep.name: ep for ep in entry_points(group="broadcaster.simulators")}
    if args.name not in sims:
        raise BroadcasterError(f"no simulator {args.name!r} (have: {', '.join(sorted(sims))})")
    try:
        main = sims[args.name].load()
    except Exception as exc:
        raise BroadcasterError(f"simulator {args.name!r} failed to load: {exc}") from exc
    return int(main(list(args.rest)))


def cmd_audio(args: argparse.Namespace) -> int:
    # imported here: the audio stack (scipy) takes seconds to load, other commands skip it
    from audio.cli import main as audio_main

    return audio_main(list(args.rest))


SERVER_CHOICE = (
    f"The server is --url, else ${URL_ENV}, else the [server] host and port of --config, else"
    f" {DEFAULT_URL}. The token is --token, else $BROADCASTER_API_TOKEN, else the api-token"
    " file in --data-dir (else the data directory of --config, else ./data)."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="broadcaster", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the server")
    serve.add_argument("--config", help="TOML configuration (default: the demo)")
    serve.add_argument("--data-dir", help="data directory (default: from the configuration)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--dump-config", action="store_true", help="print it, secrets masked")
    serve.set_defaults(func=cmd_serve)

    cap = sub.add_parser("cap", help="CAP documents").add_subparsers(dest="cap_cmd", required=True)
    validate = cap.add_parser("validate", help="validate CAP files")
    validate.add_argument("files", nargs="+")
    validate.add_argument("--json", action="store_true")
    validate.set_defaults(func=cmd_cap_validate)
    convert = cap.add_parser("convert", help="CAP 1.1 → 1.2, XML ↔ JSON")
    convert.add_argument("file")
    convert.add_argument("--to", choices=("xml", "json"), default="xml")
    convert.add_argument("-o", "--output")
    convert.set_defaults(func=cmd_cap_convert)

    for name, func, helptext in (
        ("send", cmd_send, "send a CAP file to a running server"),
        ("status", cmd_status, "delivery state of an alert"),
    ):
        p = sub.add_parser(name, help=helptext, description=SERVER_CHOICE)
        p.add_argument("file" if name == "send" else "id")
        p.add_argument("--url", help=f"the server (default: ${URL_ENV}, else from --config)")
        p.add_argument("--config", help="the server's TOML configuration: its [server] address")
        p.add_argument("--token", help="API token (default: $BROADCASTER_API_TOKEN, api-token)")
        p.add_argument("--data-dir", help="where serve keeps its generated api-token")
        if name == "send":
            p.add_argument("--channels", help="comma-separated channel names")
        p.set_defaults(func=func)

    check = sub.add_parser("check-config", help="run every check serve runs before starting")
    check.add_argument("--config")
    check.add_argument("--host", help="as serve --host")
    check.add_argument("--port", type=int, help="as serve --port")
    check.add_argument("--data-dir", help="as serve --data-dir")
    check.set_defaults(func=cmd_check_config)
    channels = sub.add_parser("channels", help="list channel plugins (and a config's channels)")
    channels.add_argument("--config", help="also build each channel of this configuration")
    channels.set_defaults(func=cmd_channels)
    new = sub.add_parser("new-channel", help="write a channel package to start from")
    new.add_argument("name", help="the channel type, e.g. mail")
    new.add_argument("--dir", default=".", help="where to write NAME/ (default: here)")
    new.set_defaults(func=cmd_new_channel)
    sim = sub.add_parser("sim", help="run a device simulator (modem, rds, speaker)")
    sim.add_argument("name")
    sim.add_argument("rest", nargs=argparse.REMAINDER)
    sim.set_defaults(func=cmd_sim)
    audio = sub.add_parser(
        "audio",
        help="render warnings and SAME headers to audio files (audio render|same|clips-build)",
    )
    audio.add_argument("rest", nargs=argparse.REMAINDER)
    audio.set_defaults(func=cmd_audio)
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(sub)
    for entry in entry_points(group=COMMAND_GROUP):
        try:
            entry.load()(sub)
        except Exception as exc:  # a broken plugin must not take the whole CLI down
            print(f"warning: commands of plugin {entry.name!r} unavailable: {exc}", file=sys.stderr)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except CapError as exc:
        print(f"error: {exc}", file=sys.stderr)
        for p in exc.problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    except (BroadcasterError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
