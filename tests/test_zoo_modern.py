"""The CNN families deployed today, against torchvision: ResNeXt, Wide ResNet, SqueezeNet 1.0,
MnasNet, MobileNetV3, EfficientNet (B0, and B1 through `--set`), RegNetY, ShuffleNetV2 and
ConvNeXt.

For each: the report's parameters and MACs are torchvision's published figures, which equal
the parameters of torchvision's model and the MACs forward hooks count on it (conv and linear
layers, an independent count); torchvision's state_dict — its batch-norm statistics, norm
affines and layer scales randomised so that a wrong eps, momentum or scale shows — loads
strictly under the same names, and the eval outputs agree within 1e-5 on random input; every
batch norm and layer norm has torchvision's eps and momentum; the compiled module's parameters
equal the report's, node by node. Static = runtime shapes and ONNX export are covered for every
zoo spec by test_compile_parity.py and test_onnx_zoo.py.

Every expected number comes from torchvision (its documentation's figures, its models, hooks on
its models) — never from archspec's own output.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest
import torch
import torch.nn as nn

import archspec
from archspec.compile.weights import load_weights
from conftest import SPECS, run_cli
from test_zoo_nd import hook_macs, randomise_batchnorm

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TOL = 1e-5
SIDE = 64  # reduced input side: every net here ends in adaptive pooling


@dataclass
class Case:
    spec: str
    torchvision: str  # constructor in torchvision.models
    params: int  # torchvision's documentation (num_params)
    macs: int  # at `side`: forward hooks on torchvision's model (its docs' GFLOPS, rounded)
    side: int = 224
    sets: dict = field(default_factory=dict)  # --set overrides
    slow: bool = False


CASES = [
    Case("resnext50_32x4d", "resnext50_32x4d", 25_028_904, 4_230_479_872, slow=True),  # 4.23 GFLOPS
    Case("wide_resnet50_2", "wide_resnet50_2", 68_883_240, 11_398_021_120, slow=True),  # 11.4
    Case("squeezenet1_0", "squeezenet1_0", 1_248_424, 818_924_576),  # 0.82
    Case("mnasnet0_5", "mnasnet0_5", 2_218_512, 104_455_968),  # 0.10
    Case("mnasnet0_5", "mnasnet1_0", 4_383_312, 314_415_872, sets={"alpha": "1.0"}),  # 0.31
    Case("mobilenet_v3_small", "mobilenet_v3_small", 2_542_856, 56_510_400),  # 0.06
    Case("efficientnet", "efficientnet_b0", 5_288_548, 385_814_752),  # 0.39
    Case("efficientnet", "efficientnet_b1", 7_794_184, 686_802_832, side=240,  # 0.69
         sets={"width": "1.0", "depth": "1.1", "resolution": "240", "dropout": "0.2"}),
    Case("regnet_y_400mf", "regnet_y_400mf", 4_344_144, 401_842_848),  # 0.40
    Case("shufflenet_v2_x0_5", "shufflenet_v2_x0_5", 1_366_792, 40_476_448),  # 0.04
    Case("convnext_tiny", "convnext_tiny", 28_589_128, 4_455_531_264, slow=True),  # 4.46
]


def case_id(case: Case) -> str:
    return case.torchvision


def params(marks_slow: bool):
    return [pytest.param(c, id=case_id(c), marks=[pytest.mark.slow] if marks_slow and c.slow else [])
            for c in CASES]


def torchvision_model(case: Case, device="cpu") -> nn.Module:
    import torchvision

    torch.manual_seed(0)
    return getattr(torchvision.models, case.torchvision)(weights=None).to(device).eval()


def load(case: Case, side: int | None = None):
    shape = None if side is None else (3, side, side)
    return archspec.load(SPECS / f"{case.spec}.yaml", input_override=shape, var_overrides=case.sets)


def randomise_norms(model: nn.Module, seed: int = 0) -> None:
    """Batch-norm statistics and affines (test_zoo_nd's helper), LayerNorm affines and
    ConvNeXt's layer scales (initially 1e-6, which would hide every block) away from their
    initial values."""
    randomise_batchnorm(model, seed)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("layer_scale"):
                p.copy_(torch.rand(p.shape, generator=g) * 0.5 + 0.25)
        for m in model.modules():
            if isinstance(m, nn.LayerNorm):  # torchvision's LayerNorm2d is one
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)


@pytest.mark.parametrize("case", params(marks_slow=False))
def test_totals_are_torchvision_figures(case):
    report = archspec.analyze(archspec.expand(load(case)))
    assert report.input == [3, case.side, case.side] and report.output == [1000]
    assert report.totals["params"] == case.params
    assert report.totals["macs"] == case.macs
    theirs = torchvision_model(case, "meta")  # shapes only: nothing is allocated or computed
    assert sum(p.numel() for p in theirs.parameters()) == case.params
    assert hook_macs(theirs, torch.empty(1, 3, case.side, case.side, device="meta")) == case.macs


@pytest.mark.parametrize("case", params(marks_slow=True))
def test_loads_torchvision_weights_and_gives_its_outputs(case):
    theirs = torchvision_model(case)
    randomise_norms(theirs)
    graph = archspec.expand(load(case, SIDE))
    ours = archspec.build(graph, seed=1).eval()  # another init: only the loaded weights can make it match

    theirs_keys, ours_keys = list(theirs.state_dict()), list(ours.state_dict())
    assert set(ours_keys) == set(theirs_keys)
    if case.spec != "regnet_y_400mf":  # torchvision's RegNet block defines `proj` before `f`
        assert ours_keys == theirs_keys
    load_weights(ours, theirs.state_dict())  # strict: every key, every shape

    x = torch.randn(2, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        expected, got = theirs(x), ours(x)
    assert got.shape == expected.shape == (2, 1000)
    assert expected.abs().max().item() > 0.01  # outputs large enough for the tolerance to mean something
    assert (got - expected).abs().max().item() <= TOL

    # the same normalisation settings, module by module (eps and momentum change nothing in
    # these outputs' keys, only in training or by a hair in eval)
    compared = 0
    for name, module in theirs.named_modules():
        if isinstance(module, (nn.modules.batchnorm._BatchNorm, nn.LayerNorm)):
            mine = ours.get_submodule(name)
            assert mine.eps == module.eps, name
            assert getattr(mine, "momentum", None) == getattr(module, "momentum", None), name
            compared += 1
    assert compared > 0 or case.spec == "squeezenet1_0"  # the one net here without normalisation

    report = archspec.analyze(graph)
    layers = {layer.name: layer for layer in report.layers}
    for node in graph.nodes.values():
        got_params = (ours.get_parameter(node.name).numel() if node.op == "layer_scale" else
                      sum(p.numel() for p in ours.get_submodule(node.name).parameters()))
        assert got_params == layers[node.name].params, node.name
    assert sum(p.numel() for p in ours.parameters()) == case.params
    assert report.totals["macs"] == hook_macs(theirs, torch.empty(1, 3, SIDE, SIDE))


def test_activations_compile_to_torchvisions_modules():
    """MobileNetV3's activation is a template argument used as an op name (`- $act`):
    hard-swish blocks compile to nn.Hardswish, ReLU blocks to nn.ReLU, where torchvision has them."""
    case = next(c for c in CASES if c.spec == "mobilenet_v3_small")
    theirs = torchvision_model(case)
    ours = archspec.build(archspec.expand(load(case, SIDE)))
    kinds = (nn.ReLU, nn.Hardswish, nn.Hardsigmoid, nn.SiLU)
    seen = []
    for name, module in theirs.named_modules():
        if isinstance(module, kinds):
            try:
                mine = ours.get_submodule(name)
            except AttributeError:  # SE's activation / scale_activation: archspec's se.act / se.gate
                mine = ours.get_submodule(name.replace("scale_activation", "gate").replace("activation", "act"))
            assert type(mine) is type(module), name
            seen.append(type(module))
    assert seen.count(nn.Hardswish) == 19 and seen.count(nn.ReLU) == 14 and seen.count(nn.Hardsigmoid) == 9


# ---- stochastic depth --------------------------------------------------------------------------

DROP_PATH_CASES = [c for c in CASES if c.spec in ("efficientnet", "convnext_tiny")]


@pytest.mark.parametrize("case", DROP_PATH_CASES, ids=case_id)
def test_stochastic_depth_probabilities_are_torchvisions_per_block(case):
    """torchvision gives block k of n the probability p·k/n (EfficientNet) or p·k/(n-1)
    (ConvNeXt), and applies it only where the block has its residual connection."""
    from torchvision.ops import StochasticDepth

    theirs = torchvision_model(case, "meta")
    graph = archspec.expand(load(case))
    ours = {n.name: n.params.p for n in graph.nodes.values() if n.op == "drop_path"}
    expected = {}
    for name, module in theirs.named_modules():
        if isinstance(module, StochasticDepth):
            block = theirs.get_submodule(name.rpartition(".")[0])
            if getattr(block, "use_res_connect", True):  # CNBlocks always add
                expected[name] = module.p
    assert ours == expected  # the same blocks, the same p, to the last bit
    assert len(set(expected.values())) == len(expected)  # really a schedule, not one value


def test_efficientnet_trains_like_torchvision_with_the_same_seed():
    """In training, dropout and stochastic depth draw the same random numbers in the same order
    as torchvision's model (drop path only where there is a skip), so the outputs agree."""
    case = next(c for c in CASES if c.torchvision == "efficientnet_b0")
    theirs = torchvision_model(case).train()
    ours = archspec.build(archspec.expand(load(case, 32)), seed=1).train()
    load_weights(ours, theirs.state_dict())
    x = torch.randn(8, 3, 32, 32)
    torch.manual_seed(11)
    expected = theirs(x)
    torch.manual_seed(11)
    got = ours(x)
    assert (got - expected).abs().max().item() <= TOL
    ours.eval()
    drop = [m for name, m in ours.named_modules() if name.endswith("stochastic_depth")]
    assert drop and all(not m.training for m in drop)


# ---- the command line ----------------------------------------------------------------------------

def test_convnext_report_json_gives_torchvisions_totals():
    result = run_cli("report", SPECS / "convnext_tiny.yaml", "-f", "json")
    assert result.returncode == 0, result.stderr
    totals = json.loads(result.stdout)["totals"]
    assert totals["params"] == 28_589_128 and totals["macs"] == 4_455_531_264


def test_efficientnet_b1_through_set_on_the_command_line():
    result = run_cli("report", SPECS / "efficientnet.yaml", "--set", "width=1.0", "--set", "depth=1.1",
                     "--set", "resolution=240", "--set", "dropout=0.2", "-f", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["totals"]["params"] == 7_794_184
    assert report["input"] == [3, 240, 240]
    default = json.loads(run_cli("report", SPECS / "efficientnet.yaml", "-f", "json").stdout)
    assert default["totals"]["params"] == 5_288_548 and default["input"] == [3, 224, 224]


# ---- ONNX with torchvision's weights ------------------------------------------------------------

ONNX_CASES = [c for c in CASES if c.torchvision in ("mobilenet_v3_small", "efficientnet_b0")]


@pytest.mark.slow
@pytest.mark.parametrize("case", ONNX_CASES, ids=case_id)
def test_onnx_export_with_torchvision_weights_runs_like_torchvision(case, tmp_path):
    """test_onnx_zoo.py exports every spec with archspec's initial weights, under which these
    nets' logits are nearly zero; with torchvision's (randomised norms) weights the logits are
    of order 0.1-1, so ONNX Runtime agreeing with torchvision's model says something about
    hardswish, hardsigmoid, SiLU, the SE gates and the skips in the exported file."""
    pytest.importorskip("onnxruntime")
    from archspec.compile.onnx_export import export_onnx
    from archspec.compile.runtime import create_session

    theirs = torchvision_model(case)
    randomise_norms(theirs)
    ours = archspec.build(archspec.expand(load(case, SIDE)), seed=1).eval()
    load_weights(ours, theirs.state_dict())
    out = tmp_path / f"{case.torchvision}.onnx"
    result = export_onnx(ours, out, batches=(1, 3))
    assert all(row.ok for row in result.report.parity)
    session = create_session(out, "cpu")
    x = torch.randn(3, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        expected = theirs(x).numpy()
    got = session.run(None, {"input": x.numpy()})[0]
    assert abs(expected).max() > 0.01
    assert abs(got - expected).max() <= 1e-4
