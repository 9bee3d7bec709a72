"""Resizing without weights: `upsample` and `pixel_shuffle`.

Receptive fields (`field_map`): an output pixel reads one input pixel (nearest, pixel shuffle)
or two neighbours (linear modes); the positions advance by input/output size per output on
average, so the field is an approximation (`rf_exact: false`) unless the sizes are equal."""
from __future__ import annotations

from math import prod
from typing import Literal, Optional

from pydantic import model_validator

from archspec.errors import ShapeError
from archspec.ops.registry import SPATIAL, AxisMap, Op, OpParams, Positive, Size, need_rank, per_axis, register

# Interpolating modes, by the number of spatial axes they work on (PyTorch's rule).
LINEAR_MODES = {"linear": 1, "bilinear": 2, "trilinear": 3}


class UpsampleParams(OpParams):
    scale: Optional[Size] = None
    size: Optional[Size] = None
    mode: Literal["nearest", "linear", "bilinear", "trilinear"] = "nearest"
    align_corners: Optional[bool] = None

    @model_validator(mode="after")
    def _check(self):
        if (self.scale is None) == (self.size is None):
            raise ValueError("give exactly one of 'scale' or 'size'")
        if self.align_corners is not None and self.mode == "nearest":
            raise ValueError("align_corners only applies to the interpolating modes "
                             "(linear, bilinear, trilinear)")
        return self


@register
class Upsample(Op):
    """Upsampling by integer factors or to a fixed size: `nearest` on any rank, or linear
    interpolation — `linear` on (C, L), `bilinear` on (C, H, W), `trilinear` on (C, D, H, W).

    Input shape: (C, L), (C, H, W) or (C, D, H, W). Output shape: (C, i·scale per axis) or
    (C, *size).

    ```yaml
    - upsample: {scale: 2, mode: bilinear, align_corners: false}
    ```
    """

    name = "upsample"
    Params = UpsampleParams
    fresh_output = True
    flops_rule = ("nearest: 0 (copies); linear modes: 2^(n+1) − 1 per output element for n interpolated "
                  "axes (2^n weighted neighbours: 3 linear, 7 bilinear, 15 trilinear)")
    saves_rule = "nothing (its backward needs only sizes)"

    def moves_data_only(self, p):
        return p.mode == "nearest"

    def flops(self, p, inputs, out):
        if self.moves_data_only(p):
            return 0
        return (2 ** len(inputs[0]) - 1) * prod(out)  # n spatial axes: 2^(n+1) - 1

    def saved(self, p, inputs, out, ctx):
        return []
    onnx_notes = ("exported as Resize (mode nearest or linear); `linear` on (C, L) as a decomposition "
                  "(GatherND, Sub, Mul, Add)")

    def infer(self, p, inputs):
        (shape,) = inputs
        need_rank("upsample", shape, SPATIAL)
        n = len(shape) - 1
        if p.mode in LINEAR_MODES and LINEAR_MODES[p.mode] != n:
            want = next(m for m, k in LINEAR_MODES.items() if k == n)
            raise ShapeError(f"mode '{p.mode}' interpolates {LINEAR_MODES[p.mode]} spatial axes; "
                             f"use '{want}' (or 'nearest') on this input", input=list(shape))
        if p.size is not None:
            return (shape[0], *per_axis(p.size, shape, "size"))
        return (shape[0], *(i * s for i, s in zip(shape[1:], per_axis(p.scale, shape, "scale"))))

    def field_map(self, p, shape, out):
        # nearest: output o reads input floor(o * i/n). Linear modes read the two neighbours of
        # (o + 1/2) * i/n - 1/2 (align_corners: o * (i-1)/(n-1)), clamped to the input.
        maps = []
        for i, n in zip(shape[1:], out[1:]):
            if p.mode == "nearest":
                maps.append(AxisMap(1, i / n, 0.0, i == n, 0.0 if i == n else 1.0))
                continue
            step = (i - 1) / (n - 1) if p.align_corners and n > 1 else i / n
            offset = 0.0 if p.align_corners else max(0.0, (step - 1) / 2)
            maps.append(AxisMap(1 if i == n else 2, step, offset, i == n, 0.0 if i == n else 1.0))
        return tuple(maps)

    def torch(self, p, inputs, out):
        import torch.nn as nn

        if p.size is not None:
            return nn.Upsample(size=per_axis(p.size, inputs[0], "size"), mode=p.mode,
                               align_corners=p.align_corners)
        return nn.Upsample(scale_factor=tuple(float(s) for s in per_axis(p.scale, inputs[0], "scale")),
                           mode=p.mode, align_corners=p.align_corners)


class PixelShuffleParams(OpParams):
    factor: Positive


@register
class PixelShuffle(Op):
    """Sub-pixel upsampling (Shi et al. 2016): channels c·r² + i·r + j become pixel (i, j) of an
    r×r cell of channel c (PyTorch's PixelShuffle, r = `factor`). 2-D only.

    Input shape: (C·r², H, W). Output shape: (C, H·r, W·r).

    ```yaml
    - pixel_shuffle: {factor: 2}
    ```
    """

    name = "pixel_shuffle"
    Params = PixelShuffleParams
    fresh_output = True
    moves_data = True
    keeps_layout = False
    flops_rule = "0: moves channels into pixels"
    saves_rule = "nothing"

    def saved(self, p, inputs, out, ctx):
        return []
    onnx_notes = "exported as DepthToSpace with mode CRD (PyTorch's channel order)"

    def infer(self, p, inputs):
        (shape,) = inputs
        need_rank("pixel_shuffle", shape, (3,), hint=" (PyTorch's pixel shuffle is 2-D only)")
        c, h, w = shape
        r2 = p.factor * p.factor
        if c % r2:
            raise ShapeError("pixel_shuffle needs channels divisible by factor²", channels=c,
                             factor=p.factor)
        return (c // r2, h * p.factor, w * p.factor)

    def field_map(self, p, shape, out):
        # Output pixel o comes from input pixel floor(o / r) (of another channel).
        return (AxisMap(1, 1 / p.factor, 0.0, p.factor == 1, 1 - 1 / p.factor),) * 2

    def torch(self, p, inputs, out):
        import torch.nn as nn

        return nn.PixelShuffle(p.factor)
