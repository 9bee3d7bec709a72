"""FLOPs beside MACs: every op states its rule, counts more than zero wherever it does arithmetic,
and every count is checked against what PyTorch actually runs.

What is independent and what is convention:
- Weighted ops (conv, transposed conv, linear, per-pixel linear, locally connected): the
  multiply-add part is measured by `torch.utils.flop_counter.FlopCounterMode` on the built
  module (it counts aten.convolution / mm / addmm / bmm from the shapes PyTorch ran, at 2 per
  MAC). The bias addition (1 per output element) is convention; FlopCounterMode leaves it out,
  so it is added here for modules that have a bias, with the element count taken from the
  output tensor. A connection-table convolution runs one dense convolution on a masked
  weight: FlopCounterMode counts the dense one, scaled here by the module's real number of
  connected filters over the dense count.
- Everything else: the cost per element is convention — restated below from docs/format.md,
  reading each setting from the built torch module — and the element counts come from the real
  tensors of a forward pass (torch.fx's ShapeProp), never from archspec's shape rules.
"""
from __future__ import annotations

from math import ceil, floor, prod

import pytest
import torch
from torch.fx.passes.shape_prop import ShapeProp
from torch.utils.flop_counter import FlopCounterMode

import archspec
from archspec.compile import modules
from archspec.ops import OPS
from test_compile_parity import CASES, ZOO, smallest_valid

pytestmark = pytest.mark.usefixtures("one_torch_thread")
BATCH = 2

# ---- the documented per-element costs, restated (docs/format.md, "Counting conventions") -------

PER_OUTPUT = {"relu": 1, "relu6": 2, "leaky_relu": 2, "elu": 4, "sigmoid": 4, "tanh": 1, "scaled_tanh": 3,
              "softmax": 5, "log_softmax": 5, "silu": 5, "hardswish": 5, "hardsigmoid": 4, "mish": 5,
              "batchnorm": 2, "layer_scale": 1}
MOVES_DATA = {"identity", "flatten", "dropout", "drop_path", "chunk", "channel_slice", "channel_shuffle",
              "concat", "pixel_shuffle"}
WEIGHTED = {"conv", "conv_transpose", "linear", "locally_connected"}


def _axes(value, n):
    return (value,) * n if isinstance(value, int) else tuple(value)


def _adaptive_reads(i: int, o: int) -> int:
    """Input positions PyTorch's adaptive pooling reads along one axis: bin j is
    [floor(j·i/o), ceil((j+1)·i/o)) (aten/src/ATen/native/AdaptivePooling.h)."""
    return sum(ceil((j + 1) * i / o) - floor(j * i / o) for j in range(o))


def elementwise_flops(op: str, module, ins: list, out: tuple) -> int:
    """FLOPs per sample by the documented convention, from the module's settings and the real
    shapes (`ins`, `out`: without the batch axis)."""
    n = prod(out)
    if op in MOVES_DATA:
        return 0
    if op in PER_OUTPUT:
        return PER_OUTPUT[op] * n
    if op == "gelu":
        return (9 if module.approximate == "tanh" else 5) * n
    if op == "scale":
        return (2 if module.bias is not None else 1) * n
    if op == "layer_norm":
        return (6 + (module.weight is not None) + (module.bias is not None)) * n
    if op == "group_norm":
        return (6 + 2 * module.affine) * n
    if op == "instance_norm":
        return 2 * n if module.track_running_stats else (6 + 2 * module.affine) * n
    if op == "lrn":
        return (module.size + 4) * n
    if op in ("maxpool", "avgpool"):
        window = prod(_axes(module.kernel_size, len(out) - 1))
        return (window - 1 if op == "maxpool" else window) * n
    if op == "global_avgpool":
        return prod(ins[0])
    if op == "global_maxpool":
        return prod(ins[0]) - ins[0][0]
    if op == "adaptive_avgpool":
        return out[0] * prod(_adaptive_reads(i, o) for i, o in zip(ins[0][1:], out[1:]))
    if op == "upsample":
        return 0 if module.mode == "nearest" else (2 ** len(out) - 1) * n
    if op in ("add", "mul"):
        return (len(ins) - 1) * n
    if op == "rbf":
        return 3 * module.weight.numel()
    raise AssertionError(f"op '{op}' has no convention restated in tests/test_flops.py")


def weighted_flops(module, counted: int, out: tuple) -> int:
    """FlopCounterMode's multiply-adds per sample (`counted`), plus the bias additions."""
    if isinstance(module, modules.TableConv):  # counted as the dense convolution it runs
        counted = counted * module.weight.shape[0] // module.gather.numel()
    return counted + (prod(out) if getattr(module, "bias", None) is not None else 0)


# ---- the measurement ------------------------------------------------------------------------


