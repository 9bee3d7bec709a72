"""The op registry: one `Op` subclass per primitive, found by name.

An op holds everything about itself — parameter schema, shape rule, counts, receptive-field
window and its PyTorch builder — so inference, reporting, drawing and compiling all look the
op up here (``OPS[node.op]``) and never branch on op names.
"""
from __future__ import annotations

from math import prod
from typing import Annotated, ClassVar, NamedTuple, Union

from pydantic import BaseModel, ConfigDict, Field

from archspec.errors import ShapeError
from archspec.ops.saving import CHANNELS_LAST, DENSE

Shape = tuple  # without batch: (F,), (C, L), (C, H, W) or (C, D, H, W)
MAX_SPATIAL = 3  # spatial axes of the largest input rank, (C, D, H, W)


class OpParams(BaseModel):
    """Base for op parameter schemas: strict keys, immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


Positive = Annotated[int, Field(ge=1, strict=True)]
NonNegative = Annotated[int, Field(ge=0, strict=True)]
# A per-axis setting (kernel, stride, padding, ...): one number for every spatial axis, or a
# list with one entry per axis. The rank is the input's, known only when the shape rule runs
# (`per_axis`), so the schema accepts 1 to 3 entries.
Size = Union[Positive, Annotated[tuple[Positive, ...], Field(min_length=1, max_length=MAX_SPATIAL)]]
NonNegativeSize = Union[NonNegative, Annotated[tuple[NonNegative, ...],
                                               Field(min_length=1, max_length=MAX_SPATIAL)]]


class NoParams(OpParams):
    pass


class AxisMap(NamedTuple):
    """Which input positions one output position reads, along one spatial axis (for the
    receptive field): output position o reads the `taps` consecutive input positions centred
    on `offset + o * step` (input indices; the centre of an even window falls between two).
    `exact`: True when that holds for every o. False where the op resizes by a fraction
    (transposed convolution with stride > 1, upsampling, pixel shuffle, adaptive pooling whose
    sizes do not divide): then `taps` is an upper bound, `step` an average, and the centre of
    o's window is within `wobble` input positions of `offset + o * step`."""

    taps: int
    step: float
    offset: float
    exact: bool = True
    wobble: float = 0.0


IDENTITY = AxisMap(1, 1.0, 0.0)  # each output position reads its own input position


def window_map(kernel, stride, padding, dilation) -> tuple[AxisMap, ...]:
    """The AxisMap of a sliding window on each axis: output o covers input positions
    o*s - p ... o*s - p + d(k-1), i.e. `span` = d(k-1)+1 taps centred on o*s - p + (span-1)/2."""
    maps = []
    for k, s, p, d in zip(kernel, stride, padding, dilation):
        span = d * (k - 1) + 1
        maps.append(IDENTITY if span == s == 1 and p == 0 else
                    AxisMap(span, float(s), (span - 1) / 2 - p))
    return tuple(maps)


class OpWarning(str):
    """A warning from an op's `warnings` that carries its own code from the catalogue
    (archspec/errors.py); a plain string there is a floor warning, AS801."""

    code: str

    def __new__(cls, message: str, code: str):
        text = super().__new__(cls, message)
        text.code = code
        return text


