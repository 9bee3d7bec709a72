"""Optional dependencies: which extra a command needs, and one clear line when it is missing.

`pip install archspec` is the static tool (check, report, diff, graph, schema, sizes). The
rest comes in extras (pyproject.toml):

    torch     build, training                       torch
    runtime   run / bench --onnx-only of an .onnx   onnxruntime (-gpu on Linux x86_64), numpy
    onnx      export; run / bench of a spec          torch + runtime + onnx, onnxscript
    lsp       the language server                   pygls, lsprotocol

A command calls `require(extra, command)` before any other work. It asks
`importlib.util.find_spec`, which locates a package without importing it, so the check costs
nothing where everything is installed.
"""
from __future__ import annotations

import importlib.util

# extra -> the (import name, name a user knows) pairs it provides, in the order to mention them
EXTRAS: dict[str, tuple[tuple[str, str], ...]] = {
    "torch": (("torch", "PyTorch"),),
    "runtime": (("onnxruntime", "ONNX Runtime"), ("numpy", "NumPy")),
    "onnx": (("torch", "PyTorch"), ("onnx", "onnx"), ("onnxscript", "onnxscript"),
             ("onnxruntime", "ONNX Runtime"), ("numpy", "NumPy")),
    "lsp": (("pygls", "pygls"), ("lsprotocol", "lsprotocol")),
}


def installed(module: str) -> bool:
    """Whether `module` (a top-level import name) can be imported, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken parent, or a module with no __spec__
        return False


def missing(extra: str) -> list[str]:
    """The user-facing names of what `extra` provides that is not installed."""
    return [label for module, label in EXTRAS[extra] if not installed(module)]


def install_line(extra: str) -> str:
    return f"pip install 'archspec[{extra}]'"


def missing_message(extra: str, command: str) -> str | None:
    """`'archspec build' needs PyTorch: pip install 'archspec[torch]'`, or None when nothing
    is missing."""
    absent = missing(extra)
    if not absent:
        return None
    names = absent[0] if len(absent) == 1 else f"{', '.join(absent[:-1])} and {absent[-1]}"
    return f"'archspec {command}' needs {names}: {install_line(extra)}"


def require(extra: str, command: str) -> None:
    """Exit 2 with the install line when `extra` is not installed (for CLI commands)."""
    message = missing_message(extra, command)
    if message is not None:
        from archspec.cli import EXIT_USAGE, fail

        fail(message, EXIT_USAGE)
