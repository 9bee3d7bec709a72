"""`archspec export`, `run` and `bench` as a user runs them: subprocesses, exit codes, output."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from conftest import run_cli  # noqa: E402

TINY = """\
archspec: 1
name: tiny
input: [3, 8, 8]
layers:
  - conv: {id: c1, out: 4, kernel: 3, padding: 1}
  - batchnorm
  - relu
  - maxpool: {kernel: 2}
  - flatten
  - linear: {id: fc, out: 6}
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(spec, model): the tiny spec and its export through the CLI (exit 0, verified)."""
    root = tmp_path_factory.mktemp("cli")
    spec = root / "tiny.yaml"
    spec.write_text(TINY)
    model = root / "tiny.onnx"
    result = run_cli("export", spec, "-o", model)
    assert result.returncode == 0, result.stderr
    assert "CPUExecutionProvider" in result.stdout
    assert "checker: ok" in result.stdout and "batch 5" in result.stdout
    assert "input  'input' [batch, 3, 8, 8]" in result.stdout
    assert sorted(p.name for p in root.iterdir()) == ["tiny.onnx", "tiny.yaml"]
    return spec, model


def _one_line_error(stderr: str) -> str:
    """stderr holds an `error:` line (plus at most a hint), never a traceback."""
    assert "Traceback" not in stderr, stderr
    assert any("error:" in ln for ln in stderr.splitlines()), stderr
    return stderr


def test_export_refuses_to_overwrite_then_forces(exported):
    spec, model = exported
    before = model.read_bytes()
    again = run_cli("export", spec, "-o", model)
    assert again.returncode == 2 and "already exists" in _one_line_error(again.stderr)
    assert model.read_bytes() == before
    forced = run_cli("export", spec, "-o", model, "--force", "--no-verify")
    assert forced.returncode == 0, forced.stderr
    assert "not verified" in forced.stdout


def test_export_spec_error_is_one_located_line(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text(TINY.replace("kernel: 2}", "kernel: 2, strid: 2}"))
    result = run_cli("export", spec, "-o", tmp_path / "bad.onnx")
    assert result.returncode == 1
    first = _one_line_error(result.stderr).splitlines()[0]
    assert first.startswith(f"{spec}:8:") and "error:" in first
    assert not (tmp_path / "bad.onnx").exists()


def test_export_refused_op_is_located(tmp_path):
    spec = tmp_path / "ceil.yaml"
    spec.write_text(TINY.replace("input: [3, 8, 8]", "input: [3, 5, 5]").replace(
        "- maxpool: {kernel: 2}", "- maxpool: {kernel: 2, stride: 3, padding: 1, ceil_mode: true}"))
    result = run_cli("export", spec, "-o", tmp_path / "ceil.onnx")
    assert result.returncode == 1
    assert f"{spec}:8:" in _one_line_error(result.stderr) and "right padding" in result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["ceil.yaml"]


@pytest.mark.parametrize("args", [
    ["--quantize", "int4"], ["--opset", "7"], ["--fp16", "--quantize", "int8"], ["--input", "3x0x8"],
])
def test_export_usage_errors_exit_2(exported, tmp_path, args):
    spec, _ = exported
    result = run_cli("export", spec, "-o", tmp_path / "x.onnx", *args)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "x.onnx").exists()


def test_export_fp16_and_int8(exported, tmp_path):
    spec, _ = exported
    half = run_cli("export", spec, "-o", tmp_path / "half.onnx", "--fp16")
    assert half.returncode == 0, half.stderr
    assert "float16" in half.stdout and "only useful on a GPU" in half.stderr
    calib = tmp_path / "calib.npy"
    np.save(calib, np.random.default_rng(0).standard_normal((16, 3, 8, 8)).astype(np.float32))
    q = run_cli("export", spec, "-o", tmp_path / "q.onnx", "--quantize", "int8", "--calibration", calib)
    assert q.returncode == 0, q.stderr
    assert "int8 accuracy" in q.stdout and "top-1 agreement" in q.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calib.npy", "half.onnx", "q.onnx"]


def test_run_onnx_prints_top_k_and_provider(exported, tmp_path):
    _, model = exported
    result = run_cli("run", model, "--batch", "3", "--top-k", "2")
    assert result.returncode == 0, result.stderr
    assert "provider: CPUExecutionProvider" in result.stdout
    assert "output 'logits': [3, 6]" in result.stdout
    assert result.stdout.count("top-2:") == 3
    x = tmp_path / "x.npy"
    np.save(x, np.ones((3, 8, 8), dtype=np.float32))  # one sample: a batch axis is added
    from_file = run_cli("run", model, "--input-file", x)
    assert from_file.returncode == 0, from_file.stderr
    assert "input 'input': [1, 3, 8, 8]" in from_file.stdout
    np.save(x, np.ones((2, 3, 9, 9), dtype=np.float32))
    wrong = run_cli("run", model, "--input-file", x)
    assert wrong.returncode == 2 and "[N, 3, 8, 8]" in _one_line_error(wrong.stderr)


def test_run_spec_directly(exported):
    spec, _ = exported
    result = run_cli("run", spec, "--top-k", "1")
    assert result.returncode == 0, result.stderr
    assert "provider: CPUExecutionProvider" in result.stdout and "top-1:" in result.stdout


@pytest.mark.parametrize("command", ["run", "bench"])
def test_device_cuda_without_cuda_exits_2(exported, command):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    spec, model = exported
    result = run_cli(command, model if command == "run" else spec, "--device", "cuda")
    assert result.returncode == 2
    assert "no CUDA device" in _one_line_error(result.stderr)
    bad = run_cli(command, model if command == "run" else spec, "--device", "tpu")
    assert bad.returncode == 2 and "--device must be one of" in bad.stderr


def test_bench_side_by_side(exported):
    spec, _ = exported
    result = run_cli("bench", spec, "--batch", "1,2", "--runs", "3", "--warmup", "1")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "provider CPUExecutionProvider" in out and "median ms" in out and "p90 ms" in out
    rows = [ln.split() for ln in out.splitlines() if ln.split()[:1] in (["1"], ["2"])]
    assert [(r[0], r[1]) for r in rows] == [("1", "pytorch"), ("1", "onnxruntime"),
                                            ("2", "pytorch"), ("2", "onnxruntime")]
    assert out.count("speed-up") == 2
    assert "batch" not in result.stderr and "warm-up" not in result.stderr  # progress: only on a terminal
    usage = run_cli("bench", spec, "--batch", "1,x")
    assert usage.returncode == 2 and "--batch" in usage.stderr


def test_run_spec_writes_what_pytorch_computes(exported, tmp_path, one_torch_thread):
    """A spec exported on the fly and run by ONNX Runtime, written to .npz, against the same
    spec built by PyTorch with the same seed (the conditioned random weights every export of
    random weights has, archspec/compile/condition.py), on the same input."""
    import torch

    from archspec.compile.onnx_export import compile_for_export

    spec, _ = exported
    x = np.random.default_rng(7).standard_normal((4, 3, 8, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    result = run_cli("run", spec, "--input-file", tmp_path / "x.npy", "-o", tmp_path / "out.npz", "--seed", "3")
    assert result.returncode == 0, result.stderr
    with torch.inference_mode():
        expected = compile_for_export(spec, seed=3)[1](torch.from_numpy(x)).numpy()
    with np.load(tmp_path / "out.npz") as archive:
        assert archive.files == ["logits"]
        np.testing.assert_allclose(archive["logits"], expected, rtol=1e-4, atol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.npz", "x.npy"]


def test_bench_spec_onnx_only(exported):
    spec, _ = exported
    result = run_cli("bench", spec, "--onnx-only", "--batch", "2", "--runs", "2", "--warmup", "0")
    assert result.returncode == 0, result.stderr
    assert "tiny (3x8x8), ONNX Runtime only: provider CPUExecutionProvider" in result.stdout
    rows = [ln.split()[:2] for ln in result.stdout.splitlines() if ln.split()[:1] == ["2"]]
    assert rows == [["2", "onnxruntime"]] and "speed-up" not in result.stdout


def test_bench_spec_with_extra_outputs_times_the_main_output(write_spec):
    """A spec with an `output: true` layer builds to a module returning (main, extra); bench
    compares and times the main output (it used to end in an internal error)."""
    spec = write_spec("archspec: 1\nname: two_heads\ninput: [3, 8, 8]\nlayers:\n"
                      "  - conv: {id: c1, out: 4, kernel: 3}\n  - relu: {id: features, output: true}\n"
                      "  - conv: {out: 2, kernel: 3}\n")
    result = run_cli("bench", spec, "--batch", "1", "--runs", "2", "--warmup", "1")
    assert result.returncode == 0, result.stderr
    assert "speed-up" in result.stdout and "Traceback" not in result.stderr
