"""Resizing without weights: `upsample`."""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import model_validator

from archspec.ops.registry import Op, OpParams, Pair, need_rank, register


class UpsampleParams(OpParams):
    scale: Optional[Pair] = None
    size: Optional[Pair] = None
    mode: Literal["nearest", "bilinear"] = "nearest"
    align_corners: Optional[bool] = None

    @model_validator(mode="after")
    def _check(self):
        if (self.scale is None) == (self.size is None):
            raise ValueError("give exactly one of 'scale' or 'size'")
        if self.align_corners is not None and self.mode == "nearest":
            raise ValueError("align_corners only applies to mode 'bilinear'")
        return self


@register
class Upsample(Op):
    """Upsampling by an integer factor or to a fixed size (nearest or bilinear).

    Input shape: (C, H, W). Output shape: (C, H·scale, W·scale) or (C, size_h, size_w).

    ```yaml
    - upsample: {scale: 2, mode: bilinear, align_corners: false}
    ```
    """

    name = "upsample"
    Params = UpsampleParams
    fresh_output = True

    def infer(self, p, inputs):
        need_rank("upsample", inputs[0], (3,))
        c, h, w = inputs[0]
        if p.size is not None:
            return (c, *p.size)
        return (c, h * p.scale[0], w * p.scale[1])

    def window(self, p, shape):
        return (1, 1), (1, 1), (0, 0), (1, 1)

    def torch(self, p, inputs, out):
        import torch.nn as nn

        if p.size is not None:
            return nn.Upsample(size=p.size, mode=p.mode, align_corners=p.align_corners)
        return nn.Upsample(scale_factor=tuple(float(s) for s in p.scale), mode=p.mode,
                           align_corners=p.align_corners)
