"""`archspec sizes SPEC`: which input sizes a network takes, the smallest, and the rules
(archspec/graph/sizes.py). Static: no torch."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from archspec.commands.options import allow_outside_option, set_option


def register(app: typer.Typer) -> None:
    app.command("sizes")(sizes)


def sizes(spec: Path = typer.Argument(..., metavar="SPEC", help="The spec file (.yaml)."),
          range_: Optional[str] = typer.Option(
              None, "--range", metavar="LOW:HIGH",
              help="The sizes n to check, both ends included. Default: 1 to twice the spec's size."),
          step: int = typer.Option(1, "--step", metavar="N", min=1,
                                   help="Check every Nth size (the rules need every size: N = 1)."),
          axes: Optional[str] = typer.Option(
              None, "--axes", metavar="AXES",
              help="The spatial axes set to n, the others kept: L on (C, L); HW (default), H or W on "
                   "(C, H, W); HW (default, D kept), D, H, W, DHW, ... on (C, D, H, W)."),
          input: Optional[str] = typer.Option(None, "--input", metavar="CxHxW",
                                              help="Start from this input shape instead of the spec's "
                                                   "(channels and the axes not swept)."),
          format: str = typer.Option("text", "--format", "-f", metavar="text|json", help="text or json."),
          quiet: bool = typer.Option(False, "--quiet", "-q", help="No warnings on stderr."),
          allow_outside: bool = allow_outside_option(),
          sets: Optional[List[str]] = set_option()):
    """Which input sizes the network takes, and the rules they follow.

    Every size in a range built by the static checker, the smallest valid one, and the rules
    they follow (divisibility by the product of the strides), with the sizes where an
    adaptive pooling replicates values."""
    from archspec.cli import EXIT_USAGE, fail, load_spec_or_exit, parse_shape, print_warnings
    from archspec.graph import sizes as analysis
    from archspec.report import sizes as render

    if format not in ("text", "json"):
        fail(f"--format must be text or json. Received: '{format}'", EXIT_USAGE)
    loaded, graph = load_spec_or_exit(spec, parse_shape(input), allow_outside, sets)
    try:
        chosen, letters = analysis.parse_axes(axes, len(loaded.input) - 1)
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)
    low, high = _range(range_, max(loaded.input[1 + a] for a in chosen))
    result = analysis.sweep(loaded, graph, chosen, letters, low, high, step)
    print_warnings(render.replication_warnings(result), quiet)
    typer.echo(json.dumps(render.to_json(result), indent=2) if format == "json" else render.render_text(result))


MAX_SIZES = 1_000_000  # sizes checked in one sweep (each is a full static check)


def _range(text: Optional[str], side: int) -> tuple[int, int]:
    from archspec.cli import EXIT_USAGE, fail

    if text is None:
        return 1, 2 * side
    try:
        low, high = (int(v) for v in text.split(":"))
    except ValueError:
        low = high = 0
    if not 1 <= low <= high or high - low >= MAX_SIZES:
        fail(f"--range must be LOW:HIGH with 1 <= LOW <= HIGH (at most {MAX_SIZES:,} sizes), e.g. "
             f"32:1024. Received: '{text}'", EXIT_USAGE)
    return low, high
