"""Convolutions: shared-weight `conv` (with groups or a sparse connection table),
`conv_transpose` for upsampling, and `locally_connected` (unshared weights).

`conv` and `conv_transpose` work on (C, L), (C, H, W) and (C, D, H, W) inputs (PyTorch's
Conv1d/2d/3d); every per-axis setting is one number for all spatial axes or a list with one
entry per axis, and the output-size formula applies per axis."""
from __future__ import annotations

from math import prod
from typing import Literal, Optional, Union

from pydantic import model_validator

from archspec.errors import ShapeError
from archspec.ops.formulas import conv_out, conv_transpose_out, floor_warning, same_padding
from archspec.ops.registry import (SPATIAL, AxisMap, NonNegativeSize, Op, OpParams, Positive, Size,
                                   need_rank, per_axis, register, spatial_rank, zip_axes)
from archspec.ops.saving import DENSE, saved_input, saved_new

# FLOPs of the ops that multiply against weights: a multiply and an add per MAC, and the bias
# added once per output element.
WEIGHTED_FLOPS = "2 per MAC (a multiplication and an addition), plus 1 per output element for the bias"


def weighted_flops(macs: int, out, bias: bool) -> int:
    return 2 * macs + (prod(out) if bias else 0)


class _Convolution(Op):
    """What convolution and transposed convolution share: the FLOPs rule, what autograd keeps
    (the input, for the weight's gradient; the weight, a parameter, is not an activation),
    and the layout (channels-last in, channels-last out, but 1-D kernels write dense)."""

    flops_rule = WEIGHTED_FLOPS
    saves_rule = "its input"

    def flops(self, p, inputs, out):
        return weighted_flops(self.macs(p, inputs, out), out, p.bias)

    def saved(self, p, inputs, out, ctx):
        return [saved_input()]

    def output_layout(self, p, inputs, out, ctx):
        return DENSE if len(inputs[0]) == 2 else super().output_layout(p, inputs, out, ctx)


def _ones(value) -> bool:
    return all(v == 1 for v in ((value,) if isinstance(value, int) else value))


class ConvParams(OpParams):
    out: Positive
    kernel: Size
    stride: Size = 1
    padding: Union[NonNegativeSize, Literal["same", "valid"]] = 0
    dilation: Size = 1
    groups: Positive = 1
    bias: bool = True
    connections: Optional[list[list[int]]] = None

    @model_validator(mode="after")
    def _check(self):
        if self.padding == "same" and not _ones(self.stride):
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


def conv_axes(p, shape) -> tuple[tuple[int, ...], ...]:
    """(kernel, stride, left padding, dilation) per spatial axis of `shape` (what the
    output-size formula and the receptive field use)."""
    kernel = per_axis(p.kernel, shape, "kernel")
    stride = per_axis(p.stride, shape, "stride")
    dilation = per_axis(p.dilation, shape, "dilation")
    if p.padding == "valid":
        padding = (0,) * len(kernel)
    elif p.padding == "same":
        padding = tuple(same_padding(k, d)[0] for k, d in zip(kernel, dilation))
    else:
        padding = per_axis(p.padding, shape, "padding")
    return kernel, stride, padding, dilation


def _spatial_out(op: str, p, shape) -> tuple[int, ...]:
    kernel, stride, padding, dilation = conv_axes(p, shape)
    if p.padding == "same":
        return tuple(shape[1:])
    out = tuple(conv_out(i, k, s, pad, d)
                for i, k, s, pad, d in zip(shape[1:], kernel, stride, padding, dilation))
    if min(out) < 1:
        raise ShapeError(f"{op} window is larger than its (padded) input", input=list(shape),
                         kernel=list(kernel), padding=list(padding))
    return out


def _floor_warnings(p, shape) -> list[str]:
    if p.padding == "same":
        return []
    kernel, stride, padding, dilation = conv_axes(p, shape)
    return floor_warning("the convolution", shape, kernel, stride, padding, dilation)


def _torch_padding(p, shape):
    return p.padding if isinstance(p.padding, str) else per_axis(p.padding, shape, "padding")


