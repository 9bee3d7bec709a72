"""`archspec lsp`: the language server (LSP over stdio) for editors; see docs/editor.md."""
from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    app.command("lsp")(lsp)


def lsp(stdio: bool = typer.Option(True, "--stdio", help="Speak LSP over stdin/stdout (the only "
                                                             "transport; accepted for editors that pass it)."),
        debounce_ms: int = typer.Option(150, "--debounce-ms", min=0,
                                        help="Pause in typing before a change is checked (the client's "
                                             "initialization option 'debounceMs' overrides it)."),
        time_limit: float = typer.Option(10.0, "--time-limit", min=0.1,
                                         help="Seconds one check may take before it is stopped and "
                                              "reported ('timeLimit' overrides it)."),
        allow_outside: bool = typer.Option(False, "--allow-outside",
                                           help="Let 'extends' read specs outside a spec's project "
                                                "(the initialization option 'allowOutside' overrides it).")):
    """Start the language server for editors (LSP over stdio).

    Diagnostics as you type, each layer's shape, params and MACs as inlay hints, hovers,
    completion, go to definition, outline and quick fixes (docs/editor.md)."""
    from archspec.extras import require

    require("lsp", "lsp")
    from archspec.lsp.server import serve

    serve(debounce=debounce_ms / 1000, time_limit=time_limit, allow_outside=allow_outside)
