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
    """How close ONNX Runtime must be to PyTorch, element-wise and relative to the output's
    magnitude: |ort - pt| <= atol x max|pt| + rtol x |pt|. `arbiter`: a miss may be settled by
    a float64 PyTorch run (fp32). `strict=False` only reports (int8)."""

    rtol: float = RTOL
    atol: float = ATOL
    arbiter: bool = True
    strict: bool = True

    def scale(self, ref: np.ndarray) -> float:
        return max(float(np.abs(ref).max(initial=0.0)), TINY)

    def bound(self, ref: np.ndarray) -> np.ndarray:
        return self.atol * self.scale(ref) + self.rtol * np.abs(ref)

    def describe(self) -> str:
        if not self.strict:
            return "report only"
        return f"rtol {self.rtol:g}, atol {self.atol:g} x max|pytorch|"


TINY = 1e-30  # the smallest output scale told apart from zero
DEGENERATE = 1e-3  # an output whose spread is below this fraction of its magnitude says little
FP32 = Tolerance()
FP16 = Tolerance(rtol=1e-2, atol=2e-2, arbiter=False)
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
    outputs: int = 1  # outputs compared (the main one first; argmax is the main one's)
    scale: float = 0.0  # the main output's max |pytorch|

    def line(self) -> str:
        several = f", {self.outputs} outputs" if self.outputs > 1 else ""
        return (f"batch {self.batch}: max abs {self.max_abs:.2e} at scale {self.scale:.1e}, max rel "
                f"{self.max_rel:.2e}, argmax {self.agree}/{self.total}{several}"
                + (f" ({self.note})" if self.note else ""))


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


# ---- 3. runtime parity -----------------------------------------------------------------------


def random_input(shape, batch: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed + batch)
    return rng.standard_normal((batch, *shape)).astype(np.float32)


def output_nodes(graph) -> list:
    """The archspec nodes an exported model returns, in order (main output first)."""
    from archspec.compile.torch_fx import module_outputs

    return module_outputs(graph)


def torch_outputs(module, x: np.ndarray) -> list:
    """Every output of `module` on `x`, as float32 arrays (main output first)."""
    import torch

    with torch.inference_mode():
        out = module(torch.from_numpy(x))
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return [o.float().numpy() for o in outs]


def torch_forward(module, x: np.ndarray):
    """The main output of `module` on `x`, as a float32 array."""
    return torch_outputs(module, x)[0]


def compare(outs, refs, batch: int, tol: Tolerance) -> Parity:
    """ONNX Runtime's outputs against PyTorch's (lists, or one array each)."""
    if isinstance(outs, np.ndarray):
        outs, refs = [outs], [refs]
    ok, max_abs, max_rel = True, 0.0, 0.0
    for out, ref in zip(outs, refs):
        out, ref = out.astype(np.float64), ref.astype(np.float64)
        finite = bool(np.isfinite(out).all() and np.isfinite(ref).all())
        diff = np.nan_to_num(np.abs(out - ref), nan=np.inf)
        big = np.abs(ref) > tol.atol * tol.scale(ref)
        max_rel = max(max_rel, float((diff[big] / np.abs(ref[big])).max(initial=0.0)))
        max_abs = max(max_abs, float(diff.max(initial=0.0)))
        ok = ok and finite and (not tol.strict or bool((diff <= tol.bound(ref)).all()))
    main, ref = outs[0], refs[0]
    if ref.ndim >= 2:
        agree = int((main.argmax(1) == ref.argmax(1)).sum())
        total = int(ref.argmax(1).size)
    else:
        agree, total = int(np.array_equal(main, ref)), 1
    return Parity(batch, max_abs, max_rel, agree, total, ok, outputs=len(refs),
                  scale=float(np.abs(refs[0]).max(initial=0.0)))


def degenerate(ref: np.ndarray) -> str:
    """Why comparing `ref` (an output at batch >= 1) checks little, or '' if it does not: it
    is (nearly) flat, or (nearly) the same for every sample."""
    scale = float(np.abs(ref).max(initial=0.0))
    if scale <= TINY:
        return "the output is zero"
    if float(np.ptp(ref)) <= DEGENERATE * scale:
        return "the output is nearly constant"
    if len(ref) > 1 and float(np.ptp(ref, axis=0).max()) <= DEGENERATE * scale:
        return "the output is nearly the same for every input"
    return ""


def _run(session, name, x, batch):
    try:
        return session.run(None, {name: x})
    except Exception as exc:  # noqa: BLE001
        raise ExportError(f"ONNX check 'runtime' failed at batch {batch}: {_first_line(exc)}",
                          check="runtime") from None


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
    nodes = output_nodes(graph)
    double = {}  # the float64 copy of `module`, made only if needed
    flat = None  # (reason, input) of the first batch whose main output is degenerate
    for batch in batches:
        x = random_input(graph.input_shape, batch, seed)
        outs = _run(session, name, x, batch)
        for out, node in zip(outs, nodes):
            want = (batch, *graph.shape(node))
            if tuple(out.shape) != want:
                raise ExportError(f"ONNX check 'runtime' failed: ONNX Runtime returned shape "
                                  f"{list(out.shape)} at batch {batch}, expected {list(want)}",
                                  check="runtime")
        refs = torch_outputs(module, x)
        if len(outs) != len(refs):
            raise ExportError(f"ONNX check 'runtime' failed: ONNX Runtime returned {len(outs)} outputs, "
                              f"PyTorch {len(refs)}", check="runtime")
        row = compare(outs, refs, batch, tol)
        if not row.ok and tol.strict and tol.arbiter and all(np.isfinite(o).all() for o in outs):
            _arbitrate(row, outs, refs, module, x, double, tol)
        report.parity.append(row)
        if not row.ok:
            _parity_failure(row, outs, refs, model, module, graph, x, tol)
        if flat is None and tol.strict and degenerate(refs[0]):
            flat = (degenerate(refs[0]), x)
    if flat is not None and model is not None:
        check_intermediates(model, module, graph, flat[1], tol, report, why=flat[0])


