"""Checks an exported ONNX file before it is allowed to replace anything on disk.

1. `onnx.checker.check_model(full_check=True)`.
2. ONNX's own shape inference (run on a copy stripped of the exporter's shape annotations)
   must give archspec's static output shape with a symbolic batch axis; intermediate values
   that can be traced back to an archspec node (through the exporter's module scopes) must
   have that node's shape too.
3. ONNX Runtime (CPU) against PyTorch on random inputs at several batch sizes: max abs / max
   rel difference and argmax agreement; fp32 must match within rtol 1e-4, atol 1e-4. When it
   does not, the first archspec node whose output diverges is named, with its location.

Every failure raises `ExportError` naming the check that failed.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from archspec.errors import SpecError

BATCHES = (1, 2, 5)
RTOL = ATOL = 1e-4
SCOPES_KEY = "pkg.torch.onnx.name_scopes"


class ExportError(SpecError):
    """Export or verification failed. `check` names the step ('checker', 'shapes', 'parity',
    'export', ...); the node's spec location is attached when the failure can be placed."""

    def __init__(self, message: str, loc=None, hint: str | None = None, check: str = "export"):
        super().__init__(message, loc, hint, code="AS601")
        self.check = check


@dataclass(frozen=True)
class Tolerance:
    """How close ONNX Runtime must be to PyTorch. `strict=False` only reports (int8)."""

    rtol: float = RTOL
    atol: float = ATOL
    scaled: bool = False  # atol is relative to the largest |reference| (fp16)
    strict: bool = True

    def bound(self, ref: np.ndarray) -> np.ndarray:
        atol = self.atol * max(1.0, float(np.abs(ref).max(initial=0.0))) if self.scaled else self.atol
        return atol + self.rtol * np.abs(ref)

    def describe(self) -> str:
        if not self.strict:
            return "report only"
        return f"rtol {self.rtol:g}, atol {self.atol:g}{' x max|ref|' if self.scaled else ''}"


FP32 = Tolerance()
FP16 = Tolerance(rtol=1e-2, atol=2e-2, scaled=True)
REPORT_ONLY = Tolerance(strict=False)


@dataclass
class Parity:
    batch: int
    max_abs: float
    max_rel: float
    agree: int  # argmax agreement (per sample; per pixel for dense outputs)
    total: int
    ok: bool
    note: str = ""  # how a float64 arbiter settled a miss of the element-wise tolerance

    def line(self) -> str:
        return (f"batch {self.batch}: max abs {self.max_abs:.2e}, max rel {self.max_rel:.2e}, "
                f"argmax {self.agree}/{self.total}" + (f" ({self.note})" if self.note else ""))


@dataclass
class VerifyReport:
    output_shape: list = field(default_factory=list)  # as ONNX shape inference gives it
    shapes_checked: int = 0  # intermediate values traced back to an archspec node and checked
    shapes_total: int = 0
    provider: str = ""
    tolerance: Tolerance = FP32
    parity: list = field(default_factory=list)
    model: object = field(default=None, repr=False)  # the loaded ModelProto (not kept by callers)

    def lines(self) -> list[str]:
        out = ["checker: ok (full_check)",
               f"shape inference: output {_fmt(self.output_shape)} matches; "
               f"{self.shapes_checked}/{self.shapes_total} intermediate shapes traced and matching"]
        if self.parity:
            out.append(f"onnxruntime ({self.provider}) vs pytorch ({self.tolerance.describe()}):")
            out += ["  " + p.line() for p in self.parity]
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

    want = list(graph.shape(graph.output))
    got = known.get(model.graph.output[0].name)
    report.output_shape = ["N" if not isinstance(d, int) else d for d in got or []]
    if got is None or len(got) != len(want) + 1 or list(got[1:]) != want or isinstance(got[0], int):
        raise ExportError(
            f"ONNX check 'shapes' failed: shape inference gives output "
            f"{_fmt(got) if got is not None else 'unknown'}, archspec computes [batch, "
            f"{', '.join(map(str, want))}] (the batch axis must stay symbolic)", check="shapes")

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


