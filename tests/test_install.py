"""`pip install archspec` with no extras, for real: a fresh virtual environment (no system
site-packages) gets the static tool and nothing from torch, ONNX or CUDA, and every command
that needs an extra says which one. pip fetches the core dependencies from the package index."""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
import venv

import pytest

from conftest import ROOT, zoo_specs

HEAVY = {"torch", "torchvision", "onnx", "onnxscript", "onnxruntime", "onnxruntime-gpu", "numpy", "triton"}


def _clean_env() -> dict:
    """The environment minus everything that would let the venv see this checkout or the
    shared site-packages."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "PYTHONSAFEPATH")}
    env["PYTHONNOUSERSITE"] = "1"
    return env


def _install_core(root):
    """The bin directory of a fresh venv holding `pip install <copy of the project>`, no extras."""
    src = root / "src"  # a copy: pip builds in the source tree and must not write into ours
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "archspec", src / "archspec", ignore=shutil.ignore_patterns("__pycache__"))
    venv.create(root / "venv", with_pip=True, system_site_packages=False, symlinks=os.name != "nt")
    bindir = root / "venv" / ("Scripts" if os.name == "nt" else "bin")
    pip = subprocess.run([str(bindir / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                          str(src)], capture_output=True, text=True, env=_clean_env(), cwd=root, timeout=900)
    assert pip.returncode == 0, pip.stdout[-3000:] + pip.stderr[-3000:]
    return bindir


def _run(*args, cwd=ROOT):
    return subprocess.run([*map(str, args)], capture_output=True, text=True, env=_clean_env(),
                          cwd=cwd, timeout=300)


# (command, the extra it names, what it says is missing); {tmp} is a scratch directory
NEEDS_AN_EXTRA = [
    (["build", "specs/resnet18.yaml"], "torch", "PyTorch"),
    (["export", "specs/resnet18.yaml", "-o", "{tmp}/r18.onnx"], "onnx",
     "PyTorch, onnx, onnxscript, ONNX Runtime and NumPy"),
    (["run", "{tmp}/x.onnx"], "runtime", "ONNX Runtime and NumPy"),
    (["bench", "--onnx-only", "{tmp}/x.onnx"], "runtime", "ONNX Runtime and NumPy"),
    (["run", "specs/resnet18.yaml"], "onnx", "PyTorch, onnx, onnxscript, ONNX Runtime and NumPy"),
]


@pytest.mark.slow
def test_core_install_is_the_static_tool(tmp_path):
    """One test (one venv, whatever the xdist split): install, static commands, extras."""
    start = time.perf_counter()
    bindir = _install_core(tmp_path)
    print(f"fresh venv + pip install (no extras): {time.perf_counter() - start:.1f} s")
    python, archspec = bindir / "python", bindir / "archspec"

    where = _run(python, "-c", "import archspec; print(archspec.__file__)", cwd=tmp_path)
    assert str(bindir.parent) in where.stdout, where.stdout + where.stderr  # the installed copy
    listed = _run(python, "-m", "pip", "list", "--format=freeze", "--disable-pip-version-check")
    installed = {line.split("==")[0].lower() for line in listed.stdout.splitlines()}
    assert {"pydantic", "pyyaml", "typer", "rich", "networkx", "graphviz"} <= installed
    assert not installed & HEAVY and not [n for n in installed if n.startswith("nvidia")], installed

    no_torch = _run(python, "-c", "import torch", cwd=tmp_path)
    assert no_torch.returncode != 0 and "No module named 'torch'" in no_torch.stderr

    check = _run(archspec, "check", *zoo_specs())
    assert check.returncode == 0, check.stderr
    assert check.stdout.count(": ok") == len(zoo_specs())
    report = _run(archspec, "report", "specs/resnet50.yaml")
    assert report.returncode == 0, report.stderr
    assert "25,557,032" in report.stdout  # torchvision's resnet50 parameter count

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (scratch / "x.onnx").write_bytes(b"an .onnx file this machine cannot run")
    for args, extra, needs in NEEDS_AN_EXTRA:
        result = _run(archspec, *(a.format(tmp=scratch) for a in args))
        assert (result.returncode, result.stderr) == (
            2, f"error: 'archspec {args[0]}' needs {needs} (archspec[{extra}]): "
               f"pip install {shlex.quote(f'{tmp_path}/src[{extra}]')}\n"), args  # the checkout it came from
    assert sorted(p.name for p in scratch.iterdir()) == ["x.onnx"]
    print(f"whole test: {time.perf_counter() - start:.1f} s")
