"""Preflight: every check ``serve`` makes before it binds its port, with every problem at once.

``broadcaster check-config`` prints the list and ``broadcaster serve`` refuses to start with the
same list: both call :func:`preflight`. The checks, each problem named by its key:

- the TOML file is readable and well formed; every section validates (secrets included: an
  ``{ env = ... }`` variable is set, a ``{ file = ... }`` is readable and others may not read
  it), as far as the other sections allow (:func:`broadcaster.config.config_problems`);
- every channel table names a channel plugin that loads and validates against its model, and
  the files it names pass the plugin's own check (:meth:`broadcaster.channel.Channel.preflight`:
  box keys, subscriber groups, VAPID keys, the FM player program);
- the files the configuration names are readable and well formed: the division list and the
  target registry (``registry.*``), the hazard templates (``console.templates``), the trusted
  certificates and the signing key and certificate (``cap.*``);
- the upstream sources and neighbours (:func:`broadcaster.upstream.sources.upstream_problems`);
- ``BROADCASTER_ADMIN_PASSWORD``, while the store holds no officer yet, is a password the
  account rules allow (the store is read, never created or changed);
- no server runs on the data directory (``server.data_dir``) and the server's address can be
  bound (``server.port``).

Warnings do not stop a start: a target whose ``channel`` names no configured channel, and a
configured channel that no target of the registry uses (unless its targets enrol themselves, as
web-push subscribers do).
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from broadcaster.auth.officers import ADMIN_PASSWORD_ENV, first_admin_refusal, password_problem
from broadcaster.config import Config, config_problems
from broadcaster.console.hazards import default_templates_dir, load_templates
from broadcaster.delivery import Target
from broadcaster.deploy.backup import STORE_FILE, data_dir_in_use
from broadcaster.divisions import DivisionTree
from broadcaster.errors import ConfigError, PluginError
from broadcaster.plugins import check_channel_configs, load_plugin
from broadcaster.signatures import SignaturePolicy
from broadcaster.store.postgres import holds_officer, unreachable
from broadcaster.store.targets import load_targets_file
from broadcaster.upstream.sources import upstream_problems

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class PreflightReport:
    """What :func:`preflight` found: the configuration (as far as valid), errors and warnings."""

    config: Config | None
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def preflight(
    path: Path,
    *,
    host: str | None = None,
    port: int | None = None,
    data_dir: Path | None = None,
) -> PreflightReport:
    """Run every start-up check on the configuration at ``path``; raise nothing.

    ``host``, ``port`` and ``data_dir`` override ``[server]`` as ``serve`` options do.
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        return PreflightReport(None, [f"{path}: cannot read the configuration: {exc.strerror}"])
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return PreflightReport(None, [f"{path}: not valid TOML: {exc}"])
    config, errors = config_problems(data, base_dir=path.resolve().parent, source=path)
    server = config.server.model_copy(
        update={k: v for k, v in (("host", host), ("port", port)) if v is not None}
    )
    config = config.model_copy(update={"server": server})
    running_on = data_dir or server.data_dir
    errors += [_one_line(problem) for problem in check_channel_configs(config, running_on)]
    targets = _checked(errors, "registry.targets", config.registry.targets, load_targets_file)
    _checked(errors, "registry.divisions", config.registry.divisions, DivisionTree.load)
    templates = config.console.templates or default_templates_dir()
    _checked(errors, "console.templates", templates, load_templates)
    _checked(errors, "cap", config.cap, SignaturePolicy)
    errors += upstream_problems(config)
    errors += _first_admin_problems(config, running_on)
    if config.store.url is not None:
        store_problem = unreachable(config.store.url.reveal())
        if store_problem:
            errors.append(f"store.url: {store_problem}")
    if data_dir_in_use(running_on):
        errors.append(
            f"server.data_dir: a server is running on {running_on}"
            " (stop it first: systemctl stop broadcaster)"
        )
    bind_problem = _bind_problem(server.host, server.port)
    if bind_problem:
        errors.append(f"server.port: {bind_problem}")
    warnings = _unused(config, targets) if targets is not None else []
    return PreflightReport(config, list(dict.fromkeys(errors)), warnings)


def _checked(errors: list[str], key: str, value: T | None, load: Callable[[T], R]) -> R | None:
    """``load(value)``, or None with its problem added to ``errors`` under ``key``."""
    if value is None:
        return None
    try:
        return load(value)
    except ConfigError as exc:
        message = _one_line(str(exc))
        errors.append(message if message.startswith(key) else f"{key}: {message}")
    except OSError as exc:
        errors.append(f"{key}: cannot read {value}: {exc.strerror}")
    return None


def _one_line(problem: str) -> str:
    """One line per problem: a listing under a heading is folded into its line."""
    first, *listed = problem.splitlines() or [""]
    return " ".join([first, "; ".join(line.strip().lstrip("- ") for line in listed)]).strip()


def _first_admin_problems(config: Config, data_dir: Path) -> list[str]:
    """``BROADCASTER_ADMIN_PASSWORD`` as the start would refuse it: set, not allowed by the
    account rules, and no officer in the store yet."""
    password = os.environ.get(ADMIN_PASSWORD_ENV)
    problem = password_problem(password, config.console) if password else None
    if problem is None:
        return []
    url = config.store.url
    if holds_officer(url.reveal()) if url is not None else _officer_exists(data_dir):
        return []
    return [first_admin_refusal(problem)]


def _officer_exists(data_dir: Path) -> bool:
    """Whether the store in ``data_dir`` holds an officer, read without changing anything: no
    store yet (a first start) or one from before officers existed holds none. A store that
    cannot be read counts as holding one: the start, not this check, will say what is wrong.

    A store closed cleanly has no write-ahead log and is read as immutable (SQLite then makes
    no ``-wal`` or ``-shm`` file); one with a log left by a crash is read through it."""
    path = data_dir / STORE_FILE
    if not path.is_file():
        return False
    logged = path.with_name(f"{STORE_FILE}-wal").exists()
    uri = f"{path.resolve().as_uri()}?{'mode=ro' if logged else 'immutable=1'}"
    try:
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as conn:
            tables = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'officers'")
            if tables.fetchone() is None:
                return False
            return conn.execute("SELECT 1 FROM officers LIMIT 1").fetchone() is not None
    except sqlite3.Error:
        return True


def _bind_problem(host: str, port: int) -> str | None:
    """Why ``serve`` could not listen on ``host:port``, or None (port 0 is always free)."""
    if port == 0:
        return None
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"cannot resolve server.host {host!r}: {exc.strerror}"
    for family, kind, proto, _name, address in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                return f"cannot listen on {host}:{port}: {exc.strerror}"
    return None


def _unused(config: Config, targets: list[Target]) -> list[str]:
    """Targets of no configured channel, and configured channels without a target."""
    used = {target.channel for target in targets}
    warnings = [
        f"registry.targets: {count} target(s) name channel {name!r}, which is not configured"
        for name, count in _counts(targets).items()
        if name not in config.channels
    ]
    warnings += [
        f"channels.{name}: no target of the registry uses this channel"
        for name, raw in config.channels.items()
        if name not in used and not _enrols_targets(str(raw.get("type", "")))
    ]
    return warnings


def _enrols_targets(plugin: str) -> bool:
    """Whether channels of ``plugin`` find their own targets (a broken plugin: no)."""
    try:
        return load_plugin(plugin).capabilities.enrols_targets
    except PluginError:
        return False


def _counts(targets: list[Target]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for target in targets:
        counts[target.channel] = counts.get(target.channel, 0) + 1
    return counts