def measured_flops(graph) -> dict:
    """FLOPs per sample of every node of `graph`, measured on the compiled module."""
    model = archspec.build(graph, seed=0).eval()
    x = torch.randn(BATCH, *graph.input_shape)
    counter = FlopCounterMode(display=False)
    with torch.no_grad():
        ShapeProp(model).propagate(x)  # real shapes of every node's tensors
        with counter:  # called as a whole, so that the counter names modules by their path
            model(x)
    counts = counter.get_flop_counts()
    prefix = type(model).__name__
    calls = {}  # a module called by several nodes (tied weights) is counted once per call
    for fx_node in model.graph.nodes:
        if fx_node.op == "call_module":
            calls.setdefault(fx_node.target, set()).add(tuple(fx_node.args[0].meta["tensor_meta"].shape))
    found = {}
    for fx_node in model.graph.nodes:
        name = fx_node.meta.get("archspec_node", fx_node.target if fx_node.op == "call_module" else None)
        if name is None:
            continue
        out = tuple(fx_node.meta["tensor_meta"].shape)[1:]
        ins = [tuple(a.meta["tensor_meta"].shape)[1:] for a in fx_node.args
               if isinstance(a, torch.fx.Node) and "tensor_meta" in a.meta]
        module = model.get_submodule(fx_node.target) if fx_node.op == "call_module" else None
        op = graph.nodes[name].op
        if op in WEIGHTED:
            counted = sum(counts.get(f"{prefix}.{fx_node.target}", {}).values())
            uses = sum(1 for n in model.graph.nodes if n.op == "call_module" and n.target == fx_node.target)
            assert len(calls[fx_node.target]) == 1, "tied calls on different shapes: cannot split the count"
            assert counted % (BATCH * uses) == 0
            found[name] = weighted_flops(module, counted // (BATCH * uses), out)
        else:
            found[name] = elementwise_flops(op, module, ins, out)
    return found


def check_flops(graph):
    report = {s.name: s for s in archspec.analyze(graph).layers}
    measured = measured_flops(graph)
    assert set(measured) == {n.name for n in graph.inference_nodes()}
    for name, flops in measured.items():
        layer = report[name]
        assert layer.flops == flops, f"{graph.name}: '{name}' ({layer.op}) counts {layer.flops:,}, measured {flops:,}"


@pytest.mark.parametrize("path", ZOO, ids=[p.stem for p in ZOO])
def test_zoo_flops_match_pytorch(path):
    """Every node of every zoo spec (at a reduced input): matmul FLOPs against FlopCounterMode,
    element-wise ones against real tensor sizes."""
    _, graph = smallest_valid(path)
    check_flops(graph)


@pytest.mark.parametrize("op", sorted(OPS))
def test_every_op_counts_flops_where_it_computes(op):
    """Every op states its FLOPs rule; on each of its tiny specs it counts more than zero unless it
    declares that it only moves data (then exactly zero); and the count matches PyTorch."""
    cls = type(OPS[op])
    assert cls.flops_rule, f"op '{op}' states no flops_rule"
    for case, text in CASES[op]:
        graph = archspec.expand(archspec.loads(text, file=f"<{op}:{case}>"))
        for node in graph.nodes.values():
            if node.op != op:
                continue
            in_shapes = [graph.shape(i) for i in node.inputs]
            flops = OPS[op].flops(node.params, in_shapes, node.shape)
            if OPS[op].moves_data_only(node.params):
                assert flops == 0, (op, case)
            else:
                assert flops > 0, f"op '{op}' ({case}) counts 0 FLOPs without declaring it moves data only"
        check_flops(graph)


def test_moves_data_is_declared_only_by_ops_that_do_no_arithmetic():
    declared = {name for name, op in OPS.items() if op.moves_data}
    assert declared == MOVES_DATA


def test_flops_next_to_macs_in_json(tmp_path):
    """The JSON report labels both counts and names their conventions; VGG-16's FLOPs are twice
    its MACs (15.47 G, torchvision's figure) plus the biases, ReLUs, pooling (no other ops)."""
    import json

    from conftest import SPECS, run_cli

    result = run_cli("report", SPECS / "vgg16.yaml", "-f", "json", "--flops")
    data = json.loads(result.stdout)
    totals = data["totals"]
    assert set(data["conventions"]) == {"macs", "flops"}
    assert round(totals["macs"] / 1e9, 2) == 15.47
    assert totals["flops"] > 2 * totals["macs"]
    assert all({"macs", "flops"} <= set(layer) for layer in data["layers"])


def test_flops_column_only_when_asked():
    from conftest import SPECS, run_cli

    plain = run_cli("report", SPECS / "lenet5.yaml").stdout
    shown = run_cli("report", SPECS / "lenet5.yaml", "--flops").stdout
    assert "FLOPs" not in plain
    header = next(line for line in shown.splitlines() if line.startswith("Layer")).split()
    assert header == ["Layer", "Op", "Output", "Params", "%", "MACs", "%", "FLOPs", "Activations", "RF"]
    c1 = next(line for line in shown.splitlines() if line.startswith("c1 "))
    assert c1.split()[header.index("FLOPs")] == "239,904"  # 2 x 117,600 MACs + 6 x 28 x 28 bias additions
    assert "FLOPs: " in shown
