"""`archspec diff A.yaml B.yaml`: what changed between two architectures, and what it costs."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from archspec.commands.options import allow_outside_option, set_option


def register(app: typer.Typer) -> None:
    app.command("diff")(diff)


def diff(a: Path = typer.Argument(..., help="The first spec."),
         b: Path = typer.Argument(..., help="The second spec."),
         input: Optional[str] = typer.Option(None, "--input", help="Analyse both at this input size, CxHxW."),
         format: str = typer.Option("text", "--format", "-f", help="text or json."),
         allow_outside: bool = allow_outside_option(),
         sets: Optional[List[str]] = set_option()):
    """Compare two specs layer by layer, with what the changes cost.

    Added, removed and changed layers with the settings that changed, and the change in
    parameters, MACs and memory, per layer and in total. `--set` applies to both specs
    (compare the same file at two settings with `extends`)."""
    from archspec.cli import EXIT_USAGE, fail, graph_or_exit
    from archspec.report.diff import diff_graphs, render_diff

    if format not in ("text", "json"):
        fail(f"--format must be text or json. Received: '{format}'", EXIT_USAGE)
    graphs = [graph_or_exit(path, input, allow_outside, sets=sets) for path in (a, b)]
    result = diff_graphs(*graphs)
    typer.echo(json.dumps(result.to_json(), indent=2) if format == "json" else render_diff(result))
