"""Static analysis of an expanded graph: parameters, MACs, memory and receptive field per
node, with totals. Pure integer arithmetic — no torch.

What is counted (docs/format.md, "Counting conventions"):
- params: every parameter element (weights and biases; BN's γ, β; not BN's running stats,
  which are buffers). `trainable_params` leaves out frozen ones (`trainable: false` layers,
  LeNet-5's fixed RBF prototypes).
- macs: multiply-accumulates against learned weights, per sample — conv, transposed conv,
  locally connected, linear and RBF layers. Pooling, normalisation, activations and merges
  are element-wise and counted as 0 MACs.
- flops: floating-point operations per sample at inference, by each op's declared rule
  (`Op.flops_rule`): 2 per MAC plus the bias additions for weighted ops, a stated cost per
  element for the rest; ops that only move data declare it (`Op.moves_data`).
- param_bytes: params × 4 (fp32). activation_bytes: every node's output, × 4 bytes, batch 1.
- memory (at the report's batch and dtype): the inference peak with liveness and the training
  footprint with the activations autograd saves (archspec/graph/memory.py). A layer that uses
  another's parameters (`tie`) has 0 params of its own and names its owner in `tied_to`.
- receptive field (archspec/graph/receptive.py): size, jump and start per spatial axis,
  whether the output sees global context, and whether the field is exact.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from math import prod

from archspec.graph.counts import node_counts
from archspec.graph.ir import Graph
from archspec.graph.memory import DTYPES, memory_summary, saved_activations
from archspec.graph.receptive import Field, as_number, receptive_fields
from archspec.ops import OPS

Field = Field  # the per-axis receptive field, importable from here as before

BYTES_PER_VALUE = 4  # fp32
CONVENTIONS = {
    "macs": "multiply-accumulates against learned weights, per sample",
    "flops": "floating-point operations per sample at inference: 2 per MAC plus 1 per output element "
             "for a bias; other ops by their stated cost per element (docs/reference.md, 'FLOPs')",
}


@dataclass
class LayerStats:
    """One row of the report: a primitive node of the graph and its figures, per sample."""

    name: str  # the node's hierarchical name: 'layer1.0.conv1'
    op: str  # the op: 'conv', 'relu', ...
    shape: list  # output shape without the batch axis: [C, H, W]
    inputs: list  # names of the nodes it reads ('input' for the network's input)
    params: int  # parameters (0 for a tied layer: they are counted at its owner)
    trainable_params: int  # parameters that train (`trainable: false` freezes a layer's)
    macs: int  # multiply-accumulates against learned weights
    param_bytes: int  # fp32 bytes of its parameters
    activation_bytes: int  # fp32 bytes of its output
    receptive_field: list  # one size per spatial axis of the input: [L], [H, W], [D, H, W]
    jump: list  # input positions between neighbouring outputs, per spatial axis
    line: int  # the spec line the node comes from
    training_only: bool = False  # in a training-only head (left out of `totals`)
    flops: int = 0  # floating-point operations (docs/format.md, "Counting conventions")
    saved_bytes: int = 0  # what autograd keeps for this node first, at the report's batch and dtype
    tied_to: str | None = None  # the layer whose parameters this one uses
    tied_transposed: bool = False  # uses `tied_to`'s weight transposed; `params` is its own bias
    rf_start: list = field(default_factory=list)  # centre of output position 0's field, per axis
    global_context: bool = False  # depends on every input position (global pooling, SE, ...)
    rf_exact: bool = True  # False: receptive_field is an upper bound, jump an average
    rf_resolved: bool = True  # False after a global reduction: the field is the whole extent


@dataclass
class Report:
    """What `archspec report` shows, as data (`to_json()` is `report -f json`): totals of the
    inference network, one `LayerStats` per node, memory at the analysed batch and dtype."""

    name: str  # the spec's name
    input: list  # input shape without the batch axis
    output: list  # the main output's shape
    totals: dict  # inference network: params, trainable_params, macs, flops, param_bytes, activation_bytes
    layers: list  # LayerStats of every node, in graph order (training-only heads included)
    warnings: list  # warning lines (`file:line:col: warning: ... [AS801]`)
    training_only: dict = field(default_factory=dict)  # the same totals for the training-only heads
    outputs: dict = field(default_factory=dict)  # output node -> shape: the main output, then extra outputs
    memory: dict = field(default_factory=dict)  # batch, dtype, bytes_per_value, inference and training peaks
    conventions: dict = field(default_factory=lambda: dict(CONVENTIONS))  # what macs and flops count, in words

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "input": self.input,
            "output": self.output,
            "totals": self.totals,
            "training_only": self.training_only,
            "outputs": self.outputs,
            "conventions": self.conventions,
            "memory": self.memory,
            "layers": [asdict(layer) for layer in self.layers],
            "warnings": self.warnings,
        }


def analyze(graph: Graph, *, batch: int = 1, dtype: str = "fp32", optimizer: str = "sgd") -> Report:
    """The report of `graph`; `batch`, `dtype` (archspec.graph.memory.DTYPES) and `optimizer`
    (OPTIMIZERS) set the memory section and each layer's `saved_bytes`."""
    fields = receptive_fields(graph)
    saved, saved_by = saved_activations(graph, batch, DTYPES[dtype])
    layers = []
    for node in graph.nodes.values():
        op = OPS[node.op]
        in_shapes = [graph.shape(i) for i in node.inputs]
        params, macs = node_counts(graph, node)
        # a tied layer's parameters are counted at its owner (one tied transposed owns its bias)
        own = node.trainable and (not node.tie or node.tie_transposed)
        frozen = op.frozen_params(node.params, in_shapes, node.shape) if own else params
        rf = fields[node.name]
        layers.append(LayerStats(
            name=node.name, op=node.op, shape=list(node.shape), inputs=list(node.inputs),
            params=params, trainable_params=params - frozen,
            macs=macs,
            param_bytes=params * BYTES_PER_VALUE,
            activation_bytes=prod(node.shape) * BYTES_PER_VALUE,
            receptive_field=[as_number(f.bound) for f in rf.axes], jump=[as_number(f.jump) for f in rf.axes],
            line=node.loc.line, training_only=node.training_only,
            flops=op.flops(node.params, in_shapes, node.shape), saved_bytes=saved_by.get(node.name, 0),
            tied_to=node.tie, tied_transposed=node.tie_transposed,
            rf_start=[as_number(f.start) for f in rf.axes], global_context=rf.global_context,
            rf_exact=rf.exact, rf_resolved=rf.resolved,
        ))
    main = [s for s in layers if not s.training_only]
    aux = [s for s in layers if s.training_only]
    counts = {net: _counts(graph, stats) for net, stats in (("inference", main), ("training", layers))}
    return Report(
        name=graph.name, input=list(graph.input_shape), output=list(graph.shape(graph.output)),
        totals=_totals(main), layers=layers,
        warnings=[str(w) for w in graph.warnings],
        training_only=_totals(aux),
        outputs={name: list(graph.shape(name)) for name in [graph.output, *graph.extra_outputs]},
        memory=memory_summary(graph, batch=batch, dtype=dtype, optimizer=optimizer, saved=saved, **counts),
    )


