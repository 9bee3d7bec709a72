"""The `archspec` command line. `check` and `report` are defined here; every other command
lives in a module of archspec/commands/ that is imported only when that command runs (or
`--help` lists it), and heavy imports (torch, onnx, graphviz) live inside the commands that
need them, so `check` and `report` start fast and never import torch.

Exit codes: 0 ok, 1 the spec is invalid, 2 usage or environment error (including a file that
cannot be written, a closed or full standard output, a model too large for this machine's
memory), 3 an internal error: a bug in archspec, reported as one line, never a traceback.
"""
from __future__ import annotations

import contextlib
import errno
import gc
import io
import json
import os
import sys
from pathlib import Path
from typing import List, Optional

import typer
from typer.core import TyperGroup

import archspec
from archspec.commands import COMMANDS
from archspec.commands.options import allow_outside_option, set_option
from archspec.errors import SpecError

EXIT_INVALID, EXIT_USAGE, EXIT_INTERNAL = 1, 2, 3

# Help is plain text, wrapped by click: paragraphs of docstrings reflow to the terminal's
# width, flags show no type label, and nothing in a help string is read as markup.
TYPER_SETTINGS = dict(rich_markup_mode=None, pretty_exceptions_enable=False)


class GuardedGroup(TyperGroup):
    """The last line of defence: whatever a command lets escape ends as one line on stderr and
    a documented exit code, never a traceback (see `guard`).

    Commands of archspec/commands/ are loaded on demand: `list_commands` names them from
    `COMMANDS` without importing anything, `get_command` imports the one module asked for."""

    def invoke(self, ctx):
        if sys.stdout is None:  # started with standard output closed (`>&-`): printing must fail
            sys.stdout = _ClosedOutput()
        with guard():
            return super().invoke(ctx)

    def resolve_command(self, ctx, args):
        name, command, rest = super().resolve_command(ctx, args)
        if name not in BRIEF_COMMANDS:
            _resume_gc()
        return name, command, rest

    def list_commands(self, ctx) -> list[str]:
        return [*super().list_commands(ctx), *(name for name in COMMANDS if name not in self.commands)]

    def get_command(self, ctx, name: str):
        if name not in self.commands and name in COMMANDS:
            self._load(COMMANDS[name])
        return super().get_command(ctx, name)

    def _load(self, module_name: str) -> None:
        """Import archspec/commands/<module_name>.py and add the commands it registers."""
        import importlib

        from typer.main import get_group

        family = typer.Typer(**TYPER_SETTINGS)
        importlib.import_module(f"archspec.commands.{module_name}").register(family)
        for name, command in get_group(family).commands.items():
            self.commands.setdefault(name, command)


class _ClosedOutput(io.TextIOBase):
    """Standard output when the process started without one: writing to it is an error, so a
    command whose result goes to stdout does not pretend success (one that writes -o does)."""

    def writable(self) -> bool:
        return True

    def write(self, text):
        raise OSError(errno.EBADF, "it is closed")


app = typer.Typer(no_args_is_help=True, cls=GuardedGroup, **TYPER_SETTINGS)
_current_spec: list = [None]  # the spec being worked on, for the internal-error line


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"archspec {archspec.__version__}")
        raise typer.Exit()


@app.callback()
def main_options(version: bool = typer.Option(False, "--version", "-V", is_eager=True, callback=_print_version,
                                              help="Print the version and exit.")):
    """Check, report, draw and compile CNN architectures written as YAML.

    Exit codes: 0 ok, 1 an invalid spec, 2 a usage or environment error, 3 a bug in archspec.
    `archspec COMMAND --help` describes a command."""


@contextlib.contextmanager
def guard():
    """Turn what escapes a command into one line and an exit code: a spec error (1), a file
    that cannot be written, a closed or full stdout or too little memory (2), anything else
    (3: `error: internal error (a bug in archspec, please report it): Type: message [AS900]`,
    with the spec's file when known). Exits of the commands themselves pass through."""
    try:
        yield
    except (typer.Exit, typer.Abort, typer.TyperException):  # usage errors, --help, exits
        raise
    except SpecError as exc:
        _say(str(exc))
        raise typer.Exit(EXIT_INVALID) from None
    except BrokenPipeError:  # the reader went away (`archspec report x | head`): say nothing
        _silence_stdout()
        raise typer.Exit(EXIT_USAGE) from None
    except OSError as exc:
        _say(f"error: {_os_error(exc)}")
        raise typer.Exit(EXIT_USAGE) from None
    except MemoryError as exc:
        _say(f"error: {_where()}{exc or 'out of memory'}")
        raise typer.Exit(EXIT_USAGE) from None
    except Exception as exc:  # noqa: BLE001 - the point of the guard
        text = " ".join(str(exc).split())[:300]
        _say(f"{_where()}error: internal error (a bug in archspec, please report it): "
             f"{type(exc).__name__}: {text} [AS900]")
        raise typer.Exit(EXIT_INTERNAL) from None


