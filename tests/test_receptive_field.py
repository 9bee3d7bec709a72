"""Receptive fields on 1-D, 2-D and 3-D inputs against a gradient measurement.

For every node of a small spec, the field is measured on the compiled module: with positive
weights and positive inputs, the input positions with a non-zero gradient of one output
position (channels weighted and summed; max pooling's single winner per window is covered by taking
the union over a batch of random inputs) form a box. Its width along each axis must equal the
reported `receptive_field`, and the shift of the box between neighbouring output positions
the reported `jump`. Output positions are taken in the middle, away from the borders; where a
field reaches past the input (global ops, padding), the measured box is the whole input and
the reported size must be at least that.
"""
from __future__ import annotations

import pytest
import torch
import torch.fx

import archspec

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BATCH = 64  # union over samples (and channels): every position of a max-pool window wins somewhere


def tiny(input_shape, layers: str) -> str:
    return f"archspec: 1\nname: rf\ninput: {list(input_shape)}\nlayers:\n{layers}"


CASES = {
    "1d_chain": tiny((2, 64), """\
  - conv: {id: c1, out: 3, kernel: 5, stride: 2, padding: 2, dilation: 2}
  - batchnorm: {id: bn}
  - relu: {id: r}
  - maxpool: {id: p1, kernel: 3, stride: 2}
  - conv: {id: c2, out: 3, kernel: 3, padding: 1}
  - avgpool: {id: p2, kernel: 2}
  - lrn: {id: n, size: 3}
  - global_avgpool: {id: g}
"""),
    "3d_chain": tiny((2, 13, 41, 41), """\
  - conv: {id: c1, out: 3, kernel: [3, 5, 5], stride: [1, 2, 2], padding: [1, 2, 2]}
  - relu: {id: r}
  - maxpool: {id: p1, kernel: [1, 3, 3], stride: [1, 2, 2]}
  - conv: {id: c2, out: 3, kernel: 3, padding: [1, 2, 1], dilation: [1, 2, 1]}
  - avgpool: {id: p2, kernel: 2, stride: [2, 1, 2]}
  - conv_transpose: {id: t, out: 2, kernel: [2, 3, 1], padding: [0, 1, 0]}
  - adaptive_avgpool: {id: a, size: [2, 4, 2]}
"""),
    "3d_residual": tiny((3, 15, 41, 41), """\
  - conv: {id: stem, out: 4, kernel: [3, 7, 7], stride: [1, 2, 2], padding: [1, 3, 3], bias: false}
  - residual: {id: block, preset: basic, out: 6, stride: 2}
  - se: {id: se, reduction: 2}
"""),
    "adaptive": tiny((1, 48), """\
  - conv: {id: c, out: 2, kernel: 3, padding: 1}
  - adaptive_avgpool: {id: a, size: 4}
  - conv_transpose: {id: t, out: 2, kernel: 3, padding: 1}
"""),
    "3d_adaptive": tiny((1, 12, 12, 12), """\
  - adaptive_avgpool: {id: a, size: [3, 3, 4]}
  - conv: {id: c, out: 2, kernel: 1}
"""),
    "1d_dense": tiny((3, 40), """\
  - conv: {id: stem, out: 4, kernel: 7, stride: 2, padding: 3}
  - dense: {id: db, layers: 2, growth: 2, bottleneck: 2}
  - transition: {id: tr}
  - conv_transpose: {id: up, out: 2, kernel: 5, padding: 1}
  - adaptive_avgpool: {id: a, size: 3}
"""),
    "2d_new_ops": tiny((4, 23, 21), """\
  - conv: {id: c1, out: 8, kernel: 3, stride: 2}
  - layer_norm: {id: ln}
  - linear: {id: pw, out: 8, per_pixel: true}
  - silu: {id: act}
  - channel_shuffle: {id: shuffle, groups: 2}
  - chunk: {id: x2, parts: 2, index: 1}
  - layer_scale: {id: ls, init: 0.5}
  - conv: {id: c2, out: 4, kernel: [3, 5], stride: 2, padding: [0, 2]}
  - channel_slice: {id: part, start: 1, stop: 3}
  - drop_path: {id: dp, p: 0.2}
  - instance_norm: {id: inorm}
"""),
    "2d_group_norm": tiny((4, 9, 11), """\
  - conv: {id: c1, out: 4, kernel: 3}
  - group_norm: {id: gn, groups: 2}
"""),
    "3d_running_instance_norm": tiny((2, 7, 9, 9), """\
  - conv: {id: c1, out: 2, kernel: 3}
  - instance_norm: {id: inorm, track_running_stats: true}
  - conv: {id: c2, out: 2, kernel: [1, 3, 3], stride: 2}
"""),
}


