"""Parameters and MACs per node and for a whole network, in one pass: what `archspec check`
prints in its summary, without the receptive fields and memory that `analyze` (which counts
each layer with `node_counts` too) adds. Pure integer arithmetic, no torch."""
from __future__ import annotations

from math import prod

from archspec.graph.ir import Graph, Node
from archspec.ops import OPS


def node_counts(graph: Graph, node: Node) -> tuple[int, int]:
    """(params, MACs) of one node; a tied node's parameters are its owner's, so it has none,
    except a node tied transposed: it uses its owner's weight and keeps its own bias."""
    op = OPS[node.op]
    in_shapes = [graph.shape(i) for i in node.inputs]
    params = 0 if node.tie else op.params(node.params, in_shapes, node.shape)
    if node.tie_transposed:
        params = op.params(node.params, in_shapes, node.shape) - prod(op.weight_shape(node.params, in_shapes))
    return params, op.macs(node.params, in_shapes, node.shape)


def totals(graph: Graph) -> dict:
    """{"params", "macs"} of the inference network (training-only heads left out), as
    `analyze(graph).totals` gives them."""
    params = macs = 0
    for node in graph.nodes.values():
        if not node.training_only:
            node_params, node_macs = node_counts(graph, node)
            params, macs = params + node_params, macs + node_macs
    return {"params": params, "macs": macs}
