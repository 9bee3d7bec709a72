"""Static = real on 1-D and 3-D inputs for the blocks, and the compiler's in-place decisions
around the newer ops (chunk views, SiLU/Hardswish built in place). The per-op cases, 1-D and
3-D included, are in test_compile_parity.CASES."""
from __future__ import annotations

import pytest
import torch

import archspec
from test_compile_parity import BATCH, _inplace, _reference_no_inplace, check_parity, tiny

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_chunks_of_one_tensor_are_views_and_never_overwritten():
    """ShuffleNetV2's split: both chunks are views of one tensor, so a ReLU on one of them must
    not run in place (it would change the other half, read by the concat)."""
    text = tiny((4, 3, 3), """\
  - conv: {id: c, out: 4, kernel: 1}
  - chunk: {id: x1, parts: 2, index: 0}
  - chunk: {id: x2, from: c, parts: 2, index: 1}
  - relu: {id: r}
  - concat: {from: [r, x1]}
""")
    model = archspec.build(archspec.loads(text), seed=0)
    assert _inplace(model, "r") is False
    x = torch.randn(BATCH, 4, 3, 3)
    with torch.no_grad():
        c = model.c(x)
        assert torch.equal(model(x), torch.cat([torch.relu(c[:, 2:]), c[:, :2]], 1))


def test_silu_and_hardswish_run_in_place_where_safe_and_train_as_out_of_place():
    text = tiny((3, 5, 5), """\
  - conv: {id: c1, out: 4, kernel: 3, padding: 1}
  - silu: {id: s1}
  - conv: {id: c2, out: 4, kernel: 3, padding: 1}
  - hardswish: {id: h}
  - silu: {id: s2}
  - add: {from: [s2, s1]}
""")
    model = archspec.build(archspec.loads(text), seed=0)
    assert _inplace(model, "s1") is True and _inplace(model, "h") is True
    assert _inplace(model, "s2") is True  # hardswish's output is not kept for its backward
    reference = _reference_no_inplace(model)
    x = torch.randn(BATCH, 3, 5, 5)
    out, ref = model(x), reference(x)
    assert torch.equal(out, ref)
    out.square().sum().backward()
    ref.square().sum().backward()
    for (name, p), (_, q) in zip(model.named_parameters(), reference.named_parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-6), name


# ---- the blocks on 1-D and 3-D inputs ------------------------------------------------------------

BLOCK_CASES = {
    "residual_basic_3d": tiny((4, 4, 6, 6), "  - residual: {preset: basic, out: 8, stride: 2}\n"),
    "residual_bottleneck_1d": tiny((8, 15), "  - residual: {preset: bottleneck, out: 16, stride: 2, groups: 2}\n"),
    "residual_preact_se_1d": tiny((4, 12), "  - residual: {preset: basic, out: 8, stride: 2, preact: true, "
                                            "se: {reduction: 4}}\n"),
    "se_3d": tiny((8, 2, 3, 3), "  - se: {reduction: 4}\n"),
    "dense_transition_3d": tiny((4, 4, 6, 6), "  - dense: {layers: 2, growth: 3, bottleneck: 2}\n"
                                              "  - transition: {compression: 0.5}\n"),
    "dense_transition_1d": tiny((4, 9), "  - dense: {layers: 2, growth: 3, bottleneck: 0, drop_rate: 0.1}\n"
                                        "  - transition: {out: 3}\n"),
    "inception_1d": tiny((4, 10), """\
  - inception:
      branches:
        b1: {conv: {out: 2, kernel: 1}}
        b2: [{conv: {out: 2, kernel: 1}}, relu, {conv: {out: 3, kernel: 5, padding: 2}}]
        b3: [{maxpool: {kernel: 3, stride: 1, padding: 1}}, {conv: {out: 2, kernel: 1}}]
"""),
}


@pytest.mark.parametrize("case", sorted(BLOCK_CASES))
def test_blocks_on_1d_and_3d_inputs_static_equals_real(case):
    graph = archspec.expand(archspec.loads(BLOCK_CASES[case], file=f"<{case}>"))
    model = check_parity(graph)
    model.train()
    model(torch.randn(BATCH, *graph.input_shape)).sum().backward()
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.modules.conv._ConvNd))
    assert conv.weight.dim() == len(graph.input_shape) + 1  # Conv1d / Conv3d, not Conv2d
