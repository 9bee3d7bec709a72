"""Convolutions: shared-weight `conv` (with groups or a sparse connection table),
`conv_transpose` for upsampling, and `locally_connected` (unshared weights)."""
from __future__ import annotations

from typing import Literal, Optional, Union

from pydantic import model_validator

from archspec.errors import ShapeError
from archspec.ops.formulas import conv_out, conv_transpose_out, floor_warning, same_padding
from archspec.ops.registry import NonNegativePair, Op, OpParams, Pair, Positive, need_rank, register


class ConvParams(OpParams):
    out: Positive
    kernel: Pair
    stride: Pair = (1, 1)
    padding: Union[NonNegativePair, Literal["same", "valid"]] = (0, 0)
    dilation: Pair = (1, 1)
    groups: Positive = 1
    bias: bool = True
    connections: Optional[list[list[int]]] = None

    @model_validator(mode="after")
    def _check(self):
        if self.padding == "same" and self.stride != (1, 1):
            raise ValueError("padding='same' needs stride 1 (as in PyTorch); give padding as numbers")
        if self.connections is not None:
            if self.groups != 1:
                raise ValueError("connections and groups cannot be combined")
            if len(self.connections) != self.out:
                raise ValueError(f"connections needs one list of input channels per output channel: "
                                 f"{self.out} lists, got {len(self.connections)}")
            for j, row in enumerate(self.connections):
                if not row or len(set(row)) != len(row) or min(row) < 0:
                    raise ValueError(f"connections[{j}] must be a non-empty list of distinct input "
                                     f"channel indices. Received: {row}")
        if self.groups > 1 and self.out % self.groups:
            raise ValueError(f"groups must divide out. Received: out={self.out}, groups={self.groups}")
        return self


def _padding(p: ConvParams) -> tuple[int, int]:
    """Left padding per axis (what the receptive field and the formula use)."""
    if p.padding == "valid":
        return (0, 0)
    if p.padding == "same":
        return tuple(same_padding(k, d)[0] for k, d in zip(p.kernel, p.dilation))
    return p.padding


def _spatial_out(op: str, p, shape, padding) -> tuple[int, int]:
    c, h, w = shape
    if p.padding == "same":
        return h, w
    out = tuple(conv_out(i, k, s, pad, d)
                for i, k, s, pad, d in zip((h, w), p.kernel, p.stride, padding, p.dilation))
    if min(out) < 1:
        raise ShapeError(f"{op} window is larger than its (padded) input", input=[c, h, w],
                         kernel=list(p.kernel), padding=list(padding))
    return out


def _floor_warnings(p, shape, padding) -> list[str]:
    if p.padding == "same":
        return []
    return floor_warning("the convolution", shape, p.kernel, p.stride, padding, p.dilation)


