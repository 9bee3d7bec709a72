"""Built-in blocks (residual presets, se, dense, transition), templates, `extends`, and the
located errors of DAG specs.

Expected counts are worked out by hand in the comments (or taken from the torchvision
module that the block reproduces), never copied from archspec's output.
"""
import pytest

import archspec
from archspec.errors import SpecError
from conftest import ROOT, run_cli


def spec_text(input_shape, layers, extra=""):
    return f"archspec: 1\nname: t\ninput: {list(input_shape)}\n{extra}layers:\n{layers}"


def expand(write_spec, input_shape, layers, extra=""):
    return archspec.expand(archspec.load(write_spec(spec_text(input_shape, layers, extra))))


def stats(graph):
    report = archspec.analyze(graph)
    return report.totals["params"], report.totals["macs"], report.output


def spec_error(write_spec, input_shape, layers, extra="") -> SpecError:
    with pytest.raises(SpecError) as info:
        expand(write_spec, input_shape, layers, extra)
    return info.value


# ---- residual presets ---------------------------------------------------------------------


def test_basic_preset_with_projection(write_spec):
    # torchvision layer2.0 of ResNet-18: 64 -> 128 channels, stride 2 on conv1 (3x3).
    graph = expand(write_spec, [64, 56, 56], "  - residual: {id: b, preset: basic, out: 128, stride: 2}\n")
    names = [n for n in graph.nodes]
    assert names == ["b.conv1", "b.bn1", "b.relu1", "b.conv2", "b.bn2", "b.downsample.0", "b.downsample.1",
                     "b.add", "b.relu"]
    assert graph.nodes["b.conv1"].shape == (128, 28, 28)
    assert graph.nodes["b.add"].inputs == ("b.bn2", "b.downsample.1")
    params, macs, out = stats(graph)
    # conv1 64·128·9 + bn1 2·128 + conv2 128·128·9 + bn2 256 + downsample conv 64·128 + bn 256
    assert params == 73_728 + 256 + 147_456 + 256 + 8_192 + 256 == 230_144
    assert macs == (73_728 + 147_456 + 8_192) * 28 * 28
    assert out == [128, 28, 28]


def test_basic_preset_identity(write_spec):
    graph = expand(write_spec, [64, 8, 8], "  - residual: {id: b, preset: basic, out: 64}\n")
    assert not any("downsample" in n for n in graph.nodes)
    assert graph.nodes["b.add"].inputs == ("b.bn2", "input")
    assert stats(graph)[0] == 2 * (64 * 64 * 9 + 128)


@pytest.mark.parametrize("stride_on, conv1_shape, macs", [
    # torchvision layer2.0 of ResNet-50: 256 -> width 128 -> 512, stride 2.
    # v1.5: conv1 256·128 at 56², conv2 128·128·9 at 28², conv3 128·512 at 28², projection 256·512 at 28²
    ("3x3", (128, 56, 56), 32_768 * 3136 + 147_456 * 784 + 65_536 * 784 + 131_072 * 784),
    # v1 (the paper): the stride moves to conv1, which then runs at 28²
    ("1x1", (128, 28, 28), 32_768 * 784 + 147_456 * 784 + 65_536 * 784 + 131_072 * 784),
])
def test_bottleneck_preset(write_spec, stride_on, conv1_shape, macs):
    graph = expand(write_spec, [256, 56, 56], "  - residual: {id: b, preset: bottleneck, width: 128, "
                   f"out: 512, stride: 2, stride_on: {stride_on}}}\n")
    assert graph.nodes["b.conv1"].shape == conv1_shape
    params, got_macs, out = stats(graph)
    # conv1 32,768 + bn1 256 + conv2 147,456 + bn2 256 + conv3 65,536 + bn3 1,024 + proj 131,072 + bn 1,024
    assert params == 379_392
    assert got_macs == macs
    assert out == [512, 28, 28]


def test_bottleneck_matches_torchvision_block(write_spec):
    torch = pytest.importorskip("torch")
    from torchvision.models.resnet import Bottleneck, conv1x1

    path = write_spec(spec_text([256, 14, 14], "  - residual: {id: b, preset: bottleneck, width: 128, "
                                               "out: 512, stride: 2, groups: 4}\n"))
    model = archspec.build(path)
    downsample = torch.nn.Sequential(conv1x1(256, 512, 2), torch.nn.BatchNorm2d(512))
    # torchvision's width = planes · base_width/64 · groups: planes 128, base_width 16, groups 4 -> 128
    ref = Bottleneck(256, 128, stride=2, downsample=downsample, groups=4, base_width=16)
    assert set(model.state_dict()) == {f"b.{k}" for k in ref.state_dict()}
    model.load_state_dict({f"b.{k}": v for k, v in ref.state_dict().items()})
    x = torch.randn(2, 256, 14, 14)
    model.eval(), ref.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), atol=1e-5, rtol=1e-5)


