"""What `archspec report` does with its options (declared in archspec/cli.py): one input size
or several side by side, rows folded by `--depth`, `--columns`, colour on a terminal, warnings
on stderr."""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional


@dataclass
class ReportOptions:
    spec: Path
    input: Optional[str] = None
    format: str = "table"
    output: Optional[Path] = None
    sharing: bool = False
    depth: Optional[int] = None
    columns: Optional[str] = None
    layers: Optional[str] = None
    quiet: bool = False
    allow_outside: bool = False
    flops: bool = False
    batch: int = 1
    dtype: str = "fp32"
    optimizer: str = "sgd"
    sets: Optional[list] = None


def use_colour(stream=None) -> bool:
    """Colour only on a terminal, never with NO_COLOR set (https://no-color.org) or TERM=dumb,
    and only where rich (which typer brings) is installed."""
    from importlib.util import find_spec

    stream = stream or sys.stdout
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb" or find_spec("rich") is None:
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def parse_inputs(text: Optional[str], spec_input: tuple) -> list[tuple] | None:
    """`--input`: one shape (3x224x224) or several, comma-separated; a bare number n is a
    square side: (C, n, n) on 2-D inputs, (C, n) on 1-D, (C, D, n, n) on 3-D (D, C kept).
    Raises ValueError with what it expected."""
    if text is None:
        return None
    shapes = []
    for item in text.split(","):
        item = item.strip().lower()
        try:
            values = tuple(int(v) for v in item.split("x"))
        except ValueError:
            values = ()
        if not values or any(v < 1 for v in values) or len(values) > 4:
            raise ValueError(f"--input takes shapes like 3x224x224 (or CxL, CxDxHxW) or square sides "
                             f"like 224, comma-separated. Received: '{text}'")
        if len(values) == 1 and len(spec_input) > 1:
            spatial = list(spec_input[1:])
            spatial[-min(2, len(spatial)):] = [values[0]] * min(2, len(spatial))
            values = (spec_input[0], *spatial)
        shapes.append(values)
    return shapes


def run(opts: ReportOptions) -> None:
    from archspec.cli import EXIT_USAGE, fail, load_spec_or_exit, print_warnings

    formats = ("table", "json", "markdown", "csv")
    if opts.format not in formats:
        fail(f"--format must be one of {', '.join(formats)}. Received: '{opts.format}'", EXIT_USAGE)
    spec, graph = load_spec_or_exit(opts.spec, None, opts.allow_outside, opts.sets)
    try:
        shapes = parse_inputs(opts.input, tuple(spec.input))
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)
    graphs = [graph] if shapes is None else [_graph_at(opts, shape) for shape in shapes]
    if len(graphs) > 1 and (opts.sharing or opts.depth is not None or opts.columns):
        fail("--sharing, --depth and --columns show one input size; give --input one size", EXIT_USAGE)
    warnings = list(dict.fromkeys(str(w) for g in graphs for w in g.warnings))
    text = _render(opts, graphs)
    print_warnings(warnings, opts.quiet)
    _emit(text, opts.output)


def _graph_at(opts: ReportOptions, shape: tuple):
    from archspec.cli import load_spec_or_exit

    return load_spec_or_exit(opts.spec, shape, opts.allow_outside, opts.sets)[1]


def _render(opts: ReportOptions, graphs: list) -> str:
    from archspec.cli import EXIT_USAGE, fail
    from archspec.graph.analyze import analyze, sharing
    from archspec.report import render
    from archspec.report.columns import choose_columns
    from archspec.report.rows import folded_rows

    colour = opts.format == "table" and opts.output is None and use_colour()
    if opts.sharing:
        rows = sharing(graphs[0])
        return json.dumps(rows, indent=2) if opts.format == "json" else render.render_sharing(rows)
    reports = [analyze(g, batch=opts.batch, dtype=opts.dtype, optimizer=opts.optimizer) for g in graphs]
    try:
        if len(graphs) > 1 or opts.layers:
            from archspec.graph.stages import stage_outputs
            from archspec.report import multisize

            names = opts.layers.split(",") if opts.layers else stage_outputs(graphs[0])
            names = multisize.resolve_layers(graphs[0], [n.strip() for n in names if n.strip()])
            return multisize.render(reports, names, opts.format, colour)
        columns = choose_columns(opts.columns)
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)
    if opts.flops and not any(c.key == "flops" for c in columns):
        after = max((i for i, c in enumerate(columns) if c.key in ("macs", "macs%")), default=len(columns) - 1)
        columns.insert(after + 1, choose_columns("flops")[0])
    view = render.View(folded_rows(reports[0], graphs[0], opts.depth), columns, colour, opts.flops)
    return render.RENDERERS[opts.format](reports[0], view)


def _emit(text: str, output: Optional[Path]) -> None:
    import typer

    if output is None:
        typer.echo(text)
        return
    from archspec.io import write_atomic

    write_atomic(output, text.encode() + b"\n")
    typer.echo(f"wrote {output}", err=True)
