"""The rows of the report table: one per op, or with `--depth N` blocks nested deeper than N
folded into one row each, as `archspec graph --depth` draws them — the same folding
(archspec/report/diagram.py's block tree and layout): a collapsed block is one row with its
ops' totals, and consecutive identical collapsed siblings (a stage's repetitions after the
first) are one row "×k". Every op is in exactly one row, so the rows add up to the totals.
"""
from __future__ import annotations

from archspec.graph.analyze import Report
from archspec.graph.ir import Graph
from archspec.report.columns import Row

# archspec/report/diagram.py (the block tree and layout) is imported only to fold rows: a plain
# `archspec report` does not pay for the diagram code


def layer_rows(report: Report, graph: Graph | None = None) -> list[Row]:
    """One row per op."""
    return [_op_row(s, graph) for s in report.layers]


def folded_rows(report: Report, graph: Graph, depth: int | None) -> list[Row]:
    """Rows with blocks deeper than `depth` folded (None: every op its own row)."""
    if depth is None:
        return layer_rows(report, graph)
    from archspec.report import diagram

    stats = {s.name: s for s in report.layers}
    tree = diagram._tree(graph)
    layout = diagram._layout(graph, tree, depth)
    rows = []
    for kind, payload, _, _ in sorted(layout.items.values(), key=lambda item: item[3]):
        if kind == "node":
            rows.append(_op_row(stats[payload], graph))
            continue
        blocks = payload if kind == "fold" else [payload]
        names = [n for b in blocks for n in tree.nodes[b]]
        rows.append(Row(_span(blocks), _block_kind(graph, blocks), [stats[n] for n in names],
                        in_shapes=_reads(graph, names), block=True))
    return rows


def _op_row(stats, graph: Graph | None) -> Row:
    node = graph.nodes[stats.name] if graph is not None else None
    in_shapes = [list(graph.shape(i)) for i in node.inputs] if node is not None else []
    return Row(stats.name, stats.op, [stats], node, in_shapes)


def _block_kind(graph: Graph, blocks: list) -> str:
    """'bottleneck', 'residual ×3' for a `repeat: 3` block, 'bottleneck ×2' for two folded
    repetitions."""
    info = graph.blocks.get(blocks[0])
    kind = info.kind if info is not None else "block"
    times = len(blocks) if len(blocks) > 1 else (info.repeat if info is not None else 1)
    return f"{kind} ×{times}" if times > 1 else kind


def _span(blocks: list) -> str:
    from archspec.report import diagram

    return diagram._span(blocks)


def _reads(graph: Graph, names: list) -> list:
    """The shapes of what the folded ops read from outside them."""
    inside = set(names)
    seen, shapes = set(), []
    for name in names:
        for source in graph.nodes[name].inputs:
            if source not in inside and source not in seen:
                seen.add(source)
                shapes.append(list(graph.shape(source)))
    return shapes