def test_preact_basic_projects_the_preactivated_input(write_spec):
    # Wide ResNet's first block: 16 -> 160 channels (He et al. 2016b: BN-ReLU-conv, no ReLU after
    # the add; the projection takes the pre-activated input and has no BN).
    graph = expand(write_spec, [16, 32, 32], "  - residual: {id: b, preset: basic, preact: true, out: 160}\n")
    assert list(graph.nodes) == ["b.bn1", "b.relu1", "b.conv1", "b.bn2", "b.relu2", "b.conv2",
                                 "b.downsample.0", "b.add"]
    assert graph.nodes["b.downsample.0"].inputs == ("b.relu1",)
    assert graph.output == "b.add"
    # bn1 2·16 + conv1 16·160·9 + bn2 2·160 + conv2 160·160·9 + projection 16·160
    assert stats(graph)[0] == 32 + 23_040 + 320 + 230_400 + 2_560


def test_preact_identity_adds_the_raw_input(write_spec):
    graph = expand(write_spec, [64, 8, 8], "  - residual: {id: b, preset: bottleneck, preact: true, out: 64, "
                                           "dropout: 0.3}\n")
    assert graph.nodes["b.add"].inputs == ("b.conv3", "input")
    assert graph.nodes["b.conv3"].inputs == ("b.dropout",)
    # bn1 128 + conv1 64·16 + bn2 32 + conv2 16·16·9 + bn3 32 + conv3 16·64
    assert stats(graph)[0] == 128 + 1024 + 32 + 2304 + 32 + 1024


def test_residual_se_before_the_add(write_spec):
    graph = expand(write_spec, [256, 8, 8], "  - residual: {id: b, preset: bottleneck, out: 256, "
                                            "se: {reduction: 16}}\n")
    assert graph.nodes["b.se.fc1"].shape == (16, 1, 1)
    assert graph.nodes["b.se.scale"].inputs == ("b.bn3", "b.se.gate")
    assert graph.nodes["b.add"].inputs == ("b.se.scale", "input")
    # bottleneck 256 -> 64 -> 256: bn's 128 + 128 + 512, convs 16,384 + 36,864 + 16,384;
    # SE (timm seresnet, C=256, C/16=16): fc1 256·16 + 16, fc2 16·256 + 256
    assert stats(graph)[0] == (128 + 128 + 512 + 16_384 + 36_864 + 16_384) + (4_096 + 16 + 4_096 + 256)


@pytest.mark.parametrize("body, words", [
    ("preset: basic, out: 64, body: [relu]", "not both"),
    ("out: 64", "give either 'preset'"),
    ("body: [relu], stride: 2", "'stride' only applies to a preset"),
    ("preset: bottleneck, out: 102", "out must be a multiple of expansion"),
    ("preset: bottleneck, out: 256, width: 64, expansion: 2", "out must be width·expansion"),
    ("preset: bottleneck, out: 64, stride_on: 5x5", "stride_on"),
    ("preset: basic, out: 64, groups: 2", "'groups' applies to the bottleneck preset"),
])
def test_residual_settings_errors(write_spec, body, words):
    err = spec_error(write_spec, [64, 8, 8], f"  - residual: {{{body}}}\n")
    assert words in str(err), str(err)
    assert err.loc.line == 5


def test_resnet_stage_with_repeat_and_first(write_spec):
    # A ResNet-34 stage: the first block downsamples, the others keep the shape.
    graph = expand(write_spec, [64, 56, 56], "  - residual: {id: layer2, repeat: 4, preset: basic, out: 128, "
                                             "first: {stride: 2}}\n")
    assert "layer2.0.downsample.0" in graph.nodes and "layer2.1.downsample.0" not in graph.nodes
    assert graph.nodes["layer2.3.relu"].shape == (128, 28, 28)
    # block 0: 230,144 (see test_basic_preset_with_projection); blocks 1-3: 2·(128·128·9 + 256)
    assert stats(graph)[0] == 230_144 + 3 * 2 * (147_456 + 256)


# ---- squeeze-and-excitation ---------------------------------------------------------------


def test_se_block(write_spec):
    graph = expand(write_spec, [64, 8, 8], "  - se: {id: se, reduction: 16}\n")
    assert [(n, node.shape) for n, node in graph.nodes.items()] == [
        ("se.pool", (64, 1, 1)), ("se.fc1", (4, 1, 1)), ("se.act", (4, 1, 1)), ("se.fc2", (64, 1, 1)),
        ("se.gate", (64, 1, 1)), ("se.scale", (64, 8, 8))]
    assert graph.nodes["se.scale"].inputs == ("input", "se.gate")
    params, macs, out = stats(graph)
    assert params == 64 * 4 + 4 + 4 * 64 + 64 == 580
    assert macs == 2 * 64 * 4 and out == [64, 8, 8]
    # timm's divisor: 64/16 = 4 rounds up to 8
    graph = expand(write_spec, [64, 8, 8], "  - se: {reduction: 16, divisor: 8}\n")
    assert stats(graph)[0] == 64 * 8 + 8 + 8 * 64 + 64


