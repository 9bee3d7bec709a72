"""A spec is data: it never runs code, crashes the process or hangs, and what archspec reports
is what it builds.

- Every reproduction of the security review is a file in tests/regressions/ whose first line
  says what `archspec check` must answer; each is checked here (all in-process, the slow ones
  through a fresh process against a time bound).
- Names are data, never code, at both walls: the loader refuses a hostile `shortcut_id` with
  its location, and the compiler refuses a hostile module name in a graph built without the
  loader, before any code is generated. With the second wall removed, the same graph really
  does run the injected code: the test can fail.
- The CLI's last line of defence turns an unexpected exception into one line and exit 3.
"""
from __future__ import annotations

import gzip
import os
import re
import time
from pathlib import Path

import pytest

import archspec
from archspec.check import check_file
from archspec.errors import CODES, SpecError
from conftest import ROOT, run_cli

REGRESSIONS = ROOT / "tests" / "regressions"
EXPECT = re.compile(r"^# expect: exit (\d)(?:, (AS\d{3})(?: x(\d+))?)?")
LOCATED = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): error: .+ \[AS\d{3}\]$")


def regression_files():
    return sorted(REGRESSIONS.glob("*.yaml")) + sorted(REGRESSIONS.glob("*.yaml.gz"))


def materialize(path: Path, tmp_path: Path) -> Path:
    """The regression as a plain file (the large ones are stored gzipped)."""
    if path.suffix != ".gz":
        return path
    out = tmp_path / path.name[:-3]
    out.write_bytes(gzip.decompress(path.read_bytes()))
    return out


def expectation(path: Path):
    """(exit code, error code or None, number of errors or None) from the file's first line."""
    first = path.read_text(errors="replace").splitlines()[0]
    match = EXPECT.match(first)
    assert match, f"{path.name}: the first line must be '# expect: exit N[, ASnnn[ xK]]'"
    return int(match.group(1)), match.group(2), int(match.group(3)) if match.group(3) else None


@pytest.mark.parametrize("path", regression_files(), ids=lambda p: p.name.split(".")[0])
def test_regression(path, tmp_path):
    spec = materialize(path, tmp_path)
    code, rule, count = expectation(spec)
    start = time.perf_counter()
    result = check_file(spec)
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0, f"{path.name}: check took {elapsed:.2f} s"
    if code == 0:
        assert result.ok, [str(e) for e in result.errors]
        from archspec.graph.analyze import analyze
        from archspec.report.render import RENDERERS

        report = analyze(result.graph)
        for render in RENDERERS.values():  # every report format copes with its numbers
            assert render(report)
        return
    assert [e.code for e in result.errors][:1] == [rule], [str(e) for e in result.errors]
    if count is not None:
        assert [e.code for e in result.errors] == [rule] * count
    for error in result.errors:
        assert error.loc is not None and error.loc.file == str(spec) and error.loc.line >= 1
        assert LOCATED.match(str(error).splitlines()[0]), str(error)


MUST_SHOW = ["flow_nesting_30000.yaml.gz", "empty_templates_1000x1000.yaml", "string_times_1e10.yaml"]


@pytest.mark.parametrize("name", MUST_SHOW)
def test_must_show_fresh_process(name, tmp_path):
    """`archspec check` in a fresh process: exit 1, one located line, in bounded time (the
    review's figures: a crash, a hang, 800 MB of text)."""
    spec = materialize(REGRESSIONS / name, tmp_path)
    start = time.perf_counter()
    result = run_cli("check", spec)
    elapsed = time.perf_counter() - start
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert LOCATED.match(lines[0]) and lines[0].startswith(f"{spec}:"), result.stderr
    assert "Traceback" not in result.stderr
    print(f"{name}: exit 1 in {elapsed:.2f} s: {lines[0][:100]}")  # the figures, with -s
    assert elapsed < 5.0, f"{name}: {elapsed:.2f} s (interpreter start included)"


# ---- names: the first wall (loader) and the second (compiler) -------------------------------


PAYLOAD = REGRESSIONS / "shortcut_id_payload.yaml"


@pytest.mark.parametrize("command", [["check"], ["report"], ["build"], ["graph", "-o", "g.dot"],
                                     ["export", "-o", "m.onnx"]])
def test_payload_is_refused_with_its_location_by_every_command(tmp_path, command):
    result = run_cli(command[0], PAYLOAD, *command[1:], cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"{PAYLOAD}:9:20: error:") and first.endswith("[AS206]"), first
    assert "shortcut_id" in first and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []  # no PWNED, no half-written output


EVIL_LEAF = '1")\nopen("PWNED", "w")\n#'  # closes fx's getattr(..., "1") and opens a file


def _graph_with_evil_name():
    """A valid graph whose projection shortcut is renamed, behind the loader's back, so that
    fx would write `getattr(self.block.downsample, "1")` + a line of our own into forward."""
    graph = archspec.expand(archspec.loads(
        "archspec: 1\nname: innocent\ninput: [3, 8, 8]\nlayers:\n"
        "  - conv: {id: stem, out: 4, kernel: 3, padding: 1}\n"
        "  - residual: {id: block, body: [{conv: {out: 8, kernel: 3, stride: 2, padding: 1}}]}\n"
        "  - relu\n"))
    old = "block.downsample.0"
    new = f"block.downsample.{EVIL_LEAF}"
    nodes = {}
    for name, node in graph.nodes.items():
        node.inputs = tuple(new if i == old else i for i in node.inputs)
        if name == old:
            node.name = name = new
        nodes[name] = node
    graph.nodes = nodes
    return graph


