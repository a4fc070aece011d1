"""Reading JSON request bodies: the one reader every JSON endpoint uses (RFC 8259).

A body is decoded as strict UTF-8 and parsed with limits that hostile documents would
otherwise turn into server errors: nesting deeper than :data:`MAX_DEPTH`, integers longer than
:data:`MAX_INTEGER_DIGITS` digits (Python refuses to convert more than 4,300 digits and would
raise), numbers that overflow to infinity, and the non-standard constants ``NaN`` and
``Infinity``. :func:`parse_json` raises :class:`JsonBodyError` (``ValueError``) with a message
fit to show the client; :func:`read_json_object` turns it into a 400 answer
``{"error": …}`` for aiohttp handlers.
"""

from __future__ import annotations

import json
import math
from typing import Any

from aiohttp import web

MAX_DEPTH = 64
MAX_INTEGER_DIGITS = 32


class JsonBodyError(ValueError):
    """A request body is not an acceptable JSON document; the message says why."""


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise JsonBodyError(f"a number in the JSON has more than {MAX_INTEGER_DIGITS} digits")
    return int(text)


def _float(text: str) -> float:
    if len(text) > 2 * MAX_INTEGER_DIGITS:
        raise JsonBodyError(f"a number in the JSON is longer than {2 * MAX_INTEGER_DIGITS} chars")
    value = float(text)
    if not math.isfinite(value):
        raise JsonBodyError(f"the number {text[:20]} in the JSON is out of range")
    return value


def _constant(name: str) -> Any:
    raise JsonBodyError(f"{name} is not a JSON value")


def _check_depth(value: Any, limit: int) -> None:
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            raise JsonBodyError(f"the JSON is nested deeper than {limit} levels")
        pending.extend((child, depth + 1) for child in children)


def parse_json(raw: bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """The JSON value in ``raw``; raises :class:`JsonBodyError` naming what is wrong."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JsonBodyError(f"the body is not UTF-8 (bad byte at offset {exc.start})") from None
    try:
        value = json.loads(text, parse_int=_integer, parse_float=_float, parse_constant=_constant)
    except RecursionError:
        raise JsonBodyError(f"the JSON is nested deeper than {max_depth} levels") from None
    except json.JSONDecodeError as exc:
        raise JsonBodyError(
            f"the body is not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except JsonBodyError:
        raise
    except ValueError:
        raise JsonBodyError("the body holds a value JSON cannot carry") from None
    _check_depth(value, max_depth)
    return value


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """The JSON object in ``raw``; raises :class:`JsonBodyError` for anything else."""
    value = parse_json(raw)
    if not isinstance(value, dict):
        raise JsonBodyError(f"the body must be a JSON object, not {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    return "a number" if not isinstance(value, bool) else "a boolean"


def bad_request(message: str) -> web.HTTPBadRequest:
    """A 400 answer ``{"error": message}`` to raise from a handler."""
    return web.HTTPBadRequest(
        text=json.dumps({"error": message}, ensure_ascii=False), content_type="application/json"
    )


async def read_json_object(request: web.Request, *, optional: bool = False) -> dict[str, Any]:
    """The request's body as a JSON object; raises a 400 answer for a hostile or bad one.

    With ``optional``, an empty body is an empty object.
    """
    raw = await request.read()
    if optional and not raw.strip():
        return {}
    try:
        return parse_json_object(raw)
    except JsonBodyError as exc:
        raise bad_request(str(exc)) from None