def test_se_computes_a_channel_gate(write_spec):
    torch = pytest.importorskip("torch")
    model = archspec.build(write_spec(spec_text([8, 5, 5], "  - se: {id: se, reduction: 4}\n")))
    x = torch.randn(2, 8, 5, 5)
    se = model.se
    gate = torch.sigmoid(se.fc2(torch.relu(se.fc1(x.mean((2, 3), keepdim=True)))))
    torch.testing.assert_close(model(x), x * gate)


def test_se_needs_an_image(write_spec):
    err = spec_error(write_spec, [64], "  - se: {reduction: 16}\n")
    assert "needs a (C, L), (C, H, W) or (C, D, H, W) input" in str(err) and err.loc.line == 5


# ---- dense blocks ---------------------------------------------------------------------------


def test_dense_block_counts(write_spec):
    graph = expand(write_spec, [64, 56, 56], "  - dense: {id: denseblock1, layers: 6, growth: 32, bottleneck: 4}\n")
    assert graph.nodes[graph.output].shape == (64 + 6 * 32, 56, 56)
    # Layer i reads c_i = 64 + 32(i-1) channels: norm1 2c_i, conv1 c_i·128, norm2 256, conv2 128·32·9.
    c = [64 + 32 * i for i in range(6)]
    expected = sum(2 * ci + ci * 128 + 256 + 36_864 for ci in c)
    assert stats(graph)[0] == expected == 335_040
    # each layer reads the concatenation of the block input and every earlier layer
    assert graph.nodes["denseblock1.denselayer1.norm1"].inputs == ("input",)
    assert graph.nodes["denseblock1.denselayer4.cat"].inputs == (
        "input", "denseblock1.denselayer1.conv2", "denseblock1.denselayer2.conv2", "denseblock1.denselayer3.conv2")
    assert len(graph.nodes["denseblock1.cat"].inputs) == 7


def test_dense_and_transition_match_torchvision(write_spec):
    torch = pytest.importorskip("torch")
    from torchvision.models.densenet import _DenseBlock, _Transition

    text = spec_text([24, 8, 8], "  - dense: {id: denseblock1, layers: 3, growth: 12, bottleneck: 4}\n"
                                 "  - transition: {id: transition1, compression: 0.5}\n")
    model = archspec.build(write_spec(text))
    ref = torch.nn.Sequential()
    ref.add_module("denseblock1", _DenseBlock(3, 24, 4, 12, 0.0))
    ref.add_module("transition1", _Transition(24 + 3 * 12, 30))
    assert set(model.state_dict()) == set(ref.state_dict())
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in ref.parameters())
    model.load_state_dict(ref.state_dict())
    model.eval(), ref.eval()
    x = torch.randn(2, 24, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), atol=1e-5, rtol=1e-5)


def test_transition_and_plain_dense_layers(write_spec):
    graph = expand(write_spec, [256, 56, 56], "  - transition: {id: t, compression: 0.5}\n")
    assert list(graph.nodes) == ["t.norm", "t.relu", "t.conv", "t.pool"]
    params, _, out = stats(graph)
    assert params == 2 * 256 + 256 * 128 and out == [128, 28, 28]
    # DenseNet without bottleneck (not -B): BN-ReLU-conv3x3 per layer; with dropout
    graph = expand(write_spec, [16, 8, 8], "  - dense: {id: d, layers: 2, growth: 12, bottleneck: 0, drop_rate: 0.2}\n")
    assert "d.denselayer1.conv2" not in graph.nodes and "d.denselayer2.dropout" in graph.nodes
    assert stats(graph)[0] == (32 + 16 * 12 * 9) + (56 + 28 * 12 * 9)
    assert stats(graph)[2] == [40, 8, 8]


# ---- templates and extends ----------------------------------------------------------------


TEMPLATE = """templates:
  conv_bn:
    args: {out: required, stride: 1}
    body:
      - conv: {out: $out, kernel: 3, stride: $stride, padding: 1, bias: false}
      - batchnorm
      - relu
"""


def test_template_defined_in_the_spec(write_spec):
    graph = expand(write_spec, [3, 32, 32], "  - conv_bn: {id: stem, out: 16}\n"
                                            "  - conv_bn: {out: 32, stride: 2}\n"
                                            "  - residual: {id: res, shortcut: identity, body: [{conv_bn: {out: 32}}]}\n",
                   TEMPLATE)
    assert [n for n in graph.nodes if n.endswith(".0") or n.endswith(".0.0")] == ["stem.0", "1.0", "res.0.0"]
    params, macs, out = stats(graph)
    # 3·16·9 + 32, 16·32·9 + 64, 32·32·9 + 64
    assert params == 432 + 32 + 4608 + 64 + 9216 + 64
    assert macs == 432 * 32 * 32 + 4608 * 16 * 16 + 9216 * 16 * 16
    assert out == [32, 16, 16]
    assert graph.blocks["stem"].kind == "conv_bn"


