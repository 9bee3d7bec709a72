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
- receptive field: size, jump (stride in input pixels) and start (centre of the first
  output's field) per spatial axis.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from math import prod

from archspec.graph.ir import INPUT, Graph
from archspec.ops import OPS

BYTES_PER_VALUE = 4  # fp32


@dataclass(frozen=True)
class Field:
    """Receptive field along one axis, in input pixels."""

    size: float = 1
    jump: float = 1
    start: float = 0.5


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
    # One Field per spatial axis of the network's input ((C, L): 1, (C, H, W): 2, (F,): none).
    fields = {INPUT: (Field(),) * max(len(graph.input_shape) - 1, 0)}
    layers = []
    for node in graph.nodes.values():
        op = OPS[node.op]
        in_shapes = [graph.shape(i) for i in node.inputs]
        params = op.params(node.params, in_shapes, node.shape)
        frozen = params if not node.trainable else op.frozen_params(node.params, in_shapes, node.shape)
        fields[node.name] = field_ = _receptive(op, node, [fields[i] for i in node.inputs], in_shapes)
        layers.append(LayerStats(
            name=node.name, op=node.op, shape=list(node.shape), inputs=list(node.inputs),
            params=params, trainable_params=params - frozen,
            macs=op.macs(node.params, in_shapes, node.shape),
            param_bytes=params * BYTES_PER_VALUE,
            activation_bytes=prod(node.shape) * BYTES_PER_VALUE,
            receptive_field=[_num(f.size) for f in field_], jump=[_num(f.jump) for f in field_],
            line=node.loc.line, training_only=node.training_only,
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


def _receptive(op, node, inputs, in_shapes):
    """Propagate (size, jump, start) through one op, per spatial axis of the network's input.
    An op sees the axes of its own input when it has as many (a flattened input has none:
    its field is already the whole extent that reached it)."""
    axes = len(inputs[0])
    if len(inputs) > 1:  # a merge sees the union of its inputs' fields
        return tuple(max((f[a] for f in inputs), key=lambda f: f.size) for a in range(axes))
    fields, shape = inputs[0], in_shapes[0]
    own = len(shape) - 1 == axes
    kind = op.spatial_kind(node.params)
    if kind == "pointwise" or not own:
        return fields
    if kind == "global":
        return tuple(_field(f.size + (n - 1) * f.jump, f.jump * n, f.start + (n - 1) / 2 * f.jump)
                     for f, n in zip(fields, shape[1:]))
    out = []
    for f, k, s, p, d in zip(fields, *op.window(node.params, shape)):
        span = d * (k - 1) + 1
        out.append(_field(f.size + (span - 1) * f.jump, f.jump * s, f.start + ((span - 1) / 2 - p) * f.jump))
    return tuple(out)


RF_LIMIT = 2 ** 53  # receptive field sizes and jumps saturate here (no input is this large)


def _field(size, jump, start) -> Field:
    """A Field with size and jump saturated at RF_LIMIT, so a stack of huge strides cannot grow
    them without end (and `start`, a float, cannot overflow)."""
    return Field(min(size, RF_LIMIT), min(jump, RF_LIMIT), start)


def _num(x):
    if isinstance(x, int):
        return x
    return int(x) if float(x).is_integer() else round(x, 3)
