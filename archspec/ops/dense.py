"""Fully connected ops and their plumbing: `flatten`, `linear`, `dropout`, `rbf`."""
from __future__ import annotations

from math import prod

from pydantic import Field

from archspec.ops.registry import Op, OpParams, Positive, need_rank, register


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


@register
class Linear(Op):
    """Fully connected layer: every output sees every input feature (in_features is inferred).

    Input shape: (F,). Output shape: (out,).

    ```yaml
    - linear: {id: fc, out: 1000}
    ```
    """

    name = "linear"
    Params = LinearParams
    spatial = "global"
    fresh_output = True

    def infer(self, p, inputs):
        need_rank("linear", inputs[0], (1,), hint="; add '- flatten' before it")
        return (p.out,)

    def params(self, p, inputs, out):
        return inputs[0][0] * p.out + (p.out if p.bias else 0)

    def macs(self, p, inputs, out):
        return inputs[0][0] * p.out

    def torch(self, p, inputs, out):
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
