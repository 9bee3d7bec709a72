"""`archspec run`: inference with ONNX Runtime, and the helpers `archspec bench` shares.

An .onnx file needs only the runtime extra (onnxruntime, numpy): this path imports neither
torch nor archspec's compiler, so it works on deployment machines without torch and starts
fast. A spec is exported on the fly first, which needs the onnx extra."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import List, Optional

import typer

from archspec.commands.options import allow_outside_option, set_option

FORMATS = ("text", "json")
OUTPUT_SUFFIXES = (".npy", ".npz", ".json")


def register(app: typer.Typer) -> None:
    from archspec.commands.bench import bench

    app.command("run")(run)
    app.command("bench")(bench)


def device_option():
    return typer.Option("auto", "--device", help="auto (CUDA when available), cpu or cuda.")


def is_onnx(path: Path) -> bool:
    return path.suffix.lower() == ".onnx"


def check_device(device: str):
    """The provider list for `device`, or exit 2 (usage: unknown name; environment: no CUDA)."""
    from archspec.cli import EXIT_USAGE, fail
    from archspec.compile.runtime import DeviceError, providers_for

    try:
        return providers_for(device)
    except DeviceError as exc:
        fail(str(exc), EXIT_USAGE)


def open_session(path, device: str, threads: int | None = None):
    from archspec.cli import EXIT_INVALID, EXIT_USAGE, fail
    from archspec.compile.runtime import DeviceError, create_session

    try:
        return create_session(Path(path), device, threads=threads)
    except DeviceError as exc:
        fail(str(exc), EXIT_USAGE)
    except Exception as exc:  # noqa: BLE001 - ORT's own exception types (invalid graph, protobuf)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        fail(f"ONNX Runtime cannot load {path}: {first}", EXIT_INVALID)


def model_input_or_exit(session, source, batches):
    """The model's one input, checked against every batch size before anything is allocated."""
    from archspec.cli import EXIT_USAGE, fail, physical_memory
    from archspec.compile.runtime import ModelInputError, check_feedable, model_input

    try:
        spec = model_input(session, str(source))
        for b in batches:
            check_feedable(spec, b, physical_memory(), str(source))
    except ModelInputError as exc:
        fail(str(exc), EXIT_USAGE)
    return spec


def export_spec(spec: Path, tmpdir: str, *, input, weights, seed, allow_outside, run_batch=1, sets=None,
                quiet: bool = False):
    """Load, compile and export a spec to a verified temporary .onnx; (graph, module, path).
    The export's stages are shown on a terminal (archspec/progress.py) unless `quiet`."""
    from archspec.cli import fail, graph_or_exit
    from archspec.commands.export import quiet_exporter_logs
    from archspec.errors import SpecError
    from archspec.progress import Progress, shown

    graph = graph_or_exit(spec, input, allow_outside, weights, run_batch=max(5, run_batch), sets=sets,
                          quiet=quiet)
    quiet_exporter_logs()
    from archspec.compile.onnx_export import compile_for_export, export_onnx

    from archspec.names import safe_file_stem  # the name is data: one plain file name in tmpdir
    path = Path(tmpdir) / f"{safe_file_stem(graph.name)}.onnx"
    try:
        with Progress(shown(quiet)) as progress:
            progress("compile")
            graph, module = compile_for_export(graph, seed=seed, weights=weights)
            export_onnx(module, path, batches=(1,), seed=seed, progress=progress)
    except SpecError as exc:
        fail(exc)
    return graph, module, path