def _where() -> str:
    return f"{_current_spec[0]}: " if _current_spec[0] is not None else ""


def _os_error(exc: OSError) -> str:
    """`path: reason` for a file, or what went wrong with standard output."""
    from archspec.io import OutputError

    if isinstance(exc, OutputError):
        return str(exc)
    if exc.filename is None and _from_echo(exc):
        _silence_stdout()  # so that the final flush at exit does not fail again
        return f"cannot write to standard output: {exc.strerror or exc}"
    if exc.filename is None:
        return exc.strerror or str(exc)
    return f"{exc.filename}: {exc.strerror or exc}"


def _from_echo(exc: BaseException) -> bool:
    """Whether `exc` was raised while printing (typer/click's echo): standard output failed."""
    import traceback

    return any(frame.f_code.co_name == "echo" and ("typer" in frame.f_code.co_filename
                                                   or "click" in frame.f_code.co_filename)
               for frame, _ in traceback.walk_tb(exc.__traceback__))


def _silence_stdout() -> None:
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
    except (OSError, ValueError, AttributeError):
        pass


def _say(line: str) -> None:
    try:
        typer.echo(line, err=True)
    except (OSError, ValueError):
        pass  # stderr is gone too: the exit code is all that is left


def fail(error: SpecError | str, code: int = EXIT_INVALID):
    typer.echo(str(error) if isinstance(error, SpecError) else f"error: {error}", err=True)
    raise typer.Exit(code)


def parse_shape(text: Optional[str]) -> Optional[tuple]:
    """'3x224x224' -> (3, 224, 224)."""
    if text is None:
        return None
    try:
        shape = tuple(int(v) for v in text.lower().replace(",", "x").split("x"))
    except ValueError:
        shape = ()
    if not shape or any(v < 1 for v in shape) or len(shape) > 4:
        fail(f"--input must look like CxHxW (or CxL, CxDxHxW), e.g. 3x224x224. Received: '{text}'",
             EXIT_USAGE)
    return shape


def load_graph(path: Path, input_shape=None, allow_outside: bool = False, var_overrides=None):
    """Load and expand a spec; SpecErrors propagate to the caller."""
    from archspec.graph.build import build_graph
    from archspec.spec.compose import load_spec

    spec = load_spec(path, allow_outside=allow_outside, input_override=input_shape, var_overrides=var_overrides)
    return spec, build_graph(spec)


def parse_sets(items: Optional[List[str]]) -> dict:
    """['width=1.1', 'depth=2'] -> {'width': '1.1', 'depth': '2'}; malformed ones exit 2."""
    overrides: dict = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            fail(f"--set must look like NAME=VALUE, e.g. --set width=1.1. Received: '{item}'", EXIT_USAGE)
        if name in overrides:
            fail(f"--set {name} is given twice", EXIT_USAGE)
        overrides[name] = value.strip()
    return overrides


def _existing(path: Path) -> None:
    if not path.exists():
        fail(f"no such file: {path}", EXIT_USAGE)


def graph_or_exit(spec: Path, input: Optional[str] = None, allow_outside: bool = False,
                  weights: Optional[Path] = None, run_batch: Optional[int] = None,
                  sets: Optional[List[str]] = None, quiet: bool = False):
    """What every command that takes a spec does first: check the files exist (exit 2), parse
    --input and --set (exit 2), load and expand the spec (a located error, exit 1; a --set
    naming no variable of the spec exits 2), print the spec's warnings on stderr (unless
    `quiet`). With `run_batch` (commands that allocate the model and run it at that batch
    size), also refuse, before any allocation, a model that cannot fit in this machine's memory
    (exit 2). Returns the Graph."""
    _current_spec[0] = spec
    if weights is not None:
        _existing(weights)
    graph = load_spec_or_exit(spec, parse_shape(input), allow_outside, sets)[1]
    print_warnings(graph.warnings, quiet)
    if run_batch is not None:
        from archspec.resources import ModelTooLarge, check_fits

        try:
            check_fits(graph, run_batch, hint="use a smaller --input or batch")
        except ModelTooLarge as exc:
            fail(f"{spec}: {exc}", EXIT_USAGE)
    return graph


