"""The sequential zoo (LeNet-5, AlexNet, VGG, All-CNN-C, small CIFAR/digits nets) against
published numbers and torchvision.

Every expected number below comes from a paper or from torchvision, never from archspec's
own output. The static pipeline (load / expand / analyze) is compared exactly; torchvision
models are built on the meta device, which gives real parameter shapes without allocating.
"""
from dataclasses import dataclass, field

import pytest

import archspec
from conftest import SPECS


def report_of(path):
    return archspec.analyze(archspec.expand(archspec.load(path)))


def report_text(text):
    """A spec written in the test; `extends` resolves against specs/."""
    return archspec.analyze(archspec.expand(archspec.loads(text, base_dir=SPECS)))


@dataclass
class Ref:
    spec: str
    params: int
    output: list
    trainable: int | None = None  # defaults to params (nothing frozen)
    macs: int | None = None
    layers: dict = field(default_factory=dict)  # layer name -> (params, output shape)


ALEXNET_FC = 9216 * 4096 + 4096 * 4096 + 4096 * 1000  # MACs of fc6-fc8, from Fig. 2's sizes

REFERENCES = [
    # LeCun et al. 1998, Section II-B: per-layer trainable parameters as printed (C5's 48,120
    # connections are also its parameters); the 84x10 RBF prototypes are fixed. MACs are the
    # paper's connection counts less one bias connection per unit: C1 122,304 - 4,704,
    # C3 151,600 - 1,600, C5 48,120 - 120, F6 10,164 - 84, RBF 840.
    Ref("lenet5", params=60_840, trainable=60_000, output=[10],
        macs=117_600 + 150_000 + 48_000 + 10_080 + 840,
        layers={"c1": (156, [6, 28, 28]), "s2_scale": (12, [6, 14, 14]), "c3": (1_516, [16, 10, 10]),
                "s4_scale": (32, [16, 5, 5]), "c5": (48_120, [120, 1, 1]), "f6": (10_164, [84]),
                "output": (840, [10])}),
    # Krizhevsky et al. 2012, Section 3.5 and Fig. 2 (two towers: conv2/4/5 see half the maps).
    # conv1: 96 x (11*11*3 + 1); the 55x55 maps need the 227 input. MACs: see
    # test_alexnet_macs_agree_with_sze_et_al.
    Ref("alexnet", params=60_965_224, output=[1000],
        layers={"conv1": (34_944, [96, 55, 55]), "conv2": (256 * (48 * 25 + 1), [256, 27, 27]),
                "conv4": (384 * (192 * 9 + 1), [384, 13, 13]), "pool5": (0, [256, 6, 6]),
                "fc6": (9216 * 4096 + 4096, [4096])}),
    # torchvision.models.alexnet; its model docs list 0.71 GFLOPS (counted as multiply-adds).
    Ref("alexnet_torchvision", params=61_100_840, macs=714_188_480, output=[1000],
        layers={"features.0": (64 * (363 + 1), [64, 55, 55]), "avgpool": (0, [256, 6, 6])}),
    # Simonyan & Zisserman 2015, Table 1 configurations; exact counts from torchvision's
    # vgg11/13/16/19 (Table 2 rounds them to 133/133/134/138/144 M).
    Ref("vgg11", params=132_863_336, output=[1000]),
    # A-LRN = A plus a parameter-free LRN: torchvision's vgg11 count.
    Ref("vgg11_lrn", params=132_863_336, output=[1000], layers={"features.2": (0, [64, 224, 224])}),
    Ref("vgg13", params=133_047_848, output=[1000]),
    # C = D with 1x1 instead of 3x3 for the last conv of stages 3-5: D's count minus
    # 8 x (256*256 + 2 * 512*512) weights.
    Ref("vgg16_c", params=138_357_544 - 8 * (256 * 256 + 2 * 512 * 512), output=[1000],
        layers={"features.14": (256 * 256 + 256, [256, 56, 56])}),
    # torchvision's vgg16; its model docs list 15.47 GFLOPS (counted as multiply-adds).
    Ref("vgg16", params=138_357_544, macs=15_470_264_320, output=[1000],
        layers={"features.28": (512 * 512 * 9 + 512, [512, 14, 14]), "avgpool": (0, [512, 7, 7]),
                "classifier.0": (25088 * 4096 + 4096, [4096])}),
    Ref("vgg19", params=143_667_240, output=[1000]),
    # torchvision's *_bn variants: 2 parameters (gamma, beta) per conv channel on top.
    Ref("vgg11_bn", params=132_868_840, output=[1000]),
    Ref("vgg13_bn", params=133_053_736, output=[1000]),
    Ref("vgg16_bn", params=138_365_992, output=[1000]),
    Ref("vgg19_bn", params=143_678_248, output=[1000]),
    # Springenberg et al. 2015, Tables 1-2 (model C, All-CNN-C: "1.4 M" parameters); exact
    # count from the table's layer sizes. The last conv gives 10 maps of 6x6 to average.
    Ref("allcnn_c", params=1_369_738, output=[10],
        layers={"conv1": (96 * 27 + 96, [96, 32, 32]), "conv9": (192 * 10 + 10, [10, 6, 6])}),
]


