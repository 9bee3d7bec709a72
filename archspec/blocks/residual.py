"""`residual`: y = after(body(x) + shortcut(x)) — ResNet's building blocks.

Two forms. A **preset** writes a standard block for you, named like torchvision's
(`conv1`, `bn1`, `conv2`, `bn2`, `conv3`, `bn3`, `downsample.0`, `downsample.1`):

```yaml
- residual: {id: block, preset: basic, out: 128, stride: 2}          # ResNet-18/34
- residual: {preset: bottleneck, width: 64, out: 256}                # ResNet-50+, out = 4·width
- residual: {preset: bottleneck, out: 256, se: {reduction: 16}}      # SE-ResNet (timm names)
- residual: {preset: basic, out: 160, stride: 2, preact: true}       # Wide ResNet / PreAct
```

Preset settings:
- `preset`: `basic` (two 3×3 convs) or `bottleneck` (1×1 reduce, 3×3, 1×1 expand).
- `out`: output channels; `width`: the inner (bottleneck) width. Give either or both; the
  missing one follows from `expansion` (1 for basic, 4 for bottleneck): out = width·expansion.
- `stride` (default 1), `groups` (on the 3×3 conv; ResNeXt), `stride_on`: `3x3` (ResNet v1.5,
  torchvision's default) or `1x1` (the paper's v1: the stride on the first 1×1 conv).
- `preact: true`: He et al. 2016 ("Identity Mappings") order BN → ReLU → conv, no ReLU after
  the add; a projection shortcut takes the pre-activated input (`relu1`) and has no BN.
- `se: {reduction: 16}`: squeeze-and-excitation on the body's output, before the add
  (`se.fc1`, `se.fc2`; see the `se` block). `dropout: p`: dropout before the last conv (WRN).
Post-activation presets end with a ReLU named `relu`; `after: [...]` replaces it.

The **custom** form gives the body as a layer list:

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

The shortcut (both forms) is the identity when the body keeps the shape, else (with
`shortcut: auto`) a projection — a strided 1×1 convolution plus batch norm (`norm`), named
like torchvision's `downsample.0` / `downsample.1`. `shortcut: when_same` is the identity when
the body keeps the shape and *no shortcut at all* otherwise: the block is then just its body
(no add), as in MobileNetV2/V3's, MnasNet's and EfficientNet's inverted residuals, whose
first block of a stage changes the shape. `shortcut: identity | projection | [layers]`
forces one; `shortcut_from` feeds the shortcut from a layer inside the body instead of the
block input. The add is the node `<block>.add`.

`drop_path: p` is stochastic depth on the residual branch (torchvision's `StochasticDepth(p,
"row")`, the node `<block>.stochastic_depth`): in training each sample's branch is dropped with
probability p (the rest scaled by 1/(1-p)) before the add; at inference it is the identity. It
is only added where there is a shortcut, as torchvision's MBConv does.

```yaml
- residual:                     # an inverted residual: a skip only where the shape is kept
    shortcut: when_same
    drop_path: 0.05
    body: [...]
```

Input shape: (C, L), (C, H, W) or (C, D, H, W); presets and projections take the input's
rank (a 3×3 conv is 3×3×3 on (C, D, H, W), as in torchvision's video ResNets, and the stride
applies to every spatial axis). Output shape: the body's output shape, (out, ⌈i/stride⌉ on
every spatial axis) for a preset.
"""
from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

from pydantic import Field, model_validator

from archspec.blocks.registry import Block, BlockParams, register_block
from archspec.blocks.se import SEParams, squeeze_excite
from archspec.errors import SpecError
from archspec.spec.schema import Name

Positive = Annotated[int, Field(ge=1, strict=True)]

PRESET_KEYS = ("out", "width", "stride", "expansion", "groups", "stride_on", "preact", "dropout")


