"""Located, compiler-style errors for spec problems.

Every problem in a user's spec is reported as one line::

    specs/x.yaml:14:7: error: layers[3] 'c3' (conv): groups must divide in_channels. Received: in_channels=64, groups=3.

followed, where we have one, by a ``hint:`` line. The CLI prints these and exits 1;
nothing here ever reaches the user as a traceback.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass


@dataclass(frozen=True)
class Location:
    file: str
    line: int  # 1-based
    col: int  # 1-based

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


UNKNOWN = Location("<spec>", 1, 1)


class SpecError(Exception):
    """A problem with a user's spec, with where it is and (optionally) how to fix it."""

    def __init__(self, message: str, loc: Location | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.loc = loc
        self.hint = hint

    def located(self, loc: Location | None) -> "SpecError":
        """Return self with `loc` filled in if it had none."""
        if self.loc is None and loc is not None:
            self.loc = loc
        return self

    def __str__(self) -> str:
        where = f"{self.loc}: " if self.loc else ""
        text = f"{where}error: {self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class ShapeError(Exception):
    """Raised by pure shape rules; the graph builder adds the node's name and location."""

    def __init__(self, rule: str, **received):
        self.rule = rule
        self.received = received
        super().__init__(self.render())

    def render(self) -> str:
        text = self.rule.rstrip(".") + "."
        if self.received:
            got = ", ".join(f"{k}={v}" for k, v in self.received.items())
            text += f" Received: {got}."
        return text


def did_you_mean(word: str, choices) -> str | None:
    """A 'did you mean' hint for a misspelt key or op, or None if nothing is close."""
    close = difflib.get_close_matches(str(word), sorted(map(str, choices)), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


def received(**values) -> str:
    return " Received: " + ", ".join(f"{k}={v}" for k, v in values.items()) + "."
