"""Located, compiler-style errors for spec problems, each with a stable code.

Every problem in a user's spec is reported as one line::

    specs/x.yaml:14:7: error: layers[3] 'c3' (conv): groups must divide in_channels. Received: in_channels=64, groups=3. [AS401]

followed, where we have one, by a ``hint:`` line. The code (``AS401``) names the rule that was
broken; codes are stable, listed in `CODES` and in docs/errors.md, so CI systems and editors can
match on them. The CLI prints these and exits 1; nothing here ever reaches the user as a
traceback. A file with several independent mistakes raises `SpecErrors`, which holds them all.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass

# code -> (severity, what it means). Never reuse a code for another rule; add a new one.
CODES = {
    # reading and parsing the file
    "AS100": ("error", "the file cannot be read: missing, not a regular file, unreadable or too large"),
    "AS101": ("error", "the file is not valid UTF-8"),
    "AS102": ("error", "invalid YAML syntax"),
    "AS103": ("error", "a YAML feature archspec does not accept: anchors, aliases, merge keys, tags, "
                       "several documents, non-scalar keys, a root that is not a mapping"),
    "AS104": ("error", "a key appears twice in one mapping"),
    "AS105": ("error", "the file is nested too deeply"),
    "AS106": ("error", "a number outside the supported range (integers within ±2^53, finite reals)"),
    "AS107": ("error", "a character YAML readers disagree on: U+0085, U+2028 or U+2029 end a line for "
                       "YAML 1.1 (archspec's parser) but not for YAML 1.2 or editors"),
    # the schema of the file and of each layer
    "AS201": ("error", "unknown key"),
    "AS202": ("error", "a required key is missing"),
    "AS203": ("error", "a setting has the wrong type, is out of range or breaks a rule of its op"),
    "AS204": ("error", "unknown op or block"),
    "AS205": ("error", "a layer entry is not '- op' or '- op: {settings}'"),
    "AS206": ("error", "a name (id, branch, template, spec name) breaks the naming rule"),
    "AS207": ("error", "unknown variable"),
    "AS208": ("error", "an expression cannot be evaluated (syntax, unsupported operation, range)"),
    "AS209": ("error", "a template argument is missing or unknown"),
    "AS210": ("error", "a '--set NAME=VALUE' option names no variable of the spec, or its value is not "
                       "one plain value (a number, true/false or a string)"),
    # how layers connect
    "AS301": ("error", "'from' names no earlier layer"),
    "AS302": ("error", "a name is already taken in its block"),
    "AS303": ("error", "a layer's output is never used"),
    "AS304": ("error", "a training-only layer feeds a layer of the inference network"),
    "AS305": ("error", "a template uses itself"),
    "AS306": ("error", "a layer or block gets the wrong number of inputs"),
    "AS307": ("error", "'override' names no layer of the base spec, or has no 'extends'"),
    "AS308": ("error", "'extends' cannot be followed: missing file, outside the project, a cycle or "
                       "too deep a chain"),
    "AS309": ("error", "'tie' names no earlier layer (a later one, this layer itself or a block containing it)"),
    "AS310": ("error", "a tied layer does not match the layer whose parameters it uses (op, settings, "
                       "parameter shapes, structure, trainable, training-only), or cannot use its weight "
                       "transposed (`transpose: true`: not conv/conv_transpose or linear/linear, groups, shape)"),
    # shapes
    "AS401": ("error", "an op's shape rule is broken (input rank, window larger than the input, "
                       "channels that do not divide)"),
    "AS402": ("error", "the output shape differs from the layer's 'expect'"),
    "AS403": ("error", "the inputs of a merge (add, mul, concat) do not fit together"),
    # limits on hostile or runaway input
    "AS501": ("error", "the expanded network exceeds archspec's limits (nodes, expansion steps, "
                       "total name length)"),
    "AS502": ("error", "the language server stopped checking a file after its time limit "
                       "(initialization option 'timeLimit')"),
    # compiling, exporting, loading weights
    "AS601": ("error", "the model cannot be exported to ONNX faithfully, or a check of the exported "
                       "file failed"),
    "AS602": ("error", "weights cannot be read or do not fit the model"),
    # warnings
    "AS801": ("warning", "flooring in the output-size formula drops input pixels at the far edge"),
    "AS802": ("warning", "adaptive pooling replicates values: its output is larger than its input"),
    # not the user's fault
    "AS900": ("error", "an internal error in archspec (a bug: please report it with the spec)"),
}


@dataclass(frozen=True)
class Location:
    """A place in a file: 1-based line and column; `end_line`/`end_col` (exclusive) give the
    range of the key or value when known (editors underline it)."""

    file: str  # the spec file as given
    line: int  # 1-based
    col: int  # 1-based
    end_line: int | None = None  # end of the key or value, when known
    end_col: int | None = None  # exclusive

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"

    def to_json(self) -> dict:
        return {"file": self.file, "line": self.line, "column": self.col,
                "end_line": self.end_line, "end_column": self.end_col}


UNKNOWN = Location("<spec>", 1, 1)


class SpecError(Exception):
    """A problem with a user's spec: what (`message`), where (`loc`, a Location or None),
    which rule (`code`, 'AS201'; docs/errors.md) and, optionally, how to fix it (`hint`).
    `errors` lists the problems (just this one here; all of them in `SpecErrors`); `str()` is
    the line the CLI prints, `file:line:col: error: message [code]` and `  hint: ...`."""

    def __init__(self, message: str, loc: Location | None = None, hint: str | None = None,
                 code: str = "AS203"):
        super().__init__(message)
        if code not in CODES:
            raise ValueError(f"unknown error code {code!r}")
        self.message = message
        self.loc = loc
        self.hint = hint
        self.code = code

    @property
    def errors(self) -> list["SpecError"]:
        return [self]

    def located(self, loc: Location | None) -> "SpecError":
        """Return self with `loc` filled in if it had none."""
        if self.loc is None and loc is not None:
            self.loc = loc
        return self

    def __str__(self) -> str:
        where = f"{self.loc}: " if self.loc else ""
        text = f"{where}error: {self.message} [{self.code}]"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    def to_json(self) -> dict:
        return diagnostic_json(self.loc, "error", self.code, self.message, self.hint)


class SpecErrors(SpecError):
    """Several independent problems in one spec, in source order. Behaves as the first one
    (message, loc, code) for code that wants a single error; `errors` lists them all and
    `str()` prints them all, one after the other. `partial` is the part of the Graph that
    could be built (or None), what `archspec check` and the language server still show."""

    def __init__(self, errors: list[SpecError], partial=None):
        errors = [e for err in errors for e in err.errors]
        first = errors[0]
        super().__init__(first.message, first.loc, first.hint, first.code)
        self._errors = list(errors)
        self.partial = partial  # the part of the graph that could be built, if any

    @property
    def errors(self) -> list[SpecError]:
        return list(self._errors)

    def __str__(self) -> str:
        return "\n".join(SpecError.__str__(e) for e in self._errors)


def raise_all(errors: list[SpecError], partial=None) -> None:
    """Raise `errors` (source order) as one SpecError, or SpecErrors when there are several."""
    if not errors:
        return
    errors = sorted((e for err in errors for e in err.errors), key=source_order)
    if len(errors) == 1:
        errors[0].partial = partial
        raise errors[0]
    raise SpecErrors(errors, partial)


def source_order(error: SpecError):
    loc = error.loc or UNKNOWN
    return (loc.file, loc.line, loc.col)


def diagnostic_json(loc: Location | None, severity: str, code: str, message: str,
                    hint: str | None = None) -> dict:
    """One error or warning as the stable JSON object `check --format json` prints."""
    where = (loc or UNKNOWN).to_json()
    return {**where, "severity": severity, "code": code, "message": message, "hint": hint}


class ShapeError(Exception):
    """Raised by pure shape rules; the graph builder adds the node's name and location.
    `code` is AS401 for an op's own rule, AS403 for merges whose inputs do not fit."""

    def __init__(self, rule: str, *, code: str = "AS401", **received):
        self.rule = rule
        self.received = received
        self.code = code
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
