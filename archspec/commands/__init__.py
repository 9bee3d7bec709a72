"""CLI commands beyond check/report (archspec/cli.py), one module per command family.

Each module defines `register(app)` and imports heavy libraries (torch, onnx, graphviz)
only inside the command functions. `COMMANDS` names, without importing it, the module that
registers each command: the CLI imports a module only when one of its commands runs (or
`--help` lists them), so `archspec check` loads none of them.
"""
# command -> module of this package whose register(app) adds it; `archspec --help` lists
# the commands in this order, after check and report
COMMANDS = {
    "ops": "ops",
    "graph": "graph",
    "build": "build",
    "export": "export",
    "run": "runtime",
    "bench": "runtime",
    "diff": "diff",
    "schema": "schema",
    "lsp": "lsp",
    "sizes": "sizes",
}
