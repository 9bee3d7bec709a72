"""The DAG zoo (ResNet, DenseNet, SE-ResNet, pre-activation and wide ResNets, MobileNetV2,
SqueezeNet, a small U-Net) against published numbers, torchvision, and reference models
written here from the papers.

Every expected number comes from a paper, torchvision/timm, or a hand count shown in the
comments — never from archspec's own output. torchvision models are compared three ways:
parameter totals, state_dict key sets (buffers included), and eval-mode outputs after
loading torchvision's weights with strict=True.
"""
from dataclasses import dataclass

import pytest

import archspec
from conftest import ROOT, SPECS


@dataclass
class Ref:
    spec: str
    params: int
    output: list
    macs: int | None = None


# Hand count for preact_resnet164 (He et al. 2016, "Identity Mappings", CIFAR-10; the paper
# gives 1.7M). Convs have no bias (batch norm follows each one); a projection is a bias-free
# 1x1 conv of the pre-activated input. Unit = bn1 + conv1 1x1 + bn2 + conv2 3x3 + bn3 + conv3 1x1.
def _preact_unit(c_in, width, c_out, project):
    return 2 * c_in + c_in * width + 2 * width + 9 * width * width + 2 * width + width * c_out + \
        (c_in * c_out if project else 0)


PREACT164 = (
    3 * 16 * 9  # conv1
    + _preact_unit(16, 16, 64, True) + 17 * _preact_unit(64, 16, 64, False)  # 4,704 + 17·4,544
    + _preact_unit(64, 32, 128, True) + 17 * _preact_unit(128, 32, 128, False)  # 23,808 + 17·17,792
    + _preact_unit(128, 64, 256, True) + 17 * _preact_unit(256, 64, 256, False)  # 94,720 + 17·70,400
    + 2 * 256  # final bn
    + 256 * 10 + 10  # fc
)
assert PREACT164 == 1_703_258

# Hand count for unet_small: a double conv is 2 x (3x3 conv without bias + BN); an up step is a
# 2x2 transposed conv with bias; the head is a 1x1 conv with bias to 2 classes.
def _double(c_in, c):
    return 9 * c_in * c + 2 * c + 9 * c * c + 2 * c


UNET_SMALL = (_double(3, 32) + _double(32, 64) + _double(64, 128) + _double(128, 256)
              + (256 * 128 * 4 + 128) + _double(256, 128)
              + (128 * 64 * 4 + 64) + _double(128, 64)
              + (64 * 32 * 4 + 32) + _double(64, 32)
              + 32 * 2 + 2)
assert UNET_SMALL == 1_927_042

REFERENCES = [
    # torchvision.models docs (ResNet*_Weights.IMAGENET1K_V1.meta: num_params); MACs at 224x224
    # are the per-image multiply-accumulates of torchvision's models (conv + fc), as counted by
    # fvcore/ptflops (torchvision lists them as GFLOPS 1.81, 4.09, 11.51).
    Ref("resnet18", 11_689_512, [1000], 1_814_073_344),
    Ref("resnet34", 21_797_672, [1000]),
    Ref("resnet50", 25_557_032, [1000], 4_089_184_256),
    Ref("resnet101", 44_549_160, [1000]),
    Ref("resnet152", 60_192_808, [1000], 11_513_626_624),
    # torchvision.models docs (DenseNet*_Weights.IMAGENET1K_V1.meta: num_params; densenet121
    # 2.83 GFLOPS = 2,834,161,664 MACs by fvcore)
    Ref("densenet121", 7_978_856, [1000], 2_834_161_664),
    Ref("densenet169", 14_149_480, [1000]),
    Ref("densenet201", 20_013_928, [1000]),
    Ref("densenet161", 28_681_000, [1000]),
    # timm seresnet50 (reduction 16): 28,088,024 params
    Ref("se_resnet50", 28_088_024, [1000]),
    # He et al. 2016 "Identity Mappings", 1.7M; exact figure: the hand count above
    Ref("preact_resnet164", PREACT164, [10]),
    # Zagoruyko & Komodakis 2016, WRN-28-10 36.5M; exact figure of the reference PyTorch
    # implementations (bias-free convs, 1x1 bias-free projections): 36,479,194
    Ref("wide_resnet28_10", 36_479_194, [10]),
    # torchvision.models docs (MobileNet_V2_Weights.IMAGENET1K_V1.meta: num_params)
    Ref("mobilenet_v2", 3_504_872, [1000]),
    # torchvision.models docs (SqueezeNet1_1_Weights.IMAGENET1K_V1.meta: num_params)
    Ref("squeezenet1_1", 1_235_496, [1000]),
    # hand count above; the output keeps the input's 64x64
    Ref("unet_small", UNET_SMALL, [2, 64, 64]),
]


