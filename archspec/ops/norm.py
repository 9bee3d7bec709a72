"""Normalisation: `batchnorm`, `layer_norm`, `group_norm`, `instance_norm` and `lrn`.

Statistics are never parameters: running means and variances are buffers. Parameters are
the learned per-channel scale γ (`weight`) and shift β (`bias`) where the op has them."""
from __future__ import annotations

from math import prod

from pydantic import Field

from archspec.errors import ShapeError
from archspec.ops.registry import SPATIAL, Op, OpParams, Positive, need_rank, register, spatial_rank
from archspec.ops.saving import CHANNELS_LAST, DENSE, saved_input, saved_new

ANY_RANK = (1, 2, 3, 4)
Eps = Field(1e-5, gt=0)

# Normalising with known statistics (batch norm at inference, instance norm with running
# statistics) folds the statistics and γ, β into one scale and one shift per channel.
FOLDED_FLOPS = "2 per element (the statistics and γ, β folded into a multiplication and an addition)"
# With a sample's own statistics: a sum for the mean; a subtraction, a square and a sum for the
# variance; subtracting the mean and multiplying by 1/σ (the per-group square roots are not
# counted); then γ and β.
SAMPLE_FLOPS = ("6 per element (the mean 1, the variance 3, normalising 2), plus 1 for γ and 1 for β "
                "when affine")
SAMPLE_STATISTICS = 6


def _saved_with_statistics(count: int) -> list:
    """The input and the saved mean and 1/σ, `count` values each (in the activation dtype)."""
    return [saved_input(), saved_new(count), saved_new(count)]


class BatchNormParams(OpParams):
    eps: float = Eps
    momentum: float = Field(0.1, ge=0, le=1)
    affine: bool = True


@register
class BatchNorm(Op):
    """Batch normalisation over the channel axis (learned scale γ and shift β per channel;
    running mean/variance are buffers, not parameters).

    Input shape: (F,), (C, L), (C, H, W) or (C, D, H, W). Output shape: same.

    ```yaml
    - batchnorm: {id: bn1}
    ```
    """

    name = "batchnorm"
    Params = BatchNormParams
    fresh_output = True
    onnx_notes = "exported as BatchNormalization with the running statistics (eval mode)"
    flops_rule = FOLDED_FLOPS
    saves_rule = "its input and the batch's mean and 1/σ per channel"

    def infer(self, p, inputs):
        need_rank("batchnorm", inputs[0], ANY_RANK)
        return inputs[0]

    def params(self, p, inputs, out):
        return 2 * inputs[0][0] if p.affine else 0

    def buffers(self, p, inputs, out):
        return 2 * inputs[0][0]  # running mean and variance

    def flops(self, p, inputs, out):
        return 2 * prod(out)

    def saved(self, p, inputs, out, ctx):
        return _saved_with_statistics(inputs[0][0])  # one batch's statistics, whatever its size

    def torch(self, p, inputs, out):
        import torch.nn as nn

        cls = {1: nn.BatchNorm1d, 2: nn.BatchNorm1d, 3: nn.BatchNorm2d, 4: nn.BatchNorm3d}[len(inputs[0])]
        return cls(inputs[0][0], p.eps, p.momentum, p.affine)


class LayerNormParams(OpParams):
    eps: float = Eps
    affine: bool = True
    bias: bool = True


@register
class LayerNorm(Op):
    """Layer normalisation over the channel axis: at every position, the C values are
    normalised to zero mean and unit variance, then scaled by γ and shifted by β (both of
    shape (C,)). On (F,) it normalises the features (nn.LayerNorm); on (C, H, W) it is
    ConvNeXt's LayerNorm2d (torchvision uses eps 1e-6 there).

    Input shape: (F,), (C, L), (C, H, W) or (C, D, H, W). Output shape: same.

    State-dict keys are `<name>.weight` and `<name>.bias`, shape (C,), as torchvision's.

    ```yaml
    - layer_norm: {id: norm, eps: 1.0e-6}
    ```
    """

    name = "layer_norm"
    Params = LayerNormParams
    fresh_output = True
    flops_rule = SAMPLE_FLOPS
    saves_rule = "its input and the mean and 1/σ of every position of every sample"
    onnx_notes = ("exported as LayerNormalization over the last axis, between two Transposes that move "
                  "the channel axis last and back on (C, ...) inputs")

    def infer(self, p, inputs):
        need_rank("layer_norm", inputs[0], ANY_RANK)
        return inputs[0]

    def params(self, p, inputs, out):
        return inputs[0][0] * (1 + p.bias) if p.affine else 0

    def flops(self, p, inputs, out):
        return (SAMPLE_STATISTICS + (1 + p.bias if p.affine else 0)) * prod(out)

    def saved(self, p, inputs, out, ctx):
        return _saved_with_statistics(ctx.batch * prod(inputs[0][1:]))

    def output_layout(self, p, inputs, out, ctx):
        return CHANNELS_LAST  # normalised as (N, *spatial, C), moved back as a view

    def torch(self, p, inputs, out):
        from archspec.compile import modules

        return modules.ChannelLayerNorm(inputs[0][0], p.eps, p.affine, p.bias)


class GroupNormParams(OpParams):
    groups: Positive
    eps: float = Eps
    affine: bool = True


