"""Which input sizes a network takes: a sweep of one input side `n` through the static checker,
and the rules it follows. No torch.

What is swept (`axes`): on a (C, L) input, L = n; on (C, H, W), H = W = n (or H alone, or W
alone, the other kept); on (C, D, H, W), H = W = n with D kept (or any other choice of axes).
Every size in the range is built by the static checker (`build_graph`, the layers' `expect:`
shapes left out: they hold at the spec's own size), and for each one three things are read:

- valid: the spec builds (every shape rule holds);
- keeps every pixel: no layer's output-size formula floors away input pixels (no AS801);
- divides evenly: every layer whose output positions step over several input positions has
  exactly input / step outputs (the maps are n/2, n/4, … with nothing rounded).

The rules come from the analysis of strides: along an axis, every output-size formula is
floor((i + a)/s) + b, so after the first sizes every answer repeats with the product of the
strides on the way — the deepest map's jump, `period` here (the lcm over branches). A rule is
then a threshold and the residues mod the period that satisfy it; the sweep checks that the
answers do repeat over the whole range (`holds`), so a rule is stated only where every size in
the range agrees with it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from math import lcm

from archspec.errors import SpecError
from archspec.graph.build import build_graph
from archspec.graph.ir import Graph
from archspec.graph.receptive import receptive_fields
from archspec.ops import OPS

AXIS_LETTERS = {1: "L", 2: "HW", 3: "DHW"}  # the spatial axes' names, by spatial rank
DEFAULT_AXES = {1: "L", 2: "HW", 3: "HW"}
PROPERTIES = ("valid", "keeps_every_pixel", "divides_evenly")


@dataclass
class SizeCheck:
    """What the static checker says about one input size."""

    n: int
    shape: tuple
    valid: bool
    keeps_every_pixel: bool = False
    divides_evenly: bool = False
    output: tuple | None = None
    error: SpecError | None = None  # the first error, when invalid
    replication: list = field(default_factory=list)  # AS802 warnings (text)


@dataclass
class Rule:
    """n satisfies the rule when n >= start and n % period is in residues (and n in `extra`,
    the sizes below `start` that satisfy it). `holds`: the sweep agrees at every size."""

    start: int | None
    period: int
    residues: tuple
    extra: tuple = ()
    holds: bool = True

    def __contains__(self, n: int) -> bool:
        return n in self.extra or (self.start is not None and n >= self.start
                                   and n % self.period in self.residues)


@dataclass
class Sweep:
    name: str
    base: tuple  # the spec's input shape (or --input's)
    axes: tuple  # indices of the swept spatial axes
    letters: str  # their names, e.g. "HW"
    sizes: list  # SizeCheck per n, ascending
    period: int
    rules: dict  # property -> Rule (None when sizes were skipped: --step > 1)
    step: int = 1

    def smallest_valid(self) -> SizeCheck | None:
        return next((s for s in self.sizes if s.valid), None)

    def failure_below(self) -> SizeCheck | None:
        """The last invalid size before the smallest valid one (its error says what fails)."""
        first = self.smallest_valid()
        below = [s for s in self.sizes if not s.valid and (first is None or s.n < first.n)]
        return below[-1] if below else None


def parse_axes(text: str | None, rank: int) -> tuple[tuple[int, ...], str]:
    """'HW' -> ((0, 1), 'HW') on a 2-D input; raises ValueError for letters the rank lacks."""
    letters = AXIS_LETTERS.get(rank, "")
    if not letters:
        raise ValueError("the input has no spatial axes to sweep")
    text = (text or DEFAULT_AXES[rank]).upper()
    if not text or len(set(text)) != len(text) or any(c not in letters for c in text):
        raise ValueError(f"--axes takes letters from {letters} on this input (e.g. {DEFAULT_AXES[rank]}). "
                         f"Received: '{text}'")
    return tuple(letters.index(c) for c in text), "".join(sorted(text, key=letters.index))


def shape_at(base: tuple, axes: tuple, n: int) -> tuple:
    spatial = list(base[1:])
    for a in axes:
        spatial[a] = n
    return (base[0], *spatial)


def check_size(spec, shape: tuple, n: int) -> SizeCheck:
    """Build `spec` at input `shape` (swept side `n`) with the static checker and read the
    three answers."""
    try:
        graph = build_graph(dataclasses.replace(spec, input=tuple(shape)), check_expect=False)
    except SpecError as exc:
        return SizeCheck(n, tuple(shape), False, error=exc.errors[0])
    codes = {w.code for w in graph.warnings}
    return SizeCheck(n, tuple(shape), True, "AS801" not in codes, divides_evenly(graph),
                     graph.shape(graph.output),
                     replication=[str(w) for w in graph.warnings if w.code == "AS802"])


def divides_evenly(graph: Graph) -> bool:
    """Whether every op stepping over several input positions per output has exactly
    input / step outputs along every axis."""
    for node in graph.nodes.values():
        shape = graph.shape(node.inputs[0]) if node.inputs else None
        if shape is None or len(shape) < 2 or len(node.inputs) != 1 or len(node.shape) != len(shape):
            continue
        maps = OPS[node.op].field_map(node.params, shape, node.shape)
        if any(m.step > 1 and o * m.step != i for m, i, o in zip(maps, shape[1:], node.shape[1:])):
            return False
    return True


def period(graph: Graph, axes: tuple) -> int:
    """The lcm of the whole-number jumps of every resolved node along the swept axes: the
    product of the strides on each path, after which the output-size formulas repeat."""
    result = 1
    for f in receptive_fields(graph).values():
        if f.resolved:
            for a in axes:
                jump = f.axes[a].jump if a < len(f.axes) else 1
                if float(jump).is_integer():
                    result = lcm(result, int(jump))
    return result


def sweep(spec, graph: Graph, axes: tuple, letters: str, low: int, high: int, step: int = 1) -> Sweep:
    """Check every size n = low, low + step, …, high; derive the rules."""
    base = tuple(spec.input)
    sizes = [check_size(spec, shape_at(base, axes, n), n) for n in range(low, high + 1, step)]
    p = period(graph, axes)
    rules = {prop: derive_rule([(s.n, getattr(s, prop) and s.valid) for s in sizes], p, step)
             for prop in PROPERTIES}
    return Sweep(spec.name, base, axes, letters, sizes, p, rules, step)


def derive_rule(answers: list, p: int, step: int = 1) -> Rule | None:
    """The rule (threshold + residues mod p) the answers follow: the first n from which every
    answer equals the one p later. None when sizes were skipped (step > 1): a residue class
    seen only in part states nothing."""
    if step != 1:
        return None
    truth = dict(answers)
    ns = [n for n, _ in answers]
    start = None
    for n in reversed(ns):  # the earliest n from which everything repeats with period p
        if n + p in truth and truth[n] != truth[n + p]:
            break
        start = n
    holds = start is not None and start + 2 * p - 1 <= ns[-1]  # a whole period compared
    if not holds:
        start = ns[0]
    residues = tuple(sorted({n % p for n in ns if n >= start and truth[n]}))
    extra = tuple(n for n in ns if n < start and truth[n])
    first_true = next((n for n in ns if n >= start and truth[n]), None)
    return Rule(first_true if residues else None, p, residues, extra, holds)
