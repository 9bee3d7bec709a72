"""Normalisation and per-channel affine ops: `batchnorm`, `lrn`, `scale`."""
from __future__ import annotations

from pydantic import Field

from archspec.ops.registry import Op, OpParams, Positive, need_rank, register


class BatchNormParams(OpParams):
    eps: float = Field(1e-5, gt=0)
    momentum: float = Field(0.1, ge=0, le=1)
    affine: bool = True


@register
class BatchNorm(Op):
    """Batch normalisation over the channel axis (learned scale γ and shift β per channel;
    running mean/variance are buffers, not parameters).

    Input shape: (C, H, W) or (F,). Output shape: same.

    ```yaml
    - batchnorm: {id: bn1}
    ```
    """

    name = "batchnorm"
    Params = BatchNormParams
    fresh_output = True

    def infer(self, p, inputs):
        need_rank("batchnorm", inputs[0], (1, 2, 3))
        return inputs[0]

    def params(self, p, inputs, out):
        return 2 * inputs[0][0] if p.affine else 0

    def torch(self, p, inputs, out):
        import torch.nn as nn

        cls = {1: nn.BatchNorm1d, 2: nn.BatchNorm1d, 3: nn.BatchNorm2d}[len(inputs[0])]
        return cls(inputs[0][0], p.eps, p.momentum, p.affine)


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
    Input shape: (C, H, W). Output shape: same.

    ```yaml
    - lrn: {size: 5, alpha: 0.0001, beta: 0.75, k: 2}
    ```
    """

    name = "lrn"
    Params = LRNParams
    fresh_output = True
    onnx_notes = ("exported as its decomposition (Pow, Pad, AveragePool, Div), so even sizes keep "
                  "PyTorch's asymmetric window")

    def infer(self, p, inputs):
        need_rank("lrn", inputs[0], (3,))
        return inputs[0]

    def torch(self, p, inputs, out):
        import torch.nn as nn

        return nn.LocalResponseNorm(p.size, p.alpha, p.beta, p.k)


class ScaleParams(OpParams):
    bias: bool = True


@register
class Scale(Op):
    """Learnable per-channel multiplier and bias: y_c = w_c·x_c + b_c (LeNet-5's subsampling
    layers multiply the pooled sum by a trainable coefficient and add a trainable bias).

    Input shape: (C, H, W) or (F,). Output shape: same.

    ```yaml
    - scale
    ```
    """

    name = "scale"
    Params = ScaleParams
    fresh_output = True

    def params(self, p, inputs, out):
        return inputs[0][0] * (2 if p.bias else 1)

    def torch(self, p, inputs, out):
        from archspec.compile import modules

        return modules.ChannelScale(inputs[0][0], len(inputs[0]), p.bias)
