"""Static analysis of an expanded graph: parameters, MACs, memory and receptive field per
node, with totals. Pure integer arithmetic — no torch.

What is counted (docs/counting.md):
- params: every parameter element (weights and biases; BN's γ, β; not BN's running stats,
  which are buffers). `trainable_params` leaves out frozen ones (`trainable: false` layers,
  LeNet-5's fixed RBF prototypes).
- macs: multiply-accumulates against learned weights, per sample — conv, transposed conv,
  locally connected, linear and RBF layers. Pooling, normalisation, activations and merges
  are element-wise and counted as 0 MACs.
- param_bytes: params × 4 (fp32). activation_bytes: every node's output, × 4 bytes, batch 1.
- receptive field (archspec/graph/receptive.py): size, jump and start per spatial axis,
  whether the output sees global context, and whether the field is exact.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from math import prod

from archspec.graph.ir import Graph
from archspec.graph.receptive import Field, as_number, receptive_fields
from archspec.ops import OPS

__all__ = ["Field", "LayerStats", "Report", "analyze", "memory_needed", "sharing"]

BYTES_PER_VALUE = 4  # fp32


@dataclass
class LayerStats:
    name: str
    op: str
    shape: list
    inputs: list
    params: int
    trainable_params: int
    macs: int
    param_bytes: int
    activation_bytes: int
    receptive_field: list  # one size per spatial axis of the input: [L], [H, W], [D, H, W]
    jump: list
    line: int
    training_only: bool = False
    rf_start: list = field(default_factory=list)  # centre of output position 0's field, per axis
    global_context: bool = False  # depends on every input position (global pooling, SE, ...)
    rf_exact: bool = True  # False: receptive_field is an upper bound, jump an average
    rf_resolved: bool = True  # False after a global reduction: the field is the whole extent


@dataclass
class Report:
    name: str
    input: list
    output: list
    totals: dict
    layers: list
    warnings: list
    training_only: dict = field(default_factory=dict)
    outputs: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "input": self.input,
            "output": self.output,
            "totals": self.totals,
            "training_only": self.training_only,
            "outputs": self.outputs,
            "layers": [asdict(layer) for layer in self.layers],
            "warnings": self.warnings,
        }


def analyze(graph: Graph) -> Report:
    fields = receptive_fields(graph)
    layers = []
    for node in graph.nodes.values():
        op = OPS[node.op]
        in_shapes = [graph.shape(i) for i in node.inputs]
        params = op.params(node.params, in_shapes, node.shape)
        frozen = params if not node.trainable else op.frozen_params(node.params, in_shapes, node.shape)
        rf = fields[node.name]
        layers.append(LayerStats(
            name=node.name, op=node.op, shape=list(node.shape), inputs=list(node.inputs),
            params=params, trainable_params=params - frozen,
            macs=op.macs(node.params, in_shapes, node.shape),
            param_bytes=params * BYTES_PER_VALUE,
            activation_bytes=prod(node.shape) * BYTES_PER_VALUE,
            receptive_field=[as_number(f.bound) for f in rf.axes], jump=[as_number(f.jump) for f in rf.axes],
            line=node.loc.line, training_only=node.training_only,
            rf_start=[as_number(f.start) for f in rf.axes], global_context=rf.global_context,
            rf_exact=rf.exact, rf_resolved=rf.resolved,
        ))
    main = [s for s in layers if not s.training_only]
    aux = [s for s in layers if s.training_only]
    return Report(
        name=graph.name, input=list(graph.input_shape), output=list(graph.shape(graph.output)),
        totals=_totals(main), layers=layers,
        warnings=[str(w) for w in graph.warnings],
        training_only=_totals(aux),
        outputs={name: list(graph.shape(name)) for name in [graph.output, *graph.extra_outputs]},
    )


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
        "param_bytes": sum(s.param_bytes for s in stats),
        "activation_bytes": sum(s.activation_bytes for s in stats),
    }
