"""What each layer entry of a document expanded to: its instances in the (partial) graph, with
shapes, parameters, MACs, memory and receptive field — a node's own figures, a block's totals.

Nodes and blocks carry the `Src` of the entry that produced them; an entry's instances are the
outermost nodes or blocks whose source is the entry (a `repeat` is one block holding its
copies, an entry in a template body has one instance per use of the template). A single-layer
template use takes its body's block or node under the use's own name, so those are found by name.
"""
from __future__ import annotations

from dataclasses import replace

from archspec.graph.analyze import Report, analyze
from archspec.graph.ir import INPUT, Graph
from archspec.lsp.model import Entry, Stats

MAX_INSTANCES = 16  # per entry: a template body used 30,000 times keeps a sample and a count


def attach(entries: list[Entry], graph: Graph, doc) -> Report:
    """Fill each entry's `instances` from `graph`, whose nodes came from document `doc`.
    Returns the graph's static analysis."""
    report, stats = _node_stats(graph)
    blocks = _block_stats(graph, stats)
    by_source: dict = {}
    for name, info in graph.blocks.items():
        if info.src.doc is doc and name in blocks:
            by_source.setdefault(info.src.path, []).append(blocks[name])
    for node in graph.nodes.values():
        if node.src.doc is doc:
            by_source.setdefault(node.src.path, []).append(stats[node.name])
    by_path = {e.path: e for e in entries}
    for entry in entries:
        found = by_source.get(entry.path + (entry.kind,), []) + by_source.get(entry.path, [])
        if not found and entry.category == "template":
            found = _by_name(entry, by_path, by_source, graph, blocks, stats)
        _keep(entry, _outermost(found))
    return report


def _keep(entry: Entry, found: list) -> None:
    entry.instance_count = len(found)
    entry.instances = found[:MAX_INSTANCES]


def _outermost(found: list) -> list:
    """Those not inside another one found (a repeat's copies are inside the repeat)."""
    names = {s.name for s in found}

    def inside(name: str) -> bool:
        parts = name.split(".")
        return any(".".join(parts[:end]) in names for end in range(1, len(parts)))

    return [s for s in found if not inside(s.name)]


def _by_name(entry: Entry, by_path: dict, by_source: dict, graph: Graph, blocks: dict, stats: dict) -> list:
    """A single-layer template use: its instance is named after the use (its id, or its index in
    its list), inside the instances of the entry around it."""
    local = entry.id if entry.id is not None else str(entry.path[-1])
    parent = by_path.get(entry.parent) if entry.parent else None
    prefixes = [s.name + "." for s in parent.instances] if parent else [""]
    names = [p + local for p in prefixes] if parent else [local]
    out = []
    for name in names:
        if name in blocks:
            out.append(blocks[name])
        elif name in stats:
            out.append(stats[name])
    if not out and parent:  # blocks whose scope is not the parent's name (flat branches)
        out = [s for s in list(blocks.values()) + list(stats.values())
               if s.name.endswith("." + local) and any(s.name.startswith(p) for p in prefixes)]
    return out


def _node_stats(graph: Graph) -> tuple[Report, dict]:
    """Per-node figures from the static analysis (the same numbers `report` prints)."""
    ready = graph if graph.output in graph.nodes or graph.output == INPUT else replace(graph, output=INPUT)
    ready = replace(ready, extra_outputs=[o for o in ready.extra_outputs if o in graph.nodes])
    report = analyze(ready)
    out = {}
    for layer in report.layers:
        out[layer.name] = Stats(
            name=layer.name, shape=tuple(layer.shape),
            inputs=[(i, tuple(graph.shape(i))) for i in layer.inputs],
            params=layer.params, trainable_params=layer.trainable_params, macs=layer.macs,
            activation_bytes=layer.activation_bytes, param_bytes=layer.param_bytes,
            receptive_field=tuple(layer.receptive_field), jump=tuple(layer.jump))
    return report, out


def _block_stats(graph: Graph, stats: dict) -> dict:
    """A block's totals; its output is the last of its nodes read from outside it (or the
    network's output), its inputs the outside nodes its nodes read."""
    users = graph.consumers()
    outputs = {graph.output, *graph.extra_outputs}
    totals: dict = {}
    confirmed: set = set()  # blocks whose output was found (else their last node stands for it)
    for node in graph.nodes.values():
        own = stats[node.name]
        for block in node.blocks:
            if block not in graph.blocks:
                continue
            info = graph.blocks[block]
            total = totals.setdefault(block, Stats(block, None, [], nodes=0, repeat=info.repeat,
                                                   block_kind=info.kind))
            _add(total, own)
            read_outside = node.name in outputs or any(block not in graph.nodes[u].blocks
                                                       for u in users[node.name])
            if read_outside or block not in confirmed:
                total.shape, total.receptive_field, total.jump = own.shape, own.receptive_field, own.jump
                if read_outside:
                    confirmed.add(block)
            for source, shape in own.inputs:
                inside = source != INPUT and block in graph.nodes[source].blocks
                if not inside and (source, shape) not in total.inputs:
                    total.inputs.append((source, shape))
    return totals


def _add(total: Stats, own: Stats) -> None:
    total.params += own.params
    total.trainable_params += own.trainable_params
    total.macs += own.macs
    total.activation_bytes += own.activation_bytes
    total.param_bytes += own.param_bytes
    total.nodes += 1
