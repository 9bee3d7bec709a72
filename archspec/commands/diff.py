"""`archspec diff A.yaml B.yaml`: what changed between two architectures."""
from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def diff(a: Path = typer.Argument(..., help="The first spec."),
             b: Path = typer.Argument(..., help="The second spec."),
             input: str = typer.Option(None, "--input", help="Analyse both at this input size, CxHxW.")):
        """Compare two specs layer by layer: added, removed and changed layers, and totals."""
        from archspec.cli import fail, load_graph, parse_shape
        from archspec.errors import SpecError
        from archspec.graph.analyze import analyze
        from archspec.report.diff import render_diff

        shape = parse_shape(input)
        reports = []
        for path in (a, b):
            if not path.exists():
                fail(f"no such file: {path}", 2)
            try:
                reports.append(analyze(load_graph(path, shape)[1]))
            except SpecError as exc:
                fail(exc)
        typer.echo(render_diff(*reports))
