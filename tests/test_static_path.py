"""`archspec check` and `archspec report` never import torch or onnx (they must start fast
and work where torch is not installed)."""
import json
import subprocess
import sys

from conftest import ROOT, zoo_specs

PROBE = r"""
import json, sys
from typer.testing import CliRunner
from archspec.cli import app
runner = CliRunner()
specs = sys.argv[1:]
check = runner.invoke(app, ["check", *specs])
report = runner.invoke(app, ["report", specs[0], "--format", "json"])
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "onnx", "onnxruntime", "torchvision"))
drawing = sorted(m for m in sys.modules if m.split(".")[0] in ("graphviz", "networkx"))
print(json.dumps({"check": check.exit_code, "report": report.exit_code, "heavy": heavy, "drawing": drawing,
                  "out": check.output[-2000:]}))
"""


def test_check_and_report_every_zoo_spec_without_torch():
    specs = [str(p) for p in zoo_specs()]
    assert specs, "the zoo is empty"
    result = subprocess.run([sys.executable, "-c", PROBE, *specs], capture_output=True, text=True,
                            cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    assert probe["check"] == 0, probe["out"]
    assert probe["report"] == 0
    assert probe["heavy"] == [], f"static path imported {probe['heavy'][:5]}"
    # graphviz and networkx are imported where a diagram is drawn or a DiGraph asked for
    assert probe["drawing"] == [], f"check/report imported {probe['drawing'][:5]}"
