"""Static = real: what `archspec report` computes equals what the compiled PyTorch module has.

For every spec in specs/ (globbed at collection time, so a new spec is covered without edits)
and for a tiny spec per registered op: the module's parameter count equals the report's
`params` (per node and in total, training-only heads included when built with them), its
trainable (requires_grad) count equals `trainable_params`, and every node's runtime output
shape at batch 3 equals the static shape. Also: in-place safety, initialisation, seeding.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.fx.passes.shape_prop import ShapeProp

import archspec
from archspec.errors import SpecError
from archspec.ops import OPS

ROOT = Path(__file__).resolve().parent.parent
ZOO = sorted((ROOT / "specs").glob("*.yaml"))
REDUCED_SIDES = (64, 96, 128, 160, 192)  # tried in order below a spec's own size
BATCH = 3


pytestmark = pytest.mark.usefixtures("one_torch_thread")


REDUCED_DEPTH = 8  # (C, D, H, W) inputs: at most 8 frames beside the reduced sides


def smallest_valid(path: Path):
    """The spec at the smallest square input in REDUCED_SIDES that is still valid (same
    channels; a depth cut to REDUCED_DEPTH), else at its own size. Returns (spec, graph)."""
    spec = archspec.load(path)
    if len(spec.input) in (3, 4) and min(spec.input[-2:]) > REDUCED_SIDES[0]:
        for side in REDUCED_SIDES:
            if side >= min(spec.input[-2:]):
                break
            shape = (spec.input[0], side, side)
            if len(spec.input) == 4:
                shape = (spec.input[0], min(spec.input[1], REDUCED_DEPTH), side, side)
            try:
                small = archspec.load(path, input_override=shape)
                return small, archspec.expand(small)
            except SpecError:
                continue  # e.g. an `expect:` pinned to the full size, or a net that needs more
    return spec, archspec.expand(spec)


def node_parameters(model, node) -> list:
    """The parameters compiled for `node`: its submodule's, or the bare parameter itself (none
    for a tied node: it calls its owner's; a node tied transposed has its own bias only)."""
    if node.tie is not None and not node.tie_transposed:
        return []
    if OPS[node.op].bare_parameter:
        return [model.get_parameter(node.name)]
    return list(model.get_submodule(node.name).parameters())


def check_parity(graph, *, training_heads: bool = True):
    """Build `graph` and compare parameters and every node's runtime shape with the report."""
    report = archspec.analyze(graph)
    model = archspec.build(graph, training_heads=training_heads, seed=0).eval()
    layers = {layer.name: layer for layer in report.layers}
    built = [n for n in graph.nodes.values() if training_heads or not n.training_only]

    for node in built:
        params = node_parameters(model, node)
        assert sum(p.numel() for p in params) == layers[node.name].params, node.name
        assert sum(p.numel() for p in params if p.requires_grad) == layers[node.name].trainable_params, node.name
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    expected = report.totals["params"] + (report.training_only.get("params", 0) if training_heads else 0)
    expected_trainable = report.totals["trainable_params"] + (
        report.training_only.get("trainable_params", 0) if training_heads else 0)
    assert total == expected, f"{graph.name}: compiled {total:,} params, report says {expected:,}"
    assert trainable == expected_trainable, (
        f"{graph.name}: compiled {trainable:,} trainable, report says {expected_trainable:,}")

    x = torch.randn(BATCH, *graph.input_shape)
    with torch.no_grad():
        ShapeProp(model).propagate(x)
    seen = set()
    for fx_node in model.graph.nodes:
        if "archspec_node" in fx_node.meta:
            name = fx_node.meta["archspec_node"]  # a bare-parameter op (x * parameter), a tied node
        elif fx_node.op == "call_module":
            name = fx_node.target
        else:
            continue
        got = tuple(fx_node.meta["tensor_meta"].shape)
        want = (BATCH, *graph.nodes[name].shape)
        assert got == want, f"{graph.name}: '{name}' ({graph.nodes[name].op}) runs as {got}, report says {want}"
        seen.add(name)
    assert seen == {n.name for n in built}
    return model