def report_of(path, input_override=None):
    return archspec.analyze(archspec.expand(archspec.load(path, input_override=input_override)))


@pytest.mark.parametrize("ref", REFERENCES, ids=lambda r: r.spec)
def test_reference_numbers(ref):
    report = report_of(SPECS / f"{ref.spec}.yaml")
    assert report.totals["params"] == ref.params
    assert report.output == ref.output
    if ref.macs is not None:
        assert report.totals["macs"] == ref.macs
    assert report.totals["trainable_params"] == ref.params


def test_mobilenet_v2_macs_match_the_paper():
    # Sandler et al. 2018, Table 3/4: MobileNetV2 (1.0, 224) has 300M multiply-adds.
    macs = report_of(SPECS / "mobilenet_v2.yaml").totals["macs"]
    assert round(macs / 1e6, -1) == 300


def test_unet_keeps_the_input_size():
    assert report_of(SPECS / "unet_small.yaml", (1, 128, 128)).output == [2, 128, 128]


def test_example_head_swap():
    report = report_of(ROOT / "examples" / "resnet18_cifar10_head.yaml")
    # resnet18's 11,689,512 less fc 512·1000 + 1000, plus 512·10 + 10
    assert report.totals["params"] == 11_181_642 and report.output == [10]


# ---- torchvision parity ---------------------------------------------------------------------

TORCHVISION = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "densenet121",
               "densenet169", "densenet201", "densenet161", "mobilenet_v2", "squeezenet1_1"]
# the ones also run forward with torchvision's weights, at a small input where the net allows
FORWARD = {"resnet18": (3, 64, 64), "resnet50": (3, 64, 64), "densenet121": (3, 64, 64),
           "mobilenet_v2": (3, 64, 64), "squeezenet1_1": (3, 64, 64)}


def torchvision_model(name, **kwargs):
    torchvision = pytest.importorskip("torchvision")
    return getattr(torchvision.models, name)(weights=None, **kwargs)


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_params_and_keys(name):
    torch = pytest.importorskip("torch")
    with torch.device("meta"):
        tv = torchvision_model(name)
        model = archspec.build(SPECS / f"{name}.yaml")
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in tv.parameters())
    assert set(model.state_dict()) == set(tv.state_dict())
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in tv.state_dict().items()}


@pytest.mark.parametrize("name", sorted(FORWARD))
def test_torchvision_outputs(name):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    tv = torchvision_model(name).eval()
    model = archspec.build(archspec.load(SPECS / f"{name}.yaml", input_override=FORWARD[name])).eval()
    assert set(model.state_dict()) == set(tv.state_dict())
    model.load_state_dict(tv.state_dict(), strict=True)
    x = torch.randn(2, *FORWARD[name])
    with torch.no_grad():
        torch.testing.assert_close(model(x), tv(x), atol=1e-5, rtol=1e-5)


def test_se_resnet50_has_timm_names():
    """timm's seresnet50 is torchvision's resnet50 names plus `layerX.Y.se.fc1/fc2` (1x1 convs
    with bias), with fc1 going to C/16 channels."""
    torch = pytest.importorskip("torch")
    with torch.device("meta"):
        tv = torchvision_model("resnet50")
        model = archspec.build(SPECS / "se_resnet50.yaml")
    se = {f"layer{s}.{b}.se.{fc}.{w}": None for s, n in zip(range(1, 5), (3, 4, 6, 3))
          for b in range(n) for fc in ("fc1", "fc2") for w in ("weight", "bias")}
    assert set(model.state_dict()) == set(tv.state_dict()) | set(se)
    assert tuple(model.state_dict()["layer4.2.se.fc1.weight"].shape) == (128, 2048, 1, 1)