@register
class Conv(Op):
    """2-D convolution with shared weights (one filter bank slid over the input).

    Input shape: (C, H, W). Output shape: (out, H', W') with H' = floor((H + 2p - d(k-1) - 1)/s) + 1.
    `groups` splits channels into independent groups (AlexNet's two towers, depthwise convs);
    `connections` lists, for each output channel, the input channels it sees (LeNet-5's C3).

    ```yaml
    - conv: {id: conv1, out: 96, kernel: 11, stride: 4}
    ```
    """

    name = "conv"
    Params = ConvParams
    spatial = "window"
    fresh_output = True

    def infer(self, p, inputs):
        (shape,) = inputs
        need_rank("conv", shape, (3,))
        c = shape[0]
        if c % p.groups:
            raise ShapeError("groups must divide in_channels", in_channels=c, groups=p.groups)
        if p.connections is not None and max(max(r) for r in p.connections) >= c:
            raise ShapeError("connections refer to an input channel that does not exist",
                             in_channels=c, largest_index=max(max(r) for r in p.connections))
        return (p.out, *_spatial_out("conv", p, shape, _padding(p)))

    def _fan_in(self, p, c):
        kk = p.kernel[0] * p.kernel[1]
        if p.connections is not None:
            return sum(len(r) for r in p.connections) * kk  # summed over all output channels
        return p.out * (c // p.groups) * kk

    def params(self, p, inputs, out):
        return self._fan_in(p, inputs[0][0]) + (p.out if p.bias else 0)

    def macs(self, p, inputs, out):
        return self._fan_in(p, inputs[0][0]) * out[1] * out[2]

    def unshared_params(self, p, inputs, out):
        positions = out[1] * out[2]
        return positions * (self._fan_in(p, inputs[0][0]) + (p.out if p.bias else 0))

    def warnings(self, p, inputs, out):
        return _floor_warnings(p, inputs[0], _padding(p))

    def window(self, p, shape):
        return p.kernel, p.stride, _padding(p), p.dilation

    def torch(self, p, inputs, out):
        from archspec.compile import modules

        c = inputs[0][0]
        if p.connections is not None:
            return modules.TableConv2d(c, p.out, p.connections, p.kernel, p.stride, p.padding,
                                       p.dilation, p.bias)
        import torch.nn as nn

        return nn.Conv2d(c, p.out, p.kernel, p.stride, p.padding, p.dilation, p.groups, p.bias)


class ConvTransposeParams(OpParams):
    out: Positive
    kernel: Pair
    stride: Pair = (1, 1)
    padding: NonNegativePair = (0, 0)
    output_padding: NonNegativePair = (0, 0)
    dilation: Pair = (1, 1)
    groups: Positive = 1
    bias: bool = True

    @model_validator(mode="after")
    def _check(self):
        for op, s, d in zip(self.output_padding, self.stride, self.dilation):
            if op >= max(s, d):
                raise ValueError(f"output_padding must be smaller than stride or dilation. Received: "
                                 f"output_padding={op}, stride={s}, dilation={d}")
        if self.out % self.groups:
            raise ValueError(f"groups must divide out. Received: out={self.out}, groups={self.groups}")
        return self


@register
class ConvTranspose(Op):
    """2-D transposed convolution ("deconvolution"), used to upsample.

    Input shape: (C, H, W). Output shape: (out, H', W') with
    H' = (H - 1)s - 2p + d(k-1) + output_padding + 1.

    ```yaml
    - conv_transpose: {out: 64, kernel: 2, stride: 2}
    ```
    """

    name = "conv_transpose"
    Params = ConvTransposeParams
    spatial = "window"
    fresh_output = True
    onnx_notes = "output_padding is exported as ConvTranspose's output_padding attribute"

    def infer(self, p, inputs):
        (shape,) = inputs
        need_rank("conv_transpose", shape, (3,))
        c, h, w = shape
        if c % p.groups:
            raise ShapeError("groups must divide in_channels", in_channels=c, groups=p.groups)
        out = tuple(conv_transpose_out(i, k, s, pad, d, op) for i, k, s, pad, d, op in
                    zip((h, w), p.kernel, p.stride, p.padding, p.dilation, p.output_padding))
        if min(out) < 1:
            raise ShapeError("conv_transpose padding removes the whole output", input=list(shape),
                             padding=list(p.padding))
        return (p.out, *out)

    def params(self, p, inputs, out):
        c = inputs[0][0]
        return c * (p.out // p.groups) * p.kernel[0] * p.kernel[1] + (p.out if p.bias else 0)

    def macs(self, p, inputs, out):
        c, h, w = inputs[0]
        return h * w * c * (p.out // p.groups) * p.kernel[0] * p.kernel[1]

    def window(self, p, shape):
        # Each output pixel depends on about k/s input pixels: a fractional stride.
        return p.kernel, (1, 1), p.padding, p.dilation

    def torch(self, p, inputs, out):
        import torch.nn as nn

        return nn.ConvTranspose2d(inputs[0][0], p.out, p.kernel, p.stride, p.padding,
                                  p.output_padding, p.groups, p.bias, p.dilation)


class LocallyConnectedParams(OpParams):
    out: Positive
    kernel: Pair
    stride: Pair = (1, 1)
    padding: NonNegativePair = (0, 0)
    bias: bool = True


@register
class LocallyConnected(Op):
    """Locally connected layer: a convolution whose weights are NOT shared across positions.

    Every output position has its own filter bank (and bias), so parameters grow with the
    output area — the counterfactual that shows what parameter sharing saves.
    Input shape: (C, H, W). Output shape: (out, H', W') as for `conv`.

    ```yaml
    - locally_connected: {out: 96, kernel: 11, stride: 4}
    ```
    """

    name = "locally_connected"
    Params = LocallyConnectedParams
    spatial = "window"
    fresh_output = True
    onnx_notes = "exported as a gather of the input patches and an Einsum with the per-position weights"

    def infer(self, p, inputs):
        (shape,) = inputs
        need_rank("locally_connected", shape, (3,))
        q = ConvParams(out=p.out, kernel=p.kernel, stride=p.stride, padding=p.padding)
        return (p.out, *_spatial_out("locally_connected", q, shape, p.padding))

    def params(self, p, inputs, out):
        c = inputs[0][0]
        positions = out[1] * out[2]
        return positions * p.out * c * p.kernel[0] * p.kernel[1] + (positions * p.out if p.bias else 0)

    def macs(self, p, inputs, out):
        c = inputs[0][0]
        return out[1] * out[2] * p.out * c * p.kernel[0] * p.kernel[1]

    def unshared_params(self, p, inputs, out):
        return self.params(p, inputs, out)  # already unshared

    def window(self, p, shape):
        return p.kernel, p.stride, p.padding, (1, 1)

    def torch(self, p, inputs, out):
        from archspec.compile import modules

        return modules.LocallyConnected2d(inputs[0][0], p.out, inputs[0][1:], out[1:], p.kernel,
                                          p.stride, p.padding, p.bias)
