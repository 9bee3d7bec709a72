"""Learned per-channel scales: `scale` (a multiplier and bias) and `layer_scale` (ConvNeXt's
multiplier, owned as a bare parameter)."""
from __future__ import annotations

from math import prod

from pydantic import Field

from archspec.ops.registry import Op, OpParams, need_rank, register, spatial_rank
from archspec.ops.saving import saved_input

# y = w·x (+ b): autograd keeps x to compute w's gradient, so only while w is trained.
SAVES_FOR_WEIGHT = "its input, when its parameters are trained (for their gradient)"


def _saved_for_weight(ctx) -> list:
    return [saved_input()] if ctx.weights_need_grad else []

ANY_RANK = (1, 2, 3, 4)


class ScaleParams(OpParams):
    bias: bool = True


@register
class Scale(Op):
    """Learnable per-channel multiplier and bias: y_c = w_c·x_c + b_c (LeNet-5's subsampling
    layers multiply the pooled sum by a trainable coefficient and add a trainable bias).

    Input shape: (F,), (C, L), (C, H, W) or (C, D, H, W). Output shape: same.

    ```yaml
    - scale
    ```
    """

    name = "scale"
    Params = ScaleParams
    fresh_output = True
    flops_rule = "2 per element (a multiplication and an addition); 1 without bias"
    saves_rule = SAVES_FOR_WEIGHT

    def infer(self, p, inputs):
        need_rank("scale", inputs[0], ANY_RANK)
        return inputs[0]

    def params(self, p, inputs, out):
        return inputs[0][0] * (2 if p.bias else 1)

    def flops(self, p, inputs, out):
        return (2 if p.bias else 1) * prod(out)

    def saved(self, p, inputs, out, ctx):
        return _saved_for_weight(ctx)

    def torch(self, p, inputs, out):
        from archspec.compile import modules

        return modules.ChannelScale(inputs[0][0], len(inputs[0]), p.bias)


class LayerScaleParams(OpParams):
    init: float = Field(1e-6, description="initial value of every channel's scale")


@register
class LayerScale(Op):
    """Learnable per-channel scale without a bias: y_c = γ_c·x_c (ConvNeXt, CaiT).

    Its parameter is the node itself, not a submodule's `weight`: a node named
    `features.1.0.layer_scale` owns the state-dict key `features.1.0.layer_scale`, of shape
    (C, 1, 1) on a (C, H, W) input — torchvision's ConvNeXt stores it so. It starts at
    `init` (torchvision: 1e-6).

    Input shape: (F,), (C, L), (C, H, W) or (C, D, H, W). Output shape: same.

    ```yaml
    - layer_scale: {id: layer_scale, init: 1.0e-6}
    ```
    """

    name = "layer_scale"
    Params = LayerScaleParams
    fresh_output = True
    bare_parameter = True
    onnx_notes = "exported as a Mul by the (C, 1, ...) initializer"
    flops_rule = "1 per element (a multiplication)"
    saves_rule = SAVES_FOR_WEIGHT

    def infer(self, p, inputs):
        need_rank("layer_scale", inputs[0], ANY_RANK)
        return inputs[0]

    def params(self, p, inputs, out):
        return inputs[0][0]

    def flops(self, p, inputs, out):
        return prod(out)

    def saved(self, p, inputs, out, ctx):
        return _saved_for_weight(ctx)

    def torch(self, p, inputs, out):
        import torch

        shape = (inputs[0][0],) + (1,) * spatial_rank(inputs[0])
        return torch.nn.Parameter(torch.full(shape, float(p.init)))
