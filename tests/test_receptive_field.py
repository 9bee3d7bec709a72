"""Receptive fields against a gradient measurement (tests/rf_measure.py), on small 1-D, 2-D and
3-D cases node by node and on every zoo spec stage by stage.

For each checked node and axis, the box of input positions with a non-zero gradient of one
output position must have the static size, its centre must be the static `rf_start` moved by
the position times the jump, and the box of the neighbouring position must be shifted by the
static jump (a field that reaches past the input is compared by its ends). A node marked `global_context` must depend at one output position on every input
position any of its positions depends on (all of them, unless strides skip some); its resolved
field is measured with the global paths cut. Where a field is an approximation
(`rf_exact: false`) the measured width must not exceed it.
"""
from __future__ import annotations

import dataclasses
from fractions import Fraction
from math import prod

import pytest
import torch

import archspec
from archspec.graph.build import build_graph
from archspec.graph.receptive import receptive_fields
from archspec.graph.stages import stage_outputs
from archspec.ops.registry import spatial_rank
from conftest import SPECS, zoo_specs
from rf_measure import box, gradient_hits, node_outputs, positive_model, widest_gap

pytestmark = pytest.mark.usefixtures("one_torch_thread")


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
  - conv: {id: after, out: 2, kernel: 3}
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
  - conv: {id: c3, out: 2, kernel: 3}
"""),
    "2d_group_norm": tiny((4, 19, 21), """\
  - conv: {id: c1, out: 4, kernel: 3}
  - group_norm: {id: gn, groups: 2}
  - conv: {id: c2, out: 4, kernel: 3, stride: 2}
"""),
    "3d_running_instance_norm": tiny((2, 7, 9, 9), """\
  - conv: {id: c1, out: 2, kernel: 3}
  - instance_norm: {id: inorm, track_running_stats: true}
  - conv: {id: c2, out: 2, kernel: [1, 3, 3], stride: 2}
"""),
    # SE after the first pooling of a CIFAR net: the gate must not turn jump 2 into 64.
    "2d_cifar_se_after_pool1": tiny((3, 32, 32), """\
  - conv: {id: conv1, out: 8, kernel: 3, padding: 1}
  - relu
  - maxpool: {id: pool1, kernel: 2}
  - se: {id: se1, reduction: 2}
  - conv: {id: conv2, out: 8, kernel: 3, padding: 1}
  - relu
  - maxpool: {id: pool2, kernel: 2}
"""),
    # Resizing by fractions: the static field is an upper bound there.
    "2d_resizing": tiny((4, 24, 24), """\
  - conv: {id: c1, out: 8, kernel: 3, stride: 2, padding: 1}
  - conv_transpose: {id: up, out: 4, kernel: 4, stride: 2, padding: 1}
  - conv: {id: c2, out: 8, kernel: 3, stride: 2}
  - pixel_shuffle: {id: shuffle, factor: 2}
  - upsample: {id: near, scale: 2}
  - conv: {id: c3, out: 2, kernel: 3, stride: 2}
  - upsample: {id: bilinear, scale: 2, mode: bilinear}
  - conv: {id: c4, out: 2, kernel: 3, stride: 3}
