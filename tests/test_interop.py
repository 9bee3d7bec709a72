"""The compiled module is an ordinary PyTorch module: torch.compile, torch.export, state_dict
round trips, DistributedDataParallel under torchrun, and the `archspec build` command."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import archspec
from archspec.cli import app
from archspec.compile.weights import WeightsError, load_weights, read_state_dict

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"

# every archspec-specific module (table conv, locally connected, scale, RBF, Add/Mul/Concat)
# plus in-place activations, in one small net
EXOTIC = """\
archspec: 1
name: exotic
input: [3, 12, 12]
layers:
  - conv: {id: c1, out: 4, kernel: 3, padding: 1}
  - relu
  - conv: {id: c2, out: 4, kernel: 3, padding: 1, connections: [[0], [1, 2], [2, 3], [0, 1, 2, 3]]}
  - scale: {id: s}
  - residual:
      id: block
      body:
        - conv: {id: conv1, out: 4, kernel: 3, padding: 1}
        - relu
        - conv: {id: conv2, out: 4, kernel: 3, padding: 1, bias: false}
        - batchnorm: {id: bn2}
      after: [relu]
  - global_avgpool: {id: squeeze, from: block}
  - mul: {id: excite, from: [block, squeeze]}
  - upsample: {id: up, scale: 2, mode: bilinear, align_corners: false}
  - maxpool: {id: down, kernel: 2}
  - concat: {id: cat, from: [down, excite]}
  - locally_connected: {id: lc, out: 3, kernel: 3, stride: 2}
  - flatten
  - linear: {id: fc, out: 16}
  - scaled_tanh
  - rbf: {id: out, out: 10}
"""


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def exotic_spec():
    spec = archspec.loads(EXOTIC)
    model = archspec.build(spec)
    assert model.block.add.inplace and model.block.after[0].inplace  # in-place paths are exercised
    return spec


def nets(exotic_spec):
    return {
        "exotic": (exotic_spec, (3, 12, 12)),
        "squeezenet1_1": (archspec.load(SPECS / "squeezenet1_1.yaml", input_override=(3, 64, 64)), (3, 64, 64)),
    }


@pytest.mark.parametrize("name", ["exotic", "squeezenet1_1"])
def test_torch_compile_eager_backend_matches_eager(name, exotic_spec):
    spec, shape = nets(exotic_spec)[name]
    model = archspec.build(spec, seed=0).eval()
    x = torch.randn(2, *shape)
    with torch.no_grad():
        expected = model(x)
        got = torch.compile(model, backend="eager")(x)
    assert torch.equal(got, expected)


@pytest.mark.parametrize("name", ["exotic", "squeezenet1_1"])
def test_torch_export_matches_eager(name, exotic_spec):
    spec, shape = nets(exotic_spec)[name]
    model = archspec.build(spec, seed=0).eval()
    x = torch.randn(2, *shape)
    program = torch.export.export(model, (x,))
    with torch.no_grad():
        expected = model(x)
        got = program.module()(x)
    assert (got - expected).abs().max().item() <= 1e-6


def test_training_step_with_compile_matches_eager(exotic_spec):
    """In-place relus and the in-place add survive torch.compile's functionalisation in training."""
    a = archspec.build(exotic_spec, seed=0).train()
    b = archspec.build(exotic_spec, seed=0).train()
    x = torch.randn(4, 3, 12, 12)
    a(x).sum().backward()
    torch.compile(b, backend="eager")(x).sum().backward()
    for (name, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        if p.requires_grad:
            assert torch.allclose(p.grad, q.grad, atol=1e-5), name


def test_state_dict_round_trip(tmp_path, exotic_spec):
    source = archspec.build(exotic_spec, seed=0).eval()
    torch.save(source.state_dict(), tmp_path / "w.pth")
    target = archspec.build(exotic_spec, seed=1).eval()
    x = torch.randn(2, 3, 12, 12)
    assert not torch.equal(source(x), target(x))
    load_weights(target, tmp_path / "w.pth")
    assert torch.equal(source(x), target(x))
    assert set(target.state_dict()) == set(source.state_dict())
    # the frozen RBF prototypes are state too, and stay frozen after loading
    assert torch.equal(target.out.weight, source.out.weight) and not target.out.weight.requires_grad


@pytest.mark.parametrize("wrap", ["plain", "state_dict", "model", "model_state_dict", "ddp", "nested"])
def test_load_weights_accepts_common_checkpoint_layouts(wrap, exotic_spec):
    source = archspec.build(exotic_spec, seed=0)
    state = source.state_dict()
    ddp = {f"module.{k}": v for k, v in state.items()}
    checkpoint = {"plain": state, "state_dict": {"state_dict": state, "epoch": 9},
                  "model": {"model": state, "optimizer": {"lr": 0.1}},
                  "model_state_dict": {"model_state_dict": ddp, "step": 3},
                  "ddp": ddp, "nested": {"checkpoint": 1, "model": {"state_dict": ddp}}}[wrap]
    target = archspec.build(exotic_spec, seed=1)
    load_weights(target, checkpoint)
    assert all(torch.equal(target.state_dict()[k], v) for k, v in state.items())


def test_load_weights_mismatch_is_one_clear_line(exotic_spec):
    model = archspec.build(exotic_spec, seed=0)
    state = dict(model.state_dict())
    state.pop("fc.weight")
    state.pop("fc.bias")
    state["head.weight"] = torch.zeros(3)
    state["c1.weight"] = torch.zeros(4, 3, 5, 5)
    with pytest.raises(WeightsError) as info:
        load_weights(model, state)
    message = str(info.value).splitlines()[0]
    assert "2 missing (fc.weight, fc.bias)" in message
    assert "1 unexpected (head.weight)" in message
    assert "c1.weight (file [4, 3, 5, 5], model [4, 3, 3, 3])" in message
    assert isinstance(info.value, archspec.SpecError)  # the CLI prints it and exits 1
    # non-strict loads what fits and reports the rest (a tensor of another shape is left as it was)
    before = model.c1.weight.clone()
    result = load_weights(model, state, strict=False)
    assert set(result.missing_keys) == {"fc.weight", "fc.bias", "c1.weight"}
    assert result.unexpected_keys == ["head.weight"] and torch.equal(model.c1.weight, before)


def test_read_state_dict_errors(tmp_path):
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="not a PyTorch file"):
        read_state_dict(tmp_path / "junk.pth")
    with pytest.raises(WeightsError, match="not found"):
        read_state_dict(tmp_path / "missing.pth")
    with pytest.raises(WeightsError, match="not a state_dict"):
        read_state_dict({"epoch": 3, "lr": 0.1})