def test_extends_head_swap():
    spec = archspec.load(ROOT / "examples" / "resnet18_cifar10_head.yaml")
    report = archspec.analyze(archspec.expand(spec))
    # torchvision resnet18: 11,689,512 params, of which fc is 512·1000 + 1000; a 10-way fc is 5,130
    assert report.totals["params"] == 11_689_512 - 513_000 + 5_130 == 11_181_642
    assert report.output == [10]


def test_extends_stays_inside_the_project(tmp_path):
    """A spec may extend a .yaml file elsewhere in its project, never a file outside it."""
    project = tmp_path / "proj"
    (project / "specs").mkdir(parents=True)
    (project / "examples").mkdir()
    (project / "pyproject.toml").write_text("")
    base = "archspec: 1\ninput: [4]\nlayers:\n  - linear: {id: fc, out: 3}\n"
    (project / "specs" / "base.yaml").write_text(base)
    (project / "specs" / "base.txt").write_text(base)
    (tmp_path / "outside.yaml").write_text(base)
    head = project / "examples" / "head.yaml"

    head.write_text("archspec: 1\nextends: ../specs/base.yaml\noverride:\n  fc: {linear: {out: 2}}\n")
    assert archspec.analyze(archspec.expand(archspec.load(head))).output == [2]
    for target in ("../specs/base.txt", "../../outside.yaml"):
        head.write_text(f"archspec: 1\nextends: {target}\n")
        with pytest.raises(SpecError, match="leaves the spec's directory"):
            archspec.load(head)
    assert archspec.load(head, allow_outside=True).input == (4,)
    # outside any project, a spec stays inside its own directory
    loose = tmp_path / "loose"
    loose.mkdir()
    (loose / "head.yaml").write_text("archspec: 1\nextends: ../outside.yaml\n")
    with pytest.raises(SpecError, match="leaves the spec's directory"):
        archspec.load(loose / "head.yaml")


# ---- located DAG errors ---------------------------------------------------------------------

MISMATCH = """  - conv: {id: stem, out: 32, kernel: 3, padding: 1}
  - residual:
      id: block
      shortcut: identity
      body:
        - conv: {id: conv1, out: 64, kernel: 3, padding: 1}
"""


def test_residual_add_mismatch_cli(write_spec):
    path = write_spec(spec_text([3, 8, 8], MISMATCH))
    result = run_cli("check", path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"{path}:7:7: error: ")  # the residual's settings, where the merge is
    assert "'block.add' (add)" in first and "equal shape" in first
    assert "'block.conv1' [64, 8, 8]" in first and "'stem' [32, 8, 8]" in first


def test_residual_add_mismatch_api(write_spec):
    err = spec_error(write_spec, [3, 8, 8], MISMATCH)
    assert err.loc.line == 7
    assert "'block.conv1' [64, 8, 8]" in err.message and "'stem' [32, 8, 8]" in err.message


def test_concat_spatial_mismatch(write_spec):
    err = spec_error(write_spec, [3, 16, 16], "  - conv: {id: a, out: 8, kernel: 3, padding: 1}\n"
                                              "  - maxpool: {id: b, kernel: 2}\n"
                                              "  - concat: {from: [a, b]}\n")
    assert err.loc.line == 7
    assert "equal sizes on every axis but channels" in err.message
    assert "'a' [8, 16, 16]" in err.message and "'b' [8, 8, 8]" in err.message


@pytest.mark.parametrize("layers, line, words", [
    # dangling reference
    ("  - conv: {id: a, out: 4, kernel: 1}\n  - concat: {from: [a, nowhere]}\n", 6, "'from: nowhere' names no earlier layer"),
    # forward reference: 'later' exists, but below
    ("  - conv: {id: a, out: 4, kernel: 1}\n  - concat: {from: [a, later]}\n  - relu: {id: later}\n", 6,
     "'from: later' names no earlier layer"),
    # an unused branch: 'side' is computed and dropped
    ("  - conv: {id: a, out: 4, kernel: 1}\n  - conv: {id: side, out: 4, kernel: 3, padding: 1}\n"
     "  - relu: {from: a}\n", 6, "'side' (conv): its output is never used"),
])
def test_reference_errors_are_located(write_spec, layers, line, words):
    err = spec_error(write_spec, [3, 8, 8], layers)
    assert words in str(err), str(err)
    assert err.loc.line == line
