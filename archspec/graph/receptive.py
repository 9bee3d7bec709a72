"""Receptive fields: which input positions each node's output can depend on, per spatial axis
of the network's input. No torch (docs/format.md, "Receptive field").

Input positions are indexed 0 … n-1 along each axis. The field of one output position is the
interval of input positions it can depend on, padding included (so it may start before 0).
- size: the interval's length, in input positions;
- jump: how far the interval moves between neighbouring output positions;
- start: the centre of output position 0's interval, in input coordinates (-0.5 lies between
  the padding position -1 and position 0); output position q's is `start + q * jump`.

Global context is tracked apart: an op that makes every output depend on every input position
(global pooling, flatten, group/instance norm with the sample's statistics) marks its output
`global_context`, and a merge is global when any input is. Size, jump and start describe the
spatially resolved paths only: a merge takes them from the inputs whose positions still map
to input positions, so a squeeze-and-excitation gate, a (C, 1, 1) vector broadcast over
(C, H, W), adds global context but does not widen the field of the features it scales.
"""
from __future__ import annotations

from dataclasses import dataclass

from archspec.graph.ir import INPUT, Graph
from archspec.ops import OPS
from archspec.ops.registry import IDENTITY, spatial_rank

# Sizes, jumps and starts saturate here (no real input is this large). Below it the values are
# whole or half numbers — or fractions of resizing ops, which are marked inexact anyway — so
# floats hold them exactly.
LIMIT = float(2 ** 53)


@dataclass(frozen=True)
class Field:
    """Receptive field along one axis, in input positions (see the module docstring)."""

    size: float = 1
    jump: float = 1
    start: float = 0
    # Where resizing by fractions made the positions advance unevenly: how far the centre of
    # a position's field can be from `start + q * jump`. The field's bound is size + 2 * slack.
    slack: float = 0

    @property
    def bound(self) -> float:
        return self.size + 2 * self.slack


@dataclass(frozen=True)
class NodeField:
    """A node's receptive field: one `Field` per spatial axis of the network's input.

    global_context: the output depends on every input position (through a global op).
    resolved: its positions still map to input positions; False after a global reduction
        (global pooling, flatten), where `axes` is the whole extent that reached it.
    exact: False where a field is an upper bound (resizing by a fraction, see `AxisMap`) or
        saturated at LIMIT.
    """

    axes: tuple = ()
    global_context: bool = False
    resolved: bool = True
    exact: bool = True


def receptive_fields(graph: Graph) -> dict:
    """Node name (and `input`) -> NodeField, for every node of the graph."""
    fields = {INPUT: NodeField((Field(),) * spatial_rank(graph.input_shape))}
    for node in graph.nodes.values():
        in_shapes = [graph.shape(i) for i in node.inputs]
        fields[node.name] = propagate(OPS[node.op], node, [fields[i] for i in node.inputs], in_shapes)
    return fields


def propagate(op, node, inputs: list, in_shapes: list) -> NodeField:
    """The field of `node`'s output from its inputs' fields. An op acts on the network's axes
    when its input has as many (a flattened input has none: its field is already the whole
    extent that reached it)."""
    if len(inputs) > 1:
        return merge(inputs)
    (before,), shape = inputs, in_shapes[0]
    if spatial_rank(shape) != len(before.axes) or not before.axes:
        return before
    kind = op.spatial_kind(node.params)
    if kind == "context":
        return NodeField(before.axes, True, before.resolved, before.exact)
    if kind == "global":
        axes = tuple(_saturated(f.size + (n - 1) * f.jump, f.jump * n, f.start + (n - 1) / 2 * f.jump, f.slack)
                     for f, n in zip(before.axes, shape[1:]))
        return NodeField(tuple(a for a, _ in axes), True, False, before.exact and all(ok for _, ok in axes))
    maps = op.field_map(node.params, shape, node.shape)
    if all(m is IDENTITY for m in maps):
        return before
    axes, exact = [], before.exact
    for f, m in zip(before.axes, maps):
        field, ok = _saturated(f.size + (m.taps - 1) * f.jump, f.jump * m.step, f.start + m.offset * f.jump,
                               f.slack + m.wobble * f.jump)
        axes.append(field)
        exact = exact and m.exact and ok
    return NodeField(tuple(axes), before.global_context, before.resolved, exact)


def merge(inputs: list) -> NodeField:
    """A merge (add, mul, concat) sees the union of its inputs' fields, taken over the inputs
    whose positions are resolved (all of them if none is); it is global if any input is. With
    equal jumps the union is the same interval for every output position; with different ones
    it is not shift-invariant, so the hull at position 0 is marked inexact."""
    resolved = [f for f in inputs if f.resolved] or inputs
    global_context = any(f.global_context for f in inputs)
    exact = all(f.exact for f in resolved)
    axes = []
    for per_input in zip(*(f.axes for f in resolved)):
        low = min(f.start - (f.size - 1) / 2 for f in per_input)
        high = max(f.start + (f.size - 1) / 2 for f in per_input)
        jumps = {f.jump for f in per_input}
        exact = exact and len(jumps) == 1
        axes.append(Field(high - low + 1, max(jumps), (low + high) / 2, max(f.slack for f in per_input)))
    return NodeField(tuple(axes), global_context, any(f.resolved for f in inputs), exact)


def _saturated(size, jump, start, slack) -> tuple[Field, bool]:
    """A Field with size, jump, |start| and slack capped at LIMIT (a stack of huge strides
    cannot grow them without end), and whether nothing was capped."""
    if max(size, jump, abs(start), slack) <= LIMIT:
        return Field(size, jump, start, slack), True
    cap = lambda v: max(-LIMIT, min(v, LIMIT))  # noqa: E731
    return Field(cap(size), cap(jump), cap(start), cap(slack)), False


def as_number(x) -> int | float:
    """A field value for reports: an int when whole, else a float rounded to 3 places."""
    x = float(x)
    if x.is_integer():
        return int(x)
    x = round(x, 3)
    return int(x) if x.is_integer() else x
