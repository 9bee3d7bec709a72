"""What autograd keeps for an op's backward, as the op declares it (`Op.saved`), and the
storage layouts that decide whether PyTorch saves a tensor itself or a copy of it.

The declarations describe PyTorch's CPU kernels (tests/test_memory.py records every saved
tensor with `torch.autograd.graph.saved_tensors_hooks` and compares, byte for byte). No torch
here: archspec/graph/memory.py turns the declarations into bytes on the static path.
"""
from __future__ import annotations

from dataclasses import dataclass

# How a tensor's elements lie in its storage. `DENSE`: contiguous in (N, C, *spatial) order;
# `CHANNELS_LAST`: contiguous with channels innermost (what layer norm and per-pixel linear
# leave behind: they work on (N, *spatial, C) and move the channel axis back as a view);
# `STRIDED`: a view that is not dense (a channel slice of a batch). It decides whether a
# flatten is a view or a copy, and whether an op saves its input or a contiguous copy.
DENSE, CHANNELS_LAST, STRIDED = "dense", "channels_last", "strided"

# Element sizes by dtype kind: "act" is the activation dtype chosen for the report (statistics
# such as batch norm's saved mean follow it on CPU); indices are int64, masks bool.
INDEX_BYTES = 8
MASK_BYTES = 1


@dataclass(frozen=True)
class Saved:
    """One tensor autograd keeps for backward: an input (`index`), the output, or a tensor the
    op makes (`new`: indices, masks, statistics, copies) with `numel` elements in all (batch
    included) of dtype kind `dtype` ("act", "int64" or "bool")."""

    of: str  # "input", "output" or "new"
    index: int = 0
    numel: int = 0
    dtype: str = "act"


@dataclass(frozen=True)
class SaveContext:
    """What an op's declaration may depend on, besides its settings and shapes."""

    batch: int
    needs_grad: tuple  # per input: does that tensor require grad?
    weights_need_grad: bool  # the op has parameters that are trained
    in_place: bool  # the compiler runs this node in place (archspec/graph/inplace.py)
    layouts: tuple  # per input: DENSE, CHANNELS_LAST or STRIDED
    training: bool = True

    @property
    def any_grad(self) -> bool:
        return any(self.needs_grad)


def saved_input(index: int = 0) -> Saved:
    return Saved("input", index)


def saved_output() -> Saved:
    return Saved("output")


def saved_new(numel: int, dtype: str = "act") -> Saved:
    return Saved("new", numel=numel, dtype=dtype)