@pytest.mark.parametrize("path", ZOO, ids=[p.stem for p in ZOO])
def test_zoo_spec_static_equals_real(path):
    spec, graph = smallest_valid(path)
    check_parity(graph, training_heads=True)
    if any(n.training_only for n in graph.nodes.values()):
        model = archspec.build(graph, training_heads=False)
        totals = archspec.analyze(graph).totals
        assert sum(p.numel() for p in model.parameters()) == totals["params"]
        assert sum(p.numel() for p in model.parameters() if p.requires_grad) == totals["trainable_params"]


# ---- one tiny spec (or several) per registered op -------------------------------------------

def tiny(input_shape, layers: str) -> str:
    return f"archspec: 1\nname: tiny\ninput: {list(input_shape)}\nlayers:\n{layers}"


CASES = {  # op -> list of (case id, spec text)
    "conv": [
        ("plain", tiny((3, 9, 9), "  - conv: {out: 4, kernel: 3, stride: 2, padding: 1}\n")),
        ("groups_dilation", tiny((4, 11, 11), "  - conv: {out: 6, kernel: 3, groups: 2, dilation: 2, bias: false}\n")),
        ("same", tiny((2, 7, 8), "  - conv: {out: 3, kernel: [5, 2], dilation: [1, 2], padding: same}\n")),
        ("connections", tiny((3, 10, 10),
                             "  - conv: {out: 4, kernel: 5, connections: [[0], [0, 1], [1, 2], [0, 1, 2]]}\n")),
        ("frozen", tiny((3, 6, 6), "  - conv: {out: 2, kernel: 3, trainable: false}\n  - relu\n")),
    ],
    "conv_transpose": [
        ("output_padding_groups", tiny((4, 5, 6),
            "  - conv_transpose: {out: 6, kernel: 3, stride: 2, padding: 1, output_padding: 1, groups: 2}\n")),
        ("dilation", tiny((2, 4, 4), "  - conv_transpose: {out: 3, kernel: 2, stride: 3, dilation: 2, "
                                     "output_padding: [1, 0], bias: false}\n")),
    ],
    "locally_connected": [
        ("strided", tiny((3, 9, 8), "  - locally_connected: {out: 4, kernel: 3, stride: 2, padding: 1}\n")),
        ("no_bias", tiny((2, 6, 6), "  - locally_connected: {out: 3, kernel: [2, 3], bias: false}\n")),
    ],
    "flatten": [("chw", tiny((3, 4, 5), "  - flatten\n"))],
    "linear": [("features", tiny((3, 4, 4), "  - flatten\n  - linear: {out: 7}\n  - linear: {out: 2, bias: false}\n"))],
    "dropout": [("p", tiny((12,), "  - dropout: {p: 0.3}\n  - linear: {out: 2}\n"))],
    "rbf": [("lenet", tiny((3, 2, 2), "  - flatten\n  - rbf: {out: 10}\n"))],
    "batchnorm": [
        ("2d", tiny((3, 5, 5), "  - batchnorm: {eps: 0.001}\n")),
        ("1d_no_affine", tiny((6,), "  - batchnorm: {affine: false}\n")),
        ("frozen", tiny((3, 5, 5), "  - batchnorm: {trainable: false}\n")),
    ],
    "lrn": [("alexnet", tiny((8, 5, 5), "  - lrn: {size: 5, alpha: 0.0001, beta: 0.75, k: 2}\n")),
            ("even", tiny((6, 3, 3), "  - lrn: {size: 4}\n"))],
    "scale": [("chw", tiny((3, 4, 4), "  - scale\n")), ("flat_no_bias", tiny((5,), "  - scale: {bias: false}\n"))],
    "maxpool": [
        ("floor", tiny((2, 7, 7), "  - maxpool: {kernel: 2}\n")),
        ("ceil", tiny((2, 6, 6), "  - maxpool: {kernel: 3, stride: 2, ceil_mode: true}\n")),
        # the last ceil window would start in the right padding: PyTorch drops it
        ("ceil_drops_window_in_padding", tiny((2, 5, 5), "  - maxpool: {kernel: 2, stride: 2, padding: 1, ceil_mode: true}\n")),
        ("ceil_exact", tiny((2, 8, 8), "  - maxpool: {kernel: 2, stride: 2, ceil_mode: true}\n")),
        ("ceil_one_pixel", tiny((1, 1, 3), "  - maxpool: {kernel: [1, 2], stride: 2, ceil_mode: true}\n")),
        ("dilation", tiny((2, 9, 9), "  - maxpool: {kernel: 3, stride: 2, dilation: 2, padding: 1}\n")),
    ],
    "avgpool": [
        ("floor", tiny((2, 7, 7), "  - avgpool: {kernel: 3, stride: 2}\n")),
        ("ceil_padding", tiny((2, 7, 7), "  - avgpool: {kernel: 3, stride: 2, padding: 1, ceil_mode: true, "
                                         "count_include_pad: false}\n")),
        ("ceil_drops_window_in_padding", tiny((2, 5, 5), "  - avgpool: {kernel: 2, stride: 2, padding: 1, ceil_mode: true}\n")),
    ],
    "global_avgpool": [("chw", tiny((3, 5, 7), "  - global_avgpool\n"))],
    "global_maxpool": [("chw", tiny((3, 5, 7), "  - global_maxpool\n"))],
    "adaptive_avgpool": [
        ("non_divisible", tiny((3, 7, 9), "  - adaptive_avgpool: {size: [3, 4]}\n")),
        ("upsizing", tiny((2, 2, 3), "  - adaptive_avgpool: {size: 5}\n")),
    ],
    "upsample": [
        ("nearest_scale", tiny((2, 3, 4), "  - upsample: {scale: [2, 3]}\n")),
        ("bilinear_size", tiny((2, 3, 4), "  - upsample: {size: [7, 5], mode: bilinear, align_corners: false}\n")),
    ],
    "add": [("residual", tiny((3, 5, 5), "  - conv: {id: a, out: 3, kernel: 3, padding: 1}\n"
                                         "  - conv: {id: b, from: input, out: 3, kernel: 1}\n"
                                         "  - add: {from: [a, b, input]}\n"))],
    "mul": [("se_broadcast", tiny((4, 5, 5), "  - global_avgpool: {id: g}\n"
                                             "  - conv: {id: c, from: input, out: 4, kernel: 1}\n"
                                             "  - mul: {from: [c, g]}\n"))],
    "concat": [("branches", tiny((3, 6, 6), "  - conv: {id: a, out: 2, kernel: 1}\n"
                                            "  - maxpool: {id: b, from: input, kernel: 3, stride: 1, padding: 1}\n"
                                            "  - concat: {from: [a, b, input]}\n"))],
    "relu": [("chw", tiny((3, 4, 4), "  - conv: {out: 2, kernel: 1}\n  - relu\n"))],
    "relu6": [("chw", tiny((3, 4, 4), "  - conv: {out: 2, kernel: 1}\n  - relu6\n"))],
    "leaky_relu": [("slope", tiny((3, 4, 4), "  - leaky_relu: {negative_slope: 0.2}\n"))],
    "elu": [("alpha", tiny((3, 4, 4), "  - elu: {alpha: 0.5}\n"))],
    "gelu": [("tanh", tiny((3, 4, 4), "  - gelu: {approximate: tanh}\n"))],
    "sigmoid": [("flat", tiny((5,), "  - sigmoid\n"))],
    "tanh": [("flat", tiny((5,), "  - tanh\n"))],
    "scaled_tanh": [("chw", tiny((3, 4, 4), "  - scaled_tanh\n"))],
    "softmax": [("flat", tiny((5,), "  - softmax\n"))],
    "identity": [("chw", tiny((3, 4, 4), "  - identity\n"))],
}

