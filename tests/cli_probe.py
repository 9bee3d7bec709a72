"""Run the real CLI in a subprocess and see what it imported: the torch-free paths are
proven on what a process actually loads, and missing packages are simulated by blocking them."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import ROOT

# Runs the real CLI in-process and, at exit, lists what it imported that a deployment
# machine may lack (torch, onnx) or that belongs to the compiler. Blocking modules with
# `sys.modules[name] = None` makes them uninstalled as far as imports and find_spec go.
PROBE = r"""
import atexit, json, os, sys
for name in os.environ.get("PROBE_BLOCK", "").split():
    sys.modules[name] = None
HEAVY = ("torch", "torchvision", "onnx", "onnxscript")
COMPILER = ("archspec.compile.torch_fx", "archspec.compile.onnx_export", "archspec.compile.onnx_verify",
            "archspec.compile.modules", "archspec.compile.weights", "archspec.compile.init")
def report():
    loaded = sorted(m for m in sys.modules if sys.modules[m] is not None
                    and (m.split(".")[0] in HEAVY or m in COMPILER))
    with open(os.environ["PROBE_OUT"], "w") as fh:
        json.dump(loaded, fh)
atexit.register(report)
sys.argv = ["archspec", *sys.argv[1:]]
from archspec.cli import main
main()
"""


def probe(tmp_path, *args, block=()):
    """(CompletedProcess, modules it loaded from the HEAVY/COMPILER lists)."""
    out = tmp_path / "probe.json"
    env = {**os.environ, "PROBE_OUT": str(out), "PROBE_BLOCK": " ".join(block)}
    result = subprocess.run([sys.executable, "-c", PROBE, *map(str, args)], capture_output=True, text=True,
                            cwd=ROOT, env=env, timeout=300)
    return result, json.loads(out.read_text())


def one_line_error(result, code=2) -> str:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]
