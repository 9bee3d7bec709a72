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
