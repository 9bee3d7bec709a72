"""The Inception family in the zoo: GoogLeNet (paper and torchvision) and Inception v3.

Every expected number is an external oracle — the GoogLeNet paper (Szegedy et al. 2015,
Table 1 and section 5) or torchvision's model code and weight metadata — never our own output.
Auxiliary classifiers are training-only heads: excluded from `totals`, counted in
`report.training_only`, listed in `report.outputs`, and compiled only with `training_heads=True`.
"""
from pathlib import Path

import pytest

import archspec
from archspec.ops import OPS

SPECS = Path(__file__).resolve().parent.parent / "specs"

# name: (params without aux, params with aux, MACs at the native input or None, input, main output,
#        aux outputs)
REFERENCE = {
    # Paper: Table 1 sums to 6,998,552 with biases; each aux head is avgpool 5x5/3, 1x1 conv 128,
    # FC 1024, dropout 0.7, FC 1000 (section 5).
    "googlenet": (6_998_552, 13_378_280, None, [3, 224, 224], [1000],
                  {"aux1.fc2": [1000], "aux2.fc2": [1000]}),
    # torchvision GoogLeNet_Weights meta: num_params 6,624,904 (without aux), _ops 1.498 GMACs.
    "googlenet_torchvision": (6_624_904, 13_004_888, 1_498_376_192, [3, 224, 224], [1000],
                              {"aux1.fc2": [1000], "aux2.fc2": [1000]}),
    # torchvision Inception_V3_Weights meta: num_params 27,161,264 (with AuxLogits).
    "inception_v3": (23_834_568, 27_161_264, None, [3, 299, 299], [1000], {"AuxLogits.fc": [1000]}),
}


def report_of(name):
    return archspec.analyze(archspec.expand(archspec.load(SPECS / f"{name}.yaml")))


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_reference_counts(name):
    params, with_aux, macs, input_shape, output, aux_outputs = REFERENCE[name]
    report = report_of(name)
    assert report.input == input_shape
    assert report.totals["params"] == params
    assert report.totals["params"] + report.training_only["params"] == with_aux
    if macs is not None:
        assert report.totals["macs"] == macs
    assert report.output == output
    assert report.outputs == {"fc": output, **aux_outputs}
    assert report.warnings == []


# GoogLeNet paper, Table 1: output size of each stage (H = W), and Figure 3's aux-head input.
TABLE1 = {
    "conv1.conv": [64, 112], "maxpool1": [64, 56], "conv3.conv": [192, 56], "maxpool2": [192, 28],
    "inception3a.cat": [256, 28], "inception3b.cat": [480, 28], "maxpool3": [480, 14],
    "inception4a.cat": [512, 14], "inception4b.cat": [512, 14], "inception4c.cat": [512, 14],
    "inception4d.cat": [528, 14], "inception4e.cat": [832, 14], "maxpool4": [832, 7],
    "inception5a.cat": [832, 7], "inception5b.cat": [1024, 7], "avgpool": [1024, 1],
    "aux1.pool": [512, 4], "aux2.pool": [528, 4],
}


def test_googlenet_paper_table1_shapes():
    graph = archspec.expand(archspec.load(SPECS / "googlenet.yaml"))
    for name, (channels, size) in TABLE1.items():
        assert list(graph.shape(name)) == [channels, size, size], name
    kinds = {node.op for node in graph.nodes.values()}
    assert "lrn" in kinds and "batchnorm" not in kinds
    # the third branch really is 5x5 in the paper (torchvision's port uses 3x3)
    node = graph.nodes["inception3a.conv5x5.conv"]
    kernel, *_ = OPS["conv"].window(node.params, graph.shape(node.inputs[0]))  # per spatial axis
    assert kernel == (5, 5)
    assert all(node.training_only == name.startswith("aux") for name, node in graph.nodes.items())


def test_aux_heads_are_side_branches():
    """The main chain continues past the aux heads: inception4b reads inception4a, not aux1."""
    graph = archspec.expand(archspec.load(SPECS / "googlenet_torchvision.yaml"))
    assert graph.nodes["inception4b.branch1.conv"].inputs == ("inception4a.cat",)
    assert graph.nodes["aux1.0"].inputs == ("inception4a.cat",)
    assert graph.nodes["aux2.0"].inputs == ("inception4d.cat",)


