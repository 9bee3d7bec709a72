"""Progress of long commands (`export`, `build`, `bench`, `run` of a spec, `check` of many files)
on standard error, never on standard output.

    with Progress(shown(quiet)) as progress:
        export_onnx(graph, path, progress=progress)   # library code calls progress("trace")
        progress.stage("bench batch 8", total=20)
        progress.advance()

The display is on only when standard error is a terminal (not TERM=dumb) and `--quiet` is not
given; off, every call does nothing and rich is never imported, so a piped or logged run, and
the cold start of `check`, pay nothing. Library code never prints: it takes a callback
`progress(stage)` announcing the stage that starts now (the previous one is then done); a
`Progress` is such a callback. Each stage is one line with a spinner and its elapsed time,
ticked when done; the display is erased when the command finishes (or fails), so the result
and any error line are printed on a clean terminal.
"""
from __future__ import annotations

import os
import sys
from typing import Callable, Optional

StageCallback = Callable[[str], None]  # what library code receives: progress("shape inference")


def shown(quiet: bool = False, stream=None) -> bool:
    """Whether progress should be displayed: not `quiet`, and `stream` (stderr) is a terminal."""
    if quiet or os.environ.get("TERM") == "dumb":
        return False
    stream = stream if stream is not None else sys.stderr
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no stderr, or a closed one
        return False


def announce(progress: Optional[StageCallback], stage: str) -> None:
    """Call `progress(stage)` when a callback was given (library code's one line)."""
    if progress is not None:
        progress(stage)


class Progress:
    """The stage lines on stderr; every method does nothing when `on` is false."""

    def __init__(self, on: bool):
        self.on = on
        self._bar = None  # rich.progress.Progress while displayed
        self._task = None
        self._name = ""
        self._total = 0
        self._done = 0

    def __enter__(self) -> "Progress":
        if self.on:
            self._start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __call__(self, stage: str) -> None:
        self.stage(stage)

    def stage(self, name: str, total: int | None = None) -> None:
        """Start stage `name` (ending the current one); `total`: steps it counts (`advance`)."""
        if self._bar is None or (name == self._name and not total and self._task is not None):
            return  # announced twice (a caller and the library it calls): one stage
        self._finish_current()
        self._name, self._total, self._done = name, total or 0, 0
        self._task = self._bar.add_task(self._label(), total=1)
        self._bar.refresh()  # drawn now, however short the stage: the line is never skipped

    def advance(self, steps: int = 1) -> None:
        """Count `steps` more steps of the current stage (shown as done/total)."""
        if self._bar is None or self._task is None:
            return
        self._done += steps
        self._bar.update(self._task, description=self._label())

    def close(self) -> None:
        """Erase the display (idempotent)."""
        if self._bar is not None:
            bar, self._bar = self._bar, None
            try:
                bar.stop()
            except (OSError, ValueError):  # stderr went away meanwhile: nothing left to erase
                pass

    def _label(self) -> str:
        return f"{self._name} {self._done}/{self._total}" if self._total else self._name

    def _finish_current(self) -> None:
        if self._task is not None:
            self._bar.update(self._task, completed=1, description=self._label())

    def _start(self) -> None:
        from rich.console import Console
        from rich.progress import Progress as Bar
        from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn

        console = Console(file=sys.stderr, stderr=True)
        self._bar = Bar(SpinnerColumn(finished_text="[green]✓[/]"), TextColumn("{task.description}"),
                        TimeElapsedColumn(), console=console, transient=True,
                        redirect_stdout=False, redirect_stderr=True)
        self._bar.start()
