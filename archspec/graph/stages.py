"""Stage outputs: the nodes that stand for a network's steps when a report shows a few rows
(`report --input` with several sizes) and where receptive fields are checked against
gradients.

A stage output is the output of a top-level item of the inference network — a block's last
node, or a top-level op; the items of a top-level `seq` (torchvision's `features`) count as
top-level — in graph order, and the input of every top-level global reduction (the map the
head's global pooling averages). Top-level ops that neither change the number of values nor look at
neighbouring positions (activations, normalisation, dropout, flatten) are left out: their
output is the previous row's again. The network's output is always the last one.
"""
from __future__ import annotations

from math import prod

from archspec.graph.ir import INPUT, Graph
from archspec.ops import OPS


def stage_outputs(graph: Graph) -> list[str]:
    last: dict = {}  # top-level item -> its last node
    for node in graph.inference_nodes():
        last[_item(graph, node)] = node.name
    chosen = {name for item, name in last.items() if item in graph.blocks or _changes(graph, name)}
    for node in graph.inference_nodes():
        if OPS[node.op].spatial_kind(node.params) == "global" and _item(graph, node) == node.name:
            chosen.update(i for i in node.inputs if i != INPUT and len(graph.shape(i)) > 1)
    chosen.add(graph.output)
    return [name for name in graph.nodes if name in chosen]


def _changes(graph: Graph, name: str) -> bool:
    """Whether a single op's row tells something its input's does not."""
    node = graph.nodes[name]
    if len(node.inputs) != 1 or OPS[node.op].spatial_kind(node.params) == "window":
        return True
    return prod(node.shape) != prod(graph.shape(node.inputs[0]))


def _item(graph: Graph, node) -> str:
    """The top-level item a node belongs to (looking into a top-level `seq` one level)."""
    chain = node.blocks
    if chain and graph.blocks.get(chain[0]) is not None and graph.blocks[chain[0]].kind == "seq":
        chain = chain[1:]
    return chain[0] if chain else node.name
