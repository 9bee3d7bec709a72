"""`dense` and `transition`: DenseNet's blocks (Huang et al. 2017), named like torchvision's.

`dense` — a dense block of `layers` layers. Layer i sees the concatenation of the block input
and every earlier layer's output, and adds `growth` channels:

    denselayer<i>: norm1 → relu1 → conv1 (1×1, bottleneck·growth, no bias)
                   → norm2 → relu2 → conv2 (3×3, growth, no bias) [→ dropout]

The block's output is the concatenation of its input and all `layers` new feature maps.
`bottleneck: 0` drops the 1×1 reduction (plain DenseNet, not DenseNet-B): the layer is then
norm1 → relu1 → conv1 (3×3, growth).

Input shape: (C, L), (C, H, W) or (C, D, H, W). Output shape: (C + layers·growth, same spatial
size).

```yaml
- dense: {id: denseblock1, layers: 6, growth: 32, bottleneck: 4, drop_rate: 0}
```

`transition` — between dense blocks: norm → relu → conv (1×1, ⌊C·compression⌋ or `out`, no
bias) → pool (2×2 average pooling, stride 2).

Input shape: (C, *spatial) of rank 2 to 4. Output shape: (⌊C·compression⌋, ⌊i/2⌋ on every
spatial axis). The convolutions and the pooling window take the input's rank (3×3×3 and
2×2×2 on a (C, D, H, W) input).

```yaml
- transition: {id: transition1, compression: 0.5}
```
"""
from __future__ import annotations

from typing import Annotated, Optional

from pydantic import Field

from archspec.blocks.registry import Block, BlockParams, register_block

Positive = Annotated[int, Field(ge=1, strict=True)]
NonNegative = Annotated[int, Field(ge=0, strict=True)]


class DenseParams(BlockParams):
    layers: Positive
    growth: Positive = 32
    bottleneck: NonNegative = 4  # bn_size: the 1×1 conv gives bottleneck·growth channels
    drop_rate: float = Field(0.0, ge=0.0, lt=1.0)


class TransitionParams(BlockParams):
    compression: float = Field(0.5, gt=0.0, le=1.0)
    out: Optional[Positive] = None


def _need_image(src, shape, what):
    if len(shape) not in (2, 3, 4):
        raise src.error(f"{what} needs a (C, L), (C, H, W) or (C, D, H, W) input. Received: {list(shape)}",
                        code="AS401")


@register_block
class Dense(Block):
    name = "dense"
    Params = DenseParams

    def expand(self, builder, p, scope, src):
        _need_image(src, builder.shape(scope.input), "a dense block")
        features = [scope.input]
        for i in range(1, p.layers + 1):
            layer = builder.enter_group(scope.qualify(f"denselayer{i}"), "dense_layer", src, scope)
            q = layer.qualify
            if len(features) == 1:
                h = features[0]
            else:  # each layer reads everything before it (torchvision concatenates in forward)
                h = builder.add_op("concat", q("cat"), list(features), src, layer)
            h = builder.add_op("batchnorm", q("norm1"), [h], src, layer)
            h = builder.add_op("relu", q("relu1"), [h], src, layer)
            if p.bottleneck:
                h = builder.add_op("conv", q("conv1"), [h], src, layer, out=p.bottleneck * p.growth,
                                   kernel=1, bias=False)
                h = builder.add_op("batchnorm", q("norm2"), [h], src, layer)
                h = builder.add_op("relu", q("relu2"), [h], src, layer)
                h = builder.add_op("conv", q("conv2"), [h], src, layer, out=p.growth, kernel=3,
                                   padding=1, bias=False)
            else:
                h = builder.add_op("conv", q("conv1"), [h], src, layer, out=p.growth, kernel=3,
                                   padding=1, bias=False)
            if p.drop_rate:
                h = builder.add_op("dropout", q("dropout"), [h], src, layer, p=p.drop_rate)
            builder.ids[layer.prefix] = h
            features.append(h)
        return builder.add_op("concat", scope.qualify("cat"), features, src, scope)


@register_block
class Transition(Block):
    name = "transition"
    Params = TransitionParams

    def expand(self, builder, p, scope, src):
        shape = builder.shape(scope.input)
        _need_image(src, shape, "a transition")
        out = p.out if p.out is not None else int(shape[0] * p.compression + 1e-9)
        if out < 1:
            raise src.error(f"transition: compression {p.compression} of {shape[0]} channels leaves none",
                            code="AS401")
        q = scope.qualify
        h = builder.add_op("batchnorm", q("norm"), [scope.input], src, scope)
        h = builder.add_op("relu", q("relu"), [h], src, scope)
        h = builder.add_op("conv", q("conv"), [h], src, scope, out=out, kernel=1, bias=False)
        return builder.add_op("avgpool", q("pool"), [h], src, scope, kernel=2, stride=2)
