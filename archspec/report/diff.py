"""Compare two analysed specs layer by layer (e.g. VGG configuration C against D), and explain
each difference: the settings that changed (`padding 2 → 0`), the shape, the wiring, and the
absolute and relative change in parameters, MACs and memory."""
from __future__ import annotations

from dataclasses import dataclass, field

from archspec.graph.analyze import Report, analyze
from archspec.graph.ir import Graph

MEASURES = ("params", "macs", "activation_bytes")  # per layer; totals add what both reports have


@dataclass
class Delta:
    before: int
    after: int

    @property
    def change(self) -> int:
        return self.after - self.before

    @property
    def relative(self) -> float | None:
        return self.change / self.before if self.before else None

    def to_json(self) -> dict:
        return {"before": self.before, "after": self.after, "change": self.change, "relative": self.relative}

    def text(self) -> str:
        rel = f", {self.relative:+.1%}" if self.relative is not None else ""
        return f"{self.before:,} → {self.after:,} ({self.change:+,}{rel})"


@dataclass
class LayerChange:
    name: str
    kind: str  # 'added', 'removed', 'changed'
    op: tuple  # (before, after); None on the side where the layer does not exist
    shape: tuple
    settings: dict = field(default_factory=dict)  # setting -> (before, after)
    inputs: tuple = (None, None)  # wiring, when it changed
    measures: dict = field(default_factory=dict)  # measure -> Delta

    def to_json(self) -> dict:
        return {"name": self.name, "change": self.kind, "op": list(self.op),
                "shape": [list(s) if s is not None else None for s in self.shape],
                "settings": {k: [_plain(a), _plain(b)] for k, (a, b) in self.settings.items()},
                "inputs": [list(i) if i is not None else None for i in self.inputs],
                **{k: d.to_json() for k, d in self.measures.items()}}


@dataclass
class Diff:
    a: Report
    b: Report
    layers: list
    totals: dict  # measure -> Delta

    def to_json(self) -> dict:
        return {"a": self.a.name, "b": self.b.name, "layers": [c.to_json() for c in self.layers],
                "totals": {k: d.to_json() for k, d in self.totals.items()},
                "output": [self.a.output, self.b.output]}


def diff_graphs(a: Graph, b: Graph) -> Diff:
    """Layers are matched by name; a layer changed when its op, settings, shape, inputs or counts
    differ. Order: b's layers in graph order (added and changed), then those only in a."""
    ra, rb = analyze(a), analyze(b)
    stats_a = {s.name: s for s in ra.layers}
    stats_b = {s.name: s for s in rb.layers}
    changes = []
    for name, node in b.nodes.items():
        old = a.nodes.get(name)
        after = stats_b[name]
        if old is None:
            changes.append(LayerChange(name, "added", (None, node.op), (None, node.shape),
                                       measures=_measures(None, after)))
            continue
        before = stats_a[name]
        settings = _settings(old, node)
        inputs = (old.inputs, node.inputs) if old.inputs != node.inputs else (None, None)
        measures = _measures(before, after)
        if old.op != node.op or settings or old.shape != node.shape or inputs[0] is not None \
                or any(d.change for d in measures.values()):
            changes.append(LayerChange(name, "changed", (old.op, node.op), (old.shape, node.shape),
                                       settings, inputs, measures))
    for name, node in a.nodes.items():
        if name not in b.nodes:
            changes.append(LayerChange(name, "removed", (node.op, None), (node.shape, None),
                                       measures=_measures(stats_a[name], None)))
    totals = {k: Delta(ra.totals[k], rb.totals[k]) for k in ra.totals if k in rb.totals}
    return Diff(ra, rb, changes, totals)


def _settings(old, new) -> dict:
    if old.op != new.op:
        return {}
    before, after = old.params.model_dump(), new.params.model_dump()
    return {k: (before.get(k), after.get(k)) for k in sorted(set(before) | set(after))
            if before.get(k) != after.get(k)}


def _measures(before, after) -> dict:
    return {k: Delta(getattr(before, k) if before else 0, getattr(after, k) if after else 0)
            for k in MEASURES}


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def _show(value) -> str:
    if isinstance(value, (tuple, list)):
        return "x".join(map(str, value)) if len(set(value)) > 1 else str(value[0]) if value else "[]"
    return str(value)


def render_diff(diff: Diff) -> str:
    layers = diff.layers
    counts = {kind: sum(c.kind == kind for c in layers) for kind in ("added", "removed", "changed")}
    lines = [f"{diff.a.name} -> {diff.b.name}: {len(layers)} layer(s) differ "
             f"({counts['added']} added, {counts['removed']} removed, {counts['changed']} changed)"]
    width = max((len(c.name) for c in layers), default=0)
    for c in layers:
        sign = {"added": "+", "removed": "-", "changed": "~"}[c.kind]
        lines.append(f"  {sign} {c.name.ljust(width)}  {_describe(c)}")
        counted = [f"{k} {d.text()}" for k, d in c.measures.items() if d.change]
        if counted:
            lines.append(f"    {' ' * width}  " + "; ".join(counted))
    label = max(len(k) for k in diff.totals) if diff.totals else 0
    for key, delta in diff.totals.items():
        lines.append(f"{(key + ':').ljust(label + 1)} {delta.text()}")
    if diff.a.output != diff.b.output:
        lines.append(f"output: {_show(diff.a.output)} → {_show(diff.b.output)}")
    return "\n".join(lines)


def _describe(c: LayerChange) -> str:
    if c.kind == "added":
        return f"{c.op[1]} {_show(c.shape[1])}"
    if c.kind == "removed":
        return f"{c.op[0]} {_show(c.shape[0])}"
    parts = [f"op {c.op[0]} → {c.op[1]}" if c.op[0] != c.op[1] else c.op[1]]
    parts += [f"{k} {_show(a)} → {_show(b)}" for k, (a, b) in c.settings.items()]
    if c.shape[0] != c.shape[1]:
        parts.append(f"output {_show(c.shape[0])} → {_show(c.shape[1])}")
    if c.inputs[0] is not None:
        parts.append(f"from {', '.join(c.inputs[0])} → {', '.join(c.inputs[1])}")
    return ", ".join(parts)
