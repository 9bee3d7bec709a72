"""Fully connected ops and their plumbing: `flatten`, `linear`, `dropout`, `rbf`."""
from __future__ import annotations

from math import prod

from pydantic import Field

from archspec.ops.registry import SPATIAL, Op, OpParams, Positive, need_rank, register


@register
class Flatten(Op):
    """Flatten everything but the batch axis.

    Input shape: any, e.g. (C, H, W). Output shape: (C·H·W,).

    ```yaml
    - flatten
    ```
    """

    name = "flatten"
    spatial = "global"
    aliases_input = True  # a view of a contiguous input

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
    # Over positions it is pointwise: per_pixel works at each position, and a plain linear sees
    # a (F,) input whose field the flatten before it already made global.
    spatial = "pointwise"
    fresh_output = True
    onnx_notes = "exported as Gemm; with per_pixel, as Transpose (channels last), MatMul, Add, Transpose"

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

    def torch(self, p, inputs, out):
        if p.per_pixel:
            from archspec.compile import modules

            return modules.PerPixelLinear(inputs[0][0], p.out, p.bias)
        import torch.nn as nn

        return nn.Linear(inputs[0][0], p.out, p.bias)


class DropoutParams(OpParams):
    p: float = Field(0.5, ge=0.0, lt=1.0)


@register
class Dropout(Op):
    """Dropout: zeroes activations with probability p during training; identity at inference.

    Input shape: any. Output shape: same.

    ```yaml
    - dropout: {p: 0.5}
    ```
    """

    name = "dropout"
    Params = DropoutParams
    aliases_input = True  # the input itself at inference

    def torch(self, p, inputs, out):
        import torch.nn as nn

        return nn.Dropout(p.p)


class DropPathParams(OpParams):
    p: float = Field(0.0, ge=0.0, le=1.0)


@register
class DropPath(Op):
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

    def infer(self, p, inputs):
        need_rank("rbf", inputs[0], (1,), hint="; add '- flatten' before it")
        return (p.out,)

    def params(self, p, inputs, out):
        return inputs[0][0] * p.out

    def frozen_params(self, p, inputs, out):
        return inputs[0][0] * p.out

    def macs(self, p, inputs, out):
        return inputs[0][0] * p.out

    def torch(self, p, inputs, out):
        from archspec.compile import modules

        return modules.EuclideanRBF(inputs[0][0], p.out)