class Op:
    """Base class of a primitive op. Subclasses set `name`, `Params` and the rules they need.

    Counting conventions (docs/format.md, "Counting conventions"): `params` counts every
    element of the op's parameters (trainable or not); `frozen_params` is the part that is
    never trained (e.g. LeNet-5's RBF prototypes); `macs` counts multiply-accumulates against
    learned weights.
    """

    name: ClassVar[str]
    Params: ClassVar[type[OpParams]] = NoParams
    arity: ClassVar[tuple[int, int]] = (1, 1)  # min, max number of inputs
    # For the receptive field (archspec/graph/receptive.py):
    # 'window': output positions read windows of input positions (`field_map`, from `window`);
    # 'pointwise': each output position reads one input position (resizing ops say which in
    #   their `field_map`);
    # 'global': the output has no positions left that map to the input's: every output sees
    #   every input position (global pooling, flatten);
    # 'context': positions are kept, but every output also depends on statistics over all
    #   positions (group and instance norm with the sample's statistics).
    spatial: ClassVar[str] = "pointwise"
    # For the compiler's in-place decisions: does the PyTorch output alias the input (a view or
    # the input itself), and is it a fresh tensor autograd does not keep for backward (so a
    # later in-place op may overwrite it)? Unknown ops are neither: never overwritten.
    aliases_input: ClassVar[bool] = False
    fresh_output: ClassVar[bool] = False
    # The op is one learnable tensor that multiplies its input: `torch()` returns an
    # nn.Parameter, which the compiler installs on the parent module under the node's own name
    # (torchvision's ConvNeXt keeps `features.1.0.layer_scale` so, not `....layer_scale.weight`)
    # and the generated code multiplies by (get_attr + mul).
    bare_parameter: ClassVar[bool] = False
    # The op that computes this op's transpose (adjoint) from its weight tensor, for
    # `tie: {to: ..., transpose: true}` (graph/tie.py): conv <-> conv_transpose, linear -> linear.
    adjoint: ClassVar[str | None] = None
    onnx_notes: ClassVar[str] = ""
    # ---- cost: FLOPs and memory (docs/format.md, "Counting conventions") -------------------
    # `flops_rule` states the op's FLOPs convention in words (docs/reference.md shows it).
    # `moves_data` declares that the op only views, copies or passes data on: 0 FLOPs by
    # declaration, never inferred from a zero count, so a forgotten rule cannot read as free.
    flops_rule: ClassVar[str] = ""
    moves_data: ClassVar[bool] = False
    # `saves_rule`: what autograd keeps for the op's backward, in words (docs/reference.md).
    saves_rule: ClassVar[str] = ""
    # The PyTorch module can overwrite an input: "first" (ReLU(inplace=True)) or "any" (add
    # accumulates into whichever input is free). The compiler lets it only where
    # archspec/graph/inplace.py finds that nothing else reads the tensor.
    in_place: ClassVar[str] = ""
    # A fresh output keeps the channels-last order of its input (element-wise kernels do).
    keeps_layout: ClassVar[bool] = True

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

    def flops(self, p, inputs: list[Shape], out: Shape) -> int:
        """Floating-point operations per sample at inference, by `flops_rule`."""
        if self.moves_data_only(p):
            return 0
        raise NotImplementedError(f"op '{self.name}' declares no FLOPs rule")

    def moves_data_only(self, p) -> bool:
        """Whether this configuration does no arithmetic (0 FLOPs, by declaration)."""
        return self.moves_data

    def saved(self, p, inputs: list[Shape], out: Shape, ctx) -> list:
        """What autograd keeps for this op's backward in training: `Saved` entries (an input, the
        output, or a tensor the op makes). Asked only when something about the node requires
        grad (`ctx`: archspec.ops.saving.SaveContext)."""
        raise NotImplementedError(f"op '{self.name}' does not declare what autograd saves for it")

    def buffers(self, p, inputs: list[Shape], out: Shape) -> int:
        """Elements of the floating-point state the module keeps beside its parameters (batch
        norm's running mean and variance)."""
        return 0

    def output_aliases(self, p, ctx) -> bool:
        """Whether the output is input 0's storage (a view, or the input itself) when the node
        does not run in place."""
        return self.aliases_input

    def output_layout(self, p, inputs: list[Shape], out: Shape, ctx) -> str:
        """The layout (archspec.ops.saving) of a fresh output: channels-last when the op keeps
        layouts and its first input of the output's shape is channels-last, else dense."""
        if self.keeps_layout:
            for shape, layout in zip(inputs, ctx.layouts):
                if tuple(shape) == tuple(out):
                    return layout if layout == CHANNELS_LAST else DENSE
        return DENSE

    def view_layout(self, p, inputs: list[Shape], ctx) -> str:
        """The layout of an output that is a view of input 0 (`output_aliases`)."""
        return ctx.layouts[0]

    def onnx_refusal(self, p, inputs: list[Shape], out: Shape) -> str | None:
        """Why this configuration cannot be exported to ONNX faithfully, or None if it can.
        `archspec export` refuses such a node with its spec location instead of writing a
        file that computes something else."""
        return None

    def unshared_params(self, p, inputs: list[Shape], out: Shape) -> int | None:
        """Parameters the op would need without weight sharing (a filter bank per output
        position), or None for ops that share no weights across positions."""
        return None

    def weight_key(self, p, inputs: list[Shape]) -> tuple:
        """Beside the settings, what fixes the shapes of the op's parameters, for `tie`: the
        input's rank and channels (per-position weights need the whole input shape)."""
        return (len(inputs[0]), inputs[0][0])

    def weight_shape(self, p, inputs: list[Shape]) -> tuple | None:
        """The shape of the op's `weight` parameter, for ops with an `adjoint`; None where this
        configuration's weight cannot be shared transposed (a connection table, per_pixel)."""
        return None

    def adjoint_weight_shape(self, p, inputs: list[Shape]) -> tuple | None:
        """The shape the weight of an `adjoint` layer must have for this layer to use it
        transposed: its own weight's shape where the two ops lay weights out as each other's
        transpose (conv's (out, in/groups, *k) is conv_transpose's (in, out/groups, *k))."""
        return self.weight_shape(p, inputs)

    def spatial_kind(self, p) -> str:
        """`spatial` for this configuration (the settings may change it)."""
        return self.spatial

    def window(self, p, shape: Shape) -> tuple[tuple[int, ...], ...]:
        """(kernel, stride, padding, dilation), each a tuple with one entry per spatial axis
        of an input of `shape`, for receptive-field analysis."""
        n = spatial_rank(shape)
        return (1,) * n, (1,) * n, (0,) * n, (1,) * n

    def field_map(self, p, shape: Shape, out: Shape) -> tuple[AxisMap, ...]:
        """How output positions read input positions, one `AxisMap` per spatial axis of an
        input of `shape` (output `out`); by default the sliding window of `window`."""
        return window_map(*self.window(p, shape))

    def torch(self, p, inputs: list[Shape], out: Shape):
        """The PyTorch module computing this node (an nn.Parameter for `bare_parameter` ops);
        torch is imported inside, so the static path never loads it."""
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