def load_spec_or_exit(spec: Path, shape: Optional[tuple] = None, allow_outside: bool = False,
                      sets: Optional[List[str]] = None):
    """As `graph_or_exit`, for commands that need the Spec too: returns (Spec, Graph)."""
    from archspec.spec.compose import VarOverrideError

    _existing(spec)
    overrides = parse_sets(sets)
    try:
        return load_graph(spec, shape, allow_outside, overrides)
    except VarOverrideError as exc:
        fail(exc, EXIT_USAGE)
    except SpecError as exc:
        fail(exc)


def print_warnings(warnings, quiet: bool = False) -> None:
    """Warnings go to stderr, never into a table on stdout; `--quiet` silences them."""
    if not quiet:
        for warning in warnings:
            typer.echo(str(warning), err=True)


def physical_memory() -> Optional[int]:
    """The memory this process may use, in bytes: the tightest of physical memory, its cgroup's
    limit and `ulimit -v` (archspec.resources.memory_limit); None when none can be read."""
    from archspec.resources import memory_limit

    limit = memory_limit()
    return limit.bytes if limit else None


@app.command()
def check(specs: List[Path] = typer.Argument(..., metavar="SPEC", help="Spec files to check."),
          quiet: bool = typer.Option(False, "--quiet", "-q", help="Print errors only (no warnings, "
                                                                   "no summary lines)."),
          format: str = typer.Option("text", "--format", "-f", metavar="text|json",
                                     help="text, or json: one document listing every file's errors "
                                          "and warnings."),
          allow_outside: bool = allow_outside_option(),
          sets: Optional[List[str]] = set_option()):
    """Validate specs: schema, references and every shape.

    Reports every independent error of each file (with its code), not just the first. Exit 1
    if any spec is invalid (2 if a --set names no variable of a spec)."""
    from archspec.check import check_file

    if format not in ("text", "json"):
        fail(f"--format must be text or json. Received: '{format}'", EXIT_USAGE)
    for path in specs:
        _existing(path)
    overrides = parse_sets(sets)
    results = []
    from archspec.progress import Progress, shown  # rich itself only when the count is shown

    with Progress(len(specs) > 1 and shown(quiet)) as progress:  # one file: nothing to count
        progress.stage("check", total=len(specs))
        for path in specs:
            _current_spec[0] = path
            results.append(check_file(path, allow_outside=allow_outside, var_overrides=overrides))
            progress.advance()
    if format == "json":
        typer.echo(json.dumps({"ok": all(r.ok for r in results),
                               "files": [r.to_json() for r in results]}, indent=2))
    else:
        for result in results:
            _print_check(result, quiet)
    if any(e.code == "AS210" for r in results for e in r.errors):
        raise typer.Exit(EXIT_USAGE)  # the command line, not the spec, is wrong
    if not all(r.ok for r in results):
        raise typer.Exit(EXIT_INVALID)


def _print_check(result, quiet: bool) -> None:
    for error in result.errors:
        typer.echo(str(error), err=True)
    if not quiet:
        for warning in result.warnings:
            typer.echo(str(warning), err=True)
    if result.ok and not quiet:
        summary = result.to_json()["summary"]
        typer.echo(f"{result.file}: ok — {summary['name']}, {summary['ops']} ops, {summary['params']:,} params, "
                   f"output {'x'.join(map(str, summary['output']))}")
    elif not result.ok and len(result.errors) > 1:
        typer.echo(f"{result.file}: {len(result.errors)} errors", err=True)