@pytest.mark.parametrize("ref", REFERENCES, ids=lambda r: r.spec)
def test_totals_match_references(ref):
    report = report_of(SPECS / f"{ref.spec}.yaml")
    assert report.totals["params"] == ref.params
    expected_trainable = ref.params if ref.trainable is None else ref.trainable
    assert report.totals["trainable_params"] == expected_trainable
    if ref.macs is not None:
        assert report.totals["macs"] == ref.macs
    assert report.output == ref.output
    layers = {s.name: s for s in report.layers}
    for name, (params, shape) in ref.layers.items():
        assert (layers[name].params, layers[name].shape) == (params, shape), name


def test_alexnet_macs_agree_with_sze_et_al():
    # Sze et al., "Efficient processing of deep neural networks: a tutorial and survey",
    # Proc. IEEE 2017, summary of popular DNNs: AlexNet has 724M MACs, 666M of them in the
    # convolutions and 58.6M in the FC layers (exact from Fig. 2's sizes).
    macs = {s.name: s.macs for s in report_of(SPECS / "alexnet.yaml").layers}
    assert macs["fc6"] + macs["fc7"] + macs["fc8"] == ALEXNET_FC
    assert round(sum(macs.values()) / 1e6) == 724
    assert round((sum(macs.values()) - ALEXNET_FC) / 1e6) == 666


def test_lenet5_c3_follows_table_1():
    # Table I: six maps see 3 S2 maps, nine see 4, one sees all 6 -> 60 x 25 weights + 16 biases.
    report = report_of(SPECS / "lenet5.yaml")
    c3 = next(s for s in report.layers if s.name == "c3")
    assert c3.params == 1_516
    rbf = next(s for s in report.layers if s.name == "output")
    assert (rbf.params, rbf.trainable_params) == (840, 0)


def test_unshared_alexnet_conv1_counterfactual():
    # Without weight sharing every one of the 55x55 positions has its own 96 filters and
    # biases: 55*55 * 96 * (11*11*3 + 1), the number the sharing argument is made with.
    report = report_text("""
archspec: 1
name: alexnet_conv1_unshared
input: [3, 227, 227]
layers:
  - locally_connected: {id: conv1, out: 96, kernel: 11, stride: 4}
""")
    assert report.totals["params"] == 105_705_600
    assert report.output == [96, 55, 55]


def test_alexnet_paper_at_224_warns_about_flooring():
    # The paper says 224x224 inputs, but (224 - 11) / 4 is not an integer: conv1 never sees
    # the last input row and column. 227 tiles exactly, which is why alexnet.yaml uses it.
    report = report_text("""
archspec: 1
name: alexnet_conv1_224
input: [3, 224, 224]
layers:
  - conv: {id: conv1, out: 96, kernel: 11, stride: 4}
""")
    assert report.output == [96, 54, 54]
    assert any("conv1" in w and "i=224, k=11, s=4, p=0" in w for w in report.warnings), report.warnings
    assert report_of(SPECS / "alexnet.yaml").warnings == []


