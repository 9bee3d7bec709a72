"""Step 3 of verifying an exported ONNX file (archspec/compile/onnx_verify.py): ONNX Runtime
against PyTorch, on every output, relative to each output's magnitude.

|ort - pytorch| <= atol x max|pytorch| + rtol x |pytorch|, element-wise (fp32: 1e-4 and 1e-4),
so an output of 1e-8 is held to 1e-12 rather than waved through by an absolute 1e-4. A miss
can be settled by float64 PyTorch (rounding in deep networks, not a different function). When
the main output is degenerate (zero, flat, or the same for every input), every traced
intermediate value is compared too, each relative to its own magnitude. A failure names the
first archspec node whose output diverges, with its location.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

RTOL = ATOL = 1e-4
BATCHES = (1, 2, 5)  # batch sizes compared


def _error(*args, **kwargs):
    """An ExportError (onnx_verify imports this module, so it is looked up when needed)."""
    from archspec.compile.onnx_verify import ExportError

    return ExportError(*args, **kwargs)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[0][:400] if lines else type(exc).__name__


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
    per_output: list = field(default_factory=list)  # (max_abs, max_rel, scale, within tolerance) per output

    def to_json(self, names=None) -> dict:
        """The row for `export --report` (docs/json.md); `names`: the outputs' names."""
        names = list(names or [])
        outputs = [{"name": names[k] if k < len(names) else f"output{k}", "max_abs": a, "max_rel": r,
                    "scale": sc, "within_tolerance": ok} for k, (a, r, sc, ok) in enumerate(self.per_output)]
        return {"batch": self.batch, "passed": self.ok, "max_abs": self.max_abs, "max_rel": self.max_rel,
                "argmax_agree": self.agree, "argmax_total": self.total, "note": self.note,
                "outputs": outputs}

    def line(self) -> str:
        several = f", {self.outputs} outputs" if self.outputs > 1 else ""
        return (f"batch {self.batch}: max abs {self.max_abs:.2e} at scale {self.scale:.1e}, max rel "
                f"{self.max_rel:.2e}, argmax {self.agree}/{self.total}{several}"
                + (f" ({self.note})" if self.note else ""))


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
    per_output = []
    for out, ref in zip(outs, refs):
        out, ref = out.astype(np.float64), ref.astype(np.float64)
        finite = bool(np.isfinite(out).all() and np.isfinite(ref).all())
        diff = np.nan_to_num(np.abs(out - ref), nan=np.inf)
        big = np.abs(ref) > tol.atol * tol.scale(ref)
        per_output.append((float(diff.max(initial=0.0)), float((diff[big] / np.abs(ref[big])).max(initial=0.0)),
                           float(np.abs(ref).max(initial=0.0)),
                           finite and (not tol.strict or bool((diff <= tol.bound(ref)).all()))))
    max_abs = max((row[0] for row in per_output), default=0.0)
    max_rel = max((row[1] for row in per_output), default=0.0)
    ok = all(row[3] for row in per_output)
    main, ref = outs[0], refs[0]
    if ref.ndim >= 2:
        agree = int((main.argmax(1) == ref.argmax(1)).sum())
        total = int(ref.argmax(1).size)
    else:
        agree, total = int(np.array_equal(main, ref)), 1
    return Parity(batch, max_abs, max_rel, agree, total, ok, outputs=len(refs),
                  scale=float(np.abs(refs[0]).max(initial=0.0)), per_output=per_output)


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
        raise _error(f"ONNX check 'runtime' failed at batch {batch}: {_first_line(exc)}",
                          check="runtime") from None


def check_parity(path: Path, module, graph, report,  *, tol: Tolerance = FP32,
                 batches=BATCHES, seed: int = 0, model=None, progress=None) -> None:
    from archspec.compile.runtime import active_provider, create_session
    from archspec.progress import announce

    try:
        session = create_session(Path(path), "cpu")
    except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types
        raise _error(f"ONNX check 'runtime' failed: ONNX Runtime cannot load the model: "
                          f"{_first_line(exc)}", check="runtime") from None
    report.provider = active_provider(session)
    report.tolerance = tol
    name = session.get_inputs()[0].name
    nodes = output_nodes(graph)
    double = {}  # the float64 copy of `module`, made only if needed
    flat = None  # (reason, input) of the first batch whose main output is degenerate
    for batch in batches:
        announce(progress, f"verify batch {batch} (ONNX Runtime vs PyTorch)")
        x = random_input(graph.input_shape, batch, seed)
        outs = _run(session, name, x, batch)
        for out, node in zip(outs, nodes):
            want = (batch, *graph.shape(node))
            if tuple(out.shape) != want:
                raise _error(f"ONNX check 'runtime' failed: ONNX Runtime returned shape "
                                  f"{list(out.shape)} at batch {batch}, expected {list(want)}",
                                  check="runtime")
        refs = torch_outputs(module, x)
        if len(outs) != len(refs):
            raise _error(f"ONNX check 'runtime' failed: ONNX Runtime returned {len(outs)} outputs, "
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
        announce(progress, "verify intermediate values")
        check_intermediates(model, module, graph, flat[1], tol, report, why=flat[0])


def _parity_failure(row, outs, refs, model, module, graph, x, tol):
    culprit = locate_divergence(model, module, graph, x, tol) if model is not None else None
    where = (f"; first diverging node: '{culprit[0].name}' ({culprit[0].op}), {culprit[1]}"
             if culprit else "")
    if not all(np.isfinite(o).all() for o in [*outs, *refs]):
        where += ("; outputs are not finite (inf/nan)"
                  + (": float16 overflows with these weights" if not tol.arbiter else ""))
    raise _error(
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


def check_intermediates(model, module, graph, x: np.ndarray, tol: Tolerance, report,
                        why: str = "") -> None:
    """Compare every traced intermediate value, each relative to its own magnitude; raise a
    located ExportError at the first that diverges."""
    culprit, checked = _intermediates(model, module, graph, x, tol)
    if culprit is not None:
        node, text = culprit
        raise _error(f"ONNX check 'parity' failed: {why or 'intermediate values'}, so intermediate "
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

    from archspec.compile.onnx_verify import traced_outputs
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
