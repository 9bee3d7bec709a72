"""`archspec bench`: PyTorch eager vs ONNX Runtime latency side by side in one process, or
ONNX Runtime alone (`--onnx-only`, or an .onnx file: no torch needed)."""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import List, Optional

import typer

from archspec.commands.options import allow_outside_option, set_option

from archspec.commands.runtime import (FORMATS, check_device, device_option, export_spec, is_onnx,
                                       model_input_or_exit, open_session)


def _parse_batches(text: str) -> list[int]:
    from archspec.cli import EXIT_USAGE, fail

    try:
        sizes = [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        fail(f"--batch must be positive sizes separated by commas, e.g. 1,8. Received: '{text}'", EXIT_USAGE)
    return sizes


def bench(model: Path = typer.Argument(..., help="Spec file, or an .onnx file (ONNX Runtime only)."),
          batch: str = typer.Option("1,8", "--batch", help="Batch sizes, comma-separated."),
          device: str = device_option(),
          onnx_only: bool = typer.Option(False, "--onnx-only",
                                         help="Time ONNX Runtime alone (implied for an .onnx file, "
                                              "which needs no torch)."),
          runs: int = typer.Option(20, "--runs", min=1, help="Timed runs per batch size and runtime."),
          warmup: int = typer.Option(3, "--warmup", min=0, help="Untimed runs first."),
          threads: Optional[int] = typer.Option(None, "--threads", min=1,
                                                help="Intra-op threads for both runtimes (default: each "
                                                     "runtime's own default)."),
          input: Optional[str] = typer.Option(None, "--input", help="Spec only: override the input size, CxHxW."),
          weights: Optional[Path] = typer.Option(None, "--weights", help="Spec only: load weights first."),
          seed: int = typer.Option(0, "--seed", help="Seed of the weights and inputs."),
          format: str = typer.Option("text", "--format", "-f", metavar="text|json",
                                     help="text, or json: every batch size and runtime with median, p90 "
                                          "and throughput, the provider, threads and versions "
                                          "(docs/json.md)."),
          quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display and no warnings "
                                                                  "on stderr."),
          allow_outside: bool = allow_outside_option(),
          sets: Optional[List[str]] = set_option()):
    """Time PyTorch eager and ONNX Runtime side by side.

    One process, the same weights and inputs, interleaved runs; median and p90 latency and
    images/s per batch size, and the execution provider that ran. With --onnx-only, or given
    an .onnx file, ONNX Runtime alone."""
    from archspec.cli import EXIT_USAGE, _existing, fail
    from archspec.extras import require
    from archspec.progress import Progress, shown

    onnx_file = is_onnx(model)
    require("runtime" if onnx_file else "onnx", "bench")
    if format not in FORMATS:
        fail(f"--format must be one of {', '.join(FORMATS)}. Received: '{format}'", EXIT_USAGE)
    sizes = _parse_batches(batch)
    check_device(device)
    _existing(model)
    if onnx_file and (input is not None or weights is not None):
        fail("--input and --weights apply to specs; an .onnx file has both built in", EXIT_USAGE)
    if onnx_file and sets:
        fail("--set applies to specs; an .onnx file has its variables' values built in", EXIT_USAGE)
    module, torch = None, None
    with tempfile.TemporaryDirectory(prefix="archspec-bench-") as tmpdir:
        name, path = model.stem, model
        if not onnx_file:
            graph, module, path = export_spec(model, tmpdir, input=input, weights=weights, seed=seed,
                                              allow_outside=allow_outside, run_batch=max(sizes), sets=sets,
                                              quiet=quiet)
            name = graph.name
        with Progress(shown(quiet)) as progress:
            progress("ONNX Runtime session")
            session = open_session(path, device, threads)
    spec = model_input_or_exit(session, model, sizes)
    if module is not None and not onnx_only:
        import torch

        if threads:
            torch.set_num_threads(threads)
    else:
        module = None
    with Progress(shown(quiet)) as progress:
        rows = [(b, *_time_batch(session, spec, module, torch, b, seed=seed, runs=runs, warmup=warmup,
                                 progress=progress)) for b in sizes]
    settings = dict(threads=threads, runs=runs, warmup=warmup)
    if format == "json":
        typer.echo(json.dumps(_bench_json(model, name, spec, session, torch, rows, **settings), indent=2))
    else:
        _print_table(name, spec, session, torch, rows, **settings)


def _runners(session, spec, module, torch, x):
    """The functions to time, by label: ONNX Runtime, and PyTorch eager when `module` is given."""
    from archspec.compile.runtime import active_provider, torch_device_for

    runners = {}
    if module is not None:
        dev = torch_device_for(active_provider(session))
        module = module.to(dev)

        def eager():
            with torch.inference_mode():
                out = module(torch.from_numpy(x).to(dev))
                if isinstance(out, tuple):  # (main, *extra outputs): the main one is compared
                    out = out[0]
                return out.cpu().numpy() if dev == "cuda" else out.numpy()

        runners["pytorch"] = eager
    runners["onnxruntime"] = lambda: session.run(None, {spec.name: x})[0]
    return runners


