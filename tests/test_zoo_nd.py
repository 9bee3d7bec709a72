"""The zoo's 3-D and 1-D networks against their references.

- specs/r3d_18.yaml is torchvision.models.video.r3d_18 (Tran et al. 2018): torchvision's
  parameter count and GFLOPS figure, its state_dict loading strictly with the same eval
  outputs, and MACs counted by forward hooks on torchvision's model.
- specs/m5.yaml is M5 (Dai et al. 2017) as PyTorch's speech-command tutorial builds it: the
  tutorial's module is written out below from its description, and its published parameter
  count (26,915) is the expectation.

Every expected number comes from torchvision, the paper/tutorial, or a measurement on a model
archspec did not build — never from archspec's own output.
"""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import archspec
from archspec.compile.weights import load_weights
from conftest import SPECS, run_cli

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TOL = 1e-5

R3D = SPECS / "r3d_18.yaml"
M5 = SPECS / "m5.yaml"
R3D_SMALL = (3, 8, 56, 56)  # a reduced clip: the tests stay fast, every stage still strides


def report_of(path, input_shape=None):
    return archspec.analyze(archspec.expand(archspec.load(path, input_override=input_shape)))


def hook_macs(model: nn.Module, x: torch.Tensor) -> int:
    """Multiply-accumulates of every conv and linear layer of `model` on `x`, per sample, from
    the shapes forward hooks see (works on the meta device: nothing is computed)."""
    total = 0

    def count(module, inputs, out):
        nonlocal total
        if isinstance(module, nn.modules.conv._ConvNd):
            window = 1
            for k in module.kernel_size:
                window *= k
            total += out.numel() * (module.in_channels // module.groups) * window
        elif isinstance(module, nn.Linear):
            total += out.numel() * module.in_features

    hooks = [m.register_forward_hook(count) for m in model.modules()
             if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear))]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return total // x.shape[0]


