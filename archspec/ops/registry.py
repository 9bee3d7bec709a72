"""The op registry: one `Op` subclass per primitive, found by name.

An op holds everything about itself — parameter schema, shape rule, counts, receptive-field
window and its PyTorch builder — so inference, reporting, drawing and compiling all look the
op up here (``OPS[node.op]``) and never branch on op names.
"""
from __future__ import annotations

from math import prod
from typing import Annotated, ClassVar, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from archspec.errors import ShapeError

Shape = tuple  # output shape without batch: (C, H, W), (C, L) or (F,)


class OpParams(BaseModel):
    """Base for op parameter schemas: strict keys, immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


def _as_pair(value):
    return (value, value) if isinstance(value, int) else tuple(value)


Positive = Annotated[int, Field(ge=1, strict=True)]
NonNegative = Annotated[int, Field(ge=0, strict=True)]
Pair = Annotated[Union[Positive, tuple[Positive, Positive]], AfterValidator(_as_pair)]
NonNegativePair = Annotated[Union[NonNegative, tuple[NonNegative, NonNegative]],
                            AfterValidator(_as_pair)]


class NoParams(OpParams):
    pass


class Op:
    """Base class of a primitive op. Subclasses set `name`, `Params` and the rules they need.

    Counting conventions (docs/counting.md): `params` counts every element of the op's
    parameters (trainable or not); `frozen_params` is the part that is never trained (e.g.
    LeNet-5's RBF prototypes); `macs` counts multiply-accumulates against learned weights.
    """

    name: ClassVar[str]
    Params: ClassVar[type[OpParams]] = NoParams
    arity: ClassVar[tuple[int, int]] = (1, 1)  # min, max number of inputs
    # 'window': a sliding window (receptive field grows by kernel/stride); 'pointwise': keeps the
    # receptive field; 'global': every output sees the whole input.
    spatial: ClassVar[str] = "pointwise"
    # For the compiler's in-place decisions: does the PyTorch output alias the input (a view or
    # the input itself), and is it a fresh tensor autograd does not keep for backward (so a
    # later in-place op may overwrite it)? Unknown ops are neither: never overwritten.
    aliases_input: ClassVar[bool] = False
    fresh_output: ClassVar[bool] = False
    onnx_notes: ClassVar[str] = ""

    def infer(self, p, inputs: list[Shape]) -> Shape:
        return inputs[0]

    def params(self, p, inputs: list[Shape], out: Shape) -> int:
        return 0

    def frozen_params(self, p, inputs: list[Shape], out: Shape) -> int:
        return 0

    def macs(self, p, inputs: list[Shape], out: Shape) -> int:
        return 0

    def warnings(self, p, inputs: list[Shape], out: Shape) -> list[str]:
        return []

    def onnx_refusal(self, p, inputs: list[Shape], out: Shape) -> str | None:
        """Why this configuration cannot be exported to ONNX faithfully, or None if it can.
        `archspec export` refuses such a node with its spec location instead of writing a
        file that computes something else."""
        return None

    def unshared_params(self, p, inputs: list[Shape], out: Shape) -> int | None:
        """Parameters the op would need without weight sharing (a filter bank per output
        position), or None for ops that share no weights across positions."""
        return None

    def window(self, p, shape: Shape) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int]]:
        """(kernel, stride, padding, dilation) per spatial axis of an input of `shape`, for
        receptive-field analysis."""
        return (1, 1), (1, 1), (0, 0), (1, 1)

    def torch(self, p, inputs: list[Shape], out: Shape):
        raise NotImplementedError(f"op '{self.name}' has no PyTorch builder")

    @classmethod
    def summary(cls) -> str:
        return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""


class Registry(dict):
    """Name -> Op instance. Registering a name twice is an error."""

    def register(self, cls):
        if cls.name in self:
            raise ValueError(f"op '{cls.name}' is already registered by {type(self[cls.name]).__name__}")
        self[cls.name] = cls()
        return cls


OPS = Registry()
register = OPS.register


# ---- small shape helpers shared by op families ---------------------------------------------


def need_rank(op: str, shape: Shape, ranks: tuple[int, ...], hint: str = "") -> None:
    if len(shape) not in ranks:
        want = " or ".join(_RANK_NAMES[r] for r in ranks)
        raise ShapeError(f"{op} needs a {want} input{hint}", input=list(shape))


_RANK_NAMES = {1: "(features,)", 2: "(C, L)", 3: "(C, H, W)"}


def numel(shape: Shape) -> int:
    return prod(shape)
