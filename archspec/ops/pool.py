"""Pooling: windowed max/average pooling, global pooling and adaptive average pooling, on
(C, L), (C, H, W) and (C, D, H, W) inputs (PyTorch's *Pool1d/2d/3d)."""
from __future__ import annotations

from math import prod
from typing import Optional

from pydantic import model_validator

from archspec.errors import ShapeError
from archspec.ops.formulas import floor_warning, pool_out
from archspec.ops.registry import (AXIS_NAMES, SPATIAL, AxisMap, NonNegativeSize, Op, OpParams, OpWarning,
                                   Size, need_rank, per_axis, register, spatial_rank, zip_axes)
from archspec.ops.saving import saved_input, saved_new


def _window(kernel) -> int:
    """Elements in one window: the kernel's volume."""
    return kernel if isinstance(kernel, int) else prod(kernel)


def adaptive_bins(i: int, o: int) -> int:
    """Input positions read by the `o` bins of adaptive pooling along an axis of `i` (bin j
    spans [floor(j·i/o), ceil((j+1)·i/o)), so bins overlap where o does not divide i)."""
    return sum(-(-(j + 1) * i // o) - (j * i) // o for j in range(o))


class PoolParams(OpParams):
    kernel: Size
    stride: Optional[Size] = None  # defaults to the kernel, as in PyTorch
    padding: NonNegativeSize = 0
    ceil_mode: bool = False

    @model_validator(mode="after")
    def _check(self):
        for k, pad in zip_axes(self.kernel, self.padding):
            if 2 * pad > k:
                raise ValueError(f"padding must be at most half the kernel (PyTorch's rule). "
                                 f"Received: kernel={_text(self.kernel)}, padding={_text(self.padding)}")
        return self


def _text(value):
    return value if isinstance(value, int) else list(value)


class MaxPoolParams(PoolParams):
    dilation: Size = 1


class AvgPoolParams(PoolParams):
    count_include_pad: bool = True


def pool_axes(p, shape) -> tuple[tuple[int, ...], ...]:
    """(kernel, stride, padding, dilation) per spatial axis of `shape`."""
    kernel = per_axis(p.kernel, shape, "kernel")
    stride = kernel if p.stride is None else per_axis(p.stride, shape, "stride")
    padding = per_axis(p.padding, shape, "padding")
    dilation = per_axis(getattr(p, "dilation", 1), shape, "dilation")
    return kernel, stride, padding, dilation


class _WindowPool(Op):
    spatial = "window"
    fresh_output = True
    torch_classes: tuple = ()  # torch.nn class names for 1-D, 2-D, 3-D

    def infer(self, p, inputs):
        (shape,) = inputs
        need_rank(self.name, shape, SPATIAL)
        kernel, stride, padding, dilation = pool_axes(p, shape)
        for k, pad in zip(kernel, padding):
            if 2 * pad > k:  # a list of one length beside a number: checked here, per axis
                raise ShapeError("padding must be at most half the kernel (PyTorch's rule)",
                                 kernel=list(kernel), padding=list(padding))
        out = tuple(pool_out(i, k, s, pad, d, p.ceil_mode)
                    for i, k, s, pad, d in zip(shape[1:], kernel, stride, padding, dilation))
        if min(out) < 1:
            raise ShapeError(f"{self.name} window is larger than its (padded) input", input=list(shape),
                             kernel=list(kernel), padding=list(padding))
        return (shape[0], *out)

    def warnings(self, p, inputs, out):
        if p.ceil_mode:
            return []
        notes = floor_warning("the pooling", inputs[0], *pool_axes(p, inputs[0]))
        return [n + "; ceil_mode: true keeps them" for n in notes]

    def window(self, p, shape):
        return pool_axes(p, shape)

    def onnx_refusal(self, p, inputs, out):
        # ONNX's ceil_mode output size keeps a last window that starts in the right padding;
        # PyTorch drops it (formulas.pool_out), so the ONNX graph would compute another shape.
        if not p.ceil_mode:
            return None
        shape = inputs[0]
        for axis, i, k, s, pad, d, o in zip(AXIS_NAMES[len(shape)], shape[1:], *pool_axes(p, shape), out[1:]):
            onnx_o = -(-(i + 2 * pad - d * (k - 1) - 1) // s) + 1
            if onnx_o != o:
                return (f"with ceil_mode PyTorch drops the last window along the {axis} because it would "
                        f"start in the right padding (i={i}, k={k}, s={s}, p={pad}: {o} outputs), "
                        f"ONNX keeps it ({onnx_o} outputs); use ceil_mode: false or less padding")
        return None

    def torch_class(self, shape):
        import torch.nn as nn

        return getattr(nn, self.torch_classes[spatial_rank(shape) - 1])


@register
class MaxPool(_WindowPool):
    """Max pooling over windows, 1-D, 2-D or 3-D.

    Input shape: (C, L), (C, H, W) or (C, D, H, W). Output shape: (C, *spatial') with, per
    axis, i' = floor((i + 2p - d(k-1) - 1)/s) + 1 (ceil with `ceil_mode`, dropping a last
    window that would start in the right padding).

    ```yaml
    - maxpool: {kernel: 3, stride: 2}
    ```
    """

    name = "maxpool"
    Params = MaxPoolParams
    torch_classes = ("MaxPool1d", "MaxPool2d", "MaxPool3d")
    flops_rule = "kernel volume − 1 per output element (the comparisons); 0 for a 1-element kernel"
    saves_rule = "its input and the int64 index of every output's maximum"

    def moves_data_only(self, p):
        return _window(p.kernel) == 1  # a 1-element window only subsamples

    def flops(self, p, inputs, out):
        return (prod(pool_axes(p, inputs[0])[0]) - 1) * prod(out)

    def saved(self, p, inputs, out, ctx):
        return [saved_input(), saved_new(ctx.batch * prod(out), "int64")]
    onnx_notes = ("exported as MaxPool; with ceil_mode, a last window that would start in the right "
                  "padding is refused (PyTorch drops it, ONNX keeps it)")

    def torch(self, p, inputs, out):
        kernel, stride, padding, dilation = pool_axes(p, inputs[0])
        return self.torch_class(inputs[0])(kernel, stride, padding, dilation, ceil_mode=p.ceil_mode)


@register
class AvgPool(_WindowPool):
    """Average pooling over windows (`count_include_pad` counts zero padding in the mean),
    1-D, 2-D or 3-D.

    Input shape: (C, L), (C, H, W) or (C, D, H, W). Output shape: (C, *spatial') as for
    `maxpool`.

    ```yaml
    - avgpool: {kernel: 2, stride: 2}
    ```
    """

    name = "avgpool"
    Params = AvgPoolParams
    torch_classes = ("AvgPool1d", "AvgPool2d", "AvgPool3d")
    flops_rule = "kernel volume per output element (the additions and a division)"
    saves_rule = "its input"

    def flops(self, p, inputs, out):
        return prod(pool_axes(p, inputs[0])[0]) * prod(out)

    def saved(self, p, inputs, out, ctx):
        return [saved_input()]
    onnx_notes = ("exported as AveragePool; with ceil_mode, a last window that would start in the right "
                  "padding is refused (PyTorch drops it, ONNX keeps it)")

    def torch(self, p, inputs, out):
        kernel, stride, padding, _ = pool_axes(p, inputs[0])
        return self.torch_class(inputs[0])(kernel, stride, padding, ceil_mode=p.ceil_mode,
                                           count_include_pad=p.count_include_pad)


class _GlobalPool(Op):
    spatial = "global"
    fresh_output = True
    torch_classes: tuple = ()

    def infer(self, p, inputs):
        (shape,) = inputs
        need_rank(self.name, shape, SPATIAL)
        return (shape[0],) + (1,) * spatial_rank(shape)

    def torch(self, p, inputs, out):
        import torch.nn as nn

        return getattr(nn, self.torch_classes[spatial_rank(inputs[0]) - 1])(1)


@register
class GlobalAvgPool(_GlobalPool):
    """Global average pooling: one mean per channel (NiN, GoogLeNet, ResNet heads).

    Input shape: (C, L), (C, H, W) or (C, D, H, W). Output shape: (C, 1), (C, 1, 1) or
    (C, 1, 1, 1).

    ```yaml
    - global_avgpool
    ```
    """

    name = "global_avgpool"
    torch_classes = ("AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d")
    flops_rule = "1 per input element (the additions and a division per channel)"
    saves_rule = "nothing (PyTorch takes a mean, whose backward needs only sizes)"

    def flops(self, p, inputs, out):
        return prod(inputs[0])

    def saved(self, p, inputs, out, ctx):
        return []
    onnx_notes = "exported as ReduceMean over the spatial axes (on (C, L), between Unsqueeze and Squeeze)"


@register
class GlobalMaxPool(_GlobalPool):
    """Global max pooling: one maximum per channel.

    Input shape: (C, L), (C, H, W) or (C, D, H, W). Output shape: (C, 1), (C, 1, 1) or
    (C, 1, 1, 1).

    ```yaml
    - global_maxpool
    ```
    """

    name = "global_maxpool"
    torch_classes = ("AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "AdaptiveMaxPool3d")
    flops_rule = "1 per input element less 1 per channel (the comparisons)"
    saves_rule = "its input and the int64 index of every channel's maximum"

    def flops(self, p, inputs, out):
        return prod(inputs[0]) - inputs[0][0]

    def saved(self, p, inputs, out, ctx):
        return [saved_input(), saved_new(ctx.batch * inputs[0][0], "int64")]
    onnx_notes = "exported as ReduceMax over the spatial axes"


class AdaptivePoolParams(OpParams):
    size: Size


@register
class AdaptiveAvgPool(Op):
    """Adaptive average pooling to a fixed output size (bins may overlap when sizes don't
    divide), 1-D, 2-D or 3-D.

    Input shape: (C, L), (C, H, W) or (C, D, H, W). Output shape: (C, *size), `size` given
    once for every spatial axis or per axis.

    ```yaml
    - adaptive_avgpool: {size: 7}
    ```
    """

    name = "adaptive_avgpool"
    Params = AdaptivePoolParams
    spatial = "window"
    fresh_output = True
    flops_rule = ("1 per input element each bin reads (bins overlap where the sizes do not divide): the "
                  "additions and a division per bin")
    saves_rule = "its input; nothing when every size is 1 (PyTorch then takes a mean)"

    def flops(self, p, inputs, out):
        return inputs[0][0] * prod(adaptive_bins(i, o) for i, o in zip(inputs[0][1:], out[1:]))

    def saved(self, p, inputs, out, ctx):
        return [] if set(out[1:]) == {1} else [saved_input()]
    onnx_notes = ("exported as ReduceMean (size 1) or AveragePool when the sizes divide, else as a gather "
                  "of each bin's pixels and a mean (exact, slower); 3-D to sizes other than 1 is refused "
                  "(the exporter has no translation for it)")

    def infer(self, p, inputs):
        (shape,) = inputs
        need_rank(self.name, shape, SPATIAL)
        return (shape[0], *per_axis(p.size, shape, "size"))

    def window(self, p, shape):
        # Bin j spans [floor(j*i/o), ceil((j+1)*i/o)): at most ceil(i/o) + 1 pixels wide.
        size = per_axis(p.size, shape, "size")
        kernel = tuple(-(-i // o) + (1 if i % o else 0) for i, o in zip(shape[1:], size))
        stride = tuple(max(1, i // o) for i, o in zip(shape[1:], size))
        n = len(size)
        return kernel, stride, (0,) * n, (1,) * n

    def spatial_kind(self, p):
        # to one position on every axis it is global pooling under another name
        size = {p.size} if isinstance(p.size, int) else set(p.size)
        return "global" if size == {1} else "window"

    def field_map(self, p, shape, out):
        # Bin j spans [floor(j*i/o), ceil((j+1)*i/o)). When o divides i that is a window of
        # i/o with stride i/o (exact); otherwise the bins differ in width (the widest is the
        # bound) and advance i/o positions on average.
        maps = []
        for i, o in zip(shape[1:], out[1:]):
            if i % o == 0:
                maps.append(AxisMap(i // o, float(i // o), (i // o - 1) / 2))
                continue
            maps.append(AxisMap(_widest_bin(i, o), i / o, (-(-i // o) - 1) / 2, False, 1.0))
        return tuple(maps)

    def warnings(self, p, inputs, out):
        shape = inputs[0]
        if all(o <= i for i, o in zip(shape[1:], out[1:])):
            return []
        copies = prod(_most_bins(i, o) for i, o in zip(shape[1:], out[1:]))
        sizes = "x".join(map(str, shape[1:])), "x".join(map(str, out[1:]))
        return [OpWarning(f"adaptive pooling to {sizes[1]} from a {sizes[0]} input replicates values: "
                          f"an input value is copied into up to {copies} outputs; a larger input "
                          "(or a smaller 'size') avoids it", "AS802")]

    def onnx_refusal(self, p, inputs, out):
        if spatial_rank(inputs[0]) == 3 and set(out[1:]) != {1}:
            return ("PyTorch's ONNX exporter has no translation of 3-D adaptive average pooling to "
                    f"sizes other than 1 (size {list(out[1:])}); use global_avgpool, or avgpool with "
                    "kernel = stride = input size / output size where that divides")
        return None

    def torch(self, p, inputs, out):
        import torch.nn as nn

        cls = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)[spatial_rank(inputs[0]) - 1]
        return cls(per_axis(p.size, inputs[0], "size"))


_EXACT_UP_TO = 4096  # bins/positions counted one by one up to here; beyond, the bound


def _widest_bin(i: int, o: int) -> int:
    """The widest of the o adaptive-pooling bins over i positions (bin j spans
    [floor(j*i/o), ceil((j+1)*i/o))); at most ceil(i/o) + 1."""
    if o > _EXACT_UP_TO:
        return -(-i // o) + 1
    return max(-(-(j + 1) * i // o) - j * i // o for j in range(o))


def _most_bins(i: int, o: int) -> int:
    """The most adaptive-pooling bins (o over i positions) that contain one input position:
    position x is in bins floor(x*o/i) ... ceil((x+1)*o/i) - 1; at most ceil(o/i) + 1."""
    if i > _EXACT_UP_TO:
        return -(-o // i) + 1
    return max(min(-(-(x + 1) * o // i), o) - x * o // i for x in range(i))