def _counts(graph: Graph, stats) -> dict:
    """Parameters, trained parameters and buffer values of a network (its layers' `stats`);
    a tied layer's parameters and buffers are its owner's, counted there."""
    buffers = 0
    for s in stats:
        node = graph.nodes[s.name]
        if s.tied_to is None:
            in_shapes = [graph.shape(i) for i in node.inputs]
            buffers += OPS[node.op].buffers(node.params, in_shapes, node.shape)
    return {"params": sum(s.params for s in stats), "trainable_params": sum(s.trainable_params for s in stats),
            "buffers": buffers}


def memory_needed(report: Report, batch: int) -> int:
    """An upper bound on the bytes a forward pass at `batch` allocates: fp32 weights plus every
    activation kept (nothing freed early). Used to refuse hopeless runs before allocating."""
    return report.totals["param_bytes"] + batch * report.totals["activation_bytes"]


def sharing(graph: Graph) -> list[dict]:
    """Parameter sharing, layer by layer: the parameters a weight-sharing layer has, the
    parameters it would need with a separate filter bank at every output position (a locally
    connected layer), and with full connectivity (every input to every output, plus biases)."""
    rows = []
    for node in graph.inference_nodes():
        if node.tie is not None:
            continue  # its parameters are its owner's, counted on the owner's row
        op = OPS[node.op]
        in_shapes = [graph.shape(i) for i in node.inputs]
        unshared = op.unshared_params(node.params, in_shapes, node.shape)
        if unshared is None:
            continue
        n_in, n_out = prod(in_shapes[0]), prod(node.shape)
        rows.append({"name": node.name, "op": node.op, "shape": list(node.shape),
                     "shared": op.params(node.params, in_shapes, node.shape),
                     "unshared": unshared, "fully_connected": n_in * n_out + n_out})
    return rows


def _totals(stats) -> dict:
    return {
        "params": sum(s.params for s in stats),
        "trainable_params": sum(s.trainable_params for s in stats),
        "macs": sum(s.macs for s in stats),
        "flops": sum(s.flops for s in stats),
        "param_bytes": sum(s.param_bytes for s in stats),
        "activation_bytes": sum(s.activation_bytes for s in stats),
    }