class ResidualParams(BlockParams):
    body: Optional[list] = None
    preset: Optional[Literal["basic", "bottleneck"]] = None
    out: Optional[Positive] = None
    width: Optional[Positive] = None
    stride: Positive = 1
    expansion: Optional[Positive] = None
    groups: Positive = 1
    stride_on: Literal["3x3", "1x1"] = "3x3"
    preact: bool = False
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    se: Optional[SEParams] = None
    shortcut: Union[Literal["auto", "identity", "projection", "when_same"], list] = "auto"
    drop_path: Optional[float] = Field(None, ge=0.0, le=1.0)
    shortcut_id: Name = "downsample"
    shortcut_from: Optional[str] = None
    norm: Optional[bool] = None  # batch norm after the projection conv (default: not for preact)
    after: Optional[list] = None

    @model_validator(mode="after")
    def _form(self):
        if (self.body is None) == (self.preset is None):
            both = ", not both" if self.body is not None else ""
            raise ValueError(f"give either 'preset' (basic or bottleneck) or a custom 'body' list{both}")
        if self.body is not None:
            extra = [k for k in PRESET_KEYS if k in self.model_fields_set]
            if extra:
                raise ValueError(f"'{extra[0]}' only applies to a preset; a custom body sets its own layers")
            return self
        if self.preset == "basic":
            extra = [k for k in ("groups", "stride_on") if k in self.model_fields_set]
            if extra:
                raise ValueError(f"'{extra[0]}' applies to the bottleneck preset (its 3x3 / 1x1 convs); "
                                 "a basic block has two 3x3 convs and the stride on the first")
        if self.out is None and self.width is None:
            raise ValueError(f"a '{self.preset}' preset needs 'out' (output channels) or 'width'")
        expansion = self.expansion or (4 if self.preset == "bottleneck" else 1)
        if self.out is not None and self.width is not None and self.expansion is not None \
                and self.out != self.width * self.expansion:
            raise ValueError(f"out must be width·expansion when all three are given. Received: "
                             f"out={self.out}, width={self.width}, expansion={self.expansion}")
        if self.out is not None and self.width is None and self.out % expansion:
            raise ValueError(f"out must be a multiple of expansion (or give 'width'). Received: "
                             f"out={self.out}, expansion={expansion}")
        width = self.width or self.out // expansion
        if width % self.groups:
            raise ValueError(f"groups must divide the width. Received: width={width}, groups={self.groups}")
        return self

    @property
    def widths(self) -> tuple[int, int]:
        expansion = self.expansion or (4 if self.preset == "bottleneck" else 1)
        width = self.width or self.out // expansion
        return width, self.out or width * expansion


@register_block
class Residual(Block):
    name = "residual"
    Params = ResidualParams
    nested = ("body", "shortcut", "after")

    def expand(self, builder, p, scope, src):
        x = scope.input
        if p.preset is not None:
            body_out, preact_x = _preset_body(builder, p, scope, src, x)
        else:
            body_out, preact_x = builder.build_list(p.body, src.child("body"), scope), None
        if p.se is not None:
            where = src.child("se")
            group = builder.enter_group(scope.qualify("se"), "se", where, scope, body_out)
            body_out = squeeze_excite(builder, group, where, body_out, p.se)
            builder.ids[group.prefix] = body_out
        if p.shortcut_from is not None:
            x = builder.resolve(p.shortcut_from, scope, src.child("shortcut_from"), "residual shortcut_from")
        short = self._shortcut(builder, p, scope, src, x, body_out, preact_x)
        if short is None:  # `when_same` and the body changes the shape: the block is its body
            return self._after(builder, p, scope, src, body_out)
        if p.drop_path is not None:
            body_out = builder.add_op("drop_path", scope.qualify("stochastic_depth"), [body_out], src, scope,
                                      p=p.drop_path)
        try:
            merged = builder.add_op("add", scope.qualify("add"), [body_out, short], src, scope)
        except SpecError as exc:
            if exc.hint is None:
                exc.hint = ("the body changes the shape, so the shortcut must too: use 'shortcut: auto' "
                            "(a projection where needed)" if short == x else
                            "the shortcut's output must have the body's output shape")
            raise
        return self._after(builder, p, scope, src, merged)

    @staticmethod
    def _after(builder, p, scope, src, merged):
        if p.after is not None:
            if not p.after:
                return merged
            after = builder.enter_group(scope.qualify("after"), "seq", src.child("after"), scope, merged)
            return builder.build_list(p.after, src.child("after"), after)
        if p.preset is not None and not p.preact:
            return builder.add_op("relu", scope.qualify("relu"), [merged], src, scope)
        return merged

    def _shortcut(self, builder, p, scope, src, x, body_out, preact_x):
        name = scope.qualify(p.shortcut_id)
        if isinstance(p.shortcut, list):
            inner = builder.enter_group(name, "shortcut", src.child("shortcut"), scope, x)
            out = builder.build_list(p.shortcut, src.child("shortcut"), inner)
            builder.ids[name] = out
            return out
        same = builder.shape(x) == builder.shape(body_out)
        if p.shortcut == "identity" or (p.shortcut in ("auto", "when_same") and same):
            return x
        if p.shortcut == "when_same":
            return None
        if preact_x is not None and p.shortcut_from is None:
            x = preact_x  # pre-activation: project the pre-activated input
        norm = p.norm if p.norm is not None else not p.preact
        stride = p.stride if p.preset is not None else None
        return project(builder, name, src, scope, x, builder.shape(body_out), norm, stride)


