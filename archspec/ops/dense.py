"""Fully connected ops and their plumbing: `flatten`, `linear`, `dropout`, `rbf`."""
from __future__ import annotations

from math import prod

from pydantic import Field

from archspec.ops.conv import WEIGHTED_FLOPS, weighted_flops
from archspec.ops.registry import SPATIAL, Op, OpParams, Positive, need_rank, register
from archspec.ops.saving import CHANNELS_LAST, DENSE, saved_input, saved_new


class _PassOn(Op):
    """Passes data on without arithmetic; autograd keeps nothing for it (unless overridden)."""

    moves_data = True
    saves_rule = "nothing"

    def saved(self, p, inputs, out, ctx):
        return []


@register
class Flatten(_PassOn):
    """Flatten everything but the batch axis.

    Input shape: any, e.g. (C, H, W). Output shape: (C·H·W,).

    ```yaml
    - flatten
    ```
    """

    name = "flatten"
    spatial = "global"
    aliases_input = True  # a view of a contiguous input
    keeps_layout = False
    flops_rule = "0: a view of the input (a copy of a channels-last one)"

    def output_aliases(self, p, ctx):
        # flatten(1) merges the axes of one sample: a view unless they are stored out of order.
        return ctx.layouts[0] != CHANNELS_LAST

    def view_layout(self, p, inputs, ctx):
        return DENSE

    def infer(self, p, inputs):
        return (prod(inputs[0]),)

    def torch(self, p, inputs, out):
        import torch.nn as nn

        return nn.Flatten(1)


class LinearParams(OpParams):
    out: Positive
    bias: bool = True
    per_pixel: bool = False


@register
class Linear(Op):
    """Fully connected layer: every output sees every input feature (in_features is inferred).

    Input shape: (F,), or (C, ...) with `per_pixel: true`. Output shape: (out,), or (out, ...)
    with `per_pixel: true`.

    `per_pixel: true` applies the same linear map to the C channels at every position (a 1×1
    convolution kept as nn.Linear, weight (out, C)): ConvNeXt's block applies nn.Linear to
    channels-last tensors; archspec's tensors stay channels-first, so the module moves the
    channel axis last and back around it. Without it, a (C, H, W) input is an error: flatten
    it first.

    ```yaml
    - linear: {id: fc, out: 1000}
    - linear: {id: pwconv1, out: 384, per_pixel: true}
    ```
    """

    name = "linear"
    Params = LinearParams
    adjoint = "linear"  # tied transposed, it computes x @ W (F.linear(x, W.t()))
    # Over positions it is pointwise: per_pixel works at each position, and a plain linear sees
    # a (F,) input whose field the flatten before it already made global.
    spatial = "pointwise"
    fresh_output = True
    onnx_notes = "exported as Gemm; with per_pixel, as Transpose (channels last), MatMul, Add, Transpose"
    flops_rule = WEIGHTED_FLOPS
    saves_rule = ("its input, when its weights are trained (for their gradient); with per_pixel, a "
                  "channels-last copy of a channels-first input instead")

    def infer(self, p, inputs):
        (shape,) = inputs
        if p.per_pixel:
            need_rank("linear with per_pixel", shape, SPATIAL,
                      hint=" (on (features,) leave per_pixel out)")
            return (p.out, *shape[1:])
        need_rank("linear", shape, (1,), hint="; add '- flatten' before it")
        return (p.out,)

    def params(self, p, inputs, out):
        return inputs[0][0] * p.out + (p.out if p.bias else 0)

    def macs(self, p, inputs, out):
        return inputs[0][0] * p.out * prod(out[1:])

    def weight_shape(self, p, inputs):
        return None if p.per_pixel else (p.out, inputs[0][0])

    def adjoint_weight_shape(self, p, inputs):
        own = self.weight_shape(p, inputs)
        return None if own is None else own[::-1]  # it uses the other layer's (in, out) as (out, in)

    def flops(self, p, inputs, out):
        return weighted_flops(self.macs(p, inputs, out), out, p.bias)

    def saved(self, p, inputs, out, ctx):
        # The matmul keeps its left operand for the weight's gradient. Per pixel that operand is
        # the input with channels moved last: a view of a channels-last input, else a copy.
        if not ctx.weights_need_grad:
            return []
        if p.per_pixel and ctx.layouts[0] != CHANNELS_LAST and prod(inputs[0][1:]) > 1:
            return [saved_new(ctx.batch * prod(inputs[0]))]
        return [saved_input()]

    def output_layout(self, p, inputs, out, ctx):
        return CHANNELS_LAST if p.per_pixel else DENSE  # per pixel: (N, *spatial, out), moved back

    def torch(self, p, inputs, out):
        if p.per_pixel:
            from archspec.compile import modules

            return modules.PerPixelLinear(inputs[0][0], p.out, p.bias)
        import torch.nn as nn

        return nn.Linear(inputs[0][0], p.out, p.bias)