FLAT = """archspec: 1
name: t
input: [4, 8, 8]
layers:
  - inception:
      id: m
      flat: true
      branches:
        a: [{conv: {out: 2, kernel: 1}}, relu]
        b:
          - conv: {id: b_in, out: 3, kernel: 1}
          - conv: {id: b_x, out: 1, kernel: [1, 3], padding: [0, 1]}
          - conv: {id: b_y, from: b_in, out: 1, kernel: [3, 1], padding: [1, 0]}
          - concat: {id: b, from: [b_x, b_y]}
%s"""


def test_flat_inception_layout():
    """`flat: true` names a branch's layers in the module itself, as torchvision's Inception v3."""
    graph = archspec.expand(archspec.loads(FLAT % ""))
    assert list(graph.nodes) == ["m.a_1", "m.a_2", "m.b_in", "m.b_x", "m.b_y", "m.b", "m.cat"]
    assert graph.nodes["m.cat"].inputs == ("m.a_2", "m.b")
    assert graph.nodes["m.b_y"].inputs == ("m.b_in",)
    assert graph.shape("m.cat") == (4, 8, 8)
    for extra, words in [("        c: []", "branch 'c' is an empty list"),
                         ("        c: [{conv: {id: b_in, out: 1, kernel: 1}}]", "'m.b_in' is already taken")]:
        with pytest.raises(archspec.SpecError, match=words):
            archspec.expand(archspec.loads(FLAT % extra))


# ---- parity with torchvision (the only part that imports torch) ------------------------------


def _randomize_batchnorm(model, seed=0):
    """init_weights=False leaves BN at identity; give it non-trivial statistics and affine."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                n = module.num_features
                module.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
                module.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(n, generator=generator) * 0.1)


def _torchvision(name):
    import torchvision

    if name == "googlenet_torchvision":
        model = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False)
        return model, {"aux1.fc2": ("inception4a", "aux1"), "aux2.fc2": ("inception4d", "aux2")}
    model = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False)
    return model, {"AuxLogits.fc": ("Mixed_6e", "AuxLogits")}


@pytest.mark.parametrize("name, size", [("googlenet_torchvision", 224), ("inception_v3", 299)])
def test_torchvision_parity(name, size):
    torch = pytest.importorskip("torch")
    pytest.importorskip("torchvision")
    torch.manual_seed(0)
    reference, aux_heads = _torchvision(name)
    assert reference.transform_input is False  # weights=None: the net starts at the first conv
    _randomize_batchnorm(reference)
    reference.eval()

    ours = archspec.build(SPECS / f"{name}.yaml", training_heads=True)
    assert set(ours.state_dict()) == set(reference.state_dict())
    ours.load_state_dict(reference.state_dict(), strict=True)
    ours.eval()

    # One forward of torchvision (eval: a plain tensor), with the aux heads' inputs captured.
    captured = {}
    hooks = [getattr(reference, block).register_forward_hook(
                 lambda _m, _i, out, block=block: captured.__setitem__(block, out))
             for block, _ in aux_heads.values()]
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = reference(x)
        for hook in hooks:
            hook.remove()
        got_main, *got_aux = ours(x)
        expected_aux = [getattr(reference, module)(captured[block]) for block, module in aux_heads.values()]
    assert isinstance(expected, torch.Tensor)
    assert got_main.shape == expected.shape == (2, 1000)
    torch.testing.assert_close(got_main, expected, rtol=1e-5, atol=1e-5)
    # Our training heads come back in spec order (aux1, aux2), matching report.outputs.
    assert len(got_aux) == len(expected_aux)
    for got, want in zip(got_aux, expected_aux):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    # The default build drops the training heads: torchvision's keys minus the aux modules,
    # and it returns the main output alone (no tuple).
    plain = archspec.build(SPECS / f"{name}.yaml")
    aux_modules = tuple(module for _, module in aux_heads.values())
    assert set(plain.state_dict()) == {k for k in reference.state_dict() if not k.startswith(aux_modules)}
    (returned,) = [node.args[0] for node in plain.graph.nodes if node.op == "output"]
    assert isinstance(returned, torch.fx.Node) and returned.target == "fc"
