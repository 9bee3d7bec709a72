"""`seq`: a named group of layers applied in order (PyTorch's nn.Sequential).

Unnamed layers inside are named by their index, so a group written like torchvision's
`features` gives state_dict keys `features.0.weight`, `features.3.weight`, ...

Input shape: what its first layer takes. Output shape: its last layer's output shape.

```yaml
- seq:
    id: features
    layers:
      - conv: {out: 64, kernel: 3, padding: 1}
      - relu
```
"""
from __future__ import annotations

from archspec.blocks.registry import Block, BlockParams, register_block


class SeqParams(BlockParams):
    layers: list


@register_block
class Seq(Block):
    name = "seq"
    Params = SeqParams
    nested = ("layers",)

    def expand(self, builder, p, scope, src):
        return builder.build_list(p.layers, src.child("layers"), scope)