# ---- 3. runtime parity -----------------------------------------------------------------------


def random_input(shape, batch: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed + batch)
    return rng.standard_normal((batch, *shape)).astype(np.float32)


def torch_forward(module, x: np.ndarray):
    import torch

    with torch.inference_mode():
        return module(torch.from_numpy(x)).float().numpy()


def compare(out: np.ndarray, ref: np.ndarray, batch: int, tol: Tolerance) -> Parity:
    out = out.astype(np.float64)
    ref = ref.astype(np.float64)
    finite = bool(np.isfinite(out).all() and np.isfinite(ref).all())
    diff = np.nan_to_num(np.abs(out - ref), nan=np.inf)
    big = np.abs(ref) > tol.atol
    rel = float((diff[big] / np.abs(ref[big])).max(initial=0.0))
    if ref.ndim >= 2:
        agree = int((out.argmax(1) == ref.argmax(1)).sum())
        total = int(ref.argmax(1).size)
    else:
        agree, total = int(np.array_equal(out, ref)), 1
    ok = finite and (not tol.strict or bool((diff <= tol.bound(ref)).all()))
    return Parity(batch, float(diff.max(initial=0.0)), rel, agree, total, ok)


def check_parity(path: Path, module, graph, report: VerifyReport, *, tol: Tolerance = FP32,
                 batches=BATCHES, seed: int = 0, model=None) -> None:
    from archspec.compile.runtime import active_provider, create_session

    try:
        session = create_session(Path(path), "cpu")
    except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types
        raise ExportError(f"ONNX check 'runtime' failed: ONNX Runtime cannot load the model: "
                          f"{_first_line(exc)}", check="runtime") from None
    report.provider = active_provider(session)
    report.tolerance = tol
    name = session.get_inputs()[0].name
    double = {}  # the float64 copy of `module`, made only if needed
    for batch in batches:
        x = random_input(graph.input_shape, batch, seed)
        try:
            (out, *_) = session.run(None, {name: x})
        except Exception as exc:  # noqa: BLE001
            raise ExportError(f"ONNX check 'runtime' failed at batch {batch}: {_first_line(exc)}",
                              check="runtime") from None
        want = (batch, *graph.shape(graph.output))
        if tuple(out.shape) != want:
            raise ExportError(f"ONNX check 'runtime' failed: ONNX Runtime returned shape "
                              f"{list(out.shape)} at batch {batch}, expected {list(want)}",
                              check="runtime")
        ref = torch_forward(module, x)
        row = compare(out, ref, batch, tol)
        if not row.ok and tol.strict and not tol.scaled and np.isfinite(out).all():
            exact = float64_arbiter(module, x, double)
            if exact is not None:
                e_ort, e_pt = float(np.abs(out - exact).max()), float(np.abs(ref - exact).max())
                row.note = (f"vs float64 PyTorch: onnxruntime {e_ort:.1e}, pytorch float32 {e_pt:.1e}")
                row.ok = e_ort <= ARBITER_FACTOR * e_pt + tol.atol
                if row.ok:
                    row.note = "within float32 rounding, " + row.note
        report.parity.append(row)
        if not row.ok:
            culprit = locate_divergence(model, module, graph, x, tol) if model is not None else None
            where = (f"; first diverging node: '{culprit[0].name}' ({culprit[0].op}), {culprit[1]}"
                     if culprit else "")
            if not (np.isfinite(out).all() and np.isfinite(ref).all()):
                where += ("; outputs are not finite (inf/nan)"
                          + (": float16 overflows with these weights" if tol.scaled else ""))
            raise ExportError(
                f"ONNX check 'parity' failed: ONNX Runtime differs from PyTorch at {row.line()} "
                f"(tolerance {tol.describe()}){where}",
                culprit[0].loc if culprit else None, check="parity",
                hint=(f"op '{culprit[0].op}' does not export faithfully in this configuration"
                      if culprit else None))