def randomise_batchnorm(model: nn.Module, seed: int = 0) -> None:
    """Running statistics and affine parameters away from their defaults (0/1), so a wrong eps,
    momentum or a missing statistic changes the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) * 1.5 + 0.25)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)


# ---- R3D-18 ------------------------------------------------------------------------------------

def torchvision_r3d(device="cpu"):
    from torchvision.models.video import r3d_18

    torch.manual_seed(0)
    return r3d_18(weights=None).to(device).eval()


def test_r3d_18_totals_are_torchvision_figures():
    # torchvision's model documentation for r3d_18: 33,371,472 params, 40.70 GFLOPS (counted
    # as multiply-adds) at 16 frames of 112x112.
    report = report_of(R3D)
    assert report.input == [3, 16, 112, 112] and report.output == [400]
    assert report.totals["params"] == 33_371_472
    assert report.totals["macs"] == 40_696_553_472
    theirs = torchvision_r3d("meta")
    assert sum(p.numel() for p in theirs.parameters()) == 33_371_472
    assert hook_macs(theirs, torch.empty(1, 3, 16, 112, 112, device="meta")) == report.totals["macs"]


def test_r3d_18_macs_match_hooks_at_a_reduced_clip():
    report = report_of(R3D, R3D_SMALL)
    assert report.totals["macs"] == hook_macs(torchvision_r3d("meta"), torch.empty(2, *R3D_SMALL, device="meta"))


def test_r3d_18_loads_torchvision_weights_and_gives_its_outputs(tmp_path):
    theirs = torchvision_r3d()
    randomise_batchnorm(theirs)
    path = tmp_path / "r3d_18.pth"
    torch.save(theirs.state_dict(), path)

    graph = archspec.expand(archspec.load(R3D, input_override=R3D_SMALL))
    ours = archspec.build(graph, seed=1).eval()  # another init: only the loaded weights can make it match
    assert list(ours.state_dict()) == list(theirs.state_dict())  # same names, same order
    load_weights(ours, path)  # strict: every key, every shape
    report = {s.name: s for s in archspec.analyze(graph).layers}
    for name, module in ours.named_modules():
        if name in graph.nodes:
            assert sum(p.numel() for p in module.parameters(recurse=False)) == report[name].params, name
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())

    torch.manual_seed(3)
    x = torch.randn(2, *R3D_SMALL)
    with torch.inference_mode():
        expected, got = theirs(x), ours(x)
    assert got.shape == expected.shape == (2, 400)
    assert (got - expected).abs().max().item() <= TOL


def test_r3d_18_static_shapes_equal_runtime_shapes():
    from torch.fx.passes.shape_prop import ShapeProp

    graph = archspec.expand(archspec.load(R3D, input_override=R3D_SMALL))
    model = archspec.build(graph, seed=0).eval()
    with torch.no_grad():
        ShapeProp(model).propagate(torch.randn(2, *R3D_SMALL))
    seen = 0
    for node in model.graph.nodes:
        if node.op == "call_module":
            assert tuple(node.meta["tensor_meta"].shape) == (2, *graph.nodes[node.target].shape), node.target
            assert len(graph.nodes[node.target].shape) in (1, 4)  # (C, D, H, W) until the flatten
            seen += 1
    assert seen == len(graph.nodes)
    conv = model.get_submodule("layer2.0.downsample.0")
    assert isinstance(conv, nn.Conv3d) and conv.stride == (2, 2, 2) and conv.kernel_size == (1, 1, 1)


def test_r3d_18_report_has_three_axis_receptive_fields():
    result = run_cli("report", R3D, "--format", "json")
    assert result.returncode == 0, result.stderr
    layers = {layer["name"]: layer for layer in json.loads(result.stdout)["layers"]}
    # The stem's 3x7x7 window with stride (1, 2, 2); torchvision's layout fixes both.
    assert layers["stem.0"]["receptive_field"] == [3, 7, 7] and layers["stem.0"]["jump"] == [1, 2, 2]
    assert len(layers["fc"]["receptive_field"]) == 3
    table = run_cli("report", R3D).stdout
    assert "3x7x7" in table and "512x2x7x7" in table


# ---- M5 ----------------------------------------------------------------------------------------

class TutorialM5(nn.Module):
    """M5 as PyTorch's "Speech Command Classification with torchaudio" tutorial writes it
    (n_input=1, n_output=35, stride=16, n_channel=32)."""

    def __init__(self, n_input=1, n_output=35, stride=16, n_channel=32):
        super().__init__()
        self.conv1 = nn.Conv1d(n_input, n_channel, kernel_size=80, stride=stride)
        self.bn1 = nn.BatchNorm1d(n_channel)
        self.pool1 = nn.MaxPool1d(4)
        self.conv2 = nn.Conv1d(n_channel, n_channel, kernel_size=3)
        self.bn2 = nn.BatchNorm1d(n_channel)
        self.pool2 = nn.MaxPool1d(4)
        self.conv3 = nn.Conv1d(n_channel, 2 * n_channel, kernel_size=3)
        self.bn3 = nn.BatchNorm1d(2 * n_channel)
        self.pool3 = nn.MaxPool1d(4)
        self.conv4 = nn.Conv1d(2 * n_channel, 2 * n_channel, kernel_size=3)
        self.bn4 = nn.BatchNorm1d(2 * n_channel)
        self.pool4 = nn.MaxPool1d(4)
        self.fc1 = nn.Linear(2 * n_channel, n_output)

    def forward(self, x):
        x = self.pool1(F.relu(self.bn1(self.conv1(x))))
        x = self.pool2(F.relu(self.bn2(self.conv2(x))))
        x = self.pool3(F.relu(self.bn3(self.conv3(x))))
        x = self.pool4(F.relu(self.bn4(self.conv4(x))))
        x = F.avg_pool1d(x, x.shape[-1])
        x = x.permute(0, 2, 1)
        x = self.fc1(x)
        return F.log_softmax(x, dim=2)


def test_m5_has_the_tutorials_parameter_count():
    # The tutorial prints "Number of parameters: 26915".
    report = report_of(M5)
    assert report.input == [1, 8000] and report.output == [35]
    assert report.totals["params"] == 26_915
    assert sum(p.numel() for p in TutorialM5().parameters()) == 26_915
    assert report.totals["macs"] == hook_macs(TutorialM5().eval(), torch.randn(2, 1, 8000))


def test_m5_loads_the_tutorial_models_weights_and_gives_its_outputs(tmp_path):
    torch.manual_seed(0)
    theirs = TutorialM5().eval()
    randomise_batchnorm(theirs)
    path = tmp_path / "m5.pth"
    torch.save(theirs.state_dict(), path)
    ours = archspec.build(archspec.load(M5), seed=1).eval()
    load_weights(ours, path)
    assert isinstance(ours.conv1, nn.Conv1d) and isinstance(ours.bn1, nn.BatchNorm1d)
    assert isinstance(ours.pool1, nn.MaxPool1d)
    x = torch.randn(3, 1, 8000)
    with torch.inference_mode():
        expected, got = theirs(x).squeeze(1), ours(x)  # the tutorial keeps a length-1 axis
    assert got.shape == expected.shape == (3, 35)
    assert (got - expected).abs().max().item() <= TOL


def test_m5_warns_where_pooling_floors_samples_away():
    warnings = report_of(M5).warnings
    assert any("'pool2'" in w and "the last 2 input positions" in w for w in warnings)
