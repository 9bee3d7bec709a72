"""Merges of several inputs: `add` (residual), `concat` (inception, dense, U-Net skips) and
`mul` (squeeze-and-excitation's channel scale)."""
from __future__ import annotations

from math import prod

from archspec.errors import ShapeError
from archspec.ops.registry import Op, register
from archspec.ops.saving import CHANNELS_LAST, DENSE, saved_input, saved_new


def _shapes(inputs) -> str:
    return ", ".join(str(list(s)) for s in inputs)


@register
class Add(Op):
    """Element-wise sum of two or more inputs of equal shape (residual connections).

    Input shapes: all equal. Output shape: the same.

    ```yaml
    - add: {from: [conv2, shortcut]}
    ```
    """

    name = "add"
    fresh_output = True
    arity = (2, 64)
    in_place = "any"  # accumulates into an input nothing else reads (torchvision's out += identity)
    flops_rule = "1 per output element for each input after the first (the additions)"
    saves_rule = "nothing"

    def flops(self, p, inputs, out):
        return (len(inputs) - 1) * prod(out)

    def saved(self, p, inputs, out, ctx):
        return []

    def infer(self, p, inputs):
        if any(s != inputs[0] for s in inputs):
            raise ShapeError("add needs inputs of equal shape", code="AS403", shapes=_shapes(inputs))
        return inputs[0]

    def torch(self, p, inputs, out):
        from archspec.compile import modules

        return modules.Add()


@register
class Mul(Op):
    """Element-wise product; a (C, 1, 1) input is broadcast over H and W (SE's channel scale),
    and likewise (C, 1) over L and (C, 1, 1, 1) over D, H and W.

    Input shapes: equal, or (C, H, W) with (C, 1, 1), the same on other ranks.
    Output shape: the larger one.

    ```yaml
    - mul: {from: [input, excite]}
    ```
    """

    name = "mul"
    fresh_output = True
    arity = (2, 64)
    flops_rule = "1 per output element for each input after the first (the multiplications)"
    saves_rule = ("each factor whose partner requires grad: with more than two inputs, the running "
                  "products too (x0·x1, then that times x2, ...)")

    def flops(self, p, inputs, out):
        return (len(inputs) - 1) * prod(out)

    def saved(self, p, inputs, out, ctx):
        # The module multiplies left to right; each product keeps its left factor for the right
        # one's gradient and its right factor for the left one's (only where those require grad).
        kept = []
        left, left_grad, left_numel = saved_input(0), ctx.needs_grad[0], prod(inputs[0])
        for k in range(1, len(inputs)):
            if ctx.needs_grad[k]:
                kept.append(left)
            if left_grad:
                kept.append(saved_input(k))
            left_numel = max(left_numel, prod(inputs[k]))  # the broadcast product's size
            left, left_grad = saved_new(ctx.batch * left_numel), left_grad or ctx.needs_grad[k]
        return kept

    def infer(self, p, inputs):
        full = max(inputs, key=lambda s: (len(s), sum(s)))
        for s in inputs:
            if s != full and not (len(s) == len(full) and s[0] == full[0] and all(d == 1 for d in s[1:])):
                raise ShapeError("mul needs equal shapes, or (C, 1, ...) beside (C, ...) of the same rank", code="AS403",
                                 shapes=_shapes(inputs))
        return full

    def torch(self, p, inputs, out):
        from archspec.compile import modules

        return modules.Mul()


@register
class Concat(Op):
    """Concatenation along the channel axis (inception branches, dense blocks, U-Net skips).

    Input shapes: (C_i, H, W) with equal H, W. Output shape: (ΣC_i, H, W).

    ```yaml
    - concat: {from: [up1, enc3]}
    ```
    """

    name = "concat"
    fresh_output = True
    arity = (1, 1024)
    moves_data = True
    flops_rule = "0: copies its inputs side by side"
    saves_rule = "nothing"

    def saved(self, p, inputs, out, ctx):
        return []

    def output_layout(self, p, inputs, out, ctx):
        return CHANNELS_LAST if all(layout == CHANNELS_LAST for layout in ctx.layouts) else DENSE

    def infer(self, p, inputs):
        rest = inputs[0][1:]
        if any(len(s) != len(inputs[0]) or s[1:] != rest for s in inputs):
            raise ShapeError("concat needs equal sizes on every axis but channels", code="AS403",
                             shapes=_shapes(inputs))
        return (sum(s[0] for s in inputs), *rest)

    def torch(self, p, inputs, out):
        from archspec.compile import modules

        return modules.Concat()
