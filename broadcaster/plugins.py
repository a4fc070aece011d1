"""Channel plugins: found through the entry-point group ``broadcaster.channels``, loaded lazily.

Each ``[channels.<name>]`` table of the configuration names a plugin by ``type``: an
entry-point name, or ``package.module:ClassName`` for a channel an integrator has not packaged
yet. A plugin that
is missing, fails to import, has an invalid configuration, or whose constructor, ``web_app()``
or ``start()`` raises anything at all becomes one :class:`PluginFailure` (shown by the CLI, the
health endpoint, the metrics and the console); the other channels keep working and the core
never crashes for it. What a running channel raises later is a fault
(:mod:`broadcaster.faults`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from broadcaster.channel import Channel, ChannelContext
from broadcaster.config import MASK, Config, format_validation_error
from broadcaster.errors import PluginError
from broadcaster.faults import describe

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "broadcaster.channels"


@dataclass(frozen=True, slots=True)
class PluginFailure:
    channel: str
    type: str
    error: str


def available_plugins() -> dict[str, EntryPoint]:
    """Installed channel plugins by type name (not imported yet)."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def load_plugin(type_name: str) -> type[Channel]:
    """Import the channel class for ``type_name``; raises PluginError with the reason.

    ``type_name`` is an entry-point name (``sms``) or, for a channel not packaged yet, an
    import path ``package.module:ClassName``.
    """
    plugins = available_plugins()
    if ":" in type_name:
        target = EntryPoint(name=type_name, value=type_name, group=ENTRY_POINT_GROUP)
    elif type_name in plugins:
        target = plugins[type_name]
    else:
        known = ", ".join(sorted(plugins)) or "none"
        raise PluginError(f"no channel plugin named {type_name!r} (installed: {known})")
    try:
        cls = target.load()
    except Exception as exc:
        raise PluginError(
            f"channel plugin {type_name!r} failed to import: {type(exc).__name__}: {exc}"
        ) from exc
    if not (isinstance(cls, type) and issubclass(cls, Channel)):
        raise PluginError(f"channel plugin {type_name!r} is not a broadcaster.channel.Channel")
    return cls


def build_channel(name: str, raw: Mapping[str, Any], context: ChannelContext) -> Channel:
    """Create one channel instance from its configuration table."""
    type_name = str(raw.get("type", ""))
    cls = load_plugin(type_name)
    try:
        config = cls.config_model.model_validate(dict(raw))
    except ValidationError as exc:
        lines = format_validation_error(exc, f"channels.{name}")
        raise PluginError("invalid channel configuration:\n  " + "\n  ".join(lines)) from None
    except Exception as exc:
        raise PluginError(
            f"channel plugin {type_name!r} failed to check its configuration: {describe(exc)}"
        ) from exc
    try:
        return cls(name, config, context)
    except Exception as exc:
        log.error("channel %s: constructor of %s raised", name, type_name, exc_info=exc)
        raise PluginError(
            f"channel plugin {type_name!r} failed to initialise: {describe(exc)}"
        ) from exc


def build_channels(
    config: Config, context_for: Callable[[str], ChannelContext]
) -> tuple[dict[str, Channel], list[PluginFailure]]:
    """Every enabled channel of the configuration that could be created, and the failures."""
    channels: dict[str, Channel] = {}
    failures: list[PluginFailure] = []
    for name, raw in config.channels.items():
        if not raw.get("enabled", True):
            continue
        try:
            channels[name] = build_channel(name, raw, context_for(name))
        except PluginError as exc:
            log.error("channel %s disabled: %s", name, exc)
            failures.append(PluginFailure(name, str(raw.get("type", "")), str(exc)))
    return channels, failures


_SECRET_WORDS = ("secret", "token", "password", "passwd", "key", "credential")


def masked_config(config: Config) -> dict[str, Any]:
    """The configuration as plain data with every secret masked (for ``--dump-config``).

    Channel tables are dumped through their plugin's model, which masks its secret fields; a
    table whose plugin cannot be loaded has every secret-looking key masked instead.
    """
    data = config.model_dump(mode="json")
    data["channels"] = {}
    for name, raw in config.channels.items():
        try:
            model = load_plugin(str(raw.get("type", ""))).config_model.model_validate(dict(raw))
            data["channels"][name] = model.model_dump(mode="json")
        except (PluginError, ValidationError):
            data["channels"][name] = {
                k: MASK if any(w in k.lower() for w in _SECRET_WORDS) else v for k, v in raw.items()
            }
    return data


def check_channel_configs(config: Config, data_dir: Path) -> list[str]:
    """Problems with the channel tables of a configuration and the files they name (relative
    to ``data_dir``), one line each (for check-config)."""
    problems = []
    for name, raw in config.channels.items():
        try:
            cls = load_plugin(str(raw.get("type", "")))
            settings = cls.config_model.model_validate(dict(raw))
        except PluginError as exc:
            problems.append(f"channels.{name}: {exc}")
            continue
        except ValidationError as exc:
            problems.extend(format_validation_error(exc, f"channels.{name}"))
            continue
        try:
            found = cls.preflight(name, settings, data_dir)
        except Exception as exc:  # a plugin's bug must not stop the other checks
            problems.append(f"channels.{name}: the plugin's file check failed: {exc!r}")
            continue
        problems.extend(f"channels.{name}.{line}" for line in found)
    return problems
