"""Progress on standard error (archspec/progress.py): shown under a pseudo-terminal, stage by
stage; absent when stderr is a pipe or with --quiet; standard output never changes."""
from __future__ import annotations

import io
import os
import re
import select
import subprocess
import sys
import time

import pytest

from archspec.progress import Progress, shown
from conftest import ROOT, SPECS, TINY_SPEC, run_cli

TINY = TINY_SPEC
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
EXPORT_STAGES = ["compile", "trace", "export", "check", "shape inference",
                 "verify batch 1", "verify batch 2", "verify batch 5"]


def run_on_terminal(*args, timeout: float = 300):
    """Run the CLI with stderr on a pseudo-terminal (stdout a pipe): (returncode, stdout,
    stderr's text with the terminal's escape sequences removed, raw stderr)."""
    master, slave = os.openpty()
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "100"}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, stderr=slave,
                            stdin=subprocess.DEVNULL, cwd=ROOT, env=env)
    os.close(slave)
    raw, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not chunk:
                break
            raw += chunk
        elif proc.poll() is not None:
            break
    else:
        proc.kill()
    stdout = proc.stdout.read().decode()
    proc.stdout.close()
    proc.wait(timeout=60)
    os.close(master)
    text = raw.decode(errors="replace")
    return proc.returncode, stdout, ANSI.sub("", text), text


def lines(text: str) -> set:
    return {ln.strip() for ln in re.split(r"[\r\n]", text) if ln.strip()}


def cli(*args):
    return ["-m", "archspec", *map(str, args)]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    spec = tmp_path_factory.mktemp("progress") / "tiny.yaml"
    spec.write_text(TINY)
    return spec


@pytest.fixture(scope="module")
def exports(tiny):
    """The same export on a terminal and through a pipe: (terminal run, piped run, model)."""
    pytest.importorskip("onnxruntime")
    model = tiny.with_name("tiny.onnx")
    on_tty = run_on_terminal(*cli("export", tiny, "-o", model))
    piped = run_cli("export", tiny, "-o", model, "--force")
    return on_tty, piped, model


# ---- the mechanism -------------------------------------------------------------------------


def test_off_does_nothing_and_needs_no_terminal():
    assert not shown(False, io.StringIO()) and not shown(True, io.StringIO())
    with Progress(False) as progress:  # every call is a no-op when off
        progress("trace")
        progress.stage("runs", total=3)
        progress.advance()
    assert progress._bar is None