RANK_NAMES = {1: "(features,)", 2: "(C, L)", 3: "(C, H, W)", 4: "(C, D, H, W)"}
SPATIAL = (2, 3, 4)  # the ranks with spatial axes: (C, L), (C, H, W), (C, D, H, W)
# What the spatial axes are called in messages, by input rank.
AXIS_NAMES = {2: ("positions",), 3: ("rows", "columns"), 4: ("depth slices", "rows", "columns")}


def need_rank(op: str, shape: Shape, ranks: tuple[int, ...], hint: str = "") -> None:
    if len(shape) not in ranks:
        want = " or ".join(RANK_NAMES[r] for r in ranks)
        raise ShapeError(f"{op} needs a {want} input{hint}", input=list(shape))


def spatial_rank(shape: Shape) -> int:
    """Spatial axes of a (C, *spatial) shape: 1 for (C, L), 2 for (C, H, W); 0 for (F,)."""
    return max(len(shape) - 1, 0)


def per_axis(value, shape: Shape, key: str) -> tuple[int, ...]:
    """A per-axis setting (`Size`) for the spatial axes of `shape`: a number is used on every
    axis; a list must have one entry per axis."""
    n = spatial_rank(shape)
    if isinstance(value, int):
        return (value,) * n
    if len(value) != n:
        axes = "axis" if n == 1 else "axes"
        raise ShapeError(f"'{key}' needs one entry per spatial axis of a {RANK_NAMES[len(shape)]} "
                         f"input ({n} {axes}), or one number for all",
                         **{key: list(value)}, input=list(shape))
    return tuple(value)


def zip_axes(*values):
    """Per-axis settings side by side, a number repeated to the length of the lists given,
    for cross-setting checks in a schema (before the rank is known). Lists of different
    lengths yield nothing here: the shape rule reports them against the input's rank."""
    lengths = {len(v) for v in values if not isinstance(v, int)}
    if len(lengths) > 1:
        return []
    n = lengths.pop() if lengths else 1
    return list(zip(*[(v,) * n if isinstance(v, int) else v for v in values]))


def numel(shape: Shape) -> int:
    return prod(shape)
