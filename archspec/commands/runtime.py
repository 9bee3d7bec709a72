"""`archspec run` (inference with ONNX Runtime) and `archspec bench` (PyTorch eager vs ONNX
Runtime latency, side by side, in one process)."""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("bench")(bench)


def _device_option():
    return typer.Option("auto", "--device", help="auto (CUDA when available), cpu or cuda.")


def _check_device(device: str):
    """The provider list for `device`, or exit 2 (usage: unknown name; environment: no CUDA)."""
    from archspec.cli import EXIT_USAGE, fail
    from archspec.compile.runtime import DeviceError, providers_for

    try:
        return providers_for(device)
    except DeviceError as exc:
        fail(str(exc), EXIT_USAGE)


def _session(path, device: str, threads: int | None = None):
    from archspec.cli import EXIT_INVALID, EXIT_USAGE, fail
    from archspec.compile.runtime import DeviceError, create_session

    try:
        return create_session(Path(path), device, threads=threads)
    except DeviceError as exc:
        fail(str(exc), EXIT_USAGE)
    except Exception as exc:  # noqa: BLE001 - ORT's own exception types (invalid graph, protobuf)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        fail(f"ONNX Runtime cannot load {path}: {first}", EXIT_INVALID)


def _export_spec(spec: Path, tmpdir: str, *, input, weights, seed, allow_outside, batches=(1,)):
    """Load, compile and export a spec to a verified temporary .onnx; (graph, module, path)."""
    from archspec.cli import fail, graph_or_exit
    from archspec.commands.export import quiet_exporter_logs
    from archspec.errors import SpecError

    graph = graph_or_exit(spec, input, allow_outside, weights, run_batch=max(5, *batches))
    quiet_exporter_logs()
    from archspec.compile.onnx_export import compile_for_export, export_onnx

    path = Path(tmpdir) / f"{graph.name}.onnx"
    typer.echo(f"exporting {graph.name} ({'x'.join(map(str, graph.input_shape))}) to ONNX...", err=True)
    try:
        graph, module = compile_for_export(graph, seed=seed, weights=weights)
        export_onnx(module, path, batches=batches, seed=seed)
    except SpecError as exc:
        fail(exc)
    return graph, module, path


def run(model: Path = typer.Argument(..., help="An .onnx file, or a spec (exported on the fly)."),
        input_file: Optional[str] = typer.Option(
            None, "--input-file", help="A .npy array (N, C, H, W) or (C, H, W); 'random' (default) "
                                       "draws standard normal inputs."),
        batch: int = typer.Option(1, "--batch", min=1, help="Batch size of random inputs."),
        top_k: int = typer.Option(5, "--top-k", min=1, help="Classes shown per sample."),
        device: str = _device_option(),
        seed: int = typer.Option(0, "--seed", help="Seed of random inputs (and a spec's weights)."),
        input: Optional[str] = typer.Option(None, "--input", help="Spec only: override the input size, CxHxW."),
        weights: Optional[Path] = typer.Option(None, "--weights", help="Spec only: load weights first."),
        allow_outside: bool = typer.Option(False, help="Let 'extends' leave the spec's directory.")):
    """Run a model (.onnx, or a spec exported on the fly) with ONNX Runtime.

    Prints the outputs (top-k classes per sample) and the execution provider that actually ran."""
    import numpy as np

    from archspec.cli import EXIT_USAGE, _existing, fail

    _check_device(device)
    _existing(model)
    with tempfile.TemporaryDirectory(prefix="archspec-run-") as tmpdir:
        path = model
        if model.suffix.lower() != ".onnx":
            _, _, path = _export_spec(model, tmpdir, input=input, weights=weights, seed=seed,
                                      allow_outside=allow_outside)
        elif input is not None or weights is not None:
            fail("--input and --weights apply to specs; an .onnx file has both built in", EXIT_USAGE)
        session = _session(path, device)

        from archspec.compile.runtime import active_provider, input_meta

        name, shape, dtype = input_meta(session)
        if any(not isinstance(d, int) for d in shape):
            fail(f"{model}: input '{name}' has symbolic non-batch axes {list(shape)}; archspec "
                 f"models have a fixed C, H, W", EXIT_USAGE)
        if input_file is None or input_file == "random":
            x = np.random.default_rng(seed).standard_normal((batch, *shape))
            source = f"random normal (seed {seed})"
        else:
            from archspec.commands.export import load_array

            x = load_array(Path(input_file), shape)
            source = input_file
        x = x.astype(dtype)
        start = time.perf_counter()
        try:
            outputs = session.run(None, {name: x})
        except Exception as exc:  # noqa: BLE001
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            fail(f"ONNX Runtime failed on {model}: {first}")
        ms = (time.perf_counter() - start) * 1e3
        typer.echo(f"model: {model}")
        typer.echo(f"provider: {active_provider(session)}")
        typer.echo(f"input '{name}': {list(x.shape)} {x.dtype}, {source}")
        for meta, out in zip(session.get_outputs(), outputs):
            typer.echo(f"output '{meta.name}': {list(out.shape)} {out.dtype} in {ms:.1f} ms — "
                       f"min {out.min():.4g}, max {out.max():.4g}, mean {out.mean():.4g}")
            _print_top_k(out, top_k)


