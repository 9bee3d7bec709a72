"""`se`: squeeze-and-excitation (Hu et al. 2018) — a learned per-channel scale of the input.

    global avgpool → 1×1 conv `fc1` (C/r, bias) → relu → 1×1 conv `fc2` (C, bias) → sigmoid
    → multiply the input by the (C, 1, 1) gate (broadcast over H, W)

Input shape: (C, L), (C, H, W) or (C, D, H, W). Output shape: the same (the gate is (C, 1),
(C, 1, 1) or (C, 1, 1, 1) and the 1×1 convolutions take the input's rank). Parameters:
2·C·s + s + C with s the squeeze width: `channels` when given, else C/r rounded to a multiple
of `divisor` by the rule `round` names:

- `make_divisible` (the default): torchvision's `_make_divisible(C // r, divisor)` — the
  nearest multiple, at least `divisor`, and never more than 10 % below C // r. It is the rule
  of torchvision's MobileNetV3 (and of the `make_divisible()` expression function), so a spec
  written from torchvision's code gets torchvision's widths: 72 channels, r = 4, divisor 8 → 24.
- `nearest`: timm's `SEModule` (`make_divisible(C / r, divisor, round_limit=0)`) — the nearest
  multiple, at least `divisor`, even when that is well below C / r: 72, r = 4, divisor 8 → 16.

With the default `divisor: 1` and r dividing C (every SE-ResNet) both give C / r. Nodes are
named like timm's `SEModule` and torchvision's `SqueezeExcitation` (`se.fc1`, `se.fc2`), so a
`residual` with `se:` loads timm `seresnet*` weights.

```yaml
- se: {id: se, reduction: 16}            # 256 channels -> fc1 256→16, fc2 16→256
- se: {reduction: 4, divisor: 8, act: relu, gate: hardsigmoid}   # MobileNetV3's
- se: {reduction: 4, divisor: 8, round: nearest}                 # timm's rounding
```
"""
from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import Field

from archspec.blocks.registry import Block, BlockParams, register_block
from archspec.spec.expr import make_divisible

Positive = Annotated[int, Field(ge=1, strict=True)]


class SEParams(BlockParams):
    reduction: Positive = 16
    channels: Optional[Positive] = None  # the squeeze width, overriding reduction
    divisor: Positive = 1
    round: Literal["make_divisible", "nearest"] = "make_divisible"
    act: str = "relu"
    gate: str = "sigmoid"


def squeeze_width(channels: int, p: SEParams) -> int:
    """The width of fc1's output (see the module docstring for the two rounding rules)."""
    if p.channels is not None:
        return p.channels
    d = p.divisor
    if p.round == "make_divisible":
        return make_divisible(channels // p.reduction, d)
    return max(d, int(channels / p.reduction + d / 2) // d * d)


def squeeze_excite(builder, scope, src, x: str, p: SEParams) -> str:
    """Add the SE nodes for input `x` inside `scope` (names `<scope>.fc1` ...); return the output."""
    from archspec.ops import OPS

    shape = builder.shape(x)
    if len(shape) not in (2, 3, 4):
        raise src.error("squeeze-and-excitation needs a (C, L), (C, H, W) or (C, D, H, W) input. "
                        f"Received: {list(shape)}", code="AS401")
    for key in ("act", "gate"):
        kind = getattr(p, key)
        if kind not in OPS or OPS[kind].arity != (1, 1):
            from archspec.errors import did_you_mean

            raise src.error(f"se: '{key}: {kind}' is not an element-wise op",
                            hint=did_you_mean(kind, OPS) or "e.g. relu, sigmoid", code="AS203")
    c = shape[0]
    s = squeeze_width(c, p)
    h = builder.add_op("global_avgpool", scope.qualify("pool"), [x], src, scope)
    h = builder.add_op("conv", scope.qualify("fc1"), [h], src, scope, out=s, kernel=1, bias=True)
    h = builder.add_op(p.act, scope.qualify("act"), [h], src, scope)
    h = builder.add_op("conv", scope.qualify("fc2"), [h], src, scope, out=c, kernel=1, bias=True)
    h = builder.add_op(p.gate, scope.qualify("gate"), [h], src, scope)
    return builder.add_op("mul", scope.qualify("scale"), [x, h], src, scope)


@register_block
class SqueezeExcite(Block):
    name = "se"
    Params = SEParams

    def expand(self, builder, p, scope, src):
        return squeeze_excite(builder, scope, src, scope.input, p)