@pytest.mark.parametrize("spec, input_shape", [("lenet5_digits", [1, 8, 8]), ("cifar10_cnn", [3, 32, 32])])
def test_small_training_nets(spec, input_shape):
    # Sized for the training examples: scikit-learn's 8x8 digits and CIFAR-10, 10 classes each.
    report = report_of(SPECS / f"{spec}.yaml")
    assert (report.input, report.output) == (input_shape, [10])
    assert report.totals["params"] < 1_500_000
    assert report.warnings == []


def test_cifar10_cnn_widens_as_it_shrinks():
    report = report_of(SPECS / "cifar10_cnn.yaml")
    convs = [s.shape for s in report.layers if s.op == "conv"]
    assert [c for c, _, _ in convs] == [32, 64, 128, 256]
    assert [h for _, h, _ in convs] == [32, 16, 8, 4]


# ---- torchvision as the oracle ----------------------------------------------------------------

TORCHVISION = {
    "alexnet_torchvision": "alexnet",
    **{name: name for name in ("vgg11", "vgg13", "vgg16", "vgg19",
                               "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn")},
}


def torchvision_model(name, **kwargs):
    import torch
    from torchvision import models

    with torch.device("meta"):
        return getattr(models, name)(weights=None, **kwargs).eval()


def torchvision_counts(model, input_shape):
    """Parameters, output shape and MACs of a torchvision model, counted by torch itself:
    MACs are conv outputs x weights per output (weights already divided by groups) plus
    linear weights, read off hooks during a forward pass on the meta device."""
    import torch

    macs = []

    def count(module, inputs, out):
        if isinstance(module, torch.nn.Conv2d):
            macs.append(out[0].numel() * module.weight[0].numel())
        elif isinstance(module, torch.nn.Linear):
            macs.append(module.weight.numel())

    hooks = [m.register_forward_hook(count) for m in model.modules()]
    out = model(torch.zeros(1, *input_shape, device="meta"))
    for hook in hooks:
        hook.remove()
    return sum(p.numel() for p in model.parameters()), list(out.shape[1:]), sum(macs)


@pytest.mark.parametrize("spec", sorted(TORCHVISION))
def test_static_counts_match_torchvision(spec):
    report = report_of(SPECS / f"{spec}.yaml")
    params, output, macs = torchvision_counts(torchvision_model(TORCHVISION[spec]), report.input)
    assert report.totals["params"] == params
    assert report.output == output
    assert report.totals["macs"] == macs


def test_vgg11_lrn_counts_as_torchvision_vgg11():
    report = report_of(SPECS / "vgg11_lrn.yaml")
    params, output, _ = torchvision_counts(torchvision_model("vgg11"), report.input)
    assert (report.totals["params"], report.output) == (params, output)


@pytest.mark.parametrize("spec", sorted(TORCHVISION))
def test_state_dict_loads_into_torchvision_strictly(spec):
    import torch

    with torch.device("meta"):  # names and shapes are all that strict loading checks
        ours = archspec.build(SPECS / f"{spec}.yaml")
    theirs = torchvision_model(TORCHVISION[spec])
    theirs.load_state_dict(ours.state_dict(), strict=True, assign=True)


@pytest.mark.parametrize("spec", ["alexnet_torchvision", "vgg16", "vgg16_bn"])
def test_classes_var_retargets_the_head(spec):
    # extends + vars: the same network with a 10-way head, as torchvision's num_classes=10.
    report = report_text(f"archspec: 1\nextends: {spec}.yaml\nvars: {{classes: 10}}\n")
    params, output, _ = torchvision_counts(torchvision_model(TORCHVISION[spec], num_classes=10),
                                           report.input)
    assert output == [10]
    assert (report.totals["params"], report.output) == (params, output)
