"""Every zoo spec exports to a verified ONNX file (checker, shape inference, ONNX Runtime vs
PyTorch at batch 1 and 3), and the must-show: specs/resnet18.yaml through the CLI."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from conftest import SPECS, run_cli, zoo_specs  # noqa: E402

import archspec  # noqa: E402
from archspec.errors import SpecError  # noqa: E402

SMALL = 64  # input side used where the spec allows it (adaptive/global pooling before the head)
SMALL_DEPTH = 8  # frames of a (C, D, H, W) clip used where the spec allows it
HEAVY_PARAMS = 50_000_000  # ~200 MB of fp32 weights: the VGGs and AlexNets
HEAVY_NODES = 400  # export time grows with the node count: DenseNets, ResNet-152, pre-act ResNet


def reduced(path):
    """(spec, input shape): the spec at SMALL x SMALL (a (C, D, H, W) clip also cut to
    SMALL_DEPTH frames) when it accepts that, else as written. (C, L) inputs stay as written:
    1-D nets are cheap, and their pooling stacks often need the full length."""
    spec = archspec.load(path)
    c, *spatial = spec.input
    if len(spatial) not in (2, 3) or max(spatial[-2:]) <= SMALL:
        return spec, tuple(spec.input)
    shape = (c, *([min(spatial[0], SMALL_DEPTH)] if len(spatial) == 3 else []), SMALL, SMALL)
    try:
        small = archspec.load(path, input_override=shape)
        archspec.expand(small)
    except SpecError:
        return spec, tuple(spec.input)
    return small, shape


def _heavy(path) -> bool:
    try:
        spec, _ = reduced(path)
        graph = archspec.expand(spec)
    except SpecError:
        return False  # the test itself reports the broken spec
    return (len(graph.nodes) > HEAVY_NODES
            or archspec.analyze(graph).totals["params"] > HEAVY_PARAMS)


def _params():
    for path in zoo_specs():
        marks = [pytest.mark.slow] if _heavy(path) else []
        yield pytest.param(path, id=path.stem, marks=marks)


@pytest.mark.parametrize("path", list(_params()))
def test_zoo_spec_exports_with_parity(path, tmp_path):
    from archspec.compile.onnx_export import export_onnx

    spec, shape = reduced(path)
    out = tmp_path / f"{path.stem}.onnx"
    result = export_onnx(spec, out, batches=(1, 3))  # raises ExportError naming a failed check
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # one file: no .data, no temp left
    assert result.input == ("input", ["batch", *shape], "float32")
    assert result.output[0] == "logits" and result.output[1][0] == "batch"
    assert result.outputs == 1  # training-only heads (GoogLeNet's aux classifiers) are dropped
    rows = result.report.parity
    assert [r.batch for r in rows] == [1, 3] and all(r.ok for r in rows), [r.line() for r in rows]


RESNET18 = SPECS / "resnet18.yaml"


@pytest.mark.skipif(not RESNET18.exists(), reason="specs/resnet18.yaml is not in the zoo yet")
def test_resnet18_cli_export_is_one_verified_file(tmp_path):
    import onnx

    from archspec.compile.onnx_export import compile_for_export
    from archspec.compile.onnx_verify import random_input, torch_forward
    from archspec.compile.runtime import create_session

    out = tmp_path / "resnet18.onnx"
    first = run_cli("export", RESNET18, "-o", out)
    assert first.returncode == 0, first.stderr
    assert "CPUExecutionProvider" in first.stdout and "batch 5" in first.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["resnet18.onnx"]  # no .data sidecar

    onnx.checker.check_model(str(out), full_check=True)
    model = onnx.load(str(out), load_external_data=False)
    assert all(t.data_location != onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    assert [i.name for i in model.graph.input] == ["input"]
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"

    graph, module = compile_for_export(RESNET18, seed=0)  # the CLI's default weights
    session = create_session(out, "cpu")
    assert session.get_providers()[0] == "CPUExecutionProvider"
    for batch in (1, 3):
        x = random_input(graph.input_shape, batch, seed=7)
        got = session.run(None, {"input": x})[0]
        want = torch_forward(module, x)
        assert got.shape == (batch, *graph.shape(graph.output))
        assert float(np.abs(got - want).max()) <= 1e-4

    digest, stamp = hashlib.sha256(out.read_bytes()).hexdigest(), out.stat().st_mtime_ns
    again = run_cli("export", RESNET18, "-o", out)
    assert again.returncode == 2 and "already exists" in again.stderr and "Traceback" not in again.stderr
    assert hashlib.sha256(out.read_bytes()).hexdigest() == digest and out.stat().st_mtime_ns == stamp
    assert sorted(p.name for p in tmp_path.iterdir()) == ["resnet18.onnx"]
