"""Optional dependencies: pyproject's extras provide what archspec/extras.py checks for, and a
command whose extra is missing exits 2 with the install line before doing anything else.

Missing packages are simulated with `sys.modules[name] = None`, which makes both `import`
and `importlib.util.find_spec` treat them as not installed (tests/test_install.py does it
for real in a fresh virtual environment)."""
from __future__ import annotations

import importlib.metadata
import json
import re
import shlex
from pathlib import Path
import sys

import pytest

from archspec import extras
from conftest import ROOT
from cli_probe import one_line_error, probe


def checkout_line(extra: str) -> str:
    """The tests run archspec from this checkout, so the line installs the extra from it (the
    name on the public package index is another project's)."""
    return "pip install -e " + shlex.quote(f"{ROOT}[{extra}]")

# import name -> the distributions that provide it
DISTRIBUTIONS = {"torch": {"torch"}, "onnx": {"onnx"}, "onnxscript": {"onnxscript"}, "numpy": {"numpy"},
                 "onnxruntime": {"onnxruntime", "onnxruntime-gpu"}, "pygls": {"pygls"},
                 "lsprotocol": {"lsprotocol"}}
HEAVY = {"torch", "onnx", "onnxscript", "onnxruntime", "onnxruntime-gpu", "numpy", "nvidia", "triton"}


def _pyproject():
    tomllib = pytest.importorskip("tomllib")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _name(requirement: str) -> str:
    return re.match(r"[A-Za-z0-9_.\-]+", requirement).group(0).lower()


def _resolve(project, extra) -> set[str]:
    """Every distribution an extra installs, following `archspec[...]` self-references."""
    names = set()
    for req in project["optional-dependencies"][extra]:
        inner = re.fullmatch(r"archspec\[([a-z,]+)\]", req)
        if inner:
            for sub in inner.group(1).split(","):
                names |= _resolve(project, sub)
        else:
            names.add(_name(req))
    return names


def test_core_dependencies_are_light():
    core = {_name(r) for r in _pyproject()["dependencies"]}
    assert core == {"pydantic", "pyyaml", "networkx", "graphviz", "typer"}
    assert not core & HEAVY


@pytest.mark.parametrize("extra", sorted(extras.EXTRAS))
def test_each_extra_installs_what_its_commands_check_for(extra):
    installs = _resolve(_pyproject(), extra)
    for module, _ in extras.EXTRAS[extra]:
        assert DISTRIBUTIONS[module] & installs, f"[{extra}] does not install {module}"


def test_test_extra_holds_every_extra_and_the_test_tools():
    project = _pyproject()
    everything = set().union(*(_resolve(project, e) for e in extras.EXTRAS))
    test = _resolve(project, "test")
    assert everything <= test and everything <= _resolve(project, "all")
    assert {"pytest", "pytest-xdist", "hypothesis", "torchvision", "scikit-learn", "jsonschema",
            "pytest-lsp"} <= test
    pins = {_name(r): r for e in ("torch", "test") for r in project["optional-dependencies"][e]}
    assert "<=2.14.1" in pins["torch"] and "<=0.29.1" in pins["torchvision"]


def test_readme_and_ci_install_the_test_extra():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'python -m pip install -e ".[test]"' in readme
    assert '-e ".[test]"' in ci
    test_command = re.search(r"```bash\n(python -m pytest[^\n]*)\n```", readme).group(1)
    assert test_command in ci


def test_everything_is_installed_here():
    """The test environment is `pip install -e ".[test]"`: no extra may be missing."""
    assert {e: extras.missing(e) for e in extras.EXTRAS} == {e: [] for e in extras.EXTRAS}


def test_missing_message_names_what_is_missing(monkeypatch):
    monkeypatch.setitem(extras.EXTRAS, "demo", (("json", "JSON"), ("archspec_absent_one", "Absent One"),
                                                 ("archspec_absent_two", "Absent Two")))
    assert extras.missing_message("demo", "demo") == (
        "'archspec demo' needs Absent One and Absent Two (archspec[demo]): " + checkout_line("demo"))
    assert extras.missing_message("torch", "build") is None


def test_install_line_for_a_directory_install_pip_recorded(tmp_path, monkeypatch):
    """Installed (not editable) from a directory: pip's direct_url.json names it."""
    info = tmp_path / "archspec-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: archspec\nVersion: 0.1.0\n")
    (info / "direct_url.json").write_text(json.dumps({"url": "file:///src/my%20nets", "dir_info": {}}))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(extras, "__file__", str(tmp_path / "site" / "archspec" / "extras.py"))
    assert extras.install_line("torch") == "pip install '/src/my nets[torch]'"
    (info / "direct_url.json").write_text(json.dumps({"url": "https://example.invalid/a.whl",
                                                      "archive_info": {}}))
    assert "example.invalid" not in extras.install_line("torch")  # an archive is no directory
    monkeypatch.setattr(importlib.metadata, "distributions", lambda **kw: iter(()))
    assert extras.install_line("torch") == "pip install 'archspec[torch]'"


@pytest.mark.parametrize("args, block, line", [
    (["build", "specs/resnet18.yaml"], ["torch"], "'archspec build' needs PyTorch (archspec[torch]): " + checkout_line("torch")),
    (["build", "no_such.yaml"], ["torch"], "'archspec build' needs PyTorch (archspec[torch]): " + checkout_line("torch")),
    (["export", "specs/resnet18.yaml", "-o", "r18.onnx"], ["onnxscript"],
     "'archspec export' needs onnxscript (archspec[onnx]): " + checkout_line("onnx")),
    (["export", "specs/resnet18.yaml", "-o", "r18.onnx"], ["torch", "onnx"],
     "'archspec export' needs PyTorch and onnx (archspec[onnx]): " + checkout_line("onnx")),
    (["run", "specs/resnet18.yaml"], ["torch"], "'archspec run' needs PyTorch (archspec[onnx]): " + checkout_line("onnx")),
    (["bench", "specs/resnet18.yaml", "--onnx-only"], ["torch"],
     "'archspec bench' needs PyTorch (archspec[onnx]): " + checkout_line("onnx")),
    (["run", "model.onnx"], ["onnxruntime", "numpy"],
     "'archspec run' needs ONNX Runtime and NumPy (archspec[runtime]): " + checkout_line("runtime")),
])
def test_missing_extra_is_one_line_exit_2(tmp_path, args, block, line):
    """Checked first: even a missing spec file is reported as the missing extra."""
    result, loaded = probe(tmp_path, *args, block=block)
    assert one_line_error(result) == f"error: {line}"
    assert not [m for m in loaded if m.split(".")[0] in block]
    assert not (ROOT / "r18.onnx").exists()


def test_static_commands_work_without_torch_onnx_or_onnxruntime(tmp_path):
    blocked = ["torch", "onnx", "onnxscript", "onnxruntime", "torchvision"]
    check, _ = probe(tmp_path, "check", *sorted(str(p) for p in (ROOT / "specs").glob("resnet*.yaml")),
                     block=blocked)
    assert check.returncode == 0, check.stderr
    report, _ = probe(tmp_path, "report", "specs/resnet50.yaml", "-f", "json", block=blocked)
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout)["totals"]["params"] == 25_557_032  # torchvision's resnet50