def random_input(spec, batch: int, seed: int):
    """Standard normal inputs drawn directly in float32 (no float64 copy of a large batch)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, *spec.shape), dtype=np.float32).astype(spec.dtype, copy=False)


def run(model: Path = typer.Argument(..., help="An .onnx file, or a spec (exported on the fly)."),
        input_file: Optional[str] = typer.Option(
            None, "--input-file", help="A .npy array (N, C, H, W) or (C, H, W); 'random' (default) "
                                       "draws standard normal inputs."),
        batch: int = typer.Option(1, "--batch", min=1, help="Batch size of random inputs."),
        top_k: int = typer.Option(5, "--top-k", min=1, help="Classes shown per sample."),
        device: str = device_option(),
        output: Optional[Path] = typer.Option(
            None, "-o", "--output", help="Write the outputs (atomically): .npy (the first output), "
                                         ".npz (all, by name) or .json (all, with shapes, provider, timing)."),
        format: str = typer.Option("text", "--format", "-f", help="text, or json (the .json document)."),
        seed: int = typer.Option(0, "--seed", help="Seed of random inputs (and a spec's weights)."),
        input: Optional[str] = typer.Option(None, "--input", help="Spec only: override the input size, CxHxW."),
        weights: Optional[Path] = typer.Option(None, "--weights", help="Spec only: load weights first."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="Spec only: no progress display and no "
                                                                "warnings on stderr while it is exported."),
        allow_outside: bool = allow_outside_option(),
        sets: Optional[List[str]] = set_option()):
    """Run a model with ONNX Runtime: an .onnx file, or a spec.

    A spec is exported on the fly first. Prints the outputs (top-k classes per sample) and the
    execution provider that actually ran. An .onnx file needs only ONNX Runtime and NumPy (no
    torch)."""
    from archspec.cli import EXIT_USAGE, _existing, fail
    from archspec.extras import require

    onnx_file = is_onnx(model)
    require("runtime" if onnx_file else "onnx", "run")
    if format not in FORMATS:
        fail(f"--format must be one of {', '.join(FORMATS)}. Received: '{format}'", EXIT_USAGE)
    if output is not None:
        _check_output_path(output)
    check_device(device)
    _existing(model)
    if onnx_file and (input is not None or weights is not None):
        fail("--input and --weights apply to specs; an .onnx file has both built in", EXIT_USAGE)
    if onnx_file and sets:
        fail("--set applies to specs; an .onnx file has its variables' values built in", EXIT_USAGE)
    with tempfile.TemporaryDirectory(prefix="archspec-run-") as tmpdir:
        path = model
        if not onnx_file:
            path = export_spec(model, tmpdir, input=input, weights=weights, seed=seed,
                               allow_outside=allow_outside, run_batch=batch, sets=sets, quiet=quiet)[2]
        start = time.perf_counter()
        session = open_session(path, device)
        session_ms = (time.perf_counter() - start) * 1e3
    result = _infer(session, model, input_file, batch, seed)
    result["timing_ms"] = {"session": round(session_ms, 3), "run": result.pop("run_ms")}

    from archspec.commands import run_output

    if output is not None:
        run_output.write(output, result)
    if format == "json":
        typer.echo(run_output.to_json(result))
    else:
        run_output.print_text(result, top_k)


def _check_output_path(output: Path) -> None:
    from archspec.cli import EXIT_USAGE, fail

    if output.suffix.lower() not in OUTPUT_SUFFIXES:
        fail(f"-o must end in {', '.join(OUTPUT_SUFFIXES)}. Received: '{output}'", EXIT_USAGE)
    if output.is_dir():
        fail(f"{output} is a directory", EXIT_USAGE)


def _infer(session, model: Path, input_file, batch: int, seed: int) -> dict:
    """Feed the model (random or .npy inputs, checked before allocating); the run as a dict."""
    from archspec.cli import fail
    from archspec.compile.runtime import active_provider

    if input_file is None or input_file == "random":
        spec = model_input_or_exit(session, model, [batch])
        x, source = random_input(spec, batch, seed), f"random normal (seed {seed})"
    else:
        from archspec.commands.export import load_array

        spec = model_input_or_exit(session, model, [])
        x = load_array(Path(input_file), spec.shape)
        model_input_or_exit(session, model, [len(x)])
        x, source = x.astype(spec.dtype, copy=False), input_file
    start = time.perf_counter()
    try:
        outputs = session.run(None, {spec.name: x})
    except Exception as exc:  # noqa: BLE001 - ORT's own exception types
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        fail(f"ONNX Runtime failed on {model}: {first}")
    run_ms = (time.perf_counter() - start) * 1e3
    return {"model": str(model), "provider": active_provider(session),
            "input": {"name": spec.name, "shape": list(x.shape), "dtype": str(x.dtype), "source": source},
            "outputs": [(meta.name, out) for meta, out in zip(session.get_outputs(), outputs)],
            "run_ms": round(run_ms, 3)}
