"""What is wrong with a CAP document: one :class:`Problem` per finding.

A Problem names the element by its path in the document (``/alert/info[1]/area[2]/polygon[1]``,
1-based indexes as in XPath), a short stable rule id (``required``, ``enumeration``,
``cap-time``, ``polygon-closed`` ...) and a sentence a warning officer can act on. Errors reject
the document; warnings are reported beside an accepted one. This module imports nothing heavy:
the core exception tree refers to it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

ProblemSeverity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """One finding about one element of a CAP document."""

    path: str
    rule: str
    message: str
    severity: ProblemSeverity = "error"

    def __str__(self) -> str:
        return f"{self.severity} {self.path} [{self.rule}]: {self.message}"


def errors_of(problems: Iterable[Problem]) -> list[Problem]:
    """The findings among ``problems`` that reject a document."""
    return [problem for problem in problems if problem.severity == "error"]


def warnings_of(problems: Iterable[Problem]) -> list[Problem]:
    """The findings among ``problems`` that are only reported."""
    return [problem for problem in problems if problem.severity == "warning"]


def summarize(problems: Iterable[Problem], *, limit: int = 3) -> str:
    """A one-line summary of the errors in ``problems`` for an exception message."""
    found = errors_of(problems)
    if not found:
        return "no errors"
    shown = "; ".join(str(problem) for problem in found[:limit])
    more = len(found) - limit
    return f"{shown} (and {more} more)" if more > 0 else shown
