"""Memory at a batch size and dtype: what an inference runtime needs at its peak, and what a
training step holds. Pure integer arithmetic on the graph — no torch.

Both follow tensors to their storages the way the compiled module shares them: a node that runs
in place writes into its input's storage (the compiler's own decision, archspec/graph/inplace.py),
a view (flatten of a dense tensor, chunk, identity, dropout at inference) is its input's storage,
anything else gets a storage of its own.

- Inference peak: storages are allocated by their node and freed after the last node that
  reads any view of them (returned outputs live to the end); the peak is the largest sum of
  live storages while a node runs (its inputs and its output together). Temporaries inside a
  node (a convolution's workspace) are not counted.
- Training: parameters, gradients (one per trained parameter), optimizer state (0, 1 or 2
  copies of the trained parameters) and the activations autograd saves for backward — each op
  declares what it saves (`Op.saved`), and a storage saved by several ops counts once. The
  network's input does not require grad; training-only heads are part of the training network.

tests/test_memory.py proves both against PyTorch: saved bytes against
`torch.autograd.graph.saved_tensors_hooks`, the peak against live storages while the compiled
module runs node by node.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from math import prod

from archspec.graph.inplace import in_place_inputs
from archspec.graph.ir import INPUT, Graph
from archspec.ops import OPS
from archspec.ops.saving import CHANNELS_LAST, DENSE, INDEX_BYTES, MASK_BYTES, SaveContext

DTYPES = {"fp32": 4, "fp16": 2, "bf16": 2, "int8": 1}  # bytes per value
OPTIMIZERS = {"sgd": 0, "momentum": 1, "adam": 2, "adamw": 2}  # state: copies of the trained params


@dataclass
class Value:
    """A node's output: the storage it lives in, its layout, whether it requires grad."""

    storage: int
    layout: str
    grad: bool


@dataclass
class Trace:
    """Storages of one pass over the graph: their sizes in bytes, who made them, each node's
    output, and (in training) the storages autograd saves, with the node that first saves each."""

    sizes: list = field(default_factory=list)
    values: dict = field(default_factory=dict)
    saved: dict = field(default_factory=dict)  # storage -> first node that saves it

    def new(self, nbytes: int) -> int:
        self.sizes.append(nbytes)
        return len(self.sizes) - 1


def returned(graph: Graph, training: bool) -> list:
    """The outputs the compiled module returns: the main one and the extra outputs, the
    training-only heads only in training."""
    extras = [n for n in graph.extra_outputs if training or n == INPUT or not graph.nodes[n].training_only]
    return [graph.output, *extras]


def network_nodes(graph: Graph, training: bool) -> list:
    return list(graph.nodes.values()) if training else graph.inference_nodes()


def trace(graph: Graph, batch: int, value_bytes: int, training: bool) -> Trace:
    """Follow every node's output to its storage (and, in training, what autograd saves)."""
    nodes = network_nodes(graph, training)
    decided = in_place_inputs(graph, nodes, returned(graph, training))
    out = Trace()
    out.values[INPUT] = Value(out.new(batch * prod(graph.input_shape) * value_bytes), DENSE, False)
    for node in nodes:
        op = OPS[node.op]
        ins = [out.values[i] for i in node.inputs]
        shapes = [graph.shape(i) for i in node.inputs]
        weights = training and node.trainable and _trained(op, node, shapes) > 0
        ctx = SaveContext(batch, tuple(v.grad for v in ins), weights, node.name in decided,
                          tuple(v.layout for v in ins), training)
        if ctx.in_place:
            target = ins[decided[node.name]]
            storage, layout = target.storage, target.layout
        elif op.output_aliases(node.params, ctx):
            storage, layout = ins[0].storage, op.view_layout(node.params, shapes, ctx)
        else:
            storage = out.new(batch * prod(node.shape) * value_bytes)
            layout = op.output_layout(node.params, shapes, node.shape, ctx)
        grad = training and (ctx.any_grad or weights)
        out.values[node.name] = Value(storage, _normal(layout, node.shape), grad)
        if grad:  # autograd records the op only when something about it requires grad
            for item in op.saved(node.params, shapes, node.shape, ctx):
                kept = _storage(item, ins, out, storage, value_bytes)
                out.saved.setdefault(kept, node.name)
    return out


