"""Which nodes run in place: the compiler's decision, on the static path so the memory analysis
(archspec/graph/memory.py) counts storages exactly as the compiled module shares them."""
from __future__ import annotations

from archspec.graph.ir import INPUT, Graph
from archspec.ops import OPS


def overwritable_inputs(graph: Graph, nodes, outputs) -> dict:
    """For each node among `nodes`, the index of an input it may overwrite in place, if any.

    A node may overwrite an input only if nothing else ever reads that tensor: it is not the
    network's input (the caller's tensor), it and every tensor it aliases (through identity,
    dropout, flatten: `Op.aliases_input`) has this node as its only consumer and is not
    returned, and the tensor's producer is one whose result autograd does not keep
    (`Op.fresh_output`; relu, sigmoid, tanh, softmax and elu keep theirs)."""
    names = {n.name for n in nodes}
    users: dict[str, int] = {}
    for node in nodes:
        for src in node.inputs:
            users[src] = users.get(src, 0) + 1
    for name in outputs:
        users[name] = users.get(name, 0) + 1  # a returned tensor has a reader outside

    def private(name: str) -> bool:
        while name != INPUT and name in names and users.get(name, 0) == 1:
            producer = OPS[graph.nodes[name].op]
            if not producer.aliases_input:
                return producer.fresh_output
            name = graph.nodes[name].inputs[0]
        return False

    found = {}
    for node in nodes:
        for k, src in enumerate(node.inputs):
            if private(src):
                found[node.name] = k
                break
    return found


def in_place_inputs(graph: Graph, nodes, outputs) -> dict:
    """The nodes that run in place, each with the index of the input it overwrites: where the
    op's module can (`Op.in_place`: "first" — its only input, "any" — whichever is free) and
    overwritable_inputs allows it. A node that uses another's parameters (`tie`) never does."""
    decided = {}
    for name, slot in overwritable_inputs(graph, nodes, outputs).items():
        node = graph.nodes[name]
        mode = OPS[node.op].in_place
        if node.tie is None and (mode == "any" or (mode == "first" and slot == 0)):
            decided[name] = slot
    return decided