# 1-D (C, L) and 3-D (C, D, H, W) cases of the ops that generalise, and the newer ops.
MORE_CASES = {
    "conv": [
        ("1d_groups", tiny((4, 20), "  - conv: {out: 6, kernel: 5, stride: 2, padding: 2, groups: 2}\n")),
        ("1d_same_dilated", tiny((2, 11), "  - conv: {out: 3, kernel: 4, dilation: 2, padding: same, bias: false}\n")),
        ("1d_connections", tiny((3, 12), "  - conv: {out: 2, kernel: 3, connections: [[0, 2], [1]]}\n")),
        ("3d", tiny((3, 4, 9, 9), "  - conv: {out: 4, kernel: [3, 7, 7], stride: [1, 2, 2], padding: [1, 3, 3], "
                                  "bias: false}\n")),
        ("3d_connections", tiny((3, 3, 5, 5), "  - conv: {out: 2, kernel: 3, padding: 1, connections: [[0, 2], [1]]}\n")),
    ],
    "conv_transpose": [
        ("1d", tiny((4, 6), "  - conv_transpose: {out: 2, kernel: 4, stride: 3, padding: 1, output_padding: 2}\n")),
        ("3d", tiny((4, 2, 3, 4), "  - conv_transpose: {out: 2, kernel: 2, stride: [1, 2, 2], groups: 2}\n")),
    ],
    "maxpool": [
        ("1d_ceil", tiny((2, 10), "  - maxpool: {kernel: 3, stride: 2, padding: 1, ceil_mode: true}\n")),
        ("3d", tiny((2, 4, 9, 9), "  - maxpool: {kernel: [1, 3, 3], stride: [1, 2, 2], padding: [0, 1, 1]}\n")),
    ],
    "avgpool": [
        ("1d", tiny((2, 10), "  - avgpool: {kernel: 4}\n")),
        ("3d_ceil", tiny((2, 5, 7, 7), "  - avgpool: {kernel: 2, stride: 2, ceil_mode: true, count_include_pad: false}\n")),
    ],
    "global_avgpool": [("1d", tiny((3, 13), "  - global_avgpool\n")), ("3d", tiny((3, 2, 5, 7), "  - global_avgpool\n"))],
    "global_maxpool": [("1d", tiny((3, 13), "  - global_maxpool\n")), ("3d", tiny((3, 2, 5, 7), "  - global_maxpool\n"))],
    "adaptive_avgpool": [
        ("1d", tiny((3, 13), "  - adaptive_avgpool: {size: 5}\n")),
        ("3d", tiny((3, 5, 7, 9), "  - adaptive_avgpool: {size: [2, 3, 4]}\n")),
    ],
    "batchnorm": [("1d", tiny((3, 9), "  - batchnorm\n")), ("3d", tiny((3, 2, 4, 4), "  - batchnorm\n"))],
    "lrn": [("1d", tiny((6, 9), "  - lrn: {size: 3}\n")), ("3d", tiny((6, 2, 3, 3), "  - lrn: {size: 4}\n"))],
    "scale": [("3d", tiny((3, 2, 4, 4), "  - scale\n"))],
    "upsample": [
        ("1d_linear", tiny((2, 5), "  - upsample: {scale: 3, mode: linear, align_corners: false}\n")),
        ("3d_nearest", tiny((2, 2, 3, 4), "  - upsample: {scale: [1, 2, 2]}\n")),
        ("3d_trilinear", tiny((2, 2, 3, 4), "  - upsample: {size: [3, 5, 7], mode: trilinear, align_corners: true}\n")),
    ],
    "flatten": [("3d", tiny((2, 2, 3, 4), "  - flatten\n"))],
    "dropout": [("3d", tiny((2, 2, 3, 4), "  - dropout: {p: 0.2}\n"))],
    "add": [("1d", tiny((3, 8), "  - conv: {id: a, out: 3, kernel: 3, padding: 1}\n  - add: {from: [a, input]}\n"))],
    "mul": [("3d_se", tiny((4, 2, 3, 3), "  - global_avgpool: {id: g}\n"
                                          "  - conv: {id: c, from: input, out: 4, kernel: 1}\n"
                                          "  - mul: {from: [c, g]}\n"))],
    "concat": [("1d", tiny((3, 8), "  - conv: {id: a, out: 2, kernel: 1}\n  - concat: {from: [a, input]}\n"))],
    "silu": [("chw", tiny((3, 4, 4), "  - conv: {out: 2, kernel: 1}\n  - silu\n"))],
    "hardswish": [("chw", tiny((3, 4, 4), "  - conv: {out: 2, kernel: 1}\n  - hardswish\n"))],
    "hardsigmoid": [("flat", tiny((5,), "  - hardsigmoid\n"))],
    "mish": [("1d", tiny((3, 7), "  - mish\n"))],
    "log_softmax": [("flat", tiny((5,), "  - linear: {out: 4}\n  - log_softmax\n"))],
    "layer_norm": [
        ("convnext", tiny((6, 4, 5), "  - layer_norm: {eps: 1.0e-6}\n")),
        ("features", tiny((6,), "  - layer_norm\n")),
        ("1d_no_bias", tiny((6, 7), "  - layer_norm: {bias: false}\n")),
        ("3d_no_affine", tiny((6, 2, 3, 3), "  - layer_norm: {affine: false}\n")),
    ],
    "group_norm": [
        ("chw", tiny((8, 4, 5), "  - group_norm: {groups: 4}\n")),
        ("1d_no_affine", tiny((8, 7), "  - group_norm: {groups: 2, affine: false}\n")),
        ("3d", tiny((8, 2, 3, 3), "  - group_norm: {groups: 8}\n")),
    ],
    "instance_norm": [
        ("default", tiny((3, 4, 5), "  - instance_norm\n")),
        ("1d_affine", tiny((3, 7), "  - instance_norm: {affine: true}\n")),
        ("3d_running", tiny((3, 2, 3, 3), "  - instance_norm: {affine: true, track_running_stats: true}\n")),
    ],
    "channel_shuffle": [("chw", tiny((6, 4, 4), "  - conv: {out: 6, kernel: 1}\n  - channel_shuffle: {groups: 3}\n")),
                        ("1d", tiny((4, 5), "  - channel_shuffle: {groups: 2}\n"))],
    "chunk": [("shufflenet", tiny((6, 4, 4), """\
  - conv: {id: c, out: 6, kernel: 1}
  - chunk: {id: x1, parts: 2, index: 0}
  - chunk: {id: x2, from: c, parts: 2, index: 1}
  - conv: {out: 3, kernel: 3, padding: 1}
  - relu: {id: b}
  - concat: {from: [x1, b]}
  - channel_shuffle: {groups: 2}
""")), ("uneven", tiny((7, 5), "  - chunk: {parts: 3, index: 2}\n"))],
    "channel_slice": [("chw", tiny((6, 4, 4), "  - conv: {out: 6, kernel: 1}\n  - channel_slice: {start: 1, stop: 4}\n"))],
    "drop_path": [("residual", tiny((3, 5, 5), """\
  - residual:
      id: block
      body:
        - conv: {id: conv, out: 3, kernel: 3, padding: 1}
        - drop_path: {p: 0.5}
""")), ("p1", tiny((4,), "  - drop_path: {p: 1.0}\n"))],
    "pixel_shuffle": [("espcn", tiny((2, 4, 5), "  - conv: {out: 12, kernel: 3, padding: 1}\n  - pixel_shuffle: {factor: 2}\n"))],
    "linear": [
        ("per_pixel", tiny((5, 3, 4), "  - linear: {id: pwconv1, out: 8, per_pixel: true}\n  - gelu\n"
                                      "  - linear: {id: pwconv2, out: 5, per_pixel: true, bias: false}\n")),
        ("per_pixel_1d", tiny((5, 6), "  - linear: {out: 3, per_pixel: true}\n")),
    ],
    "layer_scale": [
        ("convnext", tiny((4, 3, 3), """\
  - residual:
      id: cnblock
      body:
        - seq:
            id: block
            layers:
              - conv: {out: 4, kernel: 7, padding: 3, groups: 4}
              - identity
              - layer_norm: {eps: 1.0e-6}
              - linear: {out: 16, per_pixel: true}
              - gelu
              - linear: {out: 4, per_pixel: true}
        - layer_scale: {id: layer_scale}
""")),
        ("features_frozen", tiny((6,), "  - layer_scale: {init: 0.1, trainable: false}\n  - relu\n")),
        ("3d", tiny((2, 2, 3, 3), "  - layer_scale\n")),
    ],
}
for _op, _cases in MORE_CASES.items():
    CASES.setdefault(_op, []).extend(_cases)