def node_outputs(model, x) -> dict:
    """Every archspec node's output for input `x`, from an fx Interpreter run."""
    values = {}

    class Recorder(torch.fx.Interpreter):
        def run_node(self, n):
            out = super().run_node(n)
            name = n.target if n.op == "call_module" else n.meta.get("archspec_node")
            if name is not None:
                values[name] = out
            return out

    Recorder(model).run(x)
    return values


def positive_model(graph):
    model = archspec.build(graph, seed=0).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2 and not name.endswith("layer_scale"):  # conv / linear weights
                p.uniform_(0.1, 1.0).div_(p[0].numel())  # activations stay near 1: no saturated gate
            elif name.endswith("bias"):
                p.zero_()
    return model


def measured_box(grad) -> list[tuple[int, int]]:
    """(first, last) input index with a non-zero gradient along each spatial axis."""
    hit = grad.abs().sum(dim=(0, 1)) > 0  # over batch and channels
    box = []
    for axis in range(hit.dim()):
        others = tuple(a for a in range(hit.dim()) if a != axis)
        along = hit.any(dim=others) if others else hit
        idx = along.nonzero().flatten()
        box.append((int(idx.min()), int(idx.max())))
    return box


@pytest.mark.parametrize("case", sorted(CASES))
def test_receptive_field_matches_gradient(case):
    graph = archspec.expand(archspec.loads(CASES[case], file=f"<{case}>"))
    report = {s.name: s for s in archspec.analyze(graph).layers}
    model = positive_model(graph)
    torch.manual_seed(0)
    batch = BATCH if any(n.op in ("maxpool", "global_maxpool") for n in graph.nodes.values()) else 2
    x = torch.rand(batch, *graph.input_shape, requires_grad=True)
    outputs = node_outputs(model, x)
    spatial_in = graph.input_shape[1:]
    checked = 0
    for name, y in outputs.items():
        stats = report[name]
        assert len(stats.receptive_field) == len(spatial_in) == len(stats.jump)
        out_spatial = y.shape[2:]
        mid = [(o - 1) // 2 for o in out_spatial]
        boxes = []
        for shift in (0, 1):  # the middle output position and its neighbour along every axis
            pos = [min(m + shift, o - 1) for m, o in zip(mid, out_spatial)]
            # channels weighted unequally: a plain sum of a normalised output is a constant
            weights = torch.linspace(1.0, 2.0, y.shape[1])
            picked = y[(slice(None), slice(None), *pos)] * weights
            (grad,) = torch.autograd.grad(picked.sum(), x, retain_graph=True)
            boxes.append((pos, measured_box(grad)))
        (pos0, box0), (pos1, box1) = boxes
        for axis, (size, jump, n_in) in enumerate(zip(stats.receptive_field, stats.jump, spatial_in)):
            first, last = box0[axis]
            width = last - first + 1
            clipped = first == 0 or last == n_in - 1
            if clipped:  # the field reaches past the input (padding, global ops)
                assert width <= size, (case, name, axis, width, size)
            else:
                assert width == size, f"{case}: '{name}' axis {axis}: measured {width}, reported {size}"
            step = pos1[axis] - pos0[axis]
            if step and not clipped and box1[axis][1] < n_in - 1:
                assert box1[axis][0] - first == jump, \
                    f"{case}: '{name}' axis {axis}: measured jump {box1[axis][0] - first}, reported {jump}"
            checked += 1
    assert checked >= len(graph.nodes)


def test_global_norms_see_everything_and_running_statistics_do_not():
    """group_norm and instance_norm (sample statistics) make every output depend on every
    position; instance_norm with running statistics (eval) is pointwise."""
    for case, name, whole in (("2d_group_norm", "gn", True), ("3d_running_instance_norm", "inorm", False)):
        graph = archspec.expand(archspec.loads(CASES[case]))
        fields = {s.name: s.receptive_field for s in archspec.analyze(graph).layers}
        extent = [i for i in graph.input_shape[1:]]
        assert (fields[name] == extent) == whole or (not whole and fields[name] == [3] * len(extent))
