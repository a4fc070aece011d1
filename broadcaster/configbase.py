"""The building blocks of every configuration model: secrets and the strict base model.

A :class:`Secret` is given inline, from an environment variable (``{ env = "NAME" }``) or from a
file (``{ file = "/etc/broadcaster/key" }``, which others may not read and only its owner may
write); its ``repr``, ``str`` and JSON dump are masked, so logs, pages and ``check-config`` never
show it. An inline string is the secret itself, so one that reads like a reference
(``"env:NAME"``, ``"file:/path"``, ``"${NAME}"``, ``"$NAME"``) is refused with the form to
write instead. :class:`StrictModel` refuses unknown keys and freezes what it loaded.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer, WithJsonSchema

MASK = "**********"
_UNSAFE_SECRET_MODE = 0o027  # group write, or any access by others


class Secret:
    """A secret string that never shows itself in ``str``, ``repr`` or a config dump."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself: call only where it is used (an HMAC, a header)."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __str__(self) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


_ENV_REFERENCE = re.compile(r"^\s*(?:env:|\$\{.*\}\s*$|\$[A-Za-z_][A-Za-z0-9_]*\s*$)", re.I)
_FILE_REFERENCE = re.compile(r"^\s*file:", re.I)


def _refuse_reference(value: str) -> None:
    """Refuse an inline secret that reads like a reference (the value is never shown)."""
    if _FILE_REFERENCE.match(value):
        form, kind = '{ file = "/path" }', "a file"
    elif _ENV_REFERENCE.match(value):
        form, kind = '{ env = "NAME" }', "an environment variable"
    else:
        return
    raise ValueError(
        f"this string reads like a reference to {kind}, but a string is taken as the secret"
        f" itself; write {form} to read the secret from {kind}"
    )


def _load_secret(value: object) -> Secret:
    if isinstance(value, Secret):
        return value
    if isinstance(value, str):
        if not value:
            raise ValueError("a secret must not be empty")
        _refuse_reference(value)
        return Secret(value)
    if isinstance(value, Mapping):
        if set(value) == {"env"}:
            name = str(value["env"])
            found = os.environ.get(name)
            if not found:
                raise ValueError(f"environment variable {name} is not set or empty")
            return Secret(found)
        if set(value) == {"file"}:
            path = Path(str(value["file"]))
            try:
                mode = path.stat().st_mode & 0o777
                text = path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ValueError(f"cannot read secret file {path}: {exc.strerror}") from None
            if mode & _UNSAFE_SECRET_MODE:
                raise ValueError(
                    f"secret file {path} has mode {mode:04o}: others may read it or its group "
                    "may change it; chmod 600 (or 640 for a trusted group)"
                )
            if not text:
                raise ValueError(f"secret file {path} is empty")
            return Secret(text)
    raise ValueError('a secret is a string, { env = "NAME" } or { file = "PATH" }')


SecretValue = Annotated[
    Secret,
    BeforeValidator(_load_secret),
    PlainSerializer(lambda _s: MASK, return_type=str),
    WithJsonSchema({"type": "string"}),
]


class StrictModel(BaseModel):
    """Base for configuration models: unknown keys are errors, values are checked on load."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, frozen=True)