@pytest.mark.parametrize("op", sorted(OPS))
def test_every_op_static_equals_real(op):
    """Every op in the registry, through a tiny spec of its own. A new op without a case here
    fails, so the registry can never outgrow this test."""
    cases = CASES.get(op)
    if not cases:
        pytest.fail(f"op '{op}' has no tiny spec in CASES (tests/test_compile_parity.py): add one")
    for case, text in cases:
        graph = archspec.expand(archspec.loads(text, file=f"<{op}:{case}>"))
        assert any(n.op == op for n in graph.nodes.values()), case
        model = check_parity(graph)
        # training mode too: forward and backward must work (in-place ops must not break autograd)
        model.train()
        x = torch.randn(BATCH, *graph.input_shape, requires_grad=True)
        out = model(x)
        out.float().sum().backward()
        assert x.grad is not None and x.grad.shape == x.shape, case


# ---- in-place activations are decided from the graph's consumers -------------------------------

def _reference_no_inplace(model):
    """A copy of `model` with every in-place module turned off."""
    import copy

    clone = copy.deepcopy(model)
    for module in clone.modules():
        if hasattr(module, "inplace"):
            module.inplace = False
    return clone


def _inplace(model, name):
    return model.get_submodule(name).inplace


def test_relu_whose_input_is_also_read_elsewhere_is_not_inplace():
    text = tiny((2, 6, 6), "  - conv: {id: c, out: 3, kernel: 3, padding: 1}\n"
                           "  - relu: {id: r}\n"
                           "  - add: {id: s, from: [c, r]}\n")
    model = archspec.build(archspec.loads(text), seed=0).eval()
    assert _inplace(model, "r") is False
    assert _inplace(model, "s") is False  # c is read by r too; r is relu's kept result
    x = torch.randn(BATCH, 2, 6, 6)
    with torch.no_grad():
        c = model.c(x)
        expected = c + torch.relu(c)
        assert torch.equal(model(x), expected)  # would be 2·relu(c) if r overwrote c


