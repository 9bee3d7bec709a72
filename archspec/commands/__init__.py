"""CLI commands beyond check/report, one module per command family.

Each module defines `register(app)` and imports heavy libraries (torch, onnx, graphviz)
only inside the command functions, so `archspec check` stays torch-free and fast.
"""
COMMAND_MODULES = ("graph", "build", "export", "runtime", "diff", "schema", "lsp", "sizes")