class DropoutParams(OpParams):
    p: float = Field(0.5, ge=0.0, lt=1.0)


@register
class Dropout(_PassOn):
    """Dropout: zeroes activations with probability p during training; identity at inference.

    Input shape: any. Output shape: same.

    ```yaml
    - dropout: {p: 0.5}
    ```
    """

    name = "dropout"
    Params = DropoutParams
    aliases_input = True  # the input itself at inference
    flops_rule = "0: the identity at inference"
    saves_rule = ("in training, the scaled random mask it multiplies by (the input's size, in the "
                  "activation dtype: PyTorch's CPU kernel; CUDA's fused kernel keeps a bool mask)")

    def output_aliases(self, p, ctx):
        return not ctx.training or p.p == 0

    def saved(self, p, inputs, out, ctx):
        return [saved_new(ctx.batch * prod(out))] if p.p > 0 else []

    def torch(self, p, inputs, out):
        import torch.nn as nn

        return nn.Dropout(p.p)


class DropPathParams(OpParams):
    p: float = Field(0.0, ge=0.0, le=1.0)


@register
class DropPath(_PassOn):
    """Stochastic depth (Huang et al. 2016), as torchvision's `StochasticDepth(p, "row")`: in
    training, each sample's whole input is zeroed with probability p and the survivors are
    scaled by 1/(1-p); at inference the identity. Put it at the end of a residual branch.

    Input shape: any. Output shape: same.

    ```yaml
    - drop_path: {p: 0.1}
    ```
    """

    name = "drop_path"
    Params = DropPathParams
    aliases_input = True  # the input itself at inference
    flops_rule = "0: the identity at inference"
    saves_rule = "in training, the per-sample scale it multiplies by (one value per sample)"

    def output_aliases(self, p, ctx):
        return not ctx.training or p.p == 0

    def saved(self, p, inputs, out, ctx):
        return [saved_new(ctx.batch)] if p.p > 0 else []
    onnx_notes = "nothing: the identity at inference, so the exporter drops it"

    def torch(self, p, inputs, out):
        from archspec.compile import modules

        return modules.DropPath(p.p)


class RBFParams(OpParams):
    out: Positive


@register
class RBF(Op):
    """Euclidean radial-basis output units (LeNet-5's output layer).

    y_j = Σ_i (x_i − w_ij)²: each unit measures the squared distance between the input and a
    fixed prototype. The prototypes are set by hand, never trained, so their parameters are
    counted as frozen.
    Input shape: (F,). Output shape: (out,).

    ```yaml
    - rbf: {id: output, out: 10}
    ```
    """

    name = "rbf"
    Params = RBFParams
    spatial = "global"
    fresh_output = True
    flops_rule = "3 per MAC (a subtraction, a square and a sum)"
    saves_rule = "the differences x − w (N·out·features elements), for the square's gradient"

    def infer(self, p, inputs):
        need_rank("rbf", inputs[0], (1,), hint="; add '- flatten' before it")
        return (p.out,)

    def params(self, p, inputs, out):
        return inputs[0][0] * p.out

    def frozen_params(self, p, inputs, out):
        return inputs[0][0] * p.out

    def macs(self, p, inputs, out):
        return inputs[0][0] * p.out

    def flops(self, p, inputs, out):
        return 3 * self.macs(p, inputs, out)

    def saved(self, p, inputs, out, ctx):
        return [saved_new(ctx.batch * inputs[0][0] * p.out)]

    def torch(self, p, inputs, out):
        from archspec.compile import modules

        return modules.EuclideanRBF(inputs[0][0], p.out)
