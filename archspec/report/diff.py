"""Compare two analysed specs layer by layer (e.g. VGG configuration C against D)."""
from __future__ import annotations

from dataclasses import dataclass

from archspec.graph.analyze import Report


@dataclass
class LayerChange:
    name: str
    kind: str  # 'added', 'removed', 'changed'
    before: str
    after: str
    params_delta: int


def diff_reports(a: Report, b: Report) -> list[LayerChange]:
    """Layers matched by name; a layer is 'changed' when its op, shape or params differ."""
    left = {s.name: s for s in a.layers}
    right = {s.name: s for s in b.layers}
    changes = []
    for s in b.layers:
        old = left.get(s.name)
        if old is None:
            changes.append(LayerChange(s.name, "added", "", _describe(s), s.params))
        elif (old.op, old.shape, old.params) != (s.op, s.shape, s.params):
            changes.append(LayerChange(s.name, "changed", _describe(old), _describe(s), s.params - old.params))
    for s in a.layers:
        if s.name not in right:
            changes.append(LayerChange(s.name, "removed", _describe(s), "", -s.params))
    return changes


def _describe(s) -> str:
    return f"{s.op} {'x'.join(map(str, s.shape))} ({s.params:,} params)"


def render_diff(a: Report, b: Report) -> str:
    changes = diff_reports(a, b)
    lines = [f"{a.name} -> {b.name}: {len(changes)} layer(s) differ"]
    width = max((len(c.name) for c in changes), default=0)
    for c in changes:
        sign = {"added": "+", "removed": "-", "changed": "~"}[c.kind]
        text = c.after if c.kind == "added" else c.before if c.kind == "removed" else f"{c.before} -> {c.after}"
        lines.append(f"  {sign} {c.name.ljust(width)}  {text}")
    for key in ("params", "macs", "activation_bytes"):
        x, y = a.totals[key], b.totals[key]
        pct = f" ({(y - x) / x:+.1%})" if x else ""
        lines.append(f"{key}: {x:,} -> {y:,}{pct}")
    if a.output != b.output:
        lines.append(f"output: {a.output} -> {b.output}")
    return "\n".join(lines)
