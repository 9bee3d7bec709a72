"""`residual`: y = after(body(x) + shortcut(x)).

The shortcut is the identity when the body keeps the shape, else (with `shortcut: auto`) a
projection — a strided 1×1 convolution plus batch norm, named like torchvision's
`downsample.0` / `downsample.1`. `shortcut_from` feeds the shortcut from a layer inside the
body instead of the block input (pre-activation ResNets project the pre-activated input).

```yaml
- residual:
    id: block1
    body:
      - conv: {id: conv1, out: 64, kernel: 3, padding: 1, bias: false}
      - batchnorm: {id: bn1}
      - relu
      - conv: {id: conv2, out: 64, kernel: 3, padding: 1, bias: false}
      - batchnorm: {id: bn2}
    after: [relu]
```
"""
from __future__ import annotations

from typing import Literal, Optional, Union

from archspec.blocks.registry import Block, BlockParams, register_block


class ResidualParams(BlockParams):
    body: list
    shortcut: Union[Literal["auto", "identity", "projection"], list] = "auto"
    shortcut_id: str = "downsample"
    shortcut_from: Optional[str] = None
    norm: bool = True  # batch norm after the projection conv
    after: list = []


@register_block
class Residual(Block):
    name = "residual"
    Params = ResidualParams
    nested = ("body", "shortcut", "after")

    def expand(self, builder, p, scope, src):
        x = scope.input
        body_out = builder.build_list(p.body, src.child("body"), scope)
        if p.shortcut_from is not None:
            x = builder.resolve(p.shortcut_from, scope, src.child("shortcut_from"), "residual shortcut_from")
        short = self._shortcut(builder, p, scope, src, x, body_out)
        merged = builder.add_op("add", scope.qualify("add"), [body_out, short], src, scope)
        if p.after:
            after = builder.enter_group(scope.qualify("after"), "seq", src.child("after"), scope, merged)
            return builder.build_list(p.after, src.child("after"), after)
        return merged

    def _shortcut(self, builder, p, scope, src, x, body_out):
        name = scope.qualify(p.shortcut_id)
        if isinstance(p.shortcut, list):
            inner = builder.enter_group(name, "shortcut", src.child("shortcut"), scope, x)
            return builder.build_list(p.shortcut, src.child("shortcut"), inner)
        same = builder.shape(x) == builder.shape(body_out)
        if p.shortcut == "identity" or (p.shortcut == "auto" and same):
            return x
        return project(builder, name, src, scope, x, builder.shape(body_out), p.norm)


def project(builder, name, src, scope, x, target, norm=True):
    """A strided 1×1 conv (+ batch norm) taking `x` to the `target` shape."""
    c_in, h_in, w_in = builder.shape(x)
    c_out, h_out, w_out = target
    stride = max(1, h_in // h_out), max(1, w_in // w_out)
    inner = builder.enter_group(name, "shortcut", src, scope, x)
    out = builder.add_op("conv", inner.qualify("0"), [x], src, inner, out=c_out, kernel=1,
                         stride=stride, bias=False)
    if norm:
        out = builder.add_op("batchnorm", inner.qualify("1"), [out], src, inner)
    builder.ids[name] = out
    return out
