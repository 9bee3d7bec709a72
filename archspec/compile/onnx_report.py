"""The verification report of `archspec export --report FILE.json`: what was compared, on which
inputs, how far ONNX Runtime was from PyTorch on each output, the tolerances, the provider,
pass or fail, the opset and the file's size. Its keys are documented in docs/json.md.

Written for a passed export and for one that failed a check (then `passed` is false, `error`
and `failed_check` say why, and the rows compared up to the failure are kept; no model file
exists, so `opset` and `bytes` are null).
"""
from __future__ import annotations

import math

STEPS = ("checker", "self-contained", "shapes", "parity")  # in the order verify() runs them
STEP_KEYS = {"checker": "checker", "self-contained": "self_contained", "shapes": "shape_inference",
             "parity": "runtime_parity"}
RULE = "|onnxruntime - pytorch| <= atol * max|pytorch| + rtol * |pytorch|, element-wise"


def export_report(graph, *, spec, path, seed: int, batches, result=None, error=None) -> dict:
    """The document for `result` (an ExportResult) or `error` (the ExportError that stopped it)."""
    import onnx
    import onnxruntime
    import torch

    from archspec.compile.onnx_export import INPUT_NAME, output_names
    from archspec.compile.onnx_parity import output_nodes

    report = result.report if result is not None else getattr(error, "report", None)
    names = output_names(graph)
    if result is not None:
        inputs = {"name": result.input[0], "shape": result.input[1], "dtype": result.input[2]}
        outputs = [{"name": n, "shape": d, "dtype": t} for n, d, t in [result.output, *result.extra]]
    else:
        inputs = {"name": INPUT_NAME, "shape": ["batch", *graph.input_shape], "dtype": "float32"}
        outputs = [{"name": n, "shape": ["batch", *graph.shape(node)], "dtype": "float32"}
                   for n, node in zip(names, output_nodes(graph))]
    rows = [] if report is None else report.parity
    if result is not None and result.accuracy:  # int8: the rows compare with the fp32 model, report only
        rows = result.accuracy
    return plain_numbers({
        "spec": str(spec),
        "model": str(path),
        "name": graph.name,
        "passed": error is None,
        "verified": report is not None,
        "failed_check": None if error is None else _step(error.check),
        "error": None if error is None else str(error),
        "opset": result.opset if result else None,
        "bytes": result.bytes if result else None,
        "dtype": result.dtype if result else None,
        "input": inputs,
        "outputs": outputs,
        "checks": _checks(report, error, written=result is not None),
        "shapes": None if report is None else {"output": report.output_shape, "outputs": report.outputs,
                                               "intermediates_checked": report.shapes_checked,
                                               "intermediates_total": report.shapes_total},
        "comparison": None if report is None else _comparison(report, rows, names, graph, seed, batches),
        "versions": {"torch": torch.__version__, "onnx": onnx.__version__,
                     "onnxruntime": onnxruntime.__version__},
    })


def plain_numbers(value):
    """`value` with every NaN or infinity (not JSON numbers) as the string 'nan', 'inf' or
    '-inf', as `run`'s JSON writes them: a failed comparison can overflow."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: plain_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain_numbers(v) for v in value]
    return value


def _step(check: str) -> str:
    return STEP_KEYS.get("parity" if check == "runtime" else check, check)


def _checks(report, error, written: bool) -> dict:
    """passed / failed / not run for each step of verify(), in order."""
    if report is None:  # --no-verify: a file written has passed the structural checker only
        return {STEP_KEYS[s]: "passed" if written and s == "checker" else "not run" for s in STEPS}
    failed = None if error is None else ("parity" if error.check == "runtime" else error.check)
    out, seen_failure = {}, False
    for step in STEPS:
        if step == failed:
            out[STEP_KEYS[step]], seen_failure = "failed", True
        else:
            out[STEP_KEYS[step]] = "not run" if seen_failure else "passed"
    return out


def _comparison(report, rows, names, graph, seed: int, batches) -> dict:
    tol = report.tolerance
    compared = [row.batch for row in rows]
    return {
        "reference": "pytorch float32, eval mode, same weights",
        "runtime": "onnxruntime",
        "provider": report.provider,
        "tolerance": {"rtol": tol.rtol, "atol": tol.atol, "rule": RULE, "strict": tol.strict},
        "inputs": [{"batch": b, "shape": [b, *graph.input_shape], "distribution": "standard normal",
                    "dtype": "float32", "seed": seed + b, "compared": b in compared} for b in batches],
        "batches": [row.to_json(names) for row in rows],
        "intermediates": report.intermediates or None,
    }
