"""PyTorch vs ONNX Runtime parity for the ops whose semantics differ between the two (or whose
export is non-trivial). Each case is a tiny spec exported with full verification (checker,
shape inference, ORT vs PyTorch at batch 1, 2 and 5 within rtol/atol 1e-4)."""
from __future__ import annotations

import textwrap

import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

import archspec  # noqa: E402
from archspec.compile.onnx_export import ExportError, export_onnx  # noqa: E402
from archspec.ops import OPS  # noqa: E402
from archspec.ops.formulas import pool_out  # noqa: E402


def _spec(tmp_path, name, input_shape, layers: str):
    text = (f"archspec: 1\nname: {name}\ninput: {list(input_shape)}\nlayers:\n"
            + textwrap.indent(textwrap.dedent(layers).strip("\n"), "  ") + "\n")
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


# PyTorch drops a ceil_mode window that would start in the right padding: k=2, s=3, p=1 on 5
# pixels gives 2 windows, not the 3 a plain ceil (and ONNX) gives: export refuses that (see
# test_ceil_mode_window_in_padding_is_refused). k=3, s=2, p=1 on 6 keeps a last window that
# starts in the input and overhangs the padded input: ONNX Runtime matches PyTorch there.
assert pool_out(5, 2, 3, 1, ceil_mode=True) == 2
assert pool_out(6, 3, 2, 1, ceil_mode=True) == 4

