"""Check a spec and collect everything wrong with it, without raising.

    result = check_file("specs/resnet50.yaml")
    result.ok, result.errors, result.warnings, result.graph

This is what `archspec check` and the language server run: load, validate and expand, with
every independent error of the file (up to a cap) in source order, each with its location and
code, and the warnings of the part that could be built. Torch-free, like the whole static path.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from archspec.errors import SpecError
from archspec.graph.ir import Graph
from archspec.spec.load import Doc


@dataclass
class CheckResult:
    file: str
    errors: list = field(default_factory=list)  # SpecError, source order
    warnings: list = field(default_factory=list)  # graph.ir.Diagnostic
    graph: Graph | None = None  # the expanded graph, when there are no errors
    partial: Graph | None = None  # as much of the graph as could be built (editors show it)
    spec: object = None  # the validated Spec, when loading got that far

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_json(self) -> dict:
        graph = self.graph
        summary = None
        if graph is not None:
            from archspec.graph.counts import totals as network_totals

            totals = network_totals(graph)
            summary = {"name": graph.name, "ops": len(graph.nodes), "params": totals["params"],
                       "macs": totals["macs"], "output": list(graph.shape(graph.output))}
        return {"file": self.file, "ok": self.ok,
                "errors": [e.to_json() for e in self.errors],
                "warnings": [w.to_json() for w in self.warnings],
                "summary": summary}


def check_file(path, *, allow_outside: bool = False, input_override=None,
               var_overrides: dict | None = None) -> CheckResult:
    """Check the spec file at `path` (with `var_overrides` as `--set` gives them); never raises
    for problems with the spec."""
    from archspec.spec.compose import load_spec

    return _check(str(path), lambda: load_spec(path, allow_outside=allow_outside,
                                                input_override=input_override,
                                                var_overrides=var_overrides))


def check_text(text: str, file: str = "<spec>", *, base_dir=".", allow_outside: bool = False,
               input_override=None, overlay: dict | None = None) -> CheckResult:
    """Check spec text (an editor's unsaved buffer); `extends` is resolved from `base_dir`,
    and a base whose resolved absolute path is a key of `overlay` is read from that text (the
    editor's buffer of it) instead of the disk."""
    from archspec.spec.compose import load_spec_text

    return _check(file, lambda: load_spec_text(text, file, base_dir, allow_outside=allow_outside,
                                               input_override=input_override, overlay=overlay))


def _check(file: str, load) -> CheckResult:
    from archspec.graph.build import build_graph

    result = CheckResult(file)
    try:
        result.spec = load()
    except SpecError as exc:
        result.errors = exc.errors
        return result
    try:
        result.graph = result.partial = build_graph(result.spec)
    except SpecError as exc:
        result.errors = exc.errors
        result.partial = getattr(exc, "partial", None)
    built = result.graph or result.partial
    if built is not None:
        result.warnings = list(built.warnings)
    return result


def spec_doc(result: CheckResult) -> Doc | None:
    """The loaded document of the checked file (locations of every key), when it loaded."""
    spec = result.spec
    return spec.src.doc if spec is not None else None