"""),
}


# ---- one node, one axis ---------------------------------------------------------------------


def check_node(name, stats, full, cut, x, axes, where):
    """Compare the static field of node `name` (a LayerStats) with the measurement on the
    spatial `axes` of the input. Returns how many axes were compared whole."""
    y = full[name]
    mid = [(o - 1) // 2 for o in y.shape[2:]]
    hits = gradient_hits(y, x, mid)
    if stats.global_context:
        everywhere = gradient_hits(y, x, [slice(None)] * len(mid))
        assert torch.equal(hits, everywhere), \
            f"{where}: '{name}' is marked global_context, but {int((everywhere & ~hits).sum())} input " \
            "positions reach its output elsewhere and not at one position"
        if not stats.rf_resolved:
            return 0
        y = cut[name]
        hits = gradient_hits(y, x, mid)
    return sum(check_axis(f"{where}: '{name}' axis {axis}", stats, y, x, hits, mid, axis) for axis in axes)


def check_axis(where, stats, y, x, hits, mid, axis) -> bool:
    """One axis: an upper bound where the field is inexact; its ends where it reaches past the
    input; else size, centre and (from the neighbouring position) jump. True when whole."""
    size, jump, start = (Fraction(v).limit_denominator(1000) for v in
                         (stats.receptive_field[axis], stats.jump[axis], stats.rf_start[axis]))
    n = x.shape[2 + axis]
    first, last = box(hits, axis)
    centre = start + mid[axis] * jump
    low, high = centre - (size - 1) / 2, centre + (size - 1) / 2
    if not stats.rf_exact:
        assert last - first + 1 <= size, f"{where}: measured {last - first + 1} > static bound {size}"
        return False
    if low < 0 or high > n - 1:  # the field reaches past the input (padding)
        # an end inside the input is measured as it is; an end outside must reach the border,
        # up to the widest gap strides leave between the positions read
        gap = widest_gap(hits, axis)
        assert (first == low) if low >= 0 else first < gap, f"{where}: measured start {first}, static {float(low)}"
        assert (last == high) if high <= n - 1 else last > n - 1 - gap, f"{where}: measured end {last}, static {float(high)}"
        return False
    assert last - first + 1 == size, f"{where}: measured size {last - first + 1}, static {size}"
    assert Fraction(first + last, 2) == centre, f"{where}: measured centre {(first + last) / 2}, static {float(centre)}"
    if mid[axis] + 1 < y.shape[2 + axis] and high + jump <= n - 1:
        pos = list(mid)
        pos[axis] += 1
        moved = box(gradient_hits(y, x, pos), axis)[0] - first
        assert moved == jump, f"{where}: measured jump {moved}, static {jump}"
    return True


def measure(graph, names, dtype=torch.float32):
    """Outputs of every node with and (where a checked node sees global context) without the
    global paths, on a positive random input."""
    model = positive_model(graph, dtype)
    torch.manual_seed(0)
    x = torch.rand(1, *graph.input_shape, dtype=dtype, requires_grad=True)
    report = {s.name: s for s in archspec.analyze(graph).layers}
    full = node_outputs(graph, model, x)
    needs_cut = any(report[n].global_context and len(report[n].shape) > 1 for n in names)
    cut = node_outputs(graph, model, x, cut_global=True) if needs_cut else {}
    return report, full, cut, x


# ---- small cases: every node ----------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(CASES))
def test_receptive_field_matches_gradient(case):
    graph = archspec.expand(archspec.loads(CASES[case], file=f"<{case}>"))
    report, full, cut, x = measure(graph, list(graph.nodes))
    axes = range(spatial_rank(graph.input_shape))
    compared = sum(check_node(name, report[name], full, cut, x, axes, case) for name in graph.nodes)
    assert compared > 0


def static_fields(case):
    graph = archspec.expand(archspec.loads(CASES[case]))
    return {s.name: s for s in archspec.analyze(graph).layers}


def test_se_gate_adds_global_context_not_field():
    layers = static_fields("2d_cifar_se_after_pool1")
    assert layers["pool1"].jump == [2, 2] and not layers["pool1"].global_context
    assert layers["se1.scale"].jump == [2, 2] and layers["se1.scale"].receptive_field == [4, 4]
    assert layers["se1.scale"].global_context and layers["pool2"].global_context
    assert layers["pool2"].jump == [4, 4] and layers["pool2"].receptive_field == [10, 10]


def test_global_norms_see_everything_and_running_statistics_do_not():
    """group_norm and instance_norm (sample statistics) add global context and keep the field;
    instance_norm with running statistics (eval) is pointwise."""
    gn = static_fields("2d_group_norm")["gn"]
    assert gn.global_context and gn.receptive_field == [3, 3] and gn.rf_exact
    inorm = static_fields("3d_running_instance_norm")["inorm"]
    assert not inorm.global_context and inorm.receptive_field == [3, 3, 3]


def test_fractional_resizing_is_marked_inexact():
    layers = static_fields("2d_resizing")
    assert layers["c1"].rf_exact
    for name in ("up", "c2", "shuffle", "near", "bilinear", "c4"):
        assert not layers[name].rf_exact, name


# ---- the zoo: every stage output ------------------------------------------------------------


def _valid(spec, spatial):
    try:
        return build_graph(dataclasses.replace(spec, input=(spec.input[0], *spatial)), check_expect=False)
    except archspec.SpecError:
        return None


def _power_of_two_side(spec, rank):
    """The first power of two at which every spatial axis builds (a power of two divides the
    periods of the zoo's stride products)."""
    if rank == 1:
        return 1  # no other axis
    n = 1
    while _valid(spec, (n,) * rank) is None:
        n *= 2
        assert n <= 2 ** 16, f"{spec.name}: no valid input side up to {2 ** 16}"
    return n


def _thin_side(spec, rank):
    """A small side at which every spatial axis builds: the first above the power of two
    before `_power_of_two_side` that does."""
    if rank == 1:
        return 1  # no other axis
    n = _power_of_two_side(spec, rank)
    return next(m for m in range(n // 2 + 1, n + 1) if _valid(spec, (m,) * rank) is not None)


def strip_plan(path, axis):
    """An input long along `axis` (where the stages' fields fit) and as thin as the network
    allows along the others; returns (graph, stage names). The fields along `axis` do not
    depend on the other axes' sizes, so a strip measures them at a fraction of the cost."""
    spec = archspec.load(path)
    rank = spatial_rank(spec.input)
    thin = _thin_side(spec, rank)
    names = stage_outputs(archspec.expand(spec))
    fields = receptive_fields(archspec.expand(spec))
    wanted = max((f.axes[axis].size + 2 * f.axes[axis].jump for n, f in fields.items()
                  if n in names and f.resolved and f.axes), default=thin)
    for n in range(max(thin, int(wanted)), int(wanted) + 4096):
        spatial = [thin] * rank
        spatial[axis] = n
        graph = _valid(spec, spatial)
        if graph is not None and _fits(graph, names, axis):
            return graph, names
    raise AssertionError(f"{path.name}: the stages' fields fit no input of {wanted} to {wanted + 4096}")


def _fits(graph, names, axis) -> bool:
    """Whether, along `axis`, every resolved stage output has two neighbouring positions in the
    middle whose exact fields lie inside the input."""
    fields = receptive_fields(graph)
    n_in = graph.input_shape[1 + axis]
    for name in names:
        f, shape = fields[name], graph.shape(name)
        if not f.resolved or len(shape) < 2 or not f.exact:
            continue
        o = shape[1 + axis]
        a = f.axes[axis]
        mid = (o - 1) // 2
        if o < 2:  # one position (an adaptive pooling to 1): compared by its ends
            continue
        if a.start + mid * a.jump - (a.size - 1) / 2 < 0 or \
                a.start + (mid + 1) * a.jump + (a.size - 1) / 2 > n_in - 1:
            return False
    return True


def _axes_to_measure(path):
    """The first spatial axis, and every other whose static fields at the stage outputs of a
    cube-shaped input differ from the first's (where they are equal, the first stands for
    them: the same rules computed them; asymmetric kernels are measured in CASES)."""
    spec = archspec.load(path)
    rank = spatial_rank(spec.input)
    side = max(spec.input[1:]) if rank else 1
    graph = _valid(spec, (side,) * rank) or archspec.expand(spec)
    fields = receptive_fields(graph)
    stages = [fields[name] for name in stage_outputs(graph)]
    return [0] + [a for a in range(1, rank) if any(f.axes and f.axes[a] != f.axes[0] for f in stages)]


def _cost(path):
    """A rough cost of the measurement in G multiply-accumulates: the spec's MACs at the
    strip's size, one pass per stage and position."""
    spec = archspec.load(path)
    graph = archspec.expand(spec)
    rank = spatial_rank(graph.input_shape)
    if not rank:
        return 0
    fields, names = receptive_fields(graph), stage_outputs(graph)
    thin = _power_of_two_side(spec, rank)
    longest = max((fields[n].axes[0].size + 2 * fields[n].axes[0].jump for n in names
                   if fields[n].resolved and fields[n].axes), default=thin)
    pixels = max(longest, thin) * thin ** (rank - 1) / prod(graph.input_shape[1:])
    passes = 2 * len(names) * len(_axes_to_measure(path))
    return archspec.analyze(graph).totals["macs"] / 1e9 * pixels * passes


SLOW = 40  # G multiply-accumulates (about 10 s on one busy core)


def _zoo_params():
    params = []
    for path in zoo_specs():
        marks = [pytest.mark.slow] if _cost(path) > SLOW else []
        params.append(pytest.param(path, id=path.stem, marks=marks))
    return params


@pytest.mark.parametrize("path", _zoo_params())
def test_zoo_stage_fields_match_gradient(path):
    for axis in _axes_to_measure(path):
        graph, names = strip_plan(path, axis)
        report, full, cut, x = measure(graph, names)
        where = f"{path.name} at {'x'.join(map(str, graph.input_shape))}"
        compared = sum(check_node(name, report[name], full, cut, x, [axis], where) for name in names)
        assert compared > 0, where


def test_se_resnet50_last_stage_has_resnet50s_field_and_global_context():
    """ResNet-50's last stage sees 427 input pixels (measured on resnet50 itself); SE-ResNet-50
    has the same field, and its gates make it see global context as well."""
    last_stage = "layer4.2.relu"
    measured = {}
    for spec in ("resnet50", "se_resnet50"):
        graph, names = strip_plan(SPECS / f"{spec}.yaml", 0)
        report, full, cut, x = measure(graph, names)
        mid = [(o - 1) // 2 for o in full[last_stage].shape[2:]]
        measured[spec] = (report[last_stage], gradient_hits(full[last_stage], x, mid),
                          gradient_hits(cut[last_stage], x, mid) if cut else None)
    r50, hits, _ = measured["resnet50"]
    first, last = box(hits, 0)
    assert last - first + 1 == 427 == r50.receptive_field[0] and not r50.global_context
    se, hits, resolved = measured["se_resnet50"]
    assert se.receptive_field == [427, 427] and se.global_context and bool(hits.all())
    first, last = box(resolved, 0)
    assert last - first + 1 == 427
