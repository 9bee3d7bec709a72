"""Optional dependencies: which extra a command needs, and one clear line when it is missing.

The core install is the static tool (check, report, diff, graph, schema, sizes). The rest
comes in extras (pyproject.toml):

    torch     build, training                       torch
    runtime   run / bench --onnx-only of an .onnx   onnxruntime (-gpu on Linux x86_64), numpy
    onnx      export; run / bench of a spec          torch + runtime + onnx, onnxscript
    lsp       the language server                   pygls, lsprotocol

A command calls `require(extra, command)` before any other work. It asks
`importlib.util.find_spec`, which locates a package without importing it, so the check costs
nothing where everything is installed.

The install line names the checkout archspec was installed from when pip recorded one
(direct_url.json, PEP 610): the name `archspec` on the public package index belongs to an
unrelated project, so `pip install 'archspec[torch]'` would fetch the wrong thing.
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


def installed_from() -> tuple[str, bool] | None:
    """(directory, editable) of the local checkout archspec comes from, or None: the source
    tree this code runs from (an editable install, or PYTHONPATH), else pip's record of an
    install from a directory (direct_url.json)."""
    import json
    from importlib import metadata
    from pathlib import Path
    from urllib.parse import unquote, urlparse

    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file() and (root / "archspec" / "__init__.py").is_file():
        return str(root), True
    for dist in metadata.distributions(name="archspec"):
        try:
            record = json.loads(dist.read_text("direct_url.json") or "null")
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and isinstance(record.get("dir_info"), dict):
            url = urlparse(str(record.get("url", "")))
            if url.scheme == "file":
                return unquote(url.path), bool(record["dir_info"].get("editable"))
    return None


def install_line(extra: str) -> str:
    """`pip install -e '/src/archspec[torch]'` for a checkout install, else the extra by name."""
    import shlex

    source = installed_from()
    if source is None:
        return f"pip install 'archspec[{extra}]'"
    directory, editable = source
    return f"pip install {'-e ' if editable else ''}{shlex.quote(f'{directory}[{extra}]')}"


def missing_message(extra: str, command: str) -> str | None:
    """`'archspec build' needs PyTorch (archspec[torch]): pip install -e '/src/archspec[torch]'`,
    or None when nothing is missing."""
    absent = missing(extra)
    if not absent:
        return None
    names = absent[0] if len(absent) == 1 else f"{', '.join(absent[:-1])} and {absent[-1]}"
    return f"'archspec {command}' needs {names} (archspec[{extra}]): {install_line(extra)}"


def require(extra: str, command: str) -> None:
    """Exit 2 with the install line when `extra` is not installed (for CLI commands)."""
    message = missing_message(extra, command)
    if message is not None:
        from archspec.cli import EXIT_USAGE, fail

        fail(message, EXIT_USAGE)