def test_quiet_and_dumb_terminals_turn_it_off(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setenv("TERM", "xterm")
    assert shown(False, Terminal()) and not shown(True, Terminal())
    monkeypatch.setenv("TERM", "dumb")
    assert not shown(False, Terminal())


# ---- export --------------------------------------------------------------------------------


@pytest.mark.slow
def test_export_shows_every_stage_on_a_terminal(exports):
    (code, stdout, stderr, raw), piped, _ = exports
    assert code == 0, stderr
    seen = lines(stderr)
    for stage in EXPORT_STAGES:
        assert any(stage in line for line in seen), (stage, sorted(seen))
    assert "\x1b" not in stdout and "verify batch" not in stdout


@pytest.mark.slow
def test_export_without_a_terminal_prints_no_progress_and_the_same_stdout(exports):
    (_, tty_stdout, _, _), piped, model = exports
    assert piped.returncode == 0, piped.stderr
    assert not any(stage in piped.stderr for stage in ("trace", "shape inference", "verify batch"))
    assert "\x1b" not in piped.stderr
    assert piped.stdout == tty_stdout and "checker: ok" in tty_stdout


def test_export_failure_is_one_line_after_the_display(tiny, tmp_path):
    """A refused op stops the export mid-display: the display is gone, the error line remains."""
    pytest.importorskip("onnxruntime")
    spec = tmp_path / "ceil.yaml"
    spec.write_text("archspec: 1\nname: ceil\ninput: [1, 5, 5]\nlayers:\n"
                    "  - maxpool: {kernel: 2, stride: 3, padding: 1, ceil_mode: true}\n  - flatten\n")
    code, stdout, stderr, raw = run_on_terminal(*cli("export", spec, "-o", tmp_path / "c.onnx",
                                                     "--report", tmp_path / "v.json"))
    assert code == 1 and stdout == "", stderr
    assert "compile" in stderr and "Traceback" not in stderr
    error = [ln for ln in lines(stderr) if "error:" in ln]
    assert len(error) == 1 and "cannot be exported to ONNX faithfully" in error[0]
    tail = ANSI.split(raw)[-1]  # after the display's last escape sequence (its erasure)
    assert "error:" in tail and "hint:" in tail and "compile" not in tail
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ceil.yaml"]  # no model, no report


# ---- build, bench, run, check ---------------------------------------------------------------


@pytest.mark.slow
def test_build_stages_on_a_terminal_and_quiet(tiny, tmp_path):
    pytest.importorskip("torch")
    code, stdout, stderr, _ = run_on_terminal(*cli("build", tiny, "-o", tmp_path / "m.pt2"))
    assert code == 0 and stdout == "", stderr
    for stage in ("compile", "torch.export", "write m.pt2"):
        assert any(stage in line for line in lines(stderr)), (stage, stderr)
    assert "wrote" in stderr and (tmp_path / "m.pt2").stat().st_size > 0
    code, stdout, stderr, raw = run_on_terminal(*cli("build", tiny, "-o", tmp_path / "m.pth", "-q"))
    assert code == 0 and raw == "" and stdout == ""
    piped = run_cli("build", tiny, "-o", tmp_path / "n.pth")
    assert piped.returncode == 0 and piped.stderr.splitlines() == [f"wrote {tmp_path / 'n.pth'} (tiny, 1,654 params)"]


@pytest.mark.slow
def test_bench_counts_runs_per_batch_size(exports):
    *_, model = exports
    args = ("bench", model, "--batch", "1,2", "--runs", "3", "--warmup", "1")
    code, stdout, stderr, _ = run_on_terminal(*cli(*args))
    assert code == 0, stderr
    seen = lines(stderr)
    for b in (1, 2):
        assert any(f"batch {b}: onnxruntime, runs 3/3" in line for line in seen), sorted(seen)
        assert any(f"batch {b}: onnxruntime, 1 warm-up run" in line for line in seen), sorted(seen)
    piped = run_cli(*args)
    assert piped.returncode == 0 and piped.stderr == ""
    assert [ln.split()[:2] for ln in stdout.splitlines()[2:]] == [["1", "onnxruntime"], ["2", "onnxruntime"]]
    code, _, _, raw = run_on_terminal(*cli(*args, "--quiet"))
    assert code == 0 and raw == ""


def test_check_counts_files_only_when_several(tmp_path):
    several = [SPECS / "lenet5.yaml", SPECS / "alexnet.yaml", SPECS / "vgg11.yaml"]
    code, stdout, stderr, _ = run_on_terminal(*cli("check", *several))
    assert code == 0 and any("check 3/3" in line for line in lines(stderr)), stderr
    assert stdout == run_cli("check", *several).stdout
    code, _, _, raw = run_on_terminal(*cli("check", "-q", *several))
    assert code == 0 and raw == ""


def test_check_of_one_file_or_a_pipe_never_imports_rich():
    """The cold start of check: rich is imported only when the count is displayed."""
    one = run_on_terminal("-X", "importtime", *cli("check", SPECS / "lenet5.yaml"))
    assert one[0] == 0 and "import time" in one[2]
    assert not re.search(r"\|\s+rich\b", one[2])
    piped = subprocess.run([sys.executable, "-X", "importtime", *cli("check", SPECS / "lenet5.yaml",
                                                                     SPECS / "alexnet.yaml")],
                           capture_output=True, text=True, cwd=ROOT)
    assert piped.returncode == 0 and "import time" in piped.stderr
    assert not re.search(r"\|\s+rich\b", piped.stderr)
    several = run_on_terminal("-X", "importtime", *cli("check", SPECS / "lenet5.yaml", SPECS / "alexnet.yaml"))
    assert re.search(r"\|\s+rich\b", several[2])  # the test can tell: rich shows when displayed


@pytest.mark.slow
def test_run_of_a_spec_shows_its_export_unless_quiet(tiny):
    pytest.importorskip("onnxruntime")
    code, stdout, stderr, _ = run_on_terminal(*cli("run", tiny, "-f", "json"))
    assert code == 0, stderr
    for stage in ("compile", "trace", "verify batch 1"):
        assert any(stage in line for line in lines(stderr)), (stage, sorted(lines(stderr)))
    assert stdout.startswith("{") and "\x1b" not in stdout
    code, quiet_stdout, _, raw = run_on_terminal(*cli("run", tiny, "-f", "json", "-q"))
    assert code == 0 and raw == ""
    assert [ln for ln in quiet_stdout.splitlines() if '"run"' not in ln and '"session"' not in ln] == \
        [ln for ln in stdout.splitlines() if '"run"' not in ln and '"session"' not in ln]
