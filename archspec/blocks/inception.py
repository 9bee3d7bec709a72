"""`inception`: parallel branches over the same input, concatenated on channels.

Branches are named (`branch1`, `branch2`, ... as torchvision's GoogLeNet names them); a branch
is one layer or a list of layers. Any factorisation (1×n then n×1, Inception v2/v3) is just a
branch, and a branch that splits and re-joins (Inception v3's Mixed_7b) uses `from` + `concat`.

```yaml
- inception:
    id: inception3a
    branches:
      branch1: {conv: {out: 64, kernel: 1}}
      branch2: [{conv: {out: 96, kernel: 1}}, relu, {conv: {out: 128, kernel: 3, padding: 1}}]
      branch4: [{maxpool: {kernel: 3, stride: 1, padding: 1}}, {conv: {out: 32, kernel: 1}}]
```

By default a list branch is a named group (`inception3a.branch2.0`, as an nn.Sequential
would be). With `flat: true` the branches' layers live directly in the block, as in
torchvision's Inception v3 (`Mixed_5b.branch5x5_1`, `Mixed_5b.branch5x5_2`): the branch names
only label the branches, layers are named by their `id`, and an unnamed layer is named
`<branch>_<n>` (n counting from 1 within its branch). `from` inside a branch may name any
earlier layer of the block (or `input`, the block's input).

Input shape: any shape its branches take. Output shape: the branches' outputs concatenated on
channels (they must agree on every other axis).

```yaml
- inception:
    id: Mixed_7b
    flat: true
    branches:
      branch1x1: {basic_conv: {out: 320, kernel: 1}}
      branch3x3:
        - basic_conv: {id: branch3x3_1, out: 384, kernel: 1}
        - basic_conv: {id: branch3x3_2a, out: 384, kernel: [1, 3], padding: [0, 1]}
        - basic_conv: {id: branch3x3_2b, from: branch3x3_1, out: 384, kernel: [3, 1], padding: [1, 0]}
        - concat: {id: branch3x3, from: [branch3x3_2a, branch3x3_2b]}
      ...
```
"""
from __future__ import annotations

from pydantic import field_validator

from archspec.blocks.registry import Block, BlockParams, register_block
from archspec.names import check_name


class InceptionParams(BlockParams):
    branches: dict
    after: list = []
    flat: bool = False

    @field_validator("branches")
    @classmethod
    def _names(cls, value):
        if len(value) < 1:
            raise ValueError("an inception block needs at least one branch")
        for key in value:
            check_name(key)
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
            if isinstance(layers, list) and p.flat:
                out = self._flat_branch(builder, layers, where, scope, str(branch))
                if name not in builder.id_src:  # the branch's output, unless a layer took its name
                    builder.ids[name] = out
            elif isinstance(layers, list):
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

    @staticmethod
    def _flat_branch(builder, layers, src, scope, branch):
        """A branch built in the block's own scope: a chain from the block's input."""
        if not layers:
            raise src.error(f"branch '{branch}' is an empty list; give it at least one layer", code="AS203")
        current = scope.input
        for index, item in enumerate(layers):
            out, continues = builder.build_layer(item, src.child(index), scope,
                                                 scope.qualify(f"{branch}_{index + 1}"), current)
            if continues:
                current = out
        return current
