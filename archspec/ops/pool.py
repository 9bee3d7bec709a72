"""Pooling: windowed max/average pooling, global pooling and adaptive average pooling."""
from __future__ import annotations

from typing import Optional

from pydantic import model_validator

from archspec.errors import ShapeError
from archspec.ops.formulas import floor_warning, pool_out
from archspec.ops.registry import NonNegativePair, Op, OpParams, Pair, need_rank, register


class PoolParams(OpParams):
    kernel: Pair
    stride: Optional[Pair] = None  # defaults to the kernel, as in PyTorch
    padding: NonNegativePair = (0, 0)
    ceil_mode: bool = False

    @model_validator(mode="after")
    def _check(self):
        for k, pad in zip(self.kernel, self.padding):
            if 2 * pad > k:
                raise ValueError(f"padding must be at most half the kernel (PyTorch's rule). "
                                 f"Received: kernel={list(self.kernel)}, padding={list(self.padding)}")
        return self

    @property
    def strides(self):
        return self.stride or self.kernel


class MaxPoolParams(PoolParams):
    dilation: Pair = (1, 1)


class AvgPoolParams(PoolParams):
    count_include_pad: bool = True


class _WindowPool(Op):
    spatial = "window"
    fresh_output = True

    def infer(self, p, inputs):
        (shape,) = inputs
        need_rank(self.name, shape, (3,))
        c, h, w = shape
        d = getattr(p, "dilation", (1, 1))
        out = tuple(pool_out(i, k, s, pad, dd, p.ceil_mode)
                    for i, k, s, pad, dd in zip((h, w), p.kernel, p.strides, p.padding, d))
        if min(out) < 1:
            raise ShapeError(f"{self.name} window is larger than its (padded) input", input=list(shape),
                             kernel=list(p.kernel), padding=list(p.padding))
        return (c, *out)

    def warnings(self, p, inputs, out):
        if p.ceil_mode:
            return []
        notes = floor_warning("the pooling", inputs[0], p.kernel, p.strides, p.padding,
                              getattr(p, "dilation", (1, 1)))
        return [n + "; ceil_mode: true keeps them" for n in notes]

    def window(self, p, shape):
        return p.kernel, p.strides, p.padding, getattr(p, "dilation", (1, 1))

    def onnx_refusal(self, p, inputs, out):
        # ONNX's ceil_mode output size keeps a last window that starts in the right padding;
        # PyTorch drops it (formulas.pool_out), so the ONNX graph would compute another shape.
        if not p.ceil_mode:
            return None
        d = getattr(p, "dilation", (1, 1))
        for axis, i, k, s, pad, dd, o in zip(("rows", "columns"), inputs[0][1:], p.kernel, p.strides,
                                             p.padding, d, out[1:]):
            onnx_o = -(-(i + 2 * pad - dd * (k - 1) - 1) // s) + 1
            if onnx_o != o:
                return (f"with ceil_mode PyTorch drops the last window along {axis} because it would "
                        f"start in the right padding (i={i}, k={k}, s={s}, p={pad}: {o} outputs), "
                        f"ONNX keeps it ({onnx_o} outputs); use ceil_mode: false or less padding")
        return None


@register
class MaxPool(_WindowPool):
    """Max pooling over k×k windows.

    Input shape: (C, H, W). Output shape: (C, H', W'), H' = floor((H + 2p - d(k-1) - 1)/s) + 1
    (ceil with `ceil_mode`, dropping a last window that would start in the right padding).

    ```yaml
    - maxpool: {kernel: 3, stride: 2}
    ```
    """

    name = "maxpool"
    Params = MaxPoolParams

    def torch(self, p, inputs, out):
        import torch.nn as nn

        return nn.MaxPool2d(p.kernel, p.strides, p.padding, p.dilation, ceil_mode=p.ceil_mode)


@register
class AvgPool(_WindowPool):
    """Average pooling over k×k windows (`count_include_pad` counts zero padding in the mean).

    Input shape: (C, H, W). Output shape: (C, H', W') as for `maxpool`.

    ```yaml
    - avgpool: {kernel: 2, stride: 2}
    ```
    """

    name = "avgpool"
    Params = AvgPoolParams
    onnx_notes = ("exported as AveragePool; with ceil_mode, a last window that would start in the right "
                  "padding is refused (PyTorch drops it, ONNX keeps it)")

    def torch(self, p, inputs, out):
        import torch.nn as nn

        return nn.AvgPool2d(p.kernel, p.strides, p.padding, ceil_mode=p.ceil_mode,
                            count_include_pad=p.count_include_pad)


class _GlobalPool(Op):
    spatial = "global"
    fresh_output = True

    def infer(self, p, inputs):
        (shape,) = inputs
        need_rank(self.name, shape, (3,))
        return (shape[0], 1, 1)


@register
class GlobalAvgPool(_GlobalPool):
    """Global average pooling: one mean per channel (NiN, GoogLeNet, ResNet heads).

    Input shape: (C, H, W). Output shape: (C, 1, 1).

    ```yaml
    - global_avgpool
    ```
    """

    name = "global_avgpool"

    def torch(self, p, inputs, out):
        import torch.nn as nn

        return nn.AdaptiveAvgPool2d(1)


@register
class GlobalMaxPool(_GlobalPool):
    """Global max pooling: one maximum per channel.

    Input shape: (C, H, W). Output shape: (C, 1, 1).

    ```yaml
    - global_maxpool
    ```
    """

    name = "global_maxpool"

    def torch(self, p, inputs, out):
        import torch.nn as nn

        return nn.AdaptiveMaxPool2d(1)


class AdaptivePoolParams(OpParams):
    size: Pair


@register
class AdaptiveAvgPool(Op):
    """Adaptive average pooling to a fixed output size (bins may overlap when sizes don't divide).

    Input shape: (C, H, W). Output shape: (C, size_h, size_w).

    ```yaml
    - adaptive_avgpool: {size: 7}
    ```
    """

    name = "adaptive_avgpool"
    Params = AdaptivePoolParams
    spatial = "window"
    fresh_output = True
    onnx_notes = ("exported as GlobalAveragePool/AveragePool when the sizes divide, else as a gather of "
                  "each bin's pixels and a mean (exact, slower)")

    def infer(self, p, inputs):
        (shape,) = inputs
        need_rank(self.name, shape, (3,))
        return (shape[0], *p.size)

    def window(self, p, shape):
        # Bin j spans [floor(j*i/o), ceil((j+1)*i/o)): at most ceil(i/o) + 1 pixels wide.
        kernel = tuple(-(-i // o) + (1 if i % o else 0) for i, o in zip(shape[1:], p.size))
        stride = tuple(max(1, i // o) for i, o in zip(shape[1:], p.size))
        return kernel, stride, (0, 0), (1, 1)

    def torch(self, p, inputs, out):
        import torch.nn as nn

        return nn.AdaptiveAvgPool2d(p.size)
