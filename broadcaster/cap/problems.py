"""What is wrong with a CAP document: one :class:`Problem` per finding.

A Problem names the element by its path in the document (``/alert/info[1]/area[2]/polygon[1]``,
1-based indexes as in XPath), a short stable rule id (``required``, ``enumeration``,
``cap-time``, ``polygon-closed`` ...) and a sentence a warning officer can act on. An error is a
breach of CAP 1.2 (its schema or its text); a warning is a recommendation not followed. An error
a receiver can repair unambiguously carries ``repair``, a sentence saying what the repair is
(``Z`` written as ``-00:00``, an open polygon closed); every other error is not repairable.
This module imports nothing heavy: the core exception tree refers to it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from broadcaster.errors import CapError

ProblemSeverity = Literal["error", "warning"]
IntakePolicy = Literal["repair", "strict"]
"""``repair`` accepts a document whose only errors are repairable; ``strict`` refuses any error."""


@dataclass(frozen=True)
class Problem:
    """One finding about one element of a CAP document."""

    path: str
    rule: str
    message: str
    severity: ProblemSeverity = "error"
    repair: str | None = None

    @property
    def repairable(self) -> bool:
        """True for an error a receiver can repair without guessing."""
        return self.severity == "error" and self.repair is not None

    def as_json(self) -> dict[str, str | bool | None]:
        """The problem as the API and ``cap validate --json`` report it."""
        return {
            "severity": self.severity,
            "path": self.path,
            "rule": self.rule,
            "message": self.message,
            "repairable": self.repairable,
            "repair": self.repair,
        }

    def __str__(self) -> str:
        text = f"{self.severity} {self.path} [{self.rule}]: {self.message}"
        if self.severity == "warning":
            return text
        if self.repair is None:
            return f"{text} (not repairable)"
        return f"{text} (repairable: {self.repair})"


def errors_of(problems: Iterable[Problem]) -> list[Problem]:
    """The findings among ``problems`` that reject a document."""
    return [problem for problem in problems if problem.severity == "error"]


def warnings_of(problems: Iterable[Problem]) -> list[Problem]:
    """The findings among ``problems`` that are only reported."""
    return [problem for problem in problems if problem.severity == "warning"]


def unrepairable_of(problems: Iterable[Problem]) -> list[Problem]:
    """The errors among ``problems`` that no receiver can repair without guessing."""
    return [problem for problem in errors_of(problems) if problem.repair is None]


def summarize(problems: Iterable[Problem], *, limit: int = 3) -> str:
    """A one-line summary of the errors in ``problems`` for an exception message."""
    found = errors_of(problems)
    if not found:
        return "no errors"
    shown = "; ".join(str(problem) for problem in found[:limit])
    more = len(found) - limit
    return f"{shown} (and {more} more)" if more > 0 else shown


def settle(
    problems: Iterable[Problem], *, policy: IntakePolicy, what: str
) -> tuple[list[Problem], list[Problem]]:
    """The warnings and the repairs of an acceptable document; raises :class:`CapError` if not.

    Under ``strict`` every error refuses the document; under ``repair`` only the errors without
    a repair do. The CapError carries every problem found, each saying whether it is repairable.
    """
    found = list(problems)
    errors = errors_of(found)
    refusing = errors if policy == "strict" else unrepairable_of(found)
    if refusing:
        raise CapError(f"{what} rejected: {summarize(found)}", found)
    return warnings_of(found), errors
