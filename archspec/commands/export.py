"""`archspec export`: a spec to one verified, self-contained ONNX file."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from archspec.commands.options import allow_outside_option, set_option

MIN_OPSET = 18  # the dynamo exporter's torchlib targets opset 18 and later


def register(app: typer.Typer) -> None:
    app.command("export")(export)


def quiet_exporter_logs() -> None:
    """The exporter and its optimizer log through `logging`; keep the CLI's stderr readable."""
    import logging

    for name in ("torch.onnx", "torch.export", "onnxscript", "onnx_ir", "onnxruntime", "torch._dynamo",
                 "torch.fx.experimental.symbolic_shapes"):
        logging.getLogger(name).setLevel(logging.ERROR)


def export(spec: Path = typer.Argument(..., help="Spec file."),
           output: Path = typer.Option(..., "-o", "--output", help="The .onnx file to write."),
           weights: Optional[Path] = typer.Option(None, "--weights",
                                                  help="Load a state_dict or checkpoint first."),
           opset: Optional[int] = typer.Option(None, "--opset", help="ONNX opset (default: the exporter's)."),
           fp16: bool = typer.Option(False, "--fp16", help="float16 weights and compute (for GPUs); "
                                                           "input and output stay float32."),
           force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
           verify: bool = typer.Option(True, "--verify/--no-verify",
                                       help="Check the file (checker, shapes, ORT vs PyTorch) before writing."),
           input: Optional[str] = typer.Option(None, "--input", help="Override the input size, CxHxW."),
           quantize: Optional[str] = typer.Option(None, "--quantize",
                                                  help="int8: static QDQ quantisation with ONNX Runtime."),
           calibration: Optional[Path] = typer.Option(
               None, "--calibration", help="int8 calibration inputs, a .npy array (N, C, H, W)."),
           seed: int = typer.Option(0, "--seed", help="Seed of the initial weights and test inputs."),
           report: Optional[Path] = typer.Option(
               None, "--report", metavar="FILE.json",
               help="Also write the verification report as JSON (atomically; keys in docs/json.md), "
                    "whether the checks pass or fail."),
           quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display and no "
                                                                   "warnings on stderr."),
           allow_outside: bool = allow_outside_option(),
           sets: Optional[List[str]] = set_option()):
    """Export a spec to one verified, self-contained ONNX file.

    Torch dynamo exporter, dynamic batch axis, input 'input' and output 'logits' (plus one
    output per `output: true` layer), written atomically. Before the file is written: onnx
    checker, ONNX shape inference against archspec's shapes, and ONNX Runtime against PyTorch
    at batch 1, 2 and 5 on every output (1e-4 relative to the output's magnitude; random
    weights are conditioned so every layer matters). Exit 1 if the spec is invalid, an op
    cannot be exported faithfully or a check fails. --report FILE.json writes what was compared
    and found, passed or failed (keys in docs/json.md); on a terminal the stages are shown."""
    from archspec.cli import EXIT_USAGE, fail, graph_or_exit
    from archspec.errors import SpecError
    from archspec.extras import require

    require("onnx", "export")
    if quantize is not None and quantize != "int8":
        fail(f"--quantize must be int8. Received: '{quantize}'", EXIT_USAGE)
    if fp16 and quantize:
        fail("--fp16 and --quantize int8 cannot be combined", EXIT_USAGE)
    if calibration is not None and quantize is None:
        fail("--calibration only applies with --quantize int8", EXIT_USAGE)
    if output.suffix.lower() != ".onnx":
        fail(f"-o must end in .onnx. Received: '{output}'", EXIT_USAGE)
    if output.exists() and not force:
        fail(f"{output} already exists (use --force to overwrite)", EXIT_USAGE)
    if output.exists() and output.is_dir():
        fail(f"{output} is a directory", EXIT_USAGE)
    if report is not None and (report.suffix.lower() != ".json" or report.is_dir()):
        fail(f"--report must name a .json file. Received: '{report}'", EXIT_USAGE)
    graph = graph_or_exit(spec, input, allow_outside, weights, run_batch=5, sets=sets,
                          quiet=quiet)  # verified up to batch 5

    import onnx

    if opset is not None and not MIN_OPSET <= opset <= onnx.defs.onnx_opset_version():
        fail(f"--opset must be between {MIN_OPSET} and {onnx.defs.onnx_opset_version()} "
             f"(the dynamo exporter and this onnx). Received: {opset}", EXIT_USAGE)
    data = None
    if calibration is not None:
        data = load_array(calibration, graph.input_shape)
    quiet_exporter_logs()

    from archspec.compile.onnx_export import ExportError, OutputExists, export_onnx
    from archspec.compile.onnx_parity import BATCHES
    from archspec.progress import Progress, shown

    if fp16:
        import torch

        if not torch.cuda.is_available():
            typer.echo("note: --fp16 is only useful on a GPU (CUDA provider); this machine has none, "
                       "so the model is exported and checked on CPU but will not run faster here", err=True)
    result, failure = None, None
    try:
        with Progress(shown(quiet)) as progress:  # erased before any line below is printed
            result = export_onnx(graph, output, weights=weights, opset=opset, fp16=fp16, force=force,
                                 verify=verify, quantize=quantize, calibration=data, seed=seed,
                                 progress=progress)
    except OutputExists as exc:
        fail(str(exc), EXIT_USAGE)
    except ExportError as exc:
        failure = exc
    except SpecError as exc:
        fail(exc)
    if report is not None and (result is not None or failure.report is not None):
        _write_report(report, graph, spec, output, seed, BATCHES, result, failure)
    if failure is not None:
        fail(failure)
    for line in result.lines():
        typer.echo(line)


def _write_report(path: Path, graph, spec: Path, output: Path, seed: int, batches, result, failure) -> None:
    """The verification report as JSON (archspec/compile/onnx_report.py), written atomically."""
    import json

    from archspec.compile.onnx_report import export_report
    from archspec.io import write_bytes

    document = export_report(graph, spec=spec, path=output, seed=seed, batches=batches, result=result,
                             error=failure)
    write_bytes(path, (json.dumps(document, indent=2, allow_nan=False) + "\n").encode())


def load_array(path: Path, input_shape) -> "object":
    """A float32 array (N, C, H, W) from a .npy file; a single (C, H, W) sample gets a batch
    axis. Usage errors exit 2."""
    import numpy as np

    from archspec.cli import EXIT_USAGE, _existing, fail

    _existing(path)
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - not an .npy, pickled objects, truncated file
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        fail(f"cannot read {path} as a .npy array: {first}", EXIT_USAGE)
    if tuple(data.shape) == tuple(input_shape):
        data = data[None]
    if data.ndim != len(input_shape) + 1 or tuple(data.shape[1:]) != tuple(input_shape):
        fail(f"{path} holds an array of shape {list(data.shape)}; the model takes "
             f"[N, {', '.join(map(str, input_shape))}] (or one sample [{', '.join(map(str, input_shape))}])",
             EXIT_USAGE)
    if not np.issubdtype(data.dtype, np.number):
        fail(f"{path} holds {data.dtype} values, not numbers", EXIT_USAGE)
    return data.astype(np.float32)