def _preset_body(builder, p, scope, src, x):
    """The layers of a basic / bottleneck block. Returns (body output, pre-activated input)."""
    width, out = p.widths
    q = scope.qualify

    def conv(i, h, channels, kernel, stride=1, groups=1):
        return builder.add_op("conv", q(f"conv{i}"), [h], src, scope, out=channels, kernel=kernel,
                              stride=stride, padding=kernel // 2, groups=groups, bias=False)

    def norm_act(i, h, act=True):
        h = builder.add_op("batchnorm", q(f"bn{i}"), [h], src, scope)
        return builder.add_op("relu", q(f"relu{i}"), [h], src, scope) if act else h

    def drop(h, last):
        if p.dropout and last:
            return builder.add_op("dropout", q("dropout"), [h], src, scope, p=p.dropout)
        return h

    if p.preset == "basic":
        specs = [(width, 3, p.stride, 1), (out, 3, 1, 1)]
    else:
        s1, s3 = (p.stride, 1) if p.stride_on == "1x1" else (1, p.stride)
        specs = [(width, 1, s1, 1), (width, 3, s3, p.groups), (out, 1, 1, 1)]
    h, preact_x = x, None
    for i, (channels, kernel, stride, groups) in enumerate(specs, start=1):
        last = i == len(specs)
        if p.preact:
            h = norm_act(i, h)
            if i == 1:
                preact_x = h
            h = conv(i, drop(h, last), channels, kernel, stride, groups)
        else:
            h = conv(i, drop(h, last), channels, kernel, stride, groups)
            h = norm_act(i, h, act=not last)
    return h, preact_x


def project(builder, name, src, scope, x, target, norm=True, stride=None):
    """A strided 1×1 conv (+ batch norm) taking `x` to the `target` shape."""
    shape = builder.shape(x)
    c_out = target[0]
    if stride is None and len(shape) == len(target) > 1:  # a 1×1 conv with stride s gives ⌈i/s⌉ pixels
        stride = [max(1, -(-i // o)) for i, o in zip(shape[1:], target[1:])]
    elif stride is None:  # no spatial axes, or the rank changed: the conv or the add says so
        stride = 1
    inner = builder.enter_group(name, "shortcut", src, scope, x)
    out = builder.add_op("conv", inner.qualify("0"), [x], src, inner, out=c_out, kernel=1,
                         stride=stride, bias=False)
    if norm:
        out = builder.add_op("batchnorm", inner.qualify("1"), [out], src, inner)
    builder.ids[name] = out
    return out