def test_relu_on_the_network_input_never_overwrites_the_callers_tensor():
    model = archspec.build(archspec.loads(tiny((3, 4, 4), "  - relu\n  - conv: {out: 2, kernel: 1}\n")))
    x = torch.randn(BATCH, 3, 4, 4)
    before = x.clone()
    model(x)
    assert torch.equal(x, before)
    assert _inplace(model, "0") is False


def test_relu_on_a_view_whose_base_is_read_elsewhere_is_not_inplace():
    text = tiny((2, 3, 3), "  - conv: {id: c, out: 2, kernel: 1}\n"
                           "  - flatten: {id: f}\n"
                           "  - relu: {id: r}\n"
                           "  - flatten: {id: g, from: c}\n"
                           "  - concat: {from: [r, g]}\n")
    model = archspec.build(archspec.loads(text), seed=0).eval()
    assert _inplace(model, "r") is False
    x = torch.randn(BATCH, 2, 3, 3)
    with torch.no_grad():
        assert torch.equal(model(x), _reference_no_inplace(model)(x))


def test_inplace_kept_where_safe_and_training_matches_out_of_place():
    """A residual block: relus after batch norm and the add run in place (as torchvision's
    do); a relu after a relu, and a relu reading a fork, do not. Outputs and gradients in
    training mode equal a fully out-of-place copy."""
    text = tiny((3, 6, 6), """\
  - conv: {id: stem, out: 4, kernel: 3, padding: 1}
  - relu: {id: fork}
  - residual:
      id: block
      body:
        - conv: {id: conv1, out: 4, kernel: 3, padding: 1, bias: false}
        - batchnorm: {id: bn1}
        - relu: {id: relu1}
        - relu: {id: twice}
        - conv: {id: conv2, out: 4, kernel: 3, padding: 1, bias: false}
        - batchnorm: {id: bn2}
      after: [relu]
  - relu: {id: side, from: fork}
  - concat: {from: [block, side]}
""")
    model = archspec.build(archspec.loads(text), seed=0)
    assert _inplace(model, "fork") is True  # its input (stem) is read by it alone
    assert _inplace(model, "block.relu1") is True
    assert _inplace(model, "block.twice") is False  # relu keeps its result for backward
    assert _inplace(model, "block.add") is True  # accumulates into bn2's output
    assert _inplace(model, "side") is False  # fork is read by the block too
    reference = _reference_no_inplace(model)
    x = torch.randn(BATCH, 3, 6, 6)
    for m in (model, reference):
        m.train()
    out, ref = model(x), reference(x)
    assert torch.equal(out, ref)
    out.square().sum().backward()
    ref.square().sum().backward()
    for (name, p), (_, q) in zip(model.named_parameters(), reference.named_parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-6), name