def _parity_failure(row, outs, refs, model, module, graph, x, tol):
    culprit = locate_divergence(model, module, graph, x, tol) if model is not None else None
    where = (f"; first diverging node: '{culprit[0].name}' ({culprit[0].op}), {culprit[1]}"
             if culprit else "")
    if not all(np.isfinite(o).all() for o in [*outs, *refs]):
        where += ("; outputs are not finite (inf/nan)"
                  + (": float16 overflows with these weights" if not tol.arbiter else ""))
    raise ExportError(
        f"ONNX check 'parity' failed: ONNX Runtime differs from PyTorch at {row.line()} "
        f"(tolerance {tol.describe()}){where}",
        culprit[0].loc if culprit else None, check="parity",
        hint=(f"op '{culprit[0].op}' does not export faithfully in this configuration"
              if culprit else None))


def _arbitrate(row, outs, refs, module, x, cache, tol) -> None:
    """Settle a miss of the element-wise tolerance with float64 PyTorch (float64_arbiter)."""
    exact = float64_arbiter(module, x, cache)
    if exact is None:
        return
    notes, ok = [], True
    for out, ref, ex in zip(outs, refs, exact):
        e_ort, e_pt = float(np.abs(out - ex).max()), float(np.abs(ref - ex).max())
        ok = ok and e_ort <= ARBITER_FACTOR * e_pt + tol.atol * tol.scale(ex)
        notes.append(f"onnxruntime {e_ort:.1e}, pytorch float32 {e_pt:.1e}")
    row.ok = ok
    row.note = ("within float32 rounding, " if ok else "") + "vs float64 PyTorch: " + "; ".join(notes)


ARBITER_FACTOR = 2.0


def float64_arbiter(module, x: np.ndarray, cache: dict):
    """PyTorch's outputs in float64 (a list), or None if the module cannot run in float64.

    Deep networks with user weights can reach activations of 1e4..1e8, where float32 rounding
    alone moves outputs by more than the tolerance in either runtime. A miss of the
    element-wise tolerance then passes only if ONNX Runtime is as close to the float64 result
    as PyTorch's own float32 is (within ARBITER_FACTOR, plus the tolerance relative to the
    output's scale): the export computes the same function, and rounding, not a different
    op, explains the difference."""
    import copy

    import torch

    try:
        if "module" not in cache:
            cache["module"] = copy.deepcopy(module).double()
        with torch.inference_mode():
            out = cache["module"](torch.from_numpy(x).double())
    except Exception:  # noqa: BLE001 - an op without float64 kernels: no arbiter
        return None
    return [o.numpy() for o in (out if isinstance(out, (tuple, list)) else (out,))]


def check_intermediates(model, module, graph, x: np.ndarray, tol: Tolerance, report: VerifyReport,
                        why: str = "") -> None:
    """Compare every traced intermediate value, each relative to its own magnitude; raise a
    located ExportError at the first that diverges."""
    culprit, checked = _intermediates(model, module, graph, x, tol)
    if culprit is not None:
        node, text = culprit
        raise ExportError(f"ONNX check 'parity' failed: {why or 'intermediate values'}, so intermediate "
                          f"values were compared: '{node.name}' ({node.op}) differs, {text}",
                          node.loc, check="parity",
                          hint=f"op '{node.op}' does not export faithfully in this configuration")
    report.intermediates = (f"{why}: {checked} traced intermediate values compared, each relative to "
                            f"its magnitude, all match" if why else f"{checked} intermediate values match")


def locate_divergence(model, module, graph, x: np.ndarray, tol: Tolerance):
    """(node, description) of the first archspec node whose ONNX Runtime output differs from
    PyTorch's, found by exposing every traced intermediate as an extra graph output."""
    return _intermediates(model, module, graph, x, tol)[0]


def _intermediates(model, module, graph, x: np.ndarray, tol: Tolerance):
    """(first diverging (node, description) or None, number of values compared)."""
    import onnx

    from archspec.compile.runtime import create_session

    traced = traced_outputs(model, graph)
    if not traced:
        return None, 0
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
        torch_outputs(module, x)
        session = create_session(probe.SerializeToString(), "cpu")
        names = [o.name for o in session.get_outputs()]
        values = dict(zip(names, session.run(None, {session.get_inputs()[0].name: x})))
    except Exception:  # noqa: BLE001 - localisation is best effort
        return None, 0
    finally:
        for h in hooks:
            h.remove()
    checked = 0
    for node in graph.inference_nodes():
        value = traced.get(node.name)
        if value not in values or node.name not in captured:
            continue
        ref = captured[node.name].numpy()
        if ref.shape != values[value].shape:
            return (node, f"shape {list(values[value].shape)} vs {list(ref.shape)}"), checked
        diff = np.abs(values[value].astype(np.float64) - ref)
        scale = max(float(np.abs(ref).max(initial=0.0)), TINY)
        checked += 1
        # relative to the tensor's own scale, 10x looser than outputs: rounding grows with depth
        if not np.isfinite(diff).all() or diff.max(initial=0.0) > 10 * (tol.atol + tol.rtol) * scale:
            return (node, f"max abs diff {diff.max(initial=0.0):.2e} at scale {scale:.2e}"), checked
    return None, checked


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
