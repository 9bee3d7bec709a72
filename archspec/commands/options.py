"""Options several commands share, defined once so they read the same everywhere."""
from __future__ import annotations

import typer


def set_option():
    """`--set NAME=VALUE` (repeatable), on every command that takes a spec."""
    return typer.Option(None, "--set", metavar="NAME=VALUE",
                        help="Override one of the spec's vars (repeatable); VALUE is read as in YAML: "
                             "--set width=1.1 --set act=hardswish.")


def allow_outside_option():
    """`--allow-outside`, on every command that reads a spec (docs/format.md, "Inheritance")."""
    return typer.Option(False, "--allow-outside",
                        help="Let 'extends' read a spec outside this spec's project (the nearest folder "
                             "holding pyproject.toml or .git).")
