"""`archspec schema`: print (or write) the JSON Schema of the spec format, for editors."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    app.command("schema")(schema)


def schema(output: Optional[Path] = typer.Option(None, "-o", "--output",
                                                 help="Write to a file (atomically) instead of stdout.")):
    """Print or write the JSON Schema of spec files, for editors.

    The schema (draft 2020-12) is generated from the op and block registries. Point your
    editor's YAML support at it with a first line such as
    `# yaml-language-server: $schema=../schemas/archspec.schema.json`."""
    from archspec.spec.jsonschema import render

    text = render()
    if output is None:
        typer.echo(text, nl=False)
        return
    from archspec.io import write_atomic

    write_atomic(output, text.encode())
    typer.echo(f"wrote {output}", err=True)