@register
class GroupNorm(Op):
    """Group normalisation: channels split into `groups` groups, each normalised over its
    channels and all positions; then a per-channel γ and β (Wu & He 2018). Every output
    depends on every position of its group, so the receptive field becomes the whole input.

    Input shape: (F,), (C, L), (C, H, W) or (C, D, H, W). Output shape: same.

    ```yaml
    - group_norm: {groups: 32}
    ```
    """

    name = "group_norm"
    Params = GroupNormParams
    spatial = "context"  # its statistics span every position: each output depends on all of them
    fresh_output = True
    flops_rule = SAMPLE_FLOPS
    saves_rule = "its input and the mean and 1/σ of every group of every sample"
    onnx_notes = ("exported as Reshape to (N, groups, -1), InstanceNormalization, Reshape back, and "
                  "Mul and Add by γ and β")

    def infer(self, p, inputs):
        (shape,) = inputs
        need_rank("group_norm", shape, ANY_RANK)
        if shape[0] % p.groups:
            raise ShapeError("groups must divide the channels", channels=shape[0], groups=p.groups)
        return shape

    def params(self, p, inputs, out):
        return 2 * inputs[0][0] if p.affine else 0

    def flops(self, p, inputs, out):
        return (SAMPLE_STATISTICS + (2 if p.affine else 0)) * prod(out)

    def saved(self, p, inputs, out, ctx):
        return _saved_with_statistics(ctx.batch * p.groups)

    def torch(self, p, inputs, out):
        import torch.nn as nn

        return nn.GroupNorm(p.groups, inputs[0][0], p.eps, p.affine)


class InstanceNormParams(OpParams):
    eps: float = Eps
    momentum: float = Field(0.1, ge=0, le=1)
    affine: bool = False
    track_running_stats: bool = False


@register
class InstanceNorm(Op):
    """Instance normalisation: every channel of every sample normalised over its positions
    (Ulyanov et al. 2016). PyTorch's defaults: no γ/β (`affine: false`) and no running
    statistics (`track_running_stats: false`, so eval mode normalises with the sample's own
    statistics); both can be switched on. With the sample's statistics every output depends
    on every position: the receptive field becomes the whole input.

    Input shape: (C, L), (C, H, W) or (C, D, H, W). Output shape: same.

    ```yaml
    - instance_norm: {affine: true}
    ```
    """

    name = "instance_norm"
    Params = InstanceNormParams
    fresh_output = True
    keeps_layout = False  # runs as batch norm on a contiguous (1, N·C, ...) reshape
    flops_rule = (FOLDED_FLOPS + " with running statistics; else " + SAMPLE_FLOPS)
    saves_rule = ("its input (a dense copy of any other layout) and, per sample and channel, the mean "
                  "and 1/σ, and the repeated γ and running statistics where it has them")

    def spatial_kind(self, p):
        # The sample's own statistics span every position (global); running ones do not.
        return "pointwise" if p.track_running_stats else "context"
    onnx_notes = ("exported as InstanceNormalization; with track_running_stats, as BatchNormalization "
                  "with the running statistics (eval mode), reshaped to (1, N·C, ...)")

    def infer(self, p, inputs):
        need_rank("instance_norm", inputs[0], SPATIAL)
        return inputs[0]

    def params(self, p, inputs, out):
        return 2 * inputs[0][0] if p.affine else 0

    def buffers(self, p, inputs, out):
        return 2 * inputs[0][0] if p.track_running_stats else 0

    def flops(self, p, inputs, out):
        if p.track_running_stats:
            return 2 * prod(out)
        return (SAMPLE_STATISTICS + (2 if p.affine else 0)) * prod(out)

    def saved(self, p, inputs, out, ctx):
        # PyTorch runs it as batch norm over a (1, N·C, ...) view of a contiguous input, with γ
        # and the running statistics repeated N times: batch norm keeps each of them.
        per_channel = ctx.batch * inputs[0][0]
        copies = 2 + p.affine + 2 * p.track_running_stats
        kept = [saved_input() if ctx.layouts[0] == DENSE else saved_new(ctx.batch * prod(inputs[0]))]
        return kept + [saved_new(per_channel) for _ in range(copies)]

    def torch(self, p, inputs, out):
        import torch.nn as nn

        cls = (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)[spatial_rank(inputs[0]) - 1]
        return cls(inputs[0][0], p.eps, p.momentum, p.affine, p.track_running_stats)


class LRNParams(OpParams):
    size: Positive = 5
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 1.0


@register
class LRN(Op):
    """Local response normalisation across neighbouring channels (AlexNet).

    b_c = a_c / (k + α/n · Σ_{c' near c} a_c'²)^β over `size` = n channels (PyTorch's
    convention: α is divided by n).
    Input shape: (C, L), (C, H, W) or (C, D, H, W). Output shape: same.

    ```yaml
    - lrn: {size: 5, alpha: 0.0001, beta: 0.75, k: 2}
    ```
    """

    name = "lrn"
    Params = LRNParams
    fresh_output = True
    flops_rule = ("size + 4 per element (a square, size − 1 additions over the channel window, a "
                  "scale, an offset, a power, a division)")
    saves_rule = ("its input, the squares padded to C + size − 1 channels, and two tensors of the "
                  "input's size (the scaled sum and its power)")

    def flops(self, p, inputs, out):
        return (p.size + 4) * prod(out)

    def saved(self, p, inputs, out, ctx):
        # PyTorch's functional form: squares, pad, average-pool over channels, scale, power,
        # divide; the pooling, the power and the division keep their operands.
        c, spatial = inputs[0][0], prod(inputs[0][1:])
        return [saved_input(), saved_new(ctx.batch * (c + p.size - 1) * spatial),
                saved_new(ctx.batch * c * spatial), saved_new(ctx.batch * c * spatial)]
    onnx_notes = ("exported as its decomposition (Pow, Pad, AveragePool, Div), so even sizes keep "
                  "PyTorch's asymmetric window")

    def infer(self, p, inputs):
        need_rank("lrn", inputs[0], SPATIAL)
        return inputs[0]

    def torch(self, p, inputs, out):
        import torch.nn as nn

        return nn.LocalResponseNorm(p.size, p.alpha, p.beta, p.k)