def test_compiler_refuses_an_evil_name_the_loader_never_saw(tmp_path, monkeypatch, one_torch_thread):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecError) as info:
        archspec.build(_graph_with_evil_name())
    assert info.value.code == "AS206" and "cannot be compiled" in str(info.value)
    assert info.value.loc is not None  # the node's place in the spec
    assert list(tmp_path.iterdir()) == []


def test_without_the_second_wall_the_payload_runs(tmp_path, monkeypatch, one_torch_thread):
    """Proof that the wall is what stops it: with the check removed, fx generates the injected
    line and the first forward pass executes it."""
    import torch

    from archspec.compile import torch_fx

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(torch_fx, "refuse_unsafe_graph", lambda graph: None)
    model = torch_fx.build(_graph_with_evil_name())
    assert 'open("PWNED", "w")' in model.code
    try:
        model(torch.randn(1, 3, 8, 8))
    except Exception:  # noqa: BLE001 - what runs after the injected line does not matter
        pass
    assert (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("name", ["forward", "training", "_modules", "meta", "__init__", "class", "self",
                                  "x y", "a\n", "", "input"])
def test_compiler_refuses_names_against_live_torch(name):
    graph = archspec.expand(archspec.loads(
        "archspec: 1\ninput: [3, 8, 8]\nlayers:\n  - conv: {id: a, out: 4, kernel: 1}\n  - relu: {id: b}\n"))
    node = graph.nodes.pop("b")
    node.name = name
    graph.nodes[name] = node
    graph.output = name
    with pytest.raises(SpecError) as info:
        archspec.build(graph)
    assert info.value.code == "AS206", str(info.value)


def test_compiler_refuses_a_broken_graph():
    graph = archspec.expand(archspec.loads(
        "archspec: 1\ninput: [3, 8, 8]\nlayers:\n  - conv: {id: a, out: 4, kernel: 1}\n  - relu: {id: b}\n"))
    graph.nodes["b"].inputs = ("nowhere",)
    with pytest.raises(SpecError) as info:
        archspec.build(graph)
    assert info.value.code == "AS301" and "'nowhere'" in str(info.value)


def test_names_that_python_code_uses_are_harmless_as_modules(one_torch_thread):
    """Words fx's generated code also uses (torch, getattr, x, builtins) are valid ids: fx
    renames its variables around them; the module computes what the report says."""
    import torch

    text = ("archspec: 1\ninput: [3, 8, 8]\nlayers:\n  - conv: {id: torch, out: 4, kernel: 1}\n"
            "  - relu: {id: getattr}\n  - conv: {id: x, out: 4, kernel: 1}\n  - relu: {id: builtins}\n"
            "  - add: {id: open, from: [torch, builtins]}\n")
    graph = archspec.expand(archspec.loads(text))
    model = archspec.build(graph)
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 4, 8, 8)
    assert sum(p.numel() for p in model.parameters()) == archspec.analyze(graph).totals["params"]


# ---- reading: nothing but regular files, and never a hang ------------------------------------


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_check_refuses_devices_fifos_and_directories(tmp_path):
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)  # nobody writes to it: reading it would block forever
    for target in (fifo, Path("/dev/zero"), tmp_path):
        if not target.exists():
            continue
        result = run_cli("check", target)
        assert result.returncode == 1, (target, result.stderr)
        assert result.stderr.startswith(f"{target}:1:1: error: cannot read spec") and "[AS100]" in result.stderr


def test_extends_through_a_symlink_loop(tmp_path):
    (tmp_path / "a.yaml").symlink_to("b.yaml")
    (tmp_path / "b.yaml").symlink_to("a.yaml")
    spec = tmp_path / "spec.yaml"
    spec.write_text("archspec: 1\nextends: a.yaml\nlayers: [relu]\n")
    result = check_file(spec)
    assert [e.code for e in result.errors] == ["AS308"] and result.errors[0].loc.line == 2


# ---- the CLI's last line of defence ------------------------------------------------------------


def test_internal_error_is_one_line_exit_3(monkeypatch, write_spec):
    """A bug (simulated: the checker raises) ends as one line naming the spec, exit 3."""
    from typer.testing import CliRunner

    import archspec.check
    from archspec.cli import app

    def broken(*args, **kwargs):
        raise ZeroDivisionError("simulated bug")

    monkeypatch.setattr(archspec.check, "check_file", broken)
    spec = write_spec("archspec: 1\ninput: [3, 8, 8]\nlayers: [relu]\n")
    result = CliRunner().invoke(app, ["check", str(spec)])
    assert result.exit_code == 3, result.output
    lines = result.output.strip().splitlines()
    assert lines == [f"{spec}: error: internal error (a bug in archspec, please report it): "
                     "ZeroDivisionError: simulated bug [AS900]"], result.output
    assert "AS900" in CODES


def test_too_large_for_memory_is_refused_by_the_python_api():
    spec = archspec.loads("archspec: 1\ninput: [3, 100000, 32000]\nlayers:\n"
                          "  - conv: {out: 1, kernel: 1, stride: 1000}\n")  # 38 GB input, tiny output
    with pytest.raises(archspec.ModelTooLarge) as info:
        archspec.build(spec)
    assert "needs about" in str(info.value) and "force=True" in str(info.value)
    assert info.value.need > 3 * 100000 * 32000 * 4  # the input itself is counted


def test_run_and_bench_write_under_a_safe_name():
    from archspec.names import safe_file_stem

    base = Path("/tmp/archspec-run-x")
    for name in ("../../etc/x", "a/b", "x\0y", "..", "name\n"):
        path = base / f"{safe_file_stem(name)}.onnx"
        assert path.parent == base and path.name not in (".onnx", "..onnx")

