"""The report table's columns, declared as data: each `Column` has a key (for `--columns`), a
header, how a row's cell reads, its alignment and whether it is shown by default. A new column
is one `add_column(Column(...))`; the table, Markdown and `--columns` pick it up.

A `Row` stands for one op or, with `report --depth`, a folded block (archspec/report/rows.py):
`members` are the `LayerStats` of every op it stands for, so a column sums what adds up
(`row.total("params")`) and reads the rest from the row's output op (`row.out`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from archspec.graph.analyze import LayerStats, Report
from archspec.graph.ir import Node
from archspec.ops import OPS


@dataclass
class Row:
    name: str
    op: str  # the op's name, or a folded block's kind ("bottleneck ×3")
    members: list  # LayerStats of the ops it stands for, in graph order
    node: Node | None = None  # the graph node of a single-op row
    in_shapes: list = field(default_factory=list)  # shapes it reads
    block: bool = False

    @property
    def out(self) -> LayerStats:
        """The op whose output is the row's output (the last op outside training-only heads)."""
        main = [s for s in self.members if not s.training_only]
        return (main or self.members)[-1]

    @property
    def training_only(self) -> bool:
        return all(s.training_only for s in self.members)

    def total(self, key: str):
        return sum(getattr(s, key) for s in self.members)


@dataclass(frozen=True)
class Column:
    key: str  # as `--columns` and the docs name it
    header: str
    text: Callable[[Row, Report], str]
    align: str = "right"  # or "left"
    default: bool = True  # shown without --columns
    help: str = ""


COLUMNS: list[Column] = []


def add_column(column: Column, after: str | None = None) -> Column:
    """Declare a column (after the column `after`, else last). Keys are unique."""
    if any(c.key == column.key for c in COLUMNS):
        raise ValueError(f"column '{column.key}' is already declared")
    index = next((i + 1 for i, c in enumerate(COLUMNS) if c.key == after), len(COLUMNS))
    COLUMNS.insert(index, column)
    return column


# ---- cell text ---------------------------------------------------------------------------


def shape_text(shape) -> str:
    return "x".join(map(str, shape)) if shape else "-"


def count_text(n: int) -> str:
    return f"{n:,}" if n else "-"


def percent_text(part: int, whole: int) -> str:
    if not part or not whole:
        return "-"
    share = 100 * part / whole
    return f"{share:.1f}" if share >= 0.1 else "<0.1"


def bytes_text(n: int) -> str:
    for unit, size in (("GiB", 2 ** 30), ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if n >= size:
            return f"{n / size:,.2f} {unit}"
    return f"{n} B" if n else "-"


def field_text(s: LayerStats, bound: str = "≤") -> str:
    """The receptive field as the table shows it (docs/format.md, "Receptive field"):
    '427', '3x7x7' where the axes differ, '427+g' with global context, 'global' after a global
    reduction, '≤96' where it is an upper bound; '-' without spatial axes."""
    sizes = s.receptive_field
    if not sizes:
        return "-"
    if not s.rf_resolved:
        return "global"
    text = str(sizes[0]) if len(set(sizes)) == 1 else "x".join(map(str, sizes))
    return ("" if s.rf_exact else bound) + text + ("+g" if s.global_context else "")


def _axes_text(values) -> str:
    values = [int(v) if float(v).is_integer() else f"1/{round(1 / v)}" if v < 1 else round(v, 2)
              for v in values]
    return str(values[0]) if len(set(map(str, values))) == 1 else "x".join(map(str, values))


def kernel_text(row: Row, report: Report | None = None) -> str:
    """The window an op slides ('3x3'), read through the registry; '-' for blocks and ops
    without one."""
    if row.node is None or not row.in_shapes or len(row.in_shapes[0]) < 2:
        return "-"
    maps = OPS[row.node.op].field_map(row.node.params, row.in_shapes[0], row.node.shape)
    if all(m.taps == 1 for m in maps):
        return "-"
    return _axes_text([m.taps for m in maps])


def stride_text(row: Row, report: Report | None = None) -> str:
    """How many input positions one output step moves ('2', '1/2' for an upsampling)."""
    if row.node is None or not row.in_shapes or len(row.in_shapes[0]) < 2:
        return "-"
    maps = OPS[row.node.op].field_map(row.node.params, row.in_shapes[0], row.node.shape)
    if all(m.taps == 1 and m.step == 1 for m in maps):
        return "-"
    return _axes_text([m.step for m in maps])


def _layer_name(row: Row, report: Report) -> str:
    return row.name + (" *" if row.training_only else "")


def _params_text(row: Row, report: Report) -> str:
    """A layer that uses another's parameters (`tie`) names its owner: '= left.conv1'; one
    that uses its weight transposed, its own bias and the owner: '16 + enc2ᵀ'."""
    if not row.block and row.out.tied_to:
        if row.out.tied_transposed:
            return f"{count_text(row.out.params)} + {row.out.tied_to}ᵀ"
        return f"= {row.out.tied_to}"
    return count_text(row.total("params"))


def _inputs_text(row: Row, report: Report) -> str:
    return ", ".join(shape_text(s) for s in row.in_shapes) or "-"


for _column in (
    Column("layer", "Layer", _layer_name, "left", help="node name (hierarchical); * marks training-only heads"),
    Column("op", "Op", lambda r, t: r.op, "left", help="op, or a folded block's kind and repeat count"),
    Column("input", "Input", _inputs_text, "left", default=False, help="input shape(s)"),
    Column("output", "Output", lambda r, t: shape_text(r.out.shape), "left", help="output shape"),
    Column("kernel", "Kernel", kernel_text, default=False, help="window size per axis"),
    Column("stride", "Stride", stride_text, default=False, help="input positions per output step"),
    Column("params", "Params", _params_text, help="parameters ('= owner' for a tied layer)"),
    Column("params%", "%", lambda r, t: percent_text(r.total("params"), t.totals["params"]),
           help="share of the network's parameters"),
    Column("macs", "MACs", lambda r, t: count_text(r.total("macs")), help="multiply-accumulates per sample"),
    Column("macs%", "%", lambda r, t: percent_text(r.total("macs"), t.totals["macs"]),
           help="share of the network's MACs"),
    Column("flops", "FLOPs", lambda r, t: count_text(r.total("flops")), default=False,
           help="floating-point operations per sample (report --flops)"),
    Column("memory", "Activations", lambda r, t: bytes_text(r.total("activation_bytes")),
           help="output memory per sample (fp32; a block: all its ops' outputs)"),
    Column("rf", "RF", lambda r, t: field_text(r.out), help="receptive field (+g: global context)"),
):
    add_column(_column)


def choose_columns(spec: str | None) -> list[Column]:
    """The columns `--columns` names: 'a,b,c' exactly those in that order, or '+a,-b' the
    default ones with a added and b left out. Raises ValueError naming an unknown key."""
    if not spec:
        return [c for c in COLUMNS if c.default]
    items = [item.strip() for item in spec.split(",") if item.strip()]
    known = {c.key: c for c in COLUMNS}
    for item in items:
        if item.lstrip("+-") not in known:
            raise ValueError(f"unknown column '{item.lstrip('+-')}' (known: {', '.join(known)})")
    if all(item[0] in "+-" for item in items):
        keys = {c.key for c in COLUMNS if c.default}
        keys |= {item[1:] for item in items if item[0] == "+"}
        keys -= {item[1:] for item in items if item[0] == "-"}
        return [c for c in COLUMNS if c.key in keys]
    if any(item[0] in "+-" for item in items):
        raise ValueError("--columns takes either a list of columns or +/- changes to the default ones")
    return [known[item] for item in items]
