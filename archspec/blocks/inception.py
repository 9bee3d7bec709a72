"""`inception`: parallel branches over the same input, concatenated on channels.

Branches are named (`branch1`, `branch2`, ... as torchvision names them); a branch is one
layer or a list of layers. Any factorisation (1×n then n×1, Inception v2/v3) is just a branch.

```yaml
- inception:
    id: inception3a
    branches:
      branch1: {conv: {out: 64, kernel: 1}}
      branch2: [{conv: {out: 96, kernel: 1}}, relu, {conv: {out: 128, kernel: 3, padding: 1}}]
      branch4: [{maxpool: {kernel: 3, stride: 1, padding: 1}}, {conv: {out: 32, kernel: 1}}]
```
"""
from __future__ import annotations

from pydantic import field_validator

import re

from archspec.blocks.registry import Block, BlockParams, register_block
from archspec.spec.schema import ID_PATTERN


class InceptionParams(BlockParams):
    branches: dict
    after: list = []

    @field_validator("branches")
    @classmethod
    def _names(cls, value):
        if len(value) < 1:
            raise ValueError("an inception block needs at least one branch")
        for key in value:
            if not re.match(ID_PATTERN, str(key)):
                raise ValueError(f"branch names must be identifiers. Received: '{key}'")
        return value


@register_block
class Inception(Block):
    name = "inception"
    Params = InceptionParams
    nested = ("branches", "after")

    def expand(self, builder, p, scope, src):
        outputs = []
        for branch, layers in p.branches.items():
            where = src.child("branches", branch)
            name = scope.qualify(str(branch))
            if isinstance(layers, list):
                inner = builder.enter_group(name, "branch", where, scope)
                out = builder.build_list(layers, where, inner)
                builder.ids[name] = out
            else:
                out, _ = builder.build_layer(layers, where, scope, name, scope.input)
            outputs.append(out)
        merged = builder.add_op("concat", scope.qualify("cat"), outputs, src, scope)
        if p.after:
            after = builder.enter_group(scope.qualify("after"), "seq", src.child("after"), scope, merged)
            return builder.build_list(p.after, src.child("after"), after)
        return merged