# ---- DistributedDataParallel under torchrun ------------------------------------------------------

def test_ddp_two_ranks_end_identical(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(ROOT / "examples" / "train_ddp.py"), "--steps", "8", "--out", str(tmp_path)],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    records = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in records] == [2, 2]
    assert records[0]["final"] == records[1]["final"]  # gradients were averaged: one model
    assert records[0]["initial"] == records[1]["initial"]
    assert records[0]["final"] != records[0]["initial"]  # and it trained
    assert records[0]["first_loss"] != records[1]["first_loss"]  # on different shards


# ---- the `archspec build` command ---------------------------------------------------------------

def cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_cli_build_pth_and_print_code(tmp_path):
    out = tmp_path / "digits.pth"
    result = cli("build", SPECS / "lenet5_digits.yaml", "--seed", "3", "--print-code", "-o", out)
    assert result.exit_code == 0, result.output
    assert "def forward(self, x):" in result.stdout and "self.conv1(x)" in result.stdout
    state = torch.load(out, weights_only=True)
    expected = archspec.build(SPECS / "lenet5_digits.yaml", seed=3).state_dict()
    assert list(state) == list(expected) and all(torch.equal(state[k], expected[k]) for k in state)
    assert not list(tmp_path.glob(".*.tmp")) and len(list(tmp_path.iterdir())) == 1  # atomic, no leftovers


def test_cli_build_pt2_with_input_override(tmp_path):
    out = tmp_path / "squeezenet.pt2"
    result = cli("build", SPECS / "squeezenet1_1.yaml", "--input", "3x48x48", "--seed", "0", "-o", out)
    assert result.exit_code == 0, result.output
    program = torch.export.load(out)
    model = archspec.build(archspec.load(SPECS / "squeezenet1_1.yaml", input_override=(3, 48, 48)), seed=0).eval()
    x = torch.randn(5, 3, 48, 48)
    with torch.no_grad():
        assert (program.module()(x) - model(x)).abs().max().item() <= 1e-6


def test_cli_build_user_mistakes(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("archspec: 1\ninput: [3, 8, 8]\nlayers:\n  - conv: {out: 4, kernel: 9}\n")
    result = cli("build", bad, "-o", tmp_path / "m.pth")
    assert result.exit_code == 1
    assert f"{bad}:4:" in result.stderr and "error:" in result.stderr
    assert "Traceback" not in result.output and not (tmp_path / "m.pth").exists()

    result = cli("build", SPECS / "lenet5_digits.yaml", "-o", tmp_path / "m.onnx")
    assert result.exit_code == 2 and ".pt2" in result.stderr

    result = cli("build", SPECS / "lenet5_digits.yaml", "--init", "nope")
    assert result.exit_code == 2 and "kaiming" in result.stderr

    torch.save(archspec.build(SPECS / "cifar10_cnn.yaml").state_dict(), tmp_path / "cifar.pth")
    result = cli("build", SPECS / "lenet5_digits.yaml", "--weights", tmp_path / "cifar.pth", "-o", tmp_path / "m.pth")
    assert result.exit_code == 1
    first = result.stderr.splitlines()[0]
    assert first.startswith("error: weights in") and "missing (conv1.weight" in first and "unexpected" in first
    assert "Traceback" not in result.output and not (tmp_path / "m.pth").exists()

    result = cli("build", SPECS / "lenet5_digits.yaml", "--weights", tmp_path / "absent.pth")
    assert result.exit_code == 2 and "no such file" in result.stderr


def test_cli_spec_error_in_a_real_process_has_no_traceback_and_no_torch(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("archspec: 1\ninput: [3, 8, 8]\nlayers:\n  - conv: {out: 4, kernel: 3}\n  - lienar: {out: 2}\n")
    probe = ("import sys, runpy; sys.argv = ['archspec', 'build', sys.argv[1]]\n"
             "try:\n    runpy.run_module('archspec', run_name='__main__')\n"
             "except SystemExit as e:\n    print('torch' in sys.modules, file=sys.stderr); raise\n")
    done = subprocess.run([sys.executable, "-c", probe, str(bad)], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines[0].startswith(f"{bad}:5:") and "did you mean 'linear'" in done.stderr
    assert "Traceback" not in done.stderr
    assert lines[-1] == "False"  # a spec error is reported before torch is ever imported