def _print_top_k(out, k: int) -> None:
    import numpy as np

    if out.ndim < 2:
        return
    if out.ndim > 2:  # dense outputs (segmentation): the most frequent per-pixel class
        for i, labels in enumerate(out.argmax(1)):
            counts = np.bincount(labels.ravel(), minlength=out.shape[1])
            typer.echo(f"  sample {i}: per-position argmax over {out.shape[1]} channels, most frequent "
                       f"{int(counts.argmax())} ({counts.max() / labels.size:.0%} of positions)")
        return
    k = min(k, out.shape[1])
    for i, row in enumerate(out):
        top = np.argsort(-row, kind="stable")[:k]
        typer.echo(f"  sample {i} top-{k}: " + ", ".join(f"{int(c)} ({row[c]:.4g})" for c in top))


# ---- bench -----------------------------------------------------------------------------------


def _parse_batches(text: str) -> list[int]:
    from archspec.cli import EXIT_USAGE, fail

    try:
        sizes = [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        fail(f"--batch must be positive sizes separated by commas, e.g. 1,8. Received: '{text}'", EXIT_USAGE)
    return sizes


def bench(spec: Path = typer.Argument(..., help="Spec file."),
          batch: str = typer.Option("1,8", "--batch", help="Batch sizes, comma-separated."),
          device: str = _device_option(),
          runs: int = typer.Option(20, "--runs", min=1, help="Timed runs per batch size and runtime."),
          warmup: int = typer.Option(3, "--warmup", min=0, help="Untimed runs first."),
          threads: Optional[int] = typer.Option(None, "--threads", min=1,
                                                help="Intra-op threads for both runtimes (default: each "
                                                     "runtime's own default)."),
          input: Optional[str] = typer.Option(None, "--input", help="Override the input size, CxHxW."),
          weights: Optional[Path] = typer.Option(None, "--weights", help="Load weights first."),
          seed: int = typer.Option(0, "--seed", help="Seed of the weights and inputs."),
          allow_outside: bool = typer.Option(False, help="Let 'extends' leave the spec's directory.")):
    """PyTorch eager vs ONNX Runtime latency and throughput, side by side.

    One process, the same weights and inputs, interleaved runs; median and p90 latency and
    images/s per batch size, and the execution provider that ran."""
    import numpy as np

    sizes = _parse_batches(batch)
    _check_device(device)

    import torch

    from archspec.compile.runtime import active_provider, torch_device_for

    with tempfile.TemporaryDirectory(prefix="archspec-bench-") as tmpdir:
        graph, module, path = _export_spec(spec, tmpdir, input=input, weights=weights, seed=seed,
                                           allow_outside=allow_outside)
        if threads:
            torch.set_num_threads(threads)
        import onnxruntime as ort

        session = _session(path, device, threads)
    provider = active_provider(session)
    dev = torch_device_for(provider)
    module = module.to(dev)
    name = session.get_inputs()[0].name
    tty = sys.stderr.isatty()
    rows = []
    for b in sizes:
        x = np.random.default_rng(seed + b).standard_normal((b, *graph.input_shape)).astype(np.float32)

        def eager():
            with torch.inference_mode():
                out = module(torch.from_numpy(x).to(dev))
                return out.cpu().numpy() if dev == "cuda" else out.numpy()

        def onnxrt():
            return session.run(None, {name: x})[0]

        typer.echo(f"bench batch {b}: {warmup} warmup + {runs} interleaved runs each...", err=True)
        ref, got = eager(), onnxrt()
        diff = float(np.abs(ref.astype(np.float64) - got).max())
        for _ in range(max(0, warmup - 1)):
            eager(), onnxrt()
        times = {"pytorch": [], "onnxruntime": []}
        for i in range(runs):
            order = (("pytorch", eager), ("onnxruntime", onnxrt))
            for label, fn in (order if i % 2 == 0 else order[::-1]):
                start = time.perf_counter()
                fn()
                times[label].append(time.perf_counter() - start)
            if tty:
                typer.echo(f"\r  run {i + 1}/{runs}", nl=False, err=True)
        if tty:
            typer.echo("", err=True)
        rows.append((b, times, diff))

    typer.echo(f"bench {graph.name} ({'x'.join(map(str, graph.input_shape))}) on {dev}: "
               f"provider {provider}; torch {torch.__version__} ({torch.get_num_threads()} threads), "
               f"onnxruntime {ort.__version__} ({threads or 'default'} threads); "
               f"{runs} interleaved runs after {warmup} warmup")
    typer.echo(f"{'batch':>5}  {'runtime':<12} {'median ms':>10} {'p90 ms':>9} {'images/s':>9}")
    for b, times, diff in rows:
        med = {}
        for label, values in times.items():
            ms = np.array(values) * 1e3
            med[label] = float(np.median(ms))
            typer.echo(f"{b:>5}  {label:<12} {med[label]:>10.2f} {np.percentile(ms, 90):>9.2f} "
                       f"{b / med[label] * 1e3:>9.1f}")
        typer.echo(f"{'':>5}  onnxruntime/pytorch speed-up {med['pytorch'] / med['onnxruntime']:.2f}x "
                   f"(outputs agree to max abs diff {diff:.1e})")