@register
class Conv(_Convolution):
    """Convolution with shared weights (one filter bank slid over the input), 1-D, 2-D or 3-D.

    Input shape: (C, L), (C, H, W) or (C, D, H, W). Output shape: (out, L'), (out, H', W') or
    (out, D', H', W'), per axis i' = floor((i + 2p - d(k-1) - 1)/s) + 1.
    `kernel`, `stride`, `padding` and `dilation` are one number for every spatial axis or a
    list with one entry per axis. `groups` splits channels into independent groups (AlexNet's
    two towers, depthwise convs); `connections` lists, for each output channel, the input
    channels it sees (LeNet-5's C3).

    ```yaml
    - conv: {id: conv1, out: 96, kernel: 11, stride: 4}
    ```
    """

    name = "conv"
    Params = ConvParams
    adjoint = "conv_transpose"
    spatial = "window"
    fresh_output = True
    saves_rule = ("its input; with a connection table also the dense (out, in, *kernel) weight the "
                  "module gathers")
    onnx_notes = ("exported as Conv; with a connection table, as one Conv whose masked weight the "
                  "exporter folds into a constant")

    def infer(self, p, inputs):
        (shape,) = inputs
        need_rank("conv", shape, SPATIAL)
        c = shape[0]
        if c % p.groups:
            raise ShapeError("groups must divide in_channels", in_channels=c, groups=p.groups)
        if p.connections is not None and max(max(r) for r in p.connections) >= c:
            raise ShapeError("connections refer to an input channel that does not exist",
                             in_channels=c, largest_index=max(max(r) for r in p.connections))
        return (p.out, *_spatial_out("conv", p, shape))

    def _fan_in(self, p, shape):
        window = prod(per_axis(p.kernel, shape, "kernel"))
        if p.connections is not None:
            return sum(len(r) for r in p.connections) * window  # summed over all output channels
        return p.out * (shape[0] // p.groups) * window

    def params(self, p, inputs, out):
        return self._fan_in(p, inputs[0]) + (p.out if p.bias else 0)

    def macs(self, p, inputs, out):
        return self._fan_in(p, inputs[0]) * prod(out[1:])

    def unshared_params(self, p, inputs, out):
        return prod(out[1:]) * (self._fan_in(p, inputs[0]) + (p.out if p.bias else 0))

    def saved(self, p, inputs, out, ctx):
        if p.connections is None:
            return [saved_input()]
        # The connection table's module gathers a dense (out, in, *kernel) weight each call and
        # the convolution keeps it beside the input: one weight's worth, whatever the batch.
        window = prod(per_axis(p.kernel, inputs[0], "kernel"))
        return [saved_input(), saved_new(p.out * inputs[0][0] * window)]

    def weight_shape(self, p, inputs):
        if p.connections is not None:
            return None
        shape = inputs[0]
        return (p.out, shape[0] // p.groups, *per_axis(p.kernel, shape, "kernel"))

    def warnings(self, p, inputs, out):
        return _floor_warnings(p, inputs[0])

    def window(self, p, shape):
        return conv_axes(p, shape)

    def torch(self, p, inputs, out):
        from archspec.compile import modules

        shape = inputs[0]
        kernel, stride, _, dilation = conv_axes(p, shape)
        padding = _torch_padding(p, shape)
        if p.connections is not None:
            return modules.TableConv(shape[0], p.out, p.connections, kernel, stride, padding,
                                     dilation, p.bias)
        import torch.nn as nn

        cls = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[spatial_rank(shape) - 1]
        return cls(shape[0], p.out, kernel, stride, padding, dilation, p.groups, p.bias)


class ConvTransposeParams(OpParams):
    out: Positive
    kernel: Size
    stride: Size = 1
    padding: NonNegativeSize = 0
    output_padding: NonNegativeSize = 0
    dilation: Size = 1
    groups: Positive = 1
    bias: bool = True

    @model_validator(mode="after")
    def _check(self):
        for op, s, d in zip_axes(self.output_padding, self.stride, self.dilation):
            if op >= max(s, d):
                raise ValueError(f"output_padding must be smaller than stride or dilation. Received: "
                                 f"output_padding={op}, stride={s}, dilation={d}")
        if self.out % self.groups:
            raise ValueError(f"groups must divide out. Received: out={self.out}, groups={self.groups}")
        return self


def _transpose_axes(p, shape):
    return tuple(per_axis(getattr(p, key), shape, key)
                 for key in ("kernel", "stride", "padding", "dilation", "output_padding"))


@register
class ConvTranspose(_Convolution):
    """Transposed convolution ("deconvolution"), used to upsample; 1-D, 2-D or 3-D.

    Input shape: (C, L), (C, H, W) or (C, D, H, W). Output shape: (out, *spatial') with, per
    axis, i' = (i - 1)s - 2p + d(k-1) + output_padding + 1.

    ```yaml
    - conv_transpose: {out: 64, kernel: 2, stride: 2}
    ```
    """

    name = "conv_transpose"
    Params = ConvTransposeParams
    adjoint = "conv"
    spatial = "window"
    fresh_output = True
    onnx_notes = "exported as ConvTranspose, output_padding as its output_padding attribute"

    def infer(self, p, inputs):
        (shape,) = inputs
        need_rank("conv_transpose", shape, SPATIAL)
        c = shape[0]
        if c % p.groups:
            raise ShapeError("groups must divide in_channels", in_channels=c, groups=p.groups)
        out = tuple(conv_transpose_out(i, *axis) for i, axis in
                    zip(shape[1:], zip(*_transpose_axes(p, shape))))
        if min(out) < 1:
            raise ShapeError("conv_transpose padding removes the whole output", input=list(shape),
                             padding=list(per_axis(p.padding, shape, "padding")))
        return (p.out, *out)

    def params(self, p, inputs, out):
        c = inputs[0][0]
        return c * (p.out // p.groups) * prod(per_axis(p.kernel, inputs[0], "kernel")) + (p.out if p.bias else 0)

    def weight_shape(self, p, inputs):
        shape = inputs[0]
        return (shape[0], p.out // p.groups, *per_axis(p.kernel, shape, "kernel"))

    def macs(self, p, inputs, out):
        shape = inputs[0]
        return prod(shape) * (p.out // p.groups) * prod(per_axis(p.kernel, shape, "kernel"))

    def window(self, p, shape):
        # Each output pixel depends on about k/s input pixels: a fractional stride.
        kernel, _, padding, dilation, _ = _transpose_axes(p, shape)
        return kernel, (1,) * len(kernel), padding, dilation

    def field_map(self, p, shape, out):
        # Output o reads the inputs i with i*s + t*d - p = o for a tap t in [0, k): the
        # integers in [(o + p - d(k-1))/s, (o + p)/s]. With s = 1 that is every one (exact);
        # with s > 1 their number and centre depend on o's phase: at most floor((span-1)/s) + 1
        # of them, the positions advancing 1/s of an input position per output on average,
        # each interval end (a floor or a ceiling of a multiple of 1/s) off it by under 1 - 1/s.
        maps = []
        for k, s, pad, d, _ in zip(*_transpose_axes(p, shape)):
            span = d * (k - 1) + 1
            first, last = -(-(pad - span + 1) // s), pad // s  # the inputs output 0 reads
            maps.append(AxisMap((span - 1) // s + 1, 1 / s, (first + last) / 2, s == 1, 1 - 1 / s))
        return tuple(maps)

    def torch(self, p, inputs, out):
        import torch.nn as nn

        shape = inputs[0]
        kernel, stride, padding, dilation, output_padding = _transpose_axes(p, shape)
        cls = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)[spatial_rank(shape) - 1]
        return cls(shape[0], p.out, kernel, stride, padding, output_padding, p.groups, p.bias, dilation)


class LocallyConnectedParams(OpParams):
    out: Positive
    kernel: Size
    stride: Size = 1
    padding: NonNegativeSize = 0
    bias: bool = True


@register
class LocallyConnected(Op):
    """Locally connected layer: a convolution whose weights are NOT shared across positions.

    Every output position has its own filter bank (and bias), so parameters grow with the
    output area — the counterfactual that shows what parameter sharing saves. 2-D only.
    Input shape: (C, H, W). Output shape: (out, H', W') as for `conv`.

    ```yaml
    - locally_connected: {out: 96, kernel: 11, stride: 4}
    ```
    """

    name = "locally_connected"
    Params = LocallyConnectedParams
    spatial = "window"
    fresh_output = True
    keeps_layout = False  # reshaped from the einsum's result: dense
    onnx_notes = "exported as a gather of the input patches and an Einsum with the per-position weights"
    flops_rule = WEIGHTED_FLOPS
    saves_rule = ("the unfolded input patches (N·positions·C·kernel elements), when its weights are "
                  "trained")

    def infer(self, p, inputs):
        (shape,) = inputs
        need_rank("locally_connected", shape, (3,), hint=" (it is 2-D only; use conv on other ranks)")
        q = ConvParams(out=p.out, kernel=p.kernel, stride=p.stride, padding=p.padding)
        return (p.out, *_spatial_out("locally_connected", q, shape))

    def params(self, p, inputs, out):
        c = inputs[0][0]
        positions = prod(out[1:])
        window = prod(per_axis(p.kernel, inputs[0], "kernel"))
        return positions * p.out * c * window + (positions * p.out if p.bias else 0)

    def macs(self, p, inputs, out):
        return prod(out[1:]) * p.out * inputs[0][0] * prod(per_axis(p.kernel, inputs[0], "kernel"))

    def flops(self, p, inputs, out):
        return weighted_flops(self.macs(p, inputs, out), out, p.bias)

    def saved(self, p, inputs, out, ctx):
        # The einsum runs as a batched matmul of the unfolded patches, kept for the weight's grad.
        if not ctx.weights_need_grad:
            return []
        patches = prod(out[1:]) * inputs[0][0] * prod(per_axis(p.kernel, inputs[0], "kernel"))
        return [saved_new(ctx.batch * patches)]

    def unshared_params(self, p, inputs, out):
        return self.params(p, inputs, out)  # already unshared

    def weight_key(self, p, inputs):
        return tuple(inputs[0])  # a filter bank per output position: the module is built for one size

    def window(self, p, shape):
        kernel, stride, padding, _ = conv_axes(ConvParams(out=1, kernel=p.kernel, stride=p.stride,
                                                          padding=p.padding), shape)
        return kernel, stride, padding, (1,) * len(kernel)

    def torch(self, p, inputs, out):
        from archspec.compile import modules

        shape = inputs[0]
        return modules.LocallyConnected2d(shape[0], p.out, shape[1:], out[1:],
                                          per_axis(p.kernel, shape, "kernel"),
                                          per_axis(p.stride, shape, "stride"),
                                          per_axis(p.padding, shape, "padding"), p.bias)