def _time_batch(session, spec, module, torch, b: int, *, seed: int, runs: int, warmup: int, progress):
    """(seconds per run by label, max abs difference between the runtimes or None); each stage
    (warm-up, then the timed runs of every runtime, counted) is announced to `progress`."""
    import numpy as np

    from archspec.commands.runtime import random_input

    x = random_input(spec, b, seed + b)
    runners = _runners(session, spec, module, torch, x)
    who = " + ".join(runners)
    progress.stage(f"batch {b}: {who}, {warmup} warm-up run{'s' * (warmup != 1)}")
    first = {label: fn() for label, fn in runners.items()}  # the first warm-up run
    diff = None
    if len(first) > 1:
        diff = float(np.abs(first["pytorch"].astype(np.float64) - first["onnxruntime"]).max())
    for _ in range(max(0, warmup - 1)):
        for fn in runners.values():
            fn()
    times = {label: [] for label in runners}
    order = list(runners.items())
    progress.stage(f"batch {b}: {who}, {'interleaved ' * (len(runners) > 1)}runs", total=runs)
    for i in range(runs):
        for label, fn in (order if i % 2 == 0 else order[::-1]):  # alternate who runs first
            start = time.perf_counter()
            fn()
            times[label].append(time.perf_counter() - start)
        progress.advance()
    return times, diff


def _bench_json(model, name, spec, session, torch, rows, *, threads, runs, warmup) -> dict:
    """The `bench -f json` document (keys in docs/json.md): every batch size and runtime."""
    import platform

    import onnxruntime as ort

    from archspec.compile.runtime import active_provider, torch_device_for

    provider = active_provider(session)
    batches = []
    for b, times, diff in rows:
        stats = {label: _stats(values, b) for label, values in times.items()}
        speedup = (stats["pytorch"]["median_ms"] / stats["onnxruntime"]["median_ms"]
                   if "pytorch" in stats and stats["onnxruntime"]["median_ms"] > 0 else None)
        batches.append({"batch": b, "runtimes": stats, "speedup": speedup, "max_abs_diff": diff})
    return {"model": str(model), "name": name,
            "input": {"name": spec.name, "shape": list(spec.shape), "dtype": str(spec.dtype)},
            "provider": provider, "device": torch_device_for(provider),
            "runtimes": ["pytorch", "onnxruntime"] if torch is not None else ["onnxruntime"],
            "runs": runs, "warmup": warmup, "interleaved": torch is not None,
            "threads": {"requested": threads, "torch": torch.get_num_threads() if torch is not None else None,
                        "onnxruntime": threads},
            "versions": {"onnxruntime": ort.__version__, "torch": torch.__version__ if torch is not None else None,
                         "python": platform.python_version()},
            "batches": batches}


def _stats(seconds, batch: int) -> dict:
    import numpy as np

    ms = np.array(seconds) * 1e3
    median = float(np.median(ms))
    return {"median_ms": median, "p90_ms": float(np.percentile(ms, 90)), "min_ms": float(ms.min()),
            "throughput": batch / median * 1e3 if median > 0 else None, "runs": len(seconds)}


def _print_table(name, spec, session, torch, rows, *, threads, runs, warmup) -> None:
    import onnxruntime as ort

    from archspec.compile.runtime import active_provider, torch_device_for

    provider = active_provider(session)
    shape = "x".join(map(str, spec.shape))
    ort_part = f"onnxruntime {ort.__version__} ({threads or 'default'} threads)"
    if torch is not None:
        typer.echo(f"bench {name} ({shape}) on {torch_device_for(provider)}: provider {provider}; "
                   f"torch {torch.__version__} ({torch.get_num_threads()} threads), {ort_part}; "
                   f"{runs} interleaved runs after {warmup} warmup")
    else:
        typer.echo(f"bench {name} ({shape}), ONNX Runtime only: provider {provider}; {ort_part}; "
                   f"{runs} runs after {warmup} warmup")
    typer.echo(f"{'batch':>5}  {'runtime':<12} {'median ms':>10} {'p90 ms':>9} {'images/s':>9}")
    for b, times, diff in rows:
        med = {}
        for label, values in times.items():
            stats = _stats(values, b)
            med[label] = stats["median_ms"]
            typer.echo(f"{b:>5}  {label:<12} {med[label]:>10.2f} {stats['p90_ms']:>9.2f} "
                       f"{b / med[label] * 1e3:>9.1f}")
        if diff is not None:
            typer.echo(f"{'':>5}  onnxruntime/pytorch speed-up {med['pytorch'] / med['onnxruntime']:.2f}x "
                       f"(outputs agree to max abs diff {diff:.1e})")
