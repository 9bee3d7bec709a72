"""The newer ops against the torchvision modules they stand for: blocks written as specs with
torchvision's names load torchvision's state_dicts strictly and give the same outputs, in eval
and (for stochastic depth, with the same seed) in training.

- ConvNeXt's CNBlock: depthwise conv, LayerNorm over channels, per-pixel Linear layers, the
  `layer_scale` parameter (state-dict key `<block>.layer_scale`) and StochasticDepth.
- ShuffleNetV2's InvertedResidual: `chunk` into halves, `channel_shuffle`, both strides.
- MobileNetV3's squeeze-and-excitation gate: hardsigmoid, then hardswish.
- LayerNorm2d (ConvNeXt's stem/downsampling norm) and StochasticDepth on 1-D and 3-D tensors.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import archspec
from archspec.compile.weights import load_weights

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TOL = 1e-5


def spec(input_shape, body: str) -> str:
    return f"archspec: 1\nname: block\ninput: {list(input_shape)}\n{body}"


def randomise(model: nn.Module, seed: int = 0) -> None:
    """Every parameter and running statistic away from its initial value, so a setting the spec
    gets wrong (eps, a missing bias, the layer scale) changes the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3 + (1.0 if p.dim() == 1 else 0.0))
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)


def load_and_compare(text: str, theirs: nn.Module, tmp_path, x, *, train: bool = False):
    randomise(theirs)
    path = tmp_path / "weights.pth"
    torch.save(theirs.state_dict(), path)
    ours = archspec.build(archspec.loads(text), seed=1)
    assert sorted(ours.state_dict()) == sorted(theirs.state_dict())
    load_weights(ours, path)  # strict
    for mode in ((False, True) if train else (False,)):
        theirs.train(mode)
        ours.train(mode)
        torch.manual_seed(7)  # the same stochastic-depth draws in both
        with torch.no_grad():
            expected = theirs(x.clone())
        torch.manual_seed(7)
        with torch.no_grad():
            got = ours(x.clone())
        assert got.shape == expected.shape
        assert (got - expected).abs().max().item() <= TOL, f"train={mode}"
    return ours


CONVNEXT = spec((16, 9, 9), """\
templates:
  cnblock:                      # torchvision.models.convnext.CNBlock
    args: {dim: required, p: 0.0}
    body:
      residual:
        body:
          - seq:
              id: block
              layers:
                - conv: {out: $dim, kernel: 7, padding: 3, groups: $dim}
                - identity      # torchvision's Permute to channels-last
                - layer_norm: {eps: 1.0e-6}
                - linear: {out: "${4 * dim}", per_pixel: true}
                - gelu
                - linear: {out: $dim, per_pixel: true}
          - layer_scale: {id: layer_scale}
          - drop_path: {id: stochastic_depth, p: $p}
        after: []
layers:
  - cnblock: {id: stage, dim: 16, p: 0.5, repeat: 2}
""")


def test_convnext_block_loads_torchvision_weights_with_its_layer_scale_key(tmp_path):
    from torchvision.models.convnext import CNBlock

    class Stage(nn.Module):
        def __init__(self):
            super().__init__()
            self.stage = nn.Sequential(CNBlock(16, 1e-6, 0.5), CNBlock(16, 1e-6, 0.5))

        def forward(self, x):
            return self.stage(x)

    theirs = Stage()
    assert "stage.0.layer_scale" in theirs.state_dict()
    ours = load_and_compare(CONVNEXT, theirs, tmp_path, torch.randn(4, 16, 9, 9), train=True)
    assert ours.state_dict()["stage.1.layer_scale"].shape == (16, 1, 1)
    assert isinstance(ours.stage[0].block[3], nn.Linear) and ours.stage[0].block[3].weight.shape == (64, 16)
    fresh = archspec.build(archspec.loads(CONVNEXT))
    assert torch.all(fresh.stage[0].layer_scale == 1e-6)  # torchvision's initial value


