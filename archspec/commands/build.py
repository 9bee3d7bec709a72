"""`archspec build`: compile a spec to PyTorch — an exported program (.pt2) or a state_dict (.pth)."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from archspec.commands.options import allow_outside_option, set_option

SUFFIXES = (".pt2", ".pth")


def register(app: typer.Typer) -> None:
    app.command("build")(build)


def build(spec: Path = typer.Argument(..., help="Spec file."),
          output: Optional[Path] = typer.Option(
              None, "-o", "--output",
              help="model.pt2 (torch.export program, batch size free) or model.pth (state_dict)."),
          weights: Optional[Path] = typer.Option(
              None, "--weights", help="Load a state_dict or checkpoint (.pth) into the model first."),
          print_code: bool = typer.Option(False, "--print-code", help="Print the generated forward()."),
          seed: Optional[int] = typer.Option(None, "--seed", help="Seed the initial weights."),
          input: Optional[str] = typer.Option(None, "--input", help="Override the input size, CxHxW."),
          init: str = typer.Option("kaiming", "--init",
                                   help="Initialisation scheme: kaiming, resnet, googlenet or torch."),
          zero_init_residual: bool = typer.Option(
              False, "--zero-init-residual", help="Zero the last batch norm of each residual branch."),
          training_heads: bool = typer.Option(
              False, "--training-heads", help="Include training-only heads (auxiliary classifiers)."),
          quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display, warnings or "
                                                                  "summary line on stderr."),
          allow_outside: bool = allow_outside_option(),
          sets: Optional[List[str]] = set_option()):
    """Compile a spec to a PyTorch module (.pt2 or .pth).

    Checks the spec, builds it, optionally loads weights, and writes it as a torch.export
    program (.pt2) or a state_dict (.pth)."""
    from archspec.cli import EXIT_USAGE, fail, graph_or_exit
    from archspec.extras import require

    require("torch", "build")
    if output is not None and output.suffix not in SUFFIXES:
        fail(f"-o must end in .pt2 (exported program) or .pth (state_dict). Received: '{output}'",
             EXIT_USAGE)
    graph = graph_or_exit(spec, input, allow_outside, weights, run_batch=2, sets=sets,
                          quiet=quiet)  # .pt2 traces at batch 2

    from archspec.compile.init import SCHEMES

    if init not in SCHEMES:
        fail(f"--init must be one of {', '.join(SCHEMES)}. Received: '{init}'", EXIT_USAGE)
    from archspec.progress import Progress, shown

    # shown only while a file is made: a bare build or --print-code is quick, its output plain
    with Progress(shown(quiet) and output is not None) as progress:
        model, data = _make(graph, output, weights, progress, training_heads=training_heads, seed=seed,
                            init=init, zero_init_residual=zero_init_residual)
    if print_code:
        typer.echo(model.code.strip())
    params = sum(p.numel() for p in model.parameters())
    if output is None:
        if not print_code and not quiet:
            typer.echo(f"{spec}: built {type(model).__name__} — {len(graph.nodes)} ops, {params:,} params "
                       f"(use -o model.pt2 or -o model.pth to write it)", err=True)
        return
    if not quiet:
        typer.echo(f"wrote {output} ({graph.name}, {params:,} params)", err=True)


def _make(graph, output: Optional[Path], weights: Optional[Path], progress, **options):
    """(module, the bytes written to `output` or None): compile, load weights, serialize and
    write, each stage announced to `progress`. Failures exit 1 (weights, tracing) or 2 (the file)."""
    from archspec.cli import fail

    progress("compile")
    import torch  # only now: a spec error is reported without paying for torch

    from archspec.compile.torch_fx import build as compile_graph
    from archspec.compile.weights import WeightsError, load_weights

    model = compile_graph(graph, **options)
    if weights is not None:
        progress("load weights")
        try:
            load_weights(model, weights)
        except WeightsError as exc:
            progress.close()
            fail(exc)
    if output is None:
        return model, None
    model.eval()
    progress("torch.export" if output.suffix == ".pt2" else "state_dict")
    try:
        data = _serialize(model, graph, output.suffix, torch)
    except _ExportFailed as exc:
        progress.close()
        fail(str(exc))
    from archspec.io import write_bytes

    progress(f"write {output.name}")
    write_bytes(output, data)  # OutputError (full disk, read-only, ...) -> exit 2 in the CLI
    return model, data


class _ExportFailed(Exception):
    pass


def _serialize(model, graph, suffix: str, torch) -> bytes:
    """The file's bytes, made in memory: PyTorch's own file writers abort the process when
    the disk fills up, so the disk is only touched by archspec.io."""
    import io

    buffer = io.BytesIO()
    if suffix == ".pt2":
        torch.export.save(_export(model, graph, torch), buffer)
    else:
        torch.save(model.state_dict(), buffer)
    return buffer.getbuffer()  # a view, not a copy of the bytes


def _export(model, graph, torch):
    """torch.export the model in eval mode with a free batch axis (a fixed one if need be)."""
    example = torch.randn(2, *graph.input_shape)
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    try:
        return torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    except Exception:  # some graphs pin the batch size; export at batch 1 rather than fail
        pass
    try:
        return torch.export.export(model, (example[:1],))
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise _ExportFailed(f"torch.export could not trace '{graph.name}': {first}") from None