def _trained(op, node, shapes) -> int:
    """The op's parameters that are trained (a tied node's are its owner's: same count)."""
    return op.params(node.params, shapes, node.shape) - op.frozen_params(node.params, shapes, node.shape)


def _normal(layout: str, shape) -> str:
    """Channels-last with a single position (or no spatial axis) is also dense."""
    return DENSE if layout == CHANNELS_LAST and prod(shape[1:]) == 1 else layout


def _storage(item, ins, out: Trace, own: int, value_bytes: int) -> int:
    if item.of == "input":
        return ins[item.index].storage
    if item.of == "output":
        return own
    size = {"act": value_bytes, "int64": INDEX_BYTES, "bool": MASK_BYTES}[item.dtype]
    return out.new(item.numel * size)


# ---- inference ------------------------------------------------------------------------------


def inference_peak(graph: Graph, batch: int = 1, value_bytes: int = 4) -> tuple[int, str]:
    """The most activation bytes alive at once in a forward pass (the input included), and the
    node running at that moment."""
    nodes = graph.inference_nodes()
    run = trace(graph, batch, value_bytes, training=False)
    last = {}  # storage -> index of the last node that reads it
    for i, node in enumerate(nodes):
        for src in node.inputs:
            last[run.values[src].storage] = i
    for name in returned(graph, training=False):
        last[run.values[name].storage] = len(nodes)
    born = {run.values[INPUT].storage: 0}
    for i, node in enumerate(nodes):
        born.setdefault(run.values[node.name].storage, i)
    change = [0] * (len(nodes) + 2)  # a storage counts from its birth to its last reader
    for storage, start in born.items():
        change[start] += run.sizes[storage]
        change[max(last.get(storage, start), start) + 1] -= run.sizes[storage]
    peak, at, live = 0, INPUT, 0
    for i, node in enumerate(nodes):
        live += change[i]
        if live > peak:
            peak, at = live, node.name
    return peak, at


# ---- training -------------------------------------------------------------------------------


def saved_activations(graph: Graph, batch: int = 1, value_bytes: int = 4) -> tuple[int, dict]:
    """Bytes autograd keeps for backward after a training forward pass (each storage once), and
    per node the bytes it is the first to keep."""
    run = trace(graph, batch, value_bytes, training=True)
    per_node: dict[str, int] = {}
    for storage, name in run.saved.items():
        per_node[name] = per_node.get(name, 0) + run.sizes[storage]
    return sum(per_node.values()), per_node


# ---- the report's memory section ------------------------------------------------------------


def memory_summary(graph: Graph, *, batch: int, dtype: str, optimizer: str, inference: dict,
                   training: dict, saved: int) -> dict:
    """Bytes at `batch` and `dtype` (applied to weights, gradients, optimizer state and
    activations alike). `inference`/`training`: the parameter counts of each network
    ({"params", "trainable_params", "buffers"}); `saved`: saved_activations' total."""
    size = DTYPES[dtype]
    peak, at = inference_peak(graph, batch, size)
    weights = (inference["params"] + inference["buffers"]) * size
    summary = {
        "batch": batch, "dtype": dtype, "bytes_per_value": size,
        "inference": {"params": inference["params"] * size, "buffers": inference["buffers"] * size,
                      "activations_peak": peak, "peak_at": at, "total": weights + peak},
        "training": None,
    }
    if dtype != "int8":  # int8 is an inference format: nothing trains in it
        trained = training["trainable_params"] * size
        parts = {"params": training["params"] * size, "buffers": training["buffers"] * size,
                 "gradients": trained, "optimizer_state": OPTIMIZERS[optimizer] * trained,
                 "saved_activations": saved}
        summary["training"] = {"optimizer": optimizer, **parts, "total": sum(parts.values())}
    return summary
