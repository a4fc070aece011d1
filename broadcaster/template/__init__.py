"""``broadcaster new-channel NAME``: writes a channel package that passes its own contract test.

The package (``NAME/``) holds a ``pyproject.toml`` registering the channel in the entry-point
group ``broadcaster.channels``, the channel and its configuration model, a contract test with a
delivery sink, and a README. The channel it starts from drops each delivery as a JSON file into
a directory per target address: an observable effect the contract suite can check, to be
replaced by the integrator's own transport. ``docs/writing-a-channel.md`` walks through it.
"""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path

from broadcaster.errors import BroadcasterError

NAME = re.compile(r"^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$")
FILES = {
    "pyproject.toml": "pyproject.toml.tmpl",
    "README.md": "README.md.tmpl",
    "{package}/__init__.py": "init.py.tmpl",
    "{package}/channel.py": "channel.py.tmpl",
    "{package}/py.typed": "py.typed.tmpl",
    "tests/test_contract.py": "test_contract.py.tmpl",
}


class TemplateError(BroadcasterError):
    """The channel package cannot be written (bad name, directory exists)."""


def names(name: str) -> dict[str, str]:
    """The spellings of a channel name the template uses."""
    if not NAME.match(name):
        raise TemplateError(
            f"{name!r} is not a channel name: lower-case letters and digits, words joined by"
            " '-' or '_', starting with a letter"
        )
    words = re.split(r"[-_]", name)
    return {
        "name": name,
        "package": "broadcaster_" + "_".join(words),
        "distribution": "broadcaster-" + "-".join(words),
        "cls": "".join(w.capitalize() for w in words) + "Channel",
        "env": "_".join(words).upper(),
    }


def render(template: str, values: dict[str, str]) -> str:
    """The template with each ``{{key}}`` replaced (the templates hold Python's own braces)."""
    for key, value in values.items():
        template = template.replace("{{" + key + "}}", value)
    return template


def write_package(name: str, parent: Path) -> Path:
    """Write the package for channel ``name`` into ``parent/name``; returns its directory."""
    values = names(name)
    root = parent / name
    if root.exists():
        raise TemplateError(f"{root} exists already; choose another name or directory")
    source = files(__package__)
    for target, template in FILES.items():
        path = root / target.format(package=values["package"])
        path.parent.mkdir(parents=True, exist_ok=True)
        text = source.joinpath("files", template).read_text(encoding="utf-8")
        path.write_text(render(text, values), encoding="utf-8")
    return root
