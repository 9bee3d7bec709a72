"""Channel plumbing without weights: `channel_shuffle`, and `chunk` / `channel_slice` to take
part of the channels (ShuffleNetV2's `x1, x2 = x.chunk(2, dim=1)`).

They act on the channel (or feature) axis of any input rank and keep every spatial axis."""
from __future__ import annotations

from pydantic import model_validator

from archspec.errors import ShapeError
from archspec.ops.registry import NonNegative, Op, OpParams, Positive, need_rank, register
from archspec.ops.saving import DENSE, STRIDED

ANY_RANK = (1, 2, 3, 4)


class _Plumbing(Op):
    """Moves data without arithmetic; autograd keeps nothing for it (its backward only needs
    sizes)."""

    moves_data = True
    saves_rule = "nothing"

    def saved(self, p, inputs, out, ctx):
        return []


def _slice_layout(ctx, whole: bool) -> str:
    """A channel slice of a batch is a strided view; of a single dense sample it is dense."""
    if whole:
        return ctx.layouts[0]
    return DENSE if ctx.batch == 1 and ctx.layouts[0] == DENSE else STRIDED


class ChannelShuffleParams(OpParams):
    groups: Positive


@register
class ChannelShuffle(_Plumbing):
    """Channel shuffle (ShuffleNet): view the C channels as (groups, C/groups), transpose, and
    flatten back, so channel g·(C/groups) + i moves to i·groups + g.

    Input shape: (C, ...) with C divisible by groups. Output shape: same.

    ```yaml
    - channel_shuffle: {groups: 2}
    ```
    """

    name = "channel_shuffle"
    Params = ChannelShuffleParams
    aliases_input = True  # with groups 1 the result is a view of the input
    keeps_layout = False  # the reshape after the transpose copies into a dense tensor
    onnx_notes = "exported as Reshape, Transpose, Reshape"
    flops_rule = "0: copies the channels in a new order"

    def output_aliases(self, p, ctx):
        return p.groups == 1

    def infer(self, p, inputs):
        (shape,) = inputs
        need_rank("channel_shuffle", shape, ANY_RANK)
        if shape[0] % p.groups:
            raise ShapeError("groups must divide the channels", channels=shape[0], groups=p.groups)
        return shape

    def torch(self, p, inputs, out):
        from archspec.compile import modules

        return modules.ChannelShuffle(p.groups)


class ChunkParams(OpParams):
    parts: Positive = 2
    index: NonNegative

    @model_validator(mode="after")
    def _check(self):
        if self.index >= self.parts:
            raise ValueError(f"index counts from 0 and must be below parts. Received: "
                             f"parts={self.parts}, index={self.index}")
        return self


def chunk_range(channels: int, parts: int, index: int) -> tuple[int, int]:
    """[start, stop) of torch.chunk(x, parts, dim=1)[index]: every part has ceil(C/parts)
    channels except a smaller last one, so fewer than `parts` parts exist when C is small."""
    size = -(-channels // parts)
    start = index * size
    return start, min(channels, start + size)


@register
class Chunk(_Plumbing):
    """One part of the channels split as torch.chunk does: `parts` parts of ⌈C/parts⌉ channels
    (the last one smaller), of which part `index` (from 0). ShuffleNetV2's two branches are
    `chunk: {parts: 2, index: 0}` and `chunk: {parts: 2, index: 1}` on the same input.

    Input shape: (C, ...). Output shape: (channels of the part, ...).

    ```yaml
    - chunk: {id: x2, from: input, parts: 2, index: 1}
    ```
    """

    name = "chunk"
    Params = ChunkParams
    aliases_input = True  # a view of the input
    onnx_notes = "exported as Split on the channel axis"
    flops_rule = "0: a view of the input"

    def view_layout(self, p, inputs, ctx):
        return _slice_layout(ctx, chunk_range(inputs[0][0], p.parts, p.index) == (0, inputs[0][0]))

    def infer(self, p, inputs):
        (shape,) = inputs
        need_rank("chunk", shape, ANY_RANK)
        start, stop = chunk_range(shape[0], p.parts, p.index)
        if start >= shape[0]:
            size = -(-shape[0] // p.parts)
            exist = -(-shape[0] // size)
            raise ShapeError(f"part {p.index} would be empty: torch.chunk cuts {shape[0]} channels into "
                             f"parts of ceil({shape[0]}/{p.parts}) = {size}, so only {exist} parts exist",
                             channels=shape[0], parts=p.parts, index=p.index)
        return (stop - start, *shape[1:])

    def torch(self, p, inputs, out):
        from archspec.compile import modules

        return modules.Chunk(p.parts, p.index)


class ChannelSliceParams(OpParams):
    start: NonNegative = 0
    stop: Positive

    @model_validator(mode="after")
    def _check(self):
        if self.stop <= self.start:
            raise ValueError(f"stop must be greater than start. Received: start={self.start}, "
                             f"stop={self.stop}")
        return self


@register
class ChannelSlice(_Plumbing):
    """Channels `start` to `stop` (stop excluded, counted from 0), as `x[:, start:stop]`.

    Input shape: (C, ...) with stop ≤ C. Output shape: (stop - start, ...).

    ```yaml
    - channel_slice: {start: 0, stop: 58}
    ```
    """

    name = "channel_slice"
    Params = ChannelSliceParams
    aliases_input = True  # a view of the input
    onnx_notes = "exported as Slice on the channel axis"
    flops_rule = "0: a view of the input"

    def view_layout(self, p, inputs, ctx):
        return _slice_layout(ctx, (p.start, p.stop) == (0, inputs[0][0]))

    def infer(self, p, inputs):
        (shape,) = inputs
        need_rank("channel_slice", shape, ANY_RANK)
        if p.stop > shape[0]:
            raise ShapeError("stop must be at most the number of channels", channels=shape[0],
                             start=p.start, stop=p.stop)
        return (p.stop - p.start, *shape[1:])

    def torch(self, p, inputs, out):
        from archspec.compile import modules

        return modules.ChannelSlice(p.start, p.stop)
