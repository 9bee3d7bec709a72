"""The deployment path: `archspec run MODEL.onnx` and `archspec bench --onnx-only MODEL.onnx`
need ONNX Runtime and NumPy only. They import neither torch nor archspec's compiler, write
their outputs atomically, and refuse models they cannot feed with one line (exit 2) before
allocating anything."""
from __future__ import annotations

import json
import shlex

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper  # noqa: E402

from cli_probe import one_line_error, probe  # noqa: E402
from conftest import ROOT  # noqa: E402


def _model(path, inputs, nodes, outputs, initializers=()):
    graph = helper.make_graph(nodes, "m", inputs, outputs, initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Small hand-written ONNX models: a two-output classifier with a free batch axis, and
    models `run` must refuse."""
    root = tmp_path_factory.mktemp("models")
    info = helper.make_tensor_value_info
    w = (np.arange(60, dtype=np.float32).reshape(12, 5) % 7) / 7 - 0.5  # (12, 5), distinct columns
    weight = helper.make_tensor("w", TensorProto.FLOAT, w.shape, w.ravel())
    two = _model(root / "two.onnx", [info("x", TensorProto.FLOAT, ["N", 3, 2, 2])],
                 [helper.make_node("Flatten", ["x"], ["f"]), helper.make_node("MatMul", ["f", "w"], ["logits"]),
                  helper.make_node("Softmax", ["logits"], ["probs"], axis=1)],
                 [info("logits", TensorProto.FLOAT, ["N", 5]), info("probs", TensorProto.FLOAT, ["N", 5])],
                 [weight])
    const = helper.make_tensor("c", TensorProto.FLOAT, [2], [1.0, 2.0])
    no_inputs = _model(root / "no_inputs.onnx", [],
                       [helper.make_node("Constant", [], ["y"], value=const)],
                       [info("y", TensorProto.FLOAT, [2])])
    huge = _model(root / "huge.onnx", [info("x", TensorProto.FLOAT, [1, 3, 100000, 100000])],
                  [helper.make_node("Relu", ["x"], ["y"])], [info("y", TensorProto.FLOAT, [1, 3, 100000, 100000])])
    text = _model(root / "text.onnx", [info("s", TensorProto.STRING, ["N", 1])],
                  [helper.make_node("Identity", ["s"], ["y"])], [info("y", TensorProto.STRING, ["N", 1])])
    fixed = _model(root / "fixed.onnx", [info("x", TensorProto.FLOAT, [1, 4])],
                   [helper.make_node("Relu", ["x"], ["y"])], [info("y", TensorProto.FLOAT, [1, 4])])
    symbolic = _model(root / "symbolic.onnx", [info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])],
                      [helper.make_node("Relu", ["x"], ["y"])], [info("y", TensorProto.FLOAT, ["N", 3, "H", "W"])])
    return {"two": two, "no_inputs": no_inputs, "huge": huge, "text": text, "fixed": fixed,
            "symbolic": symbolic, "weights": w}


def test_run_onnx_imports_neither_torch_nor_the_compiler(models, tmp_path):
    result, loaded = probe(tmp_path, "run", models["two"], "--batch", "2")
    assert result.returncode == 0, result.stderr
    assert "provider: CPUExecutionProvider" in result.stdout
    assert "output 'probs': [2, 5] float32" in result.stdout
    assert loaded == [], f"run imported {loaded[:5]}"


def test_bench_onnx_only_imports_neither_torch_nor_the_compiler(models, tmp_path):
    result, loaded = probe(tmp_path, "bench", "--onnx-only", models["two"], "--batch", "1,4",
                           "--runs", "3", "--warmup", "1")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "ONNX Runtime only: provider CPUExecutionProvider" in out and "median ms" in out
    rows = [ln.split() for ln in out.splitlines() if ln.split()[:1] in (["1"], ["4"])]
    assert [(r[0], r[1]) for r in rows] == [("1", "onnxruntime"), ("4", "onnxruntime")]
    for b, _, median, p90, rate in rows:  # images/s is the batch over the median latency
        median, half_digit = float(median), 0.005  # the table rounds to 0.01 ms
        assert 0 < median <= float(p90)
        assert int(b) / (median + half_digit) * 1e3 <= float(rate) * 1.001
        assert float(rate) <= int(b) / max(median - half_digit, 1e-3) * 1e3 * 1.001
    assert "pytorch" not in out and "speed-up" not in out
    assert loaded == [], f"bench --onnx-only imported {loaded[:5]}"


def test_run_onnx_works_where_torch_and_onnx_are_not_installed(models, tmp_path):
    result, loaded = probe(tmp_path, "run", models["two"], block=("torch", "onnx", "onnxscript"))
    assert result.returncode == 0, result.stderr
    assert loaded == []


@pytest.mark.parametrize("command", [["run"], ["bench", "--onnx-only"]])
def test_onnx_file_without_onnxruntime_names_the_runtime_extra(models, tmp_path, command):
    result, _ = probe(tmp_path, *command, models["two"], block=("onnxruntime",))
    line = one_line_error(result)
    assert line == (f"error: 'archspec {command[0]}' needs ONNX Runtime (archspec[runtime]): pip install -e "
                    + shlex.quote(f"{ROOT}[runtime]"))


def test_outputs_written_atomically_match_onnxruntime(models, tmp_path):
    """-o .npy/.npz/.json against an ONNX Runtime session opened here on the same input."""
    x = np.random.default_rng(3).standard_normal((4, 3, 2, 2)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    session = ort.InferenceSession(str(models["two"]), providers=["CPUExecutionProvider"])
    logits, probs = session.run(None, {"x": x})
    np.testing.assert_allclose(logits, x.reshape(4, 12) @ models["weights"], rtol=1e-5)  # the model is right
    for name in ("out.npy", "out.npz", "out.json"):
        result, loaded = probe(tmp_path, "run", models["two"], "--input-file", tmp_path / "x.npy",
                               "-o", tmp_path / name)
        assert result.returncode == 0, result.stderr
        assert f"wrote {tmp_path / name}" in result.stderr and loaded == []
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), logits)
    assert "the first of 2 outputs" in probe(tmp_path, "run", models["two"], "-o", tmp_path / "again.npy")[0].stderr
    with np.load(tmp_path / "out.npz") as archive:
        assert sorted(archive.files) == ["logits", "probs"]
        np.testing.assert_array_equal(archive["probs"], probs)
    doc = json.loads((tmp_path / "out.json").read_text())
    assert doc["provider"] == "CPUExecutionProvider" and doc["model"] == str(models["two"])
    assert doc["input"] == {"name": "x", "shape": [4, 3, 2, 2], "dtype": "float32", "source": str(tmp_path / "x.npy")}
    assert [(o["name"], o["shape"], o["dtype"]) for o in doc["outputs"]] == [
        ("logits", [4, 5], "float32"), ("probs", [4, 5], "float32")]
    np.testing.assert_array_equal(np.array(doc["outputs"][0]["data"], dtype=np.float32), logits)
    assert doc["timing_ms"]["session"] > 0 and doc["timing_ms"]["run"] > 0
    mode = (tmp_path / "out.json").stat().st_mode & 0o777
    assert mode == (tmp_path / "x.npy").stat().st_mode & 0o777  # a normal file mode, not mkstemp's
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left


def test_format_json_prints_the_document(models, tmp_path):
    result, _ = probe(tmp_path, "run", models["two"], "--batch", "3", "-f", "json", "--seed", "5")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)  # stdout is exactly one JSON document
    assert doc["input"]["shape"] == [3, 3, 2, 2] and doc["input"]["source"] == "random normal (seed 5)"
    probs = np.array(doc["outputs"][1]["data"])
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-6)  # softmax rows, as ORT computed them


def test_model_without_inputs_runs_nothing(models, tmp_path):
    line = one_line_error(probe(tmp_path, "run", models["no_inputs"])[0])
    assert "has no inputs" in line


def test_huge_declared_input_is_refused_before_allocating(models, tmp_path):
    """Refused from the declared shape alone (no array of that size exists, so nothing else
    could have produced this message)."""
    result, _ = probe(tmp_path, "run", models["huge"])
    line = one_line_error(result)
    assert "[1x3x100000x100000] float32 alone needs 111.8 GiB" in line
    bench, _ = probe(tmp_path, "bench", models["huge"], "--batch", "1")
    assert "111.8 GiB" in one_line_error(bench)


@pytest.mark.parametrize("model, args, words", [
    ("text", [], "is tensor(string); archspec feeds floating-point tensors"),
    ("fixed", ["--batch", "3"], "fixes the batch size at 1; use --batch 1"),
    ("symbolic", [], "only the batch axis may be free"),
])
def test_unfeedable_models_are_one_line(models, tmp_path, model, args, words):
    assert words in one_line_error(probe(tmp_path, "run", models[model], *args)[0])


def test_fixed_batch_model_runs_at_its_batch(models, tmp_path):
    result, _ = probe(tmp_path, "run", models["fixed"], "-f", "json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["outputs"][0]["shape"] == [1, 4] and min(doc["outputs"][0]["data"][0]) >= 0  # relu


def test_usage_errors_exit_2_before_work(models, tmp_path):
    assert "-o must end in .npy, .npz, .json" in one_line_error(
        probe(tmp_path, "run", models["two"], "-o", tmp_path / "out.txt")[0])
    assert "--format must be one of text, json" in one_line_error(
        probe(tmp_path, "run", models["two"], "-f", "yaml")[0])
    assert "an .onnx file has both built in" in one_line_error(
        probe(tmp_path, "bench", models["two"], "--input", "3x8x8")[0])
    assert "no such file" in one_line_error(probe(tmp_path, "run", tmp_path / "missing.onnx")[0])
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    assert "ONNX Runtime cannot load" in one_line_error(probe(tmp_path, "run", tmp_path / "junk.onnx")[0], 1)
    assert list(tmp_path.glob("out.*")) == []


def test_gpu_detection_without_torch_agrees_with_torch():
    """The CUDA driver, asked through ctypes, sees the devices a CUDA build of torch sees."""
    torch = pytest.importorskip("torch")
    if torch.version.cuda is None:
        pytest.skip("a CPU-only torch build cannot see GPUs")
    from archspec.compile.runtime import CPU, CUDA, cuda_device_count, providers_for

    assert cuda_device_count() == torch.cuda.device_count()
    expected = [CUDA, CPU] if torch.cuda.is_available() and CUDA in ort.get_available_providers() else [CPU]
    assert providers_for("auto") == expected