SHUFFLENET = spec((8, 10, 10), """\
templates:
  down:                         # InvertedResidual(inp, oup, stride=2)
    args: {inp: required, oup: required}
    body:
      - seq:
          id: branch1
          layers:
            - conv: {out: $inp, kernel: 3, stride: 2, padding: 1, groups: $inp, bias: false}
            - batchnorm
            - conv: {out: "${oup // 2}", kernel: 1, bias: false}
            - batchnorm
            - relu
      - seq:
          id: branch2
          from: input
          layers:
            - conv: {out: "${oup // 2}", kernel: 1, bias: false}
            - batchnorm
            - relu
            - conv: {out: "${oup // 2}", kernel: 3, stride: 2, padding: 1, groups: "${oup // 2}", bias: false}
            - batchnorm
            - conv: {out: "${oup // 2}", kernel: 1, bias: false}
            - batchnorm
            - relu
      - concat: {from: [branch1, branch2]}
      - channel_shuffle: {groups: 2}
  basic:                        # InvertedResidual(oup, oup, stride=1): x1, x2 = x.chunk(2, dim=1)
    args: {oup: required}
    body:
      - chunk: {id: x1, parts: 2, index: 0}
      - chunk: {id: x2, from: input, parts: 2, index: 1}
      - seq:
          id: branch2
          layers:
            - conv: {out: "${oup // 2}", kernel: 1, bias: false}
            - batchnorm
            - relu
            - conv: {out: "${oup // 2}", kernel: 3, padding: 1, groups: "${oup // 2}", bias: false}
            - batchnorm
            - conv: {out: "${oup // 2}", kernel: 1, bias: false}
            - batchnorm
            - relu
      - concat: {from: [x1, branch2]}
      - channel_shuffle: {groups: 2}
layers:
  - down: {id: s0, inp: 8, oup: 16}
  - basic: {id: s1, oup: 16}
  - basic: {id: s2, oup: 16}
""")


def test_shufflenet_v2_units_load_torchvision_weights(tmp_path):
    from torchvision.models.shufflenetv2 import InvertedResidual

    class Units(nn.Module):
        def __init__(self):
            super().__init__()
            self.s0 = InvertedResidual(8, 16, 2)
            self.s1 = InvertedResidual(16, 16, 1)
            self.s2 = InvertedResidual(16, 16, 1)

        def forward(self, x):
            return self.s2(self.s1(self.s0(x)))

    load_and_compare(SHUFFLENET, Units(), tmp_path, torch.randn(3, 8, 10, 10))


def test_mobilenet_v3_squeeze_excitation_with_hardsigmoid_and_hardswish(tmp_path):
    from torchvision.ops import SqueezeExcitation

    class Gate(nn.Module):
        def __init__(self):
            super().__init__()
            self.se = SqueezeExcitation(16, 8, scale_activation=nn.Hardsigmoid)
            self.act = nn.Hardswish()

        def forward(self, x):
            return self.act(self.se(x))

    text = spec((16, 5, 5), "layers:\n  - se: {id: se, channels: 8, gate: hardsigmoid}\n  - hardswish\n")
    # inputs wide enough to reach the kinks of hardsigmoid/hardswish at ±3
    load_and_compare(text, Gate(), tmp_path, torch.randn(3, 16, 5, 5) * 4)


def test_layer_norm_is_convnexts_layernorm2d(tmp_path):
    from torchvision.models.convnext import LayerNorm2d

    class Norm(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = LayerNorm2d(6, eps=1e-6)

        def forward(self, x):
            return self.norm(x)

    text = spec((6, 4, 5), "layers:\n  - layer_norm: {id: norm, eps: 1.0e-6}\n")
    # a small spread per position, so eps matters at the tolerance
    load_and_compare(text, Norm(), tmp_path, torch.randn(2, 6, 4, 5) * 1e-2)


@pytest.mark.parametrize("shape", [(6, 11), (6, 3, 4, 5)])
def test_drop_path_is_torchvisions_stochastic_depth_on_any_rank(shape):
    from torchvision.ops import StochasticDepth

    ours = archspec.build(archspec.loads(spec(shape, "layers:\n  - drop_path: {p: 0.4}\n"))).train()
    theirs = StochasticDepth(0.4, "row").train()
    x = torch.randn(64, *shape)
    torch.manual_seed(3)
    expected = theirs(x)
    torch.manual_seed(3)
    got = ours(x)
    assert torch.equal(got, expected)
    kept = (got.flatten(1) != 0).any(1)
    assert 0 < int(kept.sum()) < 64  # whole samples dropped, the rest scaled by 1/(1-p)
    assert torch.allclose(got[kept], x[kept] / 0.6)
    assert torch.equal(ours.eval()(x), x)
