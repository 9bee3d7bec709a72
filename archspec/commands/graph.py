"""`archspec graph`: draw a spec as a diagram (SVG, PNG, PDF via Graphviz's `dot`, or DOT text)."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from archspec.commands.options import allow_outside_option, set_option


def register(app: typer.Typer) -> None:
    app.command("graph")(graph)


def graph(spec: Path = typer.Argument(..., help="Spec file."),
          output: Path = typer.Option(..., "-o", "--output",
                                      help="Output file: .svg, .png, .pdf (need Graphviz's dot) or .dot."),
          depth: Optional[int] = typer.Option(
              None, "--depth", min=0,
              help="Draw blocks nested deeper than N as single boxes (0: every top-level block "
                   "is a box). Default: everything for small nets, fewer levels for big ones."),
          input: Optional[str] = typer.Option(None, "--input", help="Override the input size, CxHxW."),
          direction: str = typer.Option("TB", "--direction", help="TB (top to bottom) or LR."),
          allow_outside: bool = allow_outside_option(),
          sets: Optional[List[str]] = set_option()):
    """Draw the architecture as SVG, PNG, PDF or DOT.

    Blocks as clusters, shapes on edges, repeats folded as ×N."""
    from archspec.cli import EXIT_USAGE, fail, graph_or_exit
    from archspec.report import diagram

    direction = direction.upper()
    try:
        if direction not in diagram.DIRECTIONS:
            raise diagram.DiagramError(f"--direction must be TB or LR. Received: '{direction}'")
        if diagram.output_format(output) != "dot":
            diagram.find_dot()  # fail before the work if the picture cannot be rendered
    except diagram.DiagramError as exc:
        fail(str(exc), EXIT_USAGE)
    built = graph_or_exit(spec, input, allow_outside, sets=sets)
    chosen = diagram.default_depth(built) if depth is None else depth
    try:
        diagram.write(diagram.draw(built, chosen, direction), output)
    except diagram.DiagramError as exc:
        fail(str(exc), EXIT_USAGE)
    shown = "all levels" if chosen is None else f"depth {chosen}"
    typer.echo(f"wrote {output} ({shown})", err=True)