# ---- reference models from the papers (CIFAR pre-activation ResNets) -----------------------


def preact_reference(torch, unit, stages, widths, outs, classes=10):
    """A pre-activation ResNet for CIFAR written from He et al. 2016 ("Identity Mappings") and
    Zagoruyko & Komodakis 2016: 3x3 stem conv to 16 channels; units BN-ReLU-conv (no ReLU after
    the add); a unit that changes shape projects its pre-activated input with a bias-free 1x1
    conv; final BN-ReLU, global average pooling, linear."""
    nn = torch.nn

    class Unit(nn.Module):
        def __init__(self, c_in, width, c_out, stride, stride_on):
            super().__init__()
            if unit == "bottleneck":
                s1, s2 = (stride, 1) if stride_on == "1x1" else (1, stride)
                self.bn1, self.conv1 = nn.BatchNorm2d(c_in), nn.Conv2d(c_in, width, 1, s1, bias=False)
                self.bn2, self.conv2 = nn.BatchNorm2d(width), nn.Conv2d(width, width, 3, s2, 1, bias=False)
                self.bn3, self.conv3 = nn.BatchNorm2d(width), nn.Conv2d(width, c_out, 1, bias=False)
                self.convs = [(self.bn1, self.conv1), (self.bn2, self.conv2), (self.bn3, self.conv3)]
            else:
                self.bn1, self.conv1 = nn.BatchNorm2d(c_in), nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
                self.bn2, self.conv2 = nn.BatchNorm2d(c_out), nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
                self.convs = [(self.bn1, self.conv1), (self.bn2, self.conv2)]
            if stride != 1 or c_in != c_out:
                self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False))

        def forward(self, x):
            out = torch.relu(self.convs[0][0](x))
            short = self.downsample(out) if hasattr(self, "downsample") else x
            out = self.convs[0][1](out)
            for bn, conv in self.convs[1:]:
                out = conv(torch.relu(bn(out)))
            return out + short

    class Net(nn.Module):
        def __init__(self, stride_on):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
            c_in, names = 16, []
            for i, (width, c_out) in enumerate(zip(widths, outs)):
                layer = nn.Sequential(*[Unit(c_in if b == 0 else c_out, width, c_out,
                                             2 if (b == 0 and i > 0) else 1, stride_on) for b in range(stages)])
                names.append(layer)
                c_in = c_out
            self.layers = names
            self.bn = nn.BatchNorm2d(c_in)
            self.fc = nn.Linear(c_in, classes)

        def forward(self, x):
            x = self.conv1(x)
            for layer in self.layers:
                x = layer(x)
            x = torch.relu(self.bn(x)).mean((2, 3))
            return self.fc(x)

    return Net


@pytest.mark.parametrize("spec, unit, blocks, widths, outs, names, stride_on", [
    # ResNet-164: 18 bottleneck units per stage, widths 16/32/64, outputs 64/128/256
    ("preact_resnet164", "bottleneck", 18, (16, 32, 64), (64, 128, 256), "layer", "1x1"),
    # WRN-28-10: 4 basic blocks per group, 160/320/640 channels
    ("wide_resnet28_10", "basic", 4, (160, 320, 640), (160, 320, 640), "block", "3x3"),
])
def test_preact_resnets_match_paper_reference(spec, unit, blocks, widths, outs, names, stride_on):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    Net = preact_reference(torch, unit, blocks, widths, outs)
    ref = Net(stride_on)
    for i, layer in enumerate(ref.layers, start=1):
        ref.add_module(f"{names}{i}", layer)
    ref.eval()
    model = archspec.build(SPECS / f"{spec}.yaml").eval()
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in ref.parameters())
    assert set(model.state_dict()) == set(ref.state_dict())
    model.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), atol=1e-4, rtol=1e-4)