CASES = {
    "maxpool_ceil_overhang": ((2, 6, 6), "- maxpool: {kernel: 3, stride: 2, padding: 1, ceil_mode: true}"),
    "maxpool_ceil_nopad": ((2, 7, 7), "- maxpool: {kernel: 3, stride: 2, ceil_mode: true}"),
    "maxpool_dilated": ((2, 9, 9), "- maxpool: {kernel: 3, stride: 2, padding: 1, dilation: 2}"),
    "avgpool_ceil_overhang_incl": ((2, 6, 6),
                                   "- avgpool: {kernel: 3, stride: 2, padding: 1, ceil_mode: true}"),
    "avgpool_ceil_overhang_excl": ((2, 6, 6), "- avgpool: {kernel: 3, stride: 2, padding: 1, "
                                              "ceil_mode: true, count_include_pad: false}"),
    "avgpool_ceil_nopad": ((2, 7, 7), "- avgpool: {kernel: 3, stride: 2, ceil_mode: true}"),
    "avgpool_pad_incl": ((2, 6, 6), "- avgpool: {kernel: 3, stride: 1, padding: 1}"),
    "avgpool_pad_excl": ((2, 6, 6), "- avgpool: {kernel: 3, stride: 1, padding: 1, count_include_pad: false}"),
    "lrn_odd": ((7, 4, 4), "- lrn: {size: 5, alpha: 0.001, beta: 0.75, k: 2}"),
    "lrn_even": ((7, 4, 4), "- lrn: {size: 4, alpha: 0.001, beta: 0.75, k: 2}"),
    "adaptive_avgpool_10_to_7": ((3, 10, 10), "- adaptive_avgpool: {size: 7}"),
    "adaptive_avgpool_uneven": ((3, 9, 13), "- adaptive_avgpool: {size: [4, 5]}"),
    "adaptive_avgpool_up": ((3, 5, 5), "- adaptive_avgpool: {size: 7}"),
    "global_pools": ((3, 5, 5), """
        - global_avgpool: {id: a}
        - global_maxpool: {id: m, from: input}
        - concat: {from: [a, m]}
    """),
    "conv_transpose_groups_outpad": ((4, 5, 5), "- conv_transpose: {out: 6, kernel: 3, stride: 2, "
                                                "padding: 1, output_padding: 1, groups: 2}"),
    "conv_transpose_dilated": ((4, 5, 5), "- conv_transpose: {out: 2, kernel: 3, stride: 3, "
                                          "dilation: 2, output_padding: 1}"),
    "conv_depthwise": ((6, 8, 8), "- conv: {out: 6, kernel: 3, padding: 1, groups: 6}"),
    "conv_same_dilated": ((3, 8, 8), "- conv: {out: 4, kernel: 4, padding: same, dilation: 2}"),
    "conv_table": ((4, 8, 8), "- conv: {out: 3, kernel: 3, connections: [[0, 1], [1, 2, 3], [3]]}"),
    "locally_connected": ((3, 7, 7), "- locally_connected: {out: 4, kernel: 3, stride: 2, padding: 1}"),
    "rbf": ((3, 4, 4), """
        - flatten
        - rbf: {out: 10}
    """),
    "activations": ((3, 5, 5), """
        - scaled_tanh
        - leaky_relu: {negative_slope: 0.1}
        - elu
        - gelu: {approximate: tanh}
        - relu6
        - sigmoid
        - scale
        - softmax
    """),
    "upsample_nearest": ((3, 4, 5), "- upsample: {scale: 2}"),
    "upsample_nearest_size": ((3, 4, 5), "- upsample: {size: [7, 9]}"),
    "upsample_bilinear": ((3, 4, 5), "- upsample: {scale: [2, 3], mode: bilinear, align_corners: false}"),
    "upsample_bilinear_corners": ((3, 4, 5), "- upsample: {size: 9, mode: bilinear, align_corners: true}"),
    "merges": ((4, 6, 6), """
        - conv: {id: a, out: 4, kernel: 3, padding: 1}
        - conv: {id: b, out: 4, kernel: 1, from: input}
        - add: {id: s, from: [a, b, input]}
        - global_avgpool: {id: g}
        - sigmoid: {id: e}
        - mul: {id: m, from: [s, e]}
        - concat: {from: [m, s, input]}
    """),
    "head": ((3, 8, 8), """
        - conv: {out: 4, kernel: 3}
        - batchnorm
        - relu
        - dropout: {p: 0.3}
        - flatten
        - linear: {out: 5}
        - batchnorm
    """),

    # ---- 1-D (C, L) and 3-D (C, D, H, W) inputs
    "conv_pool_1d": ((3, 40), """
        - conv: {out: 4, kernel: 5, stride: 2, padding: 2, dilation: 2}
        - batchnorm: {eps: 0.5}
        - relu
        - maxpool: {kernel: 3, stride: 2, padding: 1, ceil_mode: true}
        - avgpool: {kernel: 3, stride: 1, padding: 1, count_include_pad: false}
        - conv: {out: 4, kernel: 3, groups: 2, padding: same}
    """),
    "conv_pool_3d": ((2, 4, 17, 17), """
        - conv: {out: 4, kernel: [3, 7, 7], stride: [1, 2, 2], padding: [1, 3, 3], bias: false}
        - batchnorm: {eps: 0.5}
        - relu
        - maxpool: {kernel: [1, 3, 3], stride: [1, 2, 2], padding: [0, 1, 1]}
        - avgpool: {kernel: 2, stride: 2, ceil_mode: true, count_include_pad: false}
        - conv: {out: 4, kernel: 3, padding: 1, dilation: [1, 2, 1], groups: 4}
    """),
    "conv_table_1d": ((3, 12), "- conv: {out: 2, kernel: 3, connections: [[0, 2], [1]]}"),
    "conv_table_3d": ((3, 3, 5, 5), "- conv: {out: 2, kernel: 3, padding: 1, connections: [[0, 2], [1]]}"),
    "conv_transpose_1d": ((4, 6), "- conv_transpose: {out: 2, kernel: 4, stride: 3, padding: 1, output_padding: 2}"),
    "conv_transpose_3d": ((4, 2, 3, 4), "- conv_transpose: {out: 2, kernel: [2, 3, 3], stride: [1, 2, 2], groups: 2}"),
    "upsample_1d": ((3, 5), """
        - upsample: {id: a, scale: 3}
        - upsample: {id: b, from: input, size: 15, mode: linear, align_corners: false}
        - concat: {from: [a, b]}
    """),
    "upsample_3d": ((3, 2, 3, 4), """
        - upsample: {id: a, scale: [1, 2, 2]}
        - upsample: {id: b, from: input, size: [2, 6, 8], mode: trilinear, align_corners: true}
        - concat: {from: [a, b]}
    """),
    "global_adaptive_1d": ((3, 13), """
        - global_avgpool: {id: a}
        - global_maxpool: {id: m, from: input}
        - adaptive_avgpool: {id: p, from: input, size: 5}
        - global_avgpool: {id: q}
        - concat: {from: [a, m, q]}
    """),
    "global_adaptive_3d": ((3, 2, 5, 7), """
        - global_avgpool: {id: a}
        - global_maxpool: {id: m, from: input}
        - adaptive_avgpool: {id: p, from: input, size: 1}
        - concat: {from: [a, m, p]}
    """),
    "lrn_3d": ((6, 2, 3, 3), "- lrn: {size: 4, alpha: 0.01, beta: 0.75, k: 2}"),
    "lrn_1d": ((6, 9), "- lrn: {size: 3, alpha: 0.01, beta: 0.75, k: 2}"),
    # ---- newer ops; large eps and scale values so a translation that drops them shows
    "activations_new": ((3, 5, 5), """
        - conv: {out: 8, kernel: 3, padding: 1}
        - silu
        - hardswish
        - mish
        - hardsigmoid
        - flatten
        - log_softmax
    """),
    "layer_norm": ((6, 4, 5), """
        - layer_norm: {eps: 0.5}
        - layer_norm: {affine: false, eps: 0.3}
        - flatten
        - layer_norm: {bias: false, eps: 0.2}
    """),
    "layer_norm_1d_3d": ((6, 2, 3, 3), "- layer_norm: {eps: 0.5}"),
    "group_norm": ((8, 4, 5), """
        - group_norm: {groups: 4, eps: 0.3}
        - group_norm: {groups: 2, affine: false, eps: 0.1}
    """),
    "group_norm_1d": ((8, 7), "- group_norm: {groups: 2, eps: 0.3}"),
    "instance_norm": ((3, 4, 5), """
        - instance_norm: {eps: 0.3}
        - instance_norm: {affine: true, eps: 0.2}
    """),
    "instance_norm_running_3d": ((3, 2, 3, 3), "- instance_norm: {affine: true, track_running_stats: true, eps: 0.4}"),
    "shufflenet_unit": ((8, 5, 5), """
        - conv: {id: c, out: 8, kernel: 1}
        - chunk: {id: x1, parts: 2, index: 0}
        - chunk: {id: x2, from: c, parts: 2, index: 1}
        - conv: {out: 4, kernel: 3, padding: 1, groups: 4}
        - relu: {id: b}
        - concat: {from: [x1, b]}
        - channel_shuffle: {groups: 2}
        - channel_slice: {start: 1, stop: 6}
        - chunk: {parts: 3, index: 2}
    """),
    "drop_path": ((3, 5, 5), """
        - residual:
            body:
              - conv: {out: 3, kernel: 3, padding: 1}
              - drop_path: {p: 0.5}
    """),
    "pixel_shuffle": ((2, 4, 5), """
        - conv: {out: 18, kernel: 3, padding: 1}
        - pixel_shuffle: {factor: 3}
    """),
    "convnext_block": ((8, 5, 5), """
        - residual:
            body:
              - conv: {out: 8, kernel: 7, padding: 3, groups: 8}
              - layer_norm: {eps: 1.0e-6}
              - linear: {out: 32, per_pixel: true}
              - gelu
              - linear: {out: 8, per_pixel: true}
              - layer_scale: {init: 2.5}
              - drop_path: {p: 0.1}
    """),
    "linear_per_pixel_1d": ((5, 6), "- linear: {out: 3, per_pixel: true}"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_op_parity(tmp_path, case):
    shape, layers = CASES[case]
    spec = _spec(tmp_path, case, shape, layers)
    out = tmp_path / f"{case}.onnx"
    result = export_onnx(spec, out)  # raises ExportError if any check fails
    assert out.is_file() and [p.name for p in tmp_path.iterdir() if p.suffix == ".data"] == []
    graph = archspec.expand(archspec.load(spec))
    assert result.output[1][1:] == list(graph.shape(graph.output))
    rows = result.report.parity
    assert [r.batch for r in rows] == [1, 2, 5]
    assert all(r.ok for r in rows), [r.line() for r in rows]


def test_parity_failure_is_located_and_writes_nothing(tmp_path, monkeypatch):
    import torch

    class Shifty(torch.nn.Module):  # exports a different function than it runs

        def forward(self, x):
            return x + 1.0 if torch.compiler.is_exporting() else x

    scaled_tanh = OPS["scaled_tanh"]
    monkeypatch.setattr(type(scaled_tanh), "torch", lambda self, p, inputs, out: Shifty())
    spec = _spec(tmp_path, "shifty", (2, 4, 4), """
        - conv: {out: 2, kernel: 1}
        - scaled_tanh
        - relu
    """)
    out = tmp_path / "shifty.onnx"
    with pytest.raises(ExportError) as info:
        export_onnx(spec, out)
    err = info.value
    assert err.check == "parity"
    assert err.loc is not None and err.loc.line == 6, str(err)  # the scaled_tanh layer
    assert "'1' (scaled_tanh)" in str(err)
    assert list(tmp_path.iterdir()) == [spec]


def test_refusal_is_generic_and_located(tmp_path, monkeypatch):
    op = OPS["lrn"]
    monkeypatch.setattr(type(op), "onnx_refusal",
                        lambda self, p, inputs, out: "size 3 is not supported" if p.size == 3 else None,
                        raising=False)
    spec = _spec(tmp_path, "refused", (4, 4, 4), """
        - lrn: {size: 5}
        - lrn: {size: 3}
    """)
    with pytest.raises(ExportError) as info:
        export_onnx(spec, tmp_path / "refused.onnx")
    assert info.value.loc.line == 6 and "size 3 is not supported" in str(info.value)
    assert not (tmp_path / "refused.onnx").exists()


@pytest.mark.parametrize("pool", ["maxpool", "avgpool"])
def test_ceil_mode_window_in_padding_is_refused(tmp_path, pool):
    spec = _spec(tmp_path, "drop", (2, 5, 5), f"""
        - conv: {{out: 2, kernel: 1}}
        - {pool}: {{kernel: 2, stride: 3, padding: 1, ceil_mode: true}}
    """)
    with pytest.raises(ExportError) as info:
        export_onnx(spec, tmp_path / "drop.onnx")
    err = info.value
    assert err.loc is not None and err.loc.line == 6, str(err)
    assert f"'1' ({pool}) cannot be exported to ONNX faithfully" in str(err)
    assert "right padding" in str(err)
    assert not (tmp_path / "drop.onnx").exists()


def test_3d_adaptive_pooling_to_other_sizes_is_refused(tmp_path):
    spec = _spec(tmp_path, "ada3d", (2, 4, 6, 8), """
        - conv: {out: 2, kernel: 1}
        - adaptive_avgpool: {size: [2, 3, 4]}
    """)
    with pytest.raises(ExportError) as info:
        export_onnx(spec, tmp_path / "ada3d.onnx")
    assert info.value.loc.line == 6 and "no translation of 3-D adaptive average pooling" in str(info.value)
    assert not (tmp_path / "ada3d.onnx").exists()


@pytest.mark.parametrize("shape, pool", [((2, 5), "{kernel: 2, stride: 3, padding: 1, ceil_mode: true}"),
                                         ((2, 3, 5, 5), "{kernel: [1, 2, 2], stride: [1, 3, 3], padding: [0, 1, 1], "
                                                        "ceil_mode: true}")])
def test_ceil_mode_refusal_names_the_axis_in_1d_and_3d(tmp_path, shape, pool):
    spec = _spec(tmp_path, "drop", shape, f"""
        - maxpool: {pool}
    """)
    with pytest.raises(ExportError) as info:
        export_onnx(spec, tmp_path / "drop.onnx")
    axis = "positions" if len(shape) == 2 else "depth slices"
    assert "right padding" in str(info.value)
    assert ("along the rows" in str(info.value)) == (len(shape) == 4)
    assert len(shape) == 4 or f"along the {axis}" in str(info.value)
