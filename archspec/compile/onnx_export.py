"""Export a spec to one self-contained, verified ONNX file with the torch dynamo exporter.

    result = export_onnx("specs/resnet18.yaml", "resnet18.onnx")
    print("\\n".join(result.lines()))

- Input "input" (N, C, H, W) float32 with a symbolic batch axis "batch" (the model is traced
  at batch 2 so nothing specialises on 1); output "logits" (N, ...), then one output per extra
  output of the spec (`output: true`), named after its layer (`emb.0`), in spec order.
- Every tensor is embedded in the one file (no external .data sidecar); models whose weights
  would not fit ONNX's 2 GB protobuf limit are refused.
- The file is written beside the target under a temporary name, verified
  (`onnx_verify.verify`), and only then published (archspec/io.py); a failed check leaves
  nothing behind. An existing target is only replaced with `force=True`; without it, of two
  concurrent exports to one path exactly one succeeds.
- Random weights (no `weights`) are conditioned so every layer's output is O(1)
  (archspec/compile/condition.py): verification then sees every layer.
- Training-only heads are dropped. Ops whose `Op.onnx_refusal(...)` gives a reason are
  refused up front with the node's spec location.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

from archspec.compile.onnx_verify import (BATCHES, FP16, FP32, REPORT_ONLY, ExportError,
                                          VerifyReport, _first_line)
from archspec.errors import SpecError
from archspec.io import OutputExists, output_file
from archspec.progress import announce

__all__ = ["export_onnx", "ExportError", "OutputExists", "ExportResult", "INPUT_NAME", "OUTPUT_NAME"]

INPUT_NAME, OUTPUT_NAME, BATCH_NAME = "input", "logits", "batch"
EXAMPLE_BATCH = 2  # >= 2, so the exporter cannot specialise the batch axis to 1
MAX_EMBEDDED_BYTES = 2 * 1024 ** 3 - 64 * 1024 ** 2  # protobuf's 2 GB limit, minus the graph
QUANTIZE_MODES = ("int8",)
CALIBRATION_BATCHES, CALIBRATION_BATCH_SIZE = 8, 4


@dataclass
class ExportResult:
    path: Path
    bytes: int
    opset: int
    input: tuple  # ('input', ['batch', 3, 224, 224], 'float32')
    output: tuple
    dtype: str  # weights/compute: float32, float16 or int8 (QDQ)
    report: VerifyReport | None = None
    accuracy: list = field(default_factory=list)  # int8: Parity rows vs the fp32 PyTorch model
    notes: list = field(default_factory=list)
    outputs: int = 1  # graph outputs: the main one and extra outputs; never training-only heads
    extra: list = field(default_factory=list)  # (name, dims, dtype) of each extra output

    def lines(self) -> list[str]:
        mib = self.bytes / 1024 ** 2
        out = [f"wrote {self.path} ({mib:.1f} MiB, opset {self.opset}, {self.dtype}, one file)",
               f"  input  '{self.input[0]}' {_dims(self.input[1])} {self.input[2]}",
               f"  output '{self.output[0]}' {_dims(self.output[1])} {self.output[2]}"]
        out += [f"  output '{name}' {_dims(dims)} {dtype}" for name, dims, dtype in self.extra]
        if self.report is not None:
            out += ["verified:"] + ["  " + line for line in self.report.lines()]
        else:
            out.append("not verified (--no-verify)")
        if self.accuracy:
            out.append("int8 accuracy vs fp32 PyTorch (random inputs):")
            out += ["  " + row.line().replace("argmax", "top-1 agreement") for row in self.accuracy]
        out += [f"note: {n}" for n in self.notes]
        return out


def _dims(dims) -> str:
    return "[" + ", ".join(map(str, dims)) + "]"


# ---- compile -----------------------------------------------------------------------------


def compile_for_export(spec_or_graph, *, input_shape=None, seed: int = 0, weights=None):
    """(graph, eval-mode GraphModule without training heads), refusing unexportable nodes.
    A model built here with random weights is conditioned (archspec/compile/condition.py)."""
    import torch.fx as fx

    from archspec.compile.condition import condition
    from archspec.compile.torch_fx import as_graph, build

    if isinstance(spec_or_graph, fx.GraphModule) and hasattr(spec_or_graph, "archspec_graph"):
        module, graph = spec_or_graph, spec_or_graph.archspec_graph
        refuse_unexportable(graph)
    else:
        graph = as_graph(spec_or_graph, input_shape)
        refuse_unexportable(graph)
        module = build(graph, seed=seed)
        if weights is None:
            condition(module, graph.input_shape, seed)
    if weights is not None:
        load_weights(module, graph, weights)
    return graph, module.eval()


def output_names(graph) -> list[str]:
    """ONNX output names: 'logits', then each extra output's layer name (made unique)."""
    from archspec.compile.torch_fx import module_outputs

    names = [OUTPUT_NAME]
    for node in module_outputs(graph)[1:]:
        name, k = node, 1
        while name in names or name == INPUT_NAME:
            name, k = f"{node}_{k}", k + 1
        names.append(name)
    return names


