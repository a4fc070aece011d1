"""Start-up checks of ``[[upstream]]`` and ``[[neighbour]]``, each problem with its key.

Run by :func:`broadcaster.preflight.preflight`, so ``check-config`` reports them and ``serve``
refuses to start with them: names given twice; a token that two sources, neighbours or API
clients share (the token is what tells them apart); a source that requires signatures but
trusts no certificate, or names one that cannot be read; channels that are not configured;
division codes that are malformed.
"""

from __future__ import annotations

from collections.abc import Iterable

from broadcaster.config import CapConfig, Config
from broadcaster.divisions import normalize_code
from broadcaster.errors import ConfigError
from broadcaster.signatures import SignaturePolicy


def _twice(names: Iterable[str]) -> set[str]:
    seen: set[str] = set()
    repeated = set()
    for name in names:
        if name in seen:
            repeated.add(name)
        seen.add(name)
    return repeated


def _code_problems(key: str, codes: Iterable[str]) -> list[str]:
    problems = []
    for code in codes:
        try:
            normalize_code(code)
        except ValueError as exc:
            problems.append(f"{key}.areas: {exc}")
    return problems


def upstream_problems(config: Config) -> list[str]:
    """Every problem of the federation sections (none when they are absent)."""
    problems = [
        f"upstream: the name {name!r} is given twice"
        for name in _twice(s.name for s in config.upstream)
    ]
    problems += [
        f"neighbour: the name {name!r} is given twice"
        for name in _twice(n.name for n in config.neighbour)
    ]
    tokens = [(f"upstream.{s.name}.token", s.token) for s in config.upstream if s.mode == "push"]
    tokens += [(f"neighbour.{n.name}.token", n.token) for n in config.neighbour]
    tokens += [(f"api.tokens.{t.name}.token", t.token) for t in config.api.tokens]
    shared = _twice(token.reveal() for _key, token in tokens if token is not None)
    problems += [
        f"{key}: the same token is given to another source, neighbour or API client"
        for key, token in tokens
        if token is not None and token.reveal() in shared and not key.startswith("api.")
    ]
    base = config.source.resolve().parent if config.source else None
    for source in config.upstream:
        key = f"upstream.{source.name}"
        problems += _code_problems(key, source.areas)
        unknown = [c for c in source.channels or [] if c not in config.channels]
        if unknown:
            problems.append(f"{key}.channels: not configured: {', '.join(unknown)}")
        if source.require_signature and not source.trusted_certificates:
            problems.append(f"{key}: require_signature needs trusted_certificates")
        certificates = [
            p if p.is_absolute() or base is None else base / p for p in source.trusted_certificates
        ]
        try:
            SignaturePolicy(CapConfig(trusted_certificates=certificates))
        except ConfigError as exc:
            problems.append(f"{key}.trusted_certificates: {str(exc).split(': ', 1)[1]}")
    for neighbour in config.neighbour:
        problems += _code_problems(f"neighbour.{neighbour.name}", neighbour.areas)
    return problems
