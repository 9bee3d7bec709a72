"""The Python API reference (docs/api.md), generated from the package itself: each public
function's signature (`inspect.signature`) and docstring, each class's docstring, and the
fields of its dataclass with the comment on the field's line. Nothing is written twice:

    python -m archspec.report.apidoc > docs/api.md

tests/test_api_docs.py checks the committed file is fresh, that every field has its comment,
and runs the example at the top.
"""
from __future__ import annotations

import dataclasses
import inspect
import re
import sys

import archspec
from archspec.errors import Location, SpecError, SpecErrors
from archspec.graph.analyze import LayerStats, Report
from archspec.graph.ir import Graph, Node
from archspec.resources import ModelTooLarge
from archspec.spec.compose import Spec

REGENERATE = "python -m archspec.report.apidoc > docs/api.md"
FUNCTIONS = ("load", "loads", "expand", "analyze", "build", "export")
CLASSES = (Spec, Graph, Node, Report, LayerStats, SpecError, SpecErrors, Location, ModelTooLarge)

# Runs as written in tests/test_api_docs.py (from the repository root), so it cannot rot.
EXAMPLE = '''\
import archspec

# archspec report specs/efficientnet.yaml --set width=1.0 --set depth=1.1 --set resolution=240
spec = archspec.load("specs/efficientnet.yaml",
                     var_overrides={"width": "1.0", "depth": "1.1", "resolution": "240"})
report = archspec.analyze(archspec.expand(spec), batch=8)   # static: no torch
assert report.input == [3, 240, 240] and report.totals["params"] == 7_794_184  # EfficientNet-B1

# archspec report specs/resnet18.yaml --input 3x64x64
graph = archspec.expand(archspec.load("specs/resnet18.yaml", input_override=(3, 64, 64)))
assert graph.shape("layer4.1.relu") == (512, 2, 2)

try:  # a mistake is a SpecError with its location and code
    archspec.expand(archspec.loads("archspec: 1\\ninput: [3, 8, 8]\\nlayers:\\n  - conv: {out: 4}\\n"))
except archspec.SpecError as error:
    assert (error.loc.line, error.code) == (4, "AS202")  # the conv has no kernel
else:
    raise AssertionError("not reached")
'''


_FIELD = re.compile(r"^\s+(\w+):[^#]*?(?:#\s*(.*))?$")


def generate() -> str:
    out = [
        "# Python API",
        "",
        f"<!-- Generated from the package by `{REGENERATE}`; do not edit. -->",
        "",
        "Everything the command line does with a spec is a function of the `archspec` package. "
        "`load`, `loads`, `expand` and `analyze` are the static path (no torch, no onnx); "
        "`build` needs the `torch` extra, `export` the `onnx` extra.",
        "",
        "```python",
        EXAMPLE.rstrip("\n"),
        "```",
        "",
        "Command-line options map to keyword arguments: `--input CxHxW` is "
        "`input_override=(C, H, W)` of `load`/`loads` (`input_shape=` of `build`/`export` for a "
        "spec path), `--set name=value` is `var_overrides={\"name\": \"value\"}` (the value as text, "
        "read as one YAML scalar, as on the command line), `--allow-outside` is "
        "`allow_outside=True`; `report --batch/--dtype/--optimizer` are `analyze`'s keywords.",
        "",
        "## Functions",
        "",
    ]
    for name in FUNCTIONS:
        out += _function(name, getattr(archspec, name))
    out += ["## Classes", ""]
    for cls in CLASSES:
        out += _class(cls)
    return "\n".join(out).rstrip("\n") + "\n"


def _function(name: str, fn) -> list[str]:
    return [f"### `archspec.{name}`", "", "```python", f"archspec.{name}{_signature(fn)}", "```", "",
            _doc(fn), ""]


def _signature(fn) -> str:
    """The signature as written in the source (string annotations shown bare)."""
    parts, star = [], False
    for param in inspect.signature(fn).parameters.values():
        if param.kind is param.KEYWORD_ONLY and not star:
            parts.append("*")
            star = True
        text = param.name
        if param.kind is param.VAR_KEYWORD:
            text = "**" + text
        if param.annotation is not param.empty:
            text += f": {_annotation(param.annotation)}"
        if param.default is not param.empty:
            text += f" = {param.default!r}" if param.annotation is not param.empty else f"={param.default!r}"
        parts.append(text)
    ret = inspect.signature(fn).return_annotation
    arrow = f" -> {_annotation(ret)}" if ret is not inspect.Signature.empty else ""
    return f"({', '.join(parts)}){arrow}"


def _annotation(value) -> str:
    return value if isinstance(value, str) else inspect.formatannotation(value)


def _doc(obj) -> str:
    return inspect.cleandoc(obj.__doc__ or "")


def _class(cls) -> list[str]:
    module = "archspec" if getattr(archspec, cls.__name__, None) is cls else cls.__module__
    bases = [b.__name__ for b in cls.__bases__ if b is not object]
    head = f"### `{module}.{cls.__name__}`" + (f" ({', '.join(bases)})" if bases else "")
    out = [head, "", _doc(cls), ""]
    if dataclasses.is_dataclass(cls):
        comments = field_comments(cls)
        out += ["| field | type | default | meaning |", "|---|---|---|---|"]
        for f in dataclasses.fields(cls):
            kind = _annotation(f.type).replace("|", "\\|")  # a table cell, even in backticks
            out.append(f"| `{f.name}` | `{kind}` | {_default(f)} | "
                       f"{comments.get(f.name, '').replace('|', '/')} |")
        out.append("")
    return out


def _default(f) -> str:
    if f.default is not dataclasses.MISSING:
        return f"`{f.default!r}`"
    if f.default_factory is not dataclasses.MISSING:
        return f"`{f.default_factory()!r}`" if not f.default_factory() else "(see meaning)"
    return ""


def field_comments(cls) -> dict[str, str]:
    """field name -> the comment on its line in the class body (the dataclasses' own docs)."""
    comments: dict[str, str] = {}
    names = {f.name for f in dataclasses.fields(cls)}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        for line in inspect.getsource(klass).splitlines():
            match = _FIELD.match(line)
            if match and match.group(1) in names and match.group(2):
                comments[match.group(1)] = match.group(2).strip()
    return comments


def undocumented() -> list[str]:
    """'Class.field' for every dataclass field in CLASSES without its comment."""
    return [f"{cls.__name__}.{f.name}" for cls in CLASSES if dataclasses.is_dataclass(cls)
            for f in dataclasses.fields(cls) if not field_comments(cls).get(f.name)]


def main() -> None:
    sys.stdout.write(generate())


if __name__ == "__main__":
    main()