ARBITER_FACTOR = 2.0


def float64_arbiter(module, x: np.ndarray, cache: dict):
    """PyTorch's output in float64, or None if the module cannot run in float64.

    Deep networks with random weights (batch norm at its identity statistics) reach outputs of
    1e4..1e8, where float32 rounding alone moves outputs by more than 1e-4 in either runtime.
    A miss of the element-wise tolerance then passes only if ONNX Runtime is as close to the
    float64 result as PyTorch's own float32 is (within ARBITER_FACTOR): the export computes the
    same function, and rounding, not a different op, explains the difference."""
    import copy

    import torch

    try:
        if "module" not in cache:
            cache["module"] = copy.deepcopy(module).double()
        with torch.inference_mode():
            return cache["module"](torch.from_numpy(x).double()).numpy()
    except Exception:  # noqa: BLE001 - an op without float64 kernels: no arbiter
        return None


def locate_divergence(model, module, graph, x: np.ndarray, tol: Tolerance):
    """(node, description) of the first archspec node whose ONNX Runtime output differs from
    PyTorch's, found by exposing every traced intermediate as an extra graph output."""
    import onnx

    from archspec.compile.runtime import create_session

    traced = traced_outputs(model, graph)
    if not traced:
        return None
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    present = {o.name for o in probe.graph.output}
    for value in traced.values():
        if value not in present:
            probe.graph.output.append(onnx.ValueInfoProto(name=value))
            present.add(value)
    captured, hooks = {}, []
    for node_name in traced:
        try:
            sub = module.get_submodule(node_name)
        except AttributeError:
            continue

        def hook(_mod, _args, out, node_name=node_name):
            captured[node_name] = out.detach().float().clone()

        hooks.append(sub.register_forward_hook(hook))
    try:
        torch_forward(module, x)
        session = create_session(probe.SerializeToString(), "cpu")
        names = [o.name for o in session.get_outputs()]
        values = dict(zip(names, session.run(None, {session.get_inputs()[0].name: x})))
    except Exception:  # noqa: BLE001 - localisation is best effort
        return None
    finally:
        for h in hooks:
            h.remove()
    for node in graph.inference_nodes():
        value = traced.get(node.name)
        if value not in values or node.name not in captured:
            continue
        ref = captured[node.name].numpy()
        if ref.shape != values[value].shape:
            return node, f"shape {list(values[value].shape)} vs {list(ref.shape)}"
        diff = np.abs(values[value].astype(np.float64) - ref)
        scale = float(np.abs(ref).max(initial=0.0))
        # relative to the tensor's scale: float32 rounding in large activations is not a culprit
        if not np.isfinite(diff).all() or diff.max(initial=0.0) > tol.atol + tol.rtol * scale * 10:
            return node, f"max abs diff {diff.max(initial=0.0):.2e} at scale {scale:.2e}"
    return None


def verify(path, module, graph, *, tol: Tolerance = FP32, batches=BATCHES, seed: int = 0,
           runtime: bool = True) -> VerifyReport:
    """All checks on the file at `path` (exported from `module`, compiled from `graph`)."""
    import onnx

    report = VerifyReport()
    check_model(Path(path))
    model = onnx.load(str(path))
    external = [t.name for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    if external:
        raise ExportError(f"ONNX check 'self-contained' failed: {len(external)} tensors live in an "
                          f"external data file (e.g. '{external[0]}')", check="self-contained")
    report.model = model
    check_shapes(model, graph, report)
    if runtime:
        check_parity(Path(path), module, graph, report, tol=tol, batches=batches, seed=seed,
                     model=model if tol.strict else None)
    return report


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[0][:400] if lines else type(exc).__name__
