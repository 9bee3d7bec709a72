"""Checks an exported ONNX file before it is allowed to replace anything on disk.

1. `onnx.checker.check_model(full_check=True)`.
2. ONNX's own shape inference (run on a copy stripped of the exporter's shape annotations)
   must give archspec's static shape for every output (the main one and each extra output),
   with a symbolic batch axis; intermediate values that can be traced back to an archspec
   node (through the exporter's module scopes) must have that node's shape too.
3. ONNX Runtime (CPU) against PyTorch on random inputs at several batch sizes, every output:
   element-wise |ort - pytorch| <= atol x max|pytorch| + rtol x |pytorch| (fp32: 1e-4 and
   1e-4), so the tolerance follows the output's own magnitude: outputs of 1e-8 are held to
   1e-12, not waved through by an absolute 1e-4. When an output is degenerate (flat, or the
   same whatever the input), the traced intermediate values are compared too, each relative
   to its own magnitude. When a check fails, the first archspec node whose output diverges
   is named, with its location.

Exports of random weights are conditioned first (archspec/compile/condition.py) so that
every layer's output is O(1) and batch norm is not the identity: differences are visible.

Every failure raises `ExportError` naming the check that failed.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from archspec.compile.onnx_parity import (ATOL, BATCHES, FP16, FP32, REPORT_ONLY, RTOL, Parity,  # noqa: F401
                                          Tolerance, _first_line, check_parity, compare, degenerate,
                                          locate_divergence, output_nodes, random_input, torch_forward,
                                          torch_outputs)
from archspec.errors import SpecError
from archspec.progress import announce

SCOPES_KEY = "pkg.torch.onnx.name_scopes"


class ExportError(SpecError):
    """Export or verification failed. `check` names the step ('checker', 'shapes', 'parity',
    'export', ...); the node's spec location is attached when the failure can be placed."""

    def __init__(self, message: str, loc=None, hint: str | None = None, check: str = "export"):
        super().__init__(message, loc, hint, code="AS601")
        self.check = check
        self.report = None  # the VerifyReport so far, when verification had started


@dataclass
class VerifyReport:
    output_shape: list = field(default_factory=list)  # as ONNX shape inference gives it
    shapes_checked: int = 0  # intermediate values traced back to an archspec node and checked
    shapes_total: int = 0
    provider: str = ""
    tolerance: Tolerance = FP32
    parity: list = field(default_factory=list)
    intermediates: str = ""  # what the intermediate comparison found, when it ran
    model: object = field(default=None, repr=False)  # the loaded ModelProto (not kept by callers)
    outputs: int = 1

    def lines(self) -> list[str]:
        shown = f"output {_fmt(self.output_shape)}" + (f" and {self.outputs - 1} extra output(s)"
                                                       if self.outputs > 1 else "")
        out = ["checker: ok (full_check)",
               f"shape inference: {shown} match; "
               f"{self.shapes_checked}/{self.shapes_total} intermediate shapes traced and matching"]
        if self.parity:
            out.append(f"onnxruntime ({self.provider}) vs pytorch ({self.tolerance.describe()}):")
            out += ["  " + p.line() for p in self.parity]
        if self.intermediates:
            out.append(self.intermediates)
        return out


def _fmt(dims) -> str:
    return "[" + ", ".join(str(d) for d in dims) + "]"


# ---- 1. checker ------------------------------------------------------------------------------


def check_model(path: Path) -> None:
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:  # noqa: BLE001 - checker errors are ValidationError or C++ errors
        raise ExportError(f"ONNX check 'checker' failed: {_first_line(exc)}", check="checker") from None


# ---- 2. shapes -------------------------------------------------------------------------------


def _dims(value_info) -> list | None:
    t = value_info.type.tensor_type
    if not t.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim]


def node_owner(onnx_node, names) -> str | None:
    """The archspec node an ONNX node was exported from, read from the exporter's module
    scopes (`['', 'layer1.0.conv1', 'conv2d']`); None when it cannot be told."""
    for prop in onnx_node.metadata_props:
        if prop.key == SCOPES_KEY:
            try:
                scopes = ast.literal_eval(prop.value)
            except (ValueError, SyntaxError):
                return None
            for scope in scopes:
                if scope in names:
                    return scope
    return None


def traced_outputs(model, graph) -> dict:
    """archspec node name -> the ONNX value that is its output, where that can be traced.

    An ONNX value is attributed to the archspec node whose module scope produced it and that
    hands it to another scope (or returns it). The exporter's graph rewrites (view merging,
    batch-norm folding) can move a value into a neighbour's scope, so a value only counts as
    traced when the exporter's own annotation (from PyTorch's shapes) equals the node's shape."""
    names = set(graph.nodes)
    annotated = {v.name: _dims(v) for v in [*model.graph.value_info, *model.graph.output]}
    owner = {}
    produced = {}
    for node in model.graph.node:
        who = node_owner(node, names)
        for out in node.output:
            owner[out] = who
        if who is not None:
            produced.setdefault(who, []).extend(o for o in node.output if o)
    leaving = {o.name for o in model.graph.output}
    for node in model.graph.node:
        who = node_owner(node, names)
        leaving.update(i for i in node.input if i in owner and owner[i] != who)
    traced = {}
    for name, values in produced.items():
        outs = [v for v in values if v in leaving]
        dims = annotated.get(outs[0]) if len(outs) == 1 else None
        if dims is not None and list(dims[1:]) == list(graph.nodes[name].shape):
            traced[name] = outs[0]
    return traced


