"""Options several commands share, defined once so they read the same everywhere."""
from __future__ import annotations

import typer


def set_option():
    """`--set NAME=VALUE` (repeatable), on every command that takes a spec."""
    return typer.Option(None, "--set", metavar="NAME=VALUE",
                        help="Override one of the spec's vars (repeatable); VALUE is read as in YAML: "
                             "--set width=1.1 --set act=hardswish.")