def test_torchvision_style_nets_keep_their_inplace_relus():
    graph = archspec.expand(archspec.load(ROOT / "specs" / "vgg16.yaml", input_override=(3, 32, 32)))
    model = archspec.build(graph)
    relus = [m for m in model.modules() if isinstance(m, torch.nn.ReLU)]
    assert relus and all(m.inplace for m in relus)


# ---- initialisation and seeding ------------------------------------------------------------

NET = tiny((3, 16, 16), """\
  - conv: {id: conv, out: 32, kernel: 3, padding: 1}
  - batchnorm: {id: bn}
  - relu
  - residual:
      id: block
      body:
        - conv: {id: conv1, out: 32, kernel: 3, padding: 1, bias: false}
        - batchnorm: {id: bn1}
        - relu
        - conv: {id: conv2, out: 64, kernel: 3, stride: 2, padding: 1, bias: false}
        - batchnorm: {id: bn2}
      after: [relu]
  - global_avgpool
  - flatten
  - linear: {id: fc, out: 500}
""")


def test_kaiming_init_follows_torchvision_convention():
    model = archspec.build(archspec.loads(NET), seed=0)
    conv = model.block.conv2
    fan_out = conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]
    assert abs(conv.weight.std().item() / (2 / fan_out) ** 0.5 - 1) < 0.05
    assert torch.count_nonzero(model.conv.bias) == 0
    assert torch.all(model.bn.weight == 1) and torch.all(model.bn.bias == 0)
    assert abs(model.fc.weight.std().item() / 0.01 - 1) < 0.05
    assert torch.count_nonzero(model.fc.bias) == 0