def refuse_unexportable(graph) -> None:
    """Raise a located ExportError for the first node whose op says it cannot be exported
    faithfully in its configuration (`Op.onnx_refusal`)."""
    from archspec.ops import OPS

    for node in graph.inference_nodes():
        refusal = getattr(OPS[node.op], "onnx_refusal", None)
        reason = refusal(node.params, [graph.shape(i) for i in node.inputs], node.shape) if refusal else None
        if reason:
            raise ExportError(f"'{node.name}' ({node.op}) cannot be exported to ONNX faithfully: {reason}",
                              node.loc, check="export",
                              hint="change the layer's parameters, or use the PyTorch model directly")


def load_weights(module, graph, path) -> None:
    """Load a checkpoint into `module`: through archspec.compile.weights.load_weights when
    that exists, else a plain (weights_only) state_dict, ignoring training-only heads."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"weights file not found: {path}", check="weights")
    try:
        from archspec.compile.weights import load_weights as project_loader
    except ImportError:
        project_loader = None
    try:
        if project_loader is not None:
            project_loader(module, path)
            return
        import torch

        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
        heads = tuple(n.name + "." for n in graph.nodes.values() if n.training_only)
        state = {k: v for k, v in state.items() if not (heads and k.startswith(heads))}
        module.load_state_dict(state, strict=True)
    except SpecError:
        raise
    except Exception as exc:  # noqa: BLE001 - unpickling / shape mismatch errors vary
        raise ExportError(f"cannot load weights from {path}: {_first_line(exc)}", check="weights") from None


def half_with_float_io(module):
    """A float16 copy of `module` whose input and outputs stay float32 (casts at the edges)."""
    import copy

    import torch

    half = copy.deepcopy(module).half()
    g = half.graph
    placeholder = next(n for n in g.nodes if n.op == "placeholder")
    output = next(n for n in g.nodes if n.op == "output")
    with g.inserting_after(placeholder):
        cast = g.call_method("to", (placeholder, torch.float16))
    placeholder.replace_all_uses_with(cast, delete_user_cb=lambda user: user is not cast)
    result = output.args[0]
    with g.inserting_before(output):
        if isinstance(result, (tuple, list)):
            back = tuple(g.call_method("float", (r,)) for r in result)
        else:
            back = g.call_method("float", (result,))
    output.args = (back,)
    half.recompile()
    return half


# ---- export ------------------------------------------------------------------------------


def torch_export(module, input_shapes, *, opset=None, input_names=(INPUT_NAME,),
                 output_names=(OUTPUT_NAME,)):
    """torch.onnx.export (dynamo) with a symbolic batch axis on every input; an ONNXProgram."""
    import torch

    examples = tuple(torch.randn(EXAMPLE_BATCH, *s) for s in input_shapes)
    batch = torch.export.Dim(BATCH_NAME, min=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.onnx.export(module, examples, dynamo=True, input_names=list(input_names),
                                 output_names=list(output_names), opset_version=opset,
                                 dynamic_shapes=tuple({0: batch} for _ in examples),
                                 external_data=False, optimize=True, verbose=False, report=False)


def locate_export_failure(module, graph, opset=None, limit: int = 48):
    """Export the graph's nodes one at a time to find the one the exporter cannot handle:
    (node, message) or None. Identical configurations are tried once; at most `limit`."""
    from archspec.ops import OPS

    seen = set()
    for node in graph.inference_nodes():
        if OPS[node.op].bare_parameter or node.tie is not None:
            continue  # a multiply by a parameter, or another node's module: nothing to export alone
        shapes = [graph.shape(i) for i in node.inputs]
        key = (node.op, repr(node.params), tuple(shapes))
        if key in seen:
            continue
        seen.add(key)
        if len(seen) > limit:
            return None
        try:
            sub = module.get_submodule(node.name)
            torch_export(sub, shapes, opset=opset, input_names=[f"in{i}" for i in range(len(shapes))],
                         output_names=["out"])
        except Exception as exc:  # noqa: BLE001 - whatever the exporter raised
            return node, _first_line(exc)
    return None


def _size_check(module, fp16: bool) -> None:
    per = 2 if fp16 else 4
    total = sum(t.numel() * per for t in [*module.parameters(), *module.buffers()])
    if total > MAX_EMBEDDED_BYTES:
        raise ExportError(f"the model's tensors take {total / 1024 ** 3:.2f} GB, over ONNX's 2 GB "
                          f"single-file limit; archspec only writes self-contained files",
                          check="export", hint="try --fp16, or a smaller input/classifier")


def _save(program, path: Path) -> None:
    program.save(str(path), external_data=False)
    extra = _sidecars(path)
    if extra:  # verify() also checks that no tensor refers to external data
        raise ExportError(f"the exporter wrote tensors to an external data file ({extra[0].name}); "
                          f"refusing a file that is not self-contained", check="self-contained")


def _sidecars(path: Path) -> list[Path]:
    return [p for p in path.parent.iterdir() if p.name.startswith(path.name) and p != path]


def _cleanup(*paths) -> None:
    for p in paths:
        if p is None:
            continue
        for q in [p, *_sidecars(p)]:
            try:
                q.unlink()
            except FileNotFoundError:
                pass


def quantize_int8(src: Path, dst: Path, input_shape, calibration=None, seed: int = 0) -> None:
    """Static QDQ int8 quantisation (per-channel weights) calibrated on `calibration` (an
    array (N, C, H, W), or None for random normal inputs)."""
    import numpy as np
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if calibration is None:
        rng = np.random.default_rng(seed)
        batches = [rng.standard_normal((CALIBRATION_BATCH_SIZE, *input_shape)).astype(np.float32)
                   for _ in range(CALIBRATION_BATCHES)]
    else:
        data = np.asarray(calibration, dtype=np.float32)
        if data.shape[1:] != tuple(input_shape):
            raise ExportError(f"calibration data has shape {list(data.shape)}; expected "
                              f"[N, {', '.join(map(str, input_shape))}]", check="quantize")
        batches = [data[i:i + CALIBRATION_BATCH_SIZE] for i in range(0, len(data), CALIBRATION_BATCH_SIZE)]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{INPUT_NAME: b} for b in batches])

        def get_next(self):
            return next(self.items, None)

    pre = dst.with_name(dst.name + ".pre.onnx")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
            quantize_static(str(pre), str(dst), Reader(), quant_format=QuantFormat.QDQ,
                            per_channel=True, activation_type=QuantType.QInt8,
                            weight_type=QuantType.QInt8)
    except ExportError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise ExportError(f"int8 quantisation failed: {_first_line(exc)}", check="quantize") from None
    finally:
        _cleanup(pre)


def export_onnx(spec_or_graph, path, *, weights=None, opset: int | None = None, fp16: bool = False,
                force: bool = False, verify: bool = True, input_shape=None, quantize: str | None = None,
                calibration=None, seed: int = 0, batches=BATCHES, progress=None) -> ExportResult:
    """Export `spec_or_graph` (a spec path, Spec, Graph or archspec GraphModule) to `path`.
    `progress(stage)`, when given, is called as each stage starts (archspec/progress.py):
    compile, trace, export, quantize, check, shape inference, verify batch N.

    Raises OutputExists, OutputError (the file cannot be written), SpecError (bad spec) or
    ExportError (refused op, exporter failure, failed check — `.check` says which); on any
    failure nothing is left at or beside `path`."""
    path = Path(path)
    if path.exists() and not force:  # fail early; publishing checks again, atomically
        raise OutputExists(path)
    if quantize is not None and quantize not in QUANTIZE_MODES:
        raise ExportError(f"quantize must be one of {', '.join(QUANTIZE_MODES)}. Received: '{quantize}'",
                          check="options")
    if fp16 and quantize:
        raise ExportError("fp16 and int8 quantisation cannot be combined", check="options")

    announce(progress, "compile")
    graph, module = compile_for_export(spec_or_graph, input_shape=input_shape, seed=seed,
                                       weights=weights)
    _size_check(module, fp16)
    announce(progress, "trace")
    program = _trace(half_with_float_io(module) if fp16 else module, module, graph, opset)
    with output_file(path, overwrite=force) as tmp:
        report, accuracy, model = _write_and_verify(program, tmp, module, graph, verify=verify,
                                                    fp16=fp16, quantize=quantize,
                                                    calibration=calibration, seed=seed, batches=batches,
                                                    progress=progress)
        del program  # it holds a second copy of the weights
    return _result(path, model, report, accuracy, fp16=fp16, quantize=quantize,
                   calibration=calibration)


def _trace(target, module, graph, opset):
    """The ONNXProgram of `target`; a failure is located at the node the exporter cannot take."""
    try:
        return torch_export(target, [graph.input_shape], opset=opset, output_names=output_names(graph))
    except Exception as exc:  # noqa: BLE001 - exporter errors have many types
        culprit = locate_export_failure(module, graph, opset)
        if culprit:
            node, why = culprit
            raise ExportError(f"'{node.name}' ({node.op}) cannot be exported to ONNX: {why}",
                              node.loc, check="export") from None
        raise ExportError(f"the torch ONNX exporter failed: {_first_line(exc)}", check="export") from None


def _write_and_verify(program, tmp: Path, module, graph, *, verify, fp16, quantize, calibration,
                      seed, batches, progress=None):
    """Save to `tmp` (quantising it in place for int8) and verify it; (report, accuracy, model)."""
    import onnx

    from archspec.compile import onnx_verify

    plain = tmp.with_name(tmp.name + ".fp32.onnx") if quantize else tmp
    try:
        announce(progress, "export")
        _save(program, plain)
        if quantize:
            announce(progress, "quantize")
            quantize_int8(plain, tmp, graph.input_shape, calibration, seed)
    except BaseException:
        _cleanup(tmp, plain)  # with any sidecar the exporter wrote
        raise
    finally:
        if quantize:
            _cleanup(plain)
    report, model, accuracy = None, None, []
    if verify:
        tol = REPORT_ONLY if quantize else FP16 if fp16 else FP32
        report = onnx_verify.verify(tmp, module, graph, tol=tol, batches=batches, seed=seed,
                                    progress=progress)
        model, report.model = report.model, None
        if quantize:
            accuracy, report.parity = report.parity, []
    else:
        announce(progress, "check")
        try:
            onnx.checker.check_model(str(tmp))  # cheap structural check only
        except Exception as exc:  # noqa: BLE001 - checker errors are ValidationError or C++ errors
            raise ExportError(f"ONNX check 'checker' failed: {_first_line(exc)}", check="checker") from None
    if model is None:
        model = onnx.load(str(tmp), load_external_data=False)
    return report, accuracy, model


def _result(path: Path, model, report, accuracy, *, fp16, quantize, calibration) -> ExportResult:
    import onnx

    notes = []
    if fp16:
        notes.append("fp16 mainly pays off on GPUs (CUDA provider); on CPU ONNX Runtime usually "
                     "runs it no faster than fp32. Input and output stay float32.")
    if quantize:
        notes.append("int8 (QDQ, per-channel) is calibrated on "
                     + ("the given data" if calibration is not None else "random inputs: pass "
                        "real images (--calibration x.npy) for a faithful calibration"))
    opset_used = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)

    def io(value):
        t = value.type.tensor_type
        dims = [d.dim_param or d.dim_value for d in t.shape.dim]
        return value.name, dims, onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name

    outputs = [io(v) for v in model.graph.output]
    return ExportResult(path=path, bytes=_size(path), opset=opset_used, input=io(model.graph.input[0]),
                        output=outputs[0], extra=outputs[1:],
                        dtype="int8" if quantize else "float16" if fp16 else "float32",
                        report=report, accuracy=accuracy, notes=notes, outputs=len(outputs))


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