@app.command()
def report(spec: Path = typer.Argument(..., metavar="SPEC", help="The spec file (.yaml)."),
           input: Optional[str] = typer.Option(
               None, "--input", metavar="CxHxW,...",
               help="Override the input size: a shape (3x224x224), or several side by side, comma-"
                    "separated; a bare number is a square side (224,320,640; channels and D kept)."),
           format: str = typer.Option("table", "--format", "-f", metavar="table|json|markdown|csv",
                                      help="table, json, markdown or csv."),
           output: Optional[Path] = typer.Option(None, "-o", "--output", metavar="FILE",
                                                 help="Write to a file (atomically)."),
           depth: Optional[int] = typer.Option(
               None, "--depth", min=0, metavar="N",
               help="Fold blocks nested deeper than N into one row each with their totals, "
                    "repetitions as ×k (as graph --depth draws them; 0: every top-level block)."),
           columns: Optional[str] = typer.Option(
               None, "--columns", metavar="COLS",
               help="Table columns: a list (layer,op,output,params) or changes to the default ones "
                    "(+input,+kernel,+stride,-rf). Known: layer, op, input, output, kernel, stride, "
                    "params, params%, macs, macs%, flops, memory, rf."),
           layers: Optional[str] = typer.Option(
               None, "--layers", metavar="A,B,...",
               help="With several --input sizes: the layers (or blocks) whose shapes are shown. "
                    "Default: the stage outputs."),
           sharing: bool = typer.Option(False, "--sharing",
                                        help="Show what weight sharing saves: shared vs unshared vs fully "
                                             "connected parameters per layer."),
           flops: bool = typer.Option(False, "--flops", help="Show FLOPs beside MACs (conventions: "
                                                               "docs/format.md)."),
           batch: int = typer.Option(1, "--batch", help="Batch size for the memory figures."),
           dtype: str = typer.Option("fp32", "--dtype", help="fp32, fp16, bf16 or int8: bytes per value "
                                                             "of weights and activations."),
           optimizer: Optional[str] = typer.Option(None, "--optimizer",
                                                   help="sgd, momentum, adam or adamw: optimizer state in "
                                                        "the training memory (default sgd)."),
           quiet: bool = typer.Option(False, "--quiet", "-q", help="No warnings on stderr."),
           allow_outside: bool = allow_outside_option(),
           sets: Optional[List[str]] = set_option()):
    """Per-layer shapes, parameters, MACs, memory and receptive fields.

    One row per layer (or per block with --depth) with output shape, parameters, MACs (and
    FLOPs), memory and receptive field, then totals; inference peak and training memory at
    --batch and --dtype."""
    from archspec.report.command import ReportOptions, run

    _memory_options(batch, dtype, optimizer)
    run(ReportOptions(spec, input, format, output, sharing, depth, columns, layers, quiet, allow_outside,
                      flops, batch, dtype, optimizer or "sgd", sets))


def _memory_options(batch: int, dtype: str, optimizer: Optional[str]) -> None:
    """Refuse report's memory options that make no sense (exit 2)."""
    from archspec.graph.memory import DTYPES, OPTIMIZERS

    if batch < 1:
        fail(f"--batch must be at least 1. Received: {batch}", EXIT_USAGE)
    if dtype not in DTYPES:
        fail(f"--dtype must be one of {', '.join(DTYPES)}. Received: '{dtype}'", EXIT_USAGE)
    if optimizer is not None and optimizer not in OPTIMIZERS:
        fail(f"--optimizer must be one of {', '.join(OPTIMIZERS)}. Received: '{optimizer}'", EXIT_USAGE)
    if optimizer is not None and dtype == "int8":
        fail("--optimizer describes training, and int8 is an inference format; use fp32, fp16 or bf16",
             EXIT_USAGE)


# Commands that load a spec, print and exit: `main` runs them without the cyclic garbage
# collector, which would otherwise walk the hundreds of thousands of objects that starting up
# creates (modules, classes, schemas) again and again for nothing (about 6% of a cold
# `check`, benchmarks/static_report.py). Every other command may run long (the language
# server, training, benchmarks) and gets it back before it starts.
BRIEF_COMMANDS = ("check", "report")
_gc_paused = [False]


def _resume_gc() -> None:
    if _gc_paused[0]:
        gc.freeze()  # what starting up created lives to the end: never walk it again
        gc.enable()
        _gc_paused[0] = False


def main():
    """The `archspec` script and `python -m archspec`."""
    if gc.isenabled():
        gc.disable()
        _gc_paused[0] = True
    try:
        app(prog_name="archspec")  # also under `python -m archspec`: usage lines, completion
    finally:
        _resume_gc()


if __name__ == "__main__":
    main()