def test_init_schemes_and_zero_init_residual():
    spec = archspec.loads(NET)
    torch_default = archspec.build(spec, seed=0, init="torch")
    assert torch.count_nonzero(torch_default.fc.bias) > 0  # PyTorch's default uniform bias
    resnet = archspec.build(spec, seed=0, init="resnet")
    assert torch.count_nonzero(resnet.fc.bias) > 0 and torch.all(resnet.bn.weight == 1)
    zero = archspec.build(spec, seed=0, zero_init_residual=True)
    assert torch.all(zero.block.bn2.weight == 0)  # the residual branch's last batch norm
    assert torch.all(zero.block.downsample[1].weight == 1)  # the projection shortcut's is not
    assert torch.all(zero.block.bn1.weight == 1) and torch.all(zero.bn.weight == 1)
    with pytest.raises(ValueError, match="unknown init scheme"):
        archspec.build(spec, init="xavier-ish")


def test_zero_init_residual_on_resnet50_matches_torchvision_choice():
    from archspec.compile.init import residual_branch_norms

    graph = archspec.expand(archspec.load(ROOT / "specs" / "resnet50.yaml", input_override=(3, 64, 64)))
    names = residual_branch_norms(graph, graph.nodes)
    assert len(names) == 16 and all(n.endswith(".bn3") for n in names)


def test_seed_reproduces_weights_and_leaves_global_rng_alone():
    spec = archspec.loads(NET)
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a = archspec.build(spec, seed=7).state_dict()
    assert torch.equal(torch.rand(3), expected_next)  # the global generator was not consumed
    b = archspec.build(spec, seed=7).state_dict()
    c = archspec.build(spec, seed=8).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["fc.weight"], c["fc.weight"])