def without_annotations(model):
    """A copy of `model` for an independent shape inference: no value_info, output shapes
    cleared, and large weight tensors replaced by typed graph inputs (their values never
    matter to shapes; small integer tensors such as Reshape targets stay, for data propagation)."""
    import onnx

    g = model.graph
    small, typed = [], []
    for t in g.initializer:
        if t.data_type in (onnx.TensorProto.INT64, onnx.TensorProto.INT32) or np.prod(t.dims) <= 64:
            small.append(t)
        else:
            typed.append(onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    outputs = [onnx.helper.make_tensor_value_info(o.name, o.type.tensor_type.elem_type, None)
               for o in g.output]
    bare_graph = onnx.helper.make_graph(list(g.node), g.name, [*g.input, *typed], outputs,
                                        initializer=small)
    bare = onnx.helper.make_model(bare_graph, opset_imports=list(model.opset_import),
                                  ir_version=model.ir_version)
    bare.functions.extend(model.functions)
    return bare


def check_shapes(model, graph, report: VerifyReport) -> None:
    """Run ONNX shape inference on a stripped copy and compare with archspec's shapes."""
    import onnx

    bare = without_annotations(model)
    try:
        inferred = onnx.shape_inference.infer_shapes(bare, check_type=True, strict_mode=True,
                                                     data_prop=True)
    except Exception as exc:  # noqa: BLE001
        raise ExportError(f"ONNX check 'shapes' failed: shape inference rejected the model: "
                          f"{_first_line(exc)}", check="shapes") from None
    known = {v.name: _dims(v) for v in [*inferred.graph.value_info, *inferred.graph.output]}

    names = output_nodes(graph)
    if len(model.graph.output) != len(names):
        raise ExportError(f"ONNX check 'shapes' failed: the file has {len(model.graph.output)} outputs, "
                          f"the model {len(names)}", check="shapes")
    for k, (value, name) in enumerate(zip(model.graph.output, names)):
        want = list(graph.shape(name))
        got = known.get(value.name)
        if k == 0:
            report.output_shape = ["N" if not isinstance(d, int) else d for d in got or []]
        if got is None or len(got) != len(want) + 1 or list(got[1:]) != want or isinstance(got[0], int):
            raise ExportError(
                f"ONNX check 'shapes' failed: shape inference gives output '{value.name}' "
                f"{_fmt(got) if got is not None else 'unknown'}, archspec computes [batch, "
                f"{', '.join(map(str, want))}] (the batch axis must stay symbolic)", check="shapes")
    report.outputs = len(names)

    traced = traced_outputs(model, graph)
    report.shapes_total = len(graph.inference_nodes())
    for node in graph.inference_nodes():
        value = traced.get(node.name)
        dims = known.get(value) if value else None
        if dims is None:
            continue
        if not all(isinstance(d, int) for d in dims[1:]):
            continue  # ONNX could not infer this one statically
        if list(dims[1:]) != list(node.shape):
            raise ExportError(
                f"ONNX check 'shapes' failed: '{node.name}' ({node.op}): ONNX shape inference "
                f"gives {_fmt(dims)}, archspec computes [batch, {', '.join(map(str, node.shape))}]",
                node.loc, check="shapes")
        report.shapes_checked += 1


def verify(path, module, graph, *, tol: Tolerance = FP32, batches=BATCHES, seed: int = 0,
           runtime: bool = True, progress=None) -> VerifyReport:
    """All checks on the file at `path` (exported from `module`, compiled from `graph`);
    `progress(stage)` is told each one as it starts (check, shape inference, verify batch N)."""
    import onnx

    report = VerifyReport()
    try:
        announce(progress, "check")
        check_model(Path(path))
        model = onnx.load(str(path))
        external = [t.name for t in model.graph.initializer
                    if t.data_location == onnx.TensorProto.EXTERNAL]
        if external:
            raise ExportError(f"ONNX check 'self-contained' failed: {len(external)} tensors live in an "
                              f"external data file (e.g. '{external[0]}')", check="self-contained")
        report.model = model
        announce(progress, "shape inference")
        check_shapes(model, graph, report)
        if runtime:
            check_parity(Path(path), module, graph, report, tol=tol, batches=batches, seed=seed,
                         model=model if tol.strict else None, progress=progress)
    except ExportError as exc:
        report.model = None
        exc.report = report  # what was checked and compared before the failure (`export --report`)
        raise
    return report
