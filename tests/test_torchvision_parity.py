"""The zoo's torchvision-layout specs are torchvision's models: a freshly initialised
torchvision model's state_dict, saved to a .pth and loaded the way a user would
(`load_weights` on a path, or `archspec build --weights`), gives the same eval outputs
(max abs diff ≤ 1e-5) on a random batch."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import archspec
from archspec.compile.weights import WeightsError, load_weights

ROOT = Path(__file__).resolve().parent.parent
TOL = 1e-5

# spec stem -> (torchvision constructor, kwargs, input side used here). Sides are reduced where
# the spec stays valid; googlenet_torchvision pins 224 with `expect:` shapes.
CASES = {
    "resnet18": ("resnet18", {}, 64),
    "resnet50": ("resnet50", {}, 64),
    "vgg16": ("vgg16", {}, 64),
    "vgg11_bn": ("vgg11_bn", {}, 64),
    "alexnet_torchvision": ("alexnet", {}, 64),
    "densenet121": ("densenet121", {}, 64),
    "googlenet_torchvision": ("googlenet", {"aux_logits": True, "init_weights": True}, 224),
    "mobilenet_v2": ("mobilenet_v2", {}, 64),
    "squeezenet1_1": ("squeezenet1_1", {}, 64),
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def torchvision_model(name: str):
    import torchvision

    ctor, kwargs, _ = CASES[name]
    torch.manual_seed(0)
    return getattr(torchvision.models, ctor)(weights=None, **kwargs).eval()


@pytest.mark.parametrize("name", list(CASES))
def test_torchvision_weights_load_and_outputs_match(name, tmp_path):
    path = ROOT / "specs" / f"{name}.yaml"
    assert path.exists(), f"specs/{name}.yaml is missing: the zoo must mirror torchvision's {CASES[name][0]}"
    theirs = torchvision_model(name)
    weights = tmp_path / f"{name}.pth"
    torch.save(theirs.state_dict(), weights)

    side = CASES[name][2]
    spec = archspec.load(path, input_override=(3, side, side))
    ours = archspec.build(spec, seed=1).eval()  # a different init: only the loaded weights can make it match
    load_weights(ours, weights)  # strict: every key, every shape
    x = torch.randn(2, 3, side, side)
    with torch.inference_mode():
        expected = theirs(x)
        got = ours(x)
    diff = (got - expected).abs().max().item()
    assert got.shape == expected.shape
    assert diff <= TOL, f"{name}: max abs diff {diff:.3g} > {TOL}"

    ours_state, theirs_state = ours.state_dict(), theirs.state_dict()
    if name == "googlenet_torchvision":
        # the inference build has no auxiliary heads: their keys were dropped on load; the
        # training build has them and loads the same file strictly, keys and shapes alike
        assert set(theirs_state) - set(ours_state) == {k for k in theirs_state if k.startswith(("aux1.", "aux2."))}
        full = archspec.build(spec, training_heads=True, seed=1).eval()
        load_weights(full, weights)
        assert set(full.state_dict()) == set(theirs_state)
        with torch.inference_mode():
            main, *heads = full(x)
        assert len(heads) == 2 and (main - expected).abs().max().item() <= TOL
    else:
        assert list(ours_state) == list(theirs_state)  # same names, same order


def test_ddp_prefixed_checkpoint_of_torchvision_model_loads(tmp_path):
    theirs = torchvision_model("resnet18")
    wrapped = {"epoch": 3, "model_state_dict": {f"module.{k}": v for k, v in theirs.state_dict().items()},
               "optimizer": {"state": {}, "param_groups": []}}
    torch.save(wrapped, tmp_path / "ckpt.pth")
    ours = archspec.build(archspec.load(ROOT / "specs" / "resnet18.yaml", input_override=(3, 32, 32)))
    load_weights(ours.eval(), tmp_path / "ckpt.pth")
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        assert (ours(x) - theirs(x)).abs().max().item() <= TOL


def test_wrong_class_count_is_one_clear_error(tmp_path):
    theirs = torchvision_model("resnet18")
    torch.save(theirs.state_dict(), tmp_path / "tv.pth")
    spec = archspec.loads((ROOT / "specs" / "resnet18.yaml").read_text().replace("classes: 1000", "classes: 10"),
                          file="resnet18_10.yaml", base_dir=ROOT / "specs", input_override=(3, 32, 32))
    ours = archspec.build(spec)
    with pytest.raises(WeightsError) as info:
        load_weights(ours, tmp_path / "tv.pth")
    text = str(info.value)
    assert "fc.weight (file [1000, 512], model [10, 512])" in text
    assert len(text.splitlines()[0]) < 400


def test_cli_build_with_torchvision_weights_writes_a_matching_exported_program(tmp_path):
    """The user's path end to end: `archspec build --weights tv.pth -o model.pt2`, then
    torch.export.load and run."""
    theirs = torchvision_model("resnet18")
    torch.save({"state_dict": theirs.state_dict()}, tmp_path / "tv.pth")
    out = tmp_path / "resnet18.pt2"
    done = subprocess.run([sys.executable, "-m", "archspec", "build", str(ROOT / "specs" / "resnet18.yaml"),
                           "--weights", str(tmp_path / "tv.pth"), "--input", "3x64x64", "-o", str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr
    program = torch.export.load(out)
    for batch in (1, 3):  # the batch axis is free
        x = torch.randn(batch, 3, 64, 64)
        with torch.inference_mode():
            assert (program.module()(x) - theirs(x)).abs().max().item() <= TOL
