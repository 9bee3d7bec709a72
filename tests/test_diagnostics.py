"""Every independent error of a file at once, each located and coded; no cascades; JSON output."""
from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from archspec.check import check_file, check_text
from archspec.errors import CODES
from conftest import ROOT, SPECS, run_cli

HEAD = "archspec: 1\nname: net\ninput: [3, 32, 32]\n"

THREE_MISTAKES = HEAD + """layers:
  - conv: {id: c1, out: 16, kernal: 3}
  - relu
  - inception:
      id: mix
      from: input
      branches:
        a: {conv: {out: 8, kernel: 1}}
        b: [{conv: {out: 8, kernel: 3, stride: 2}}]
  - linear: {out: 10, from: nowhere}
"""


def codes(result):
    return [(e.code, e.loc.line) for e in result.errors]


def test_three_independent_mistakes_give_three_located_errors(write_spec):
    path = write_spec(THREE_MISTAKES)
    result = run_cli("check", path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ": error: " in ln]
    assert len(lines) == 3, result.stderr
    assert lines[0].startswith(f"{path}:5:") and "unknown key 'kernal'" in lines[0] and lines[0].endswith("[AS201]")
    assert "did you mean 'kernel'?" in result.stderr
    # the concat of the inception block: the branches' spatial sizes differ (32 vs 15)
    assert f"{path}:8:" in lines[1] and lines[1].endswith("[AS403]"), lines[1]
    assert f"{path}:13:" in lines[2] and "'from: nowhere'" in lines[2] and lines[2].endswith("[AS301]")


def test_a_failed_layer_does_not_cascade():
    # conv1 is wrong; the layers after it depend on its shape and are not shape-checked, but a
    # schema error further down is still reported.
    result = check_text(HEAD + "layers:\n  - conv: {out: 16, kernel: 99}\n  - conv: {out: 8, kernel: 3}\n"
                               "  - relu: {negative_slope: 2}\n  - flatten\n  - linear: {out: 10}\n", "f.yaml")
    assert codes(result) == [("AS401", 5), ("AS201", 7)]


def test_a_misspelt_key_is_reported_without_the_missing_key_it_causes():
    result = check_text(HEAD + "layers:\n  - conv: {out: 16, kernl: 3, strde: 2}\n", "f.yaml")
    assert codes(result) == [("AS201", 5), ("AS201", 5)]
    assert [e.hint for e in result.errors] == ["did you mean 'kernel'?", "did you mean 'stride'?"]


def test_a_mistake_in_a_template_body_is_reported_once():
    text = HEAD + ("templates:\n  block:\n    args: {c: required}\n    body:\n"
                   "      - conv: {out: $c, kernel: 3, paddin: 1}\n"
                   "layers:\n  - block: {c: 8}\n  - block: {c: 8}\n  - block: {c: 8}\n")
    result = check_text(text, "f.yaml")
    assert codes(result) == [("AS201", 8)]


def test_broken_variables_are_reported_once_and_their_users_skipped():
    text = HEAD + "vars: {w: '${nope * 2}'}\nlayers:\n  - conv: {out: $w, kernel: 3}\n  - conv: {out: '${w}', kernel: 3}\n"
    result = check_text(text, "f.yaml")
    assert codes(result) == [("AS207", 4)]


def test_errors_keep_their_ranges():
    result = check_text(HEAD + "layers:\n  - conv: {out: 16, kernal: 3}\n", "f.yaml")
    (error,) = result.errors
    loc = error.loc
    assert (loc.line, loc.col, loc.end_line, loc.end_col) == (5, 21, 5, 27)  # the key 'kernal'


def test_training_only_layers_cannot_feed_the_inference_network():
    text = HEAD + ("layers:\n  - conv: {id: c, out: 4, kernel: 3}\n"
                   "  - conv: {id: aux, out: 4, kernel: 3, training_only: true}\n"
                   "  - add: {from: [c, aux]}\n")
    result = check_text(text, "f.yaml")
    assert codes(result) == [("AS304", 7)]


def test_error_cap_stops_a_file_full_of_mistakes():
    text = HEAD + "layers:\n" + "".join(f"  - conv: {{out: 4, kernel: 3, bad{i}: 1, from: input}}\n"
                                        for i in range(200)) + "  - relu\n"
    result = check_text(text, "f.yaml")
    assert 1 < len(result.errors) <= 60


def test_check_json_lists_every_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(THREE_MISTAKES)
    good = sorted(SPECS.glob("*.yaml"))[:3]
    result = run_cli("check", *good, bad, "--format", "json")
    assert result.returncode == 1
    data = json.loads(result.stdout)
    assert data["ok"] is False and [f["file"] for f in data["files"]] == [str(p) for p in [*good, bad]]
    assert all(f["ok"] and f["summary"]["params"] > 0 for f in data["files"][:3])
    errors = data["files"][3]["errors"]
    assert [(e["code"], e["line"]) for e in errors] == [("AS201", 5), ("AS403", 8), ("AS301", 13)]
    assert set(errors[0]) >= {"file", "line", "column", "end_line", "end_column", "severity", "code",
                              "message", "hint"}


def test_check_json_of_the_whole_zoo_carries_warnings():
    result = run_cli("check", *sorted(SPECS.glob("*.yaml")), "-f", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["ok"] and all(f["ok"] for f in data["files"])
    alexnet = next(f for f in data["files"] if f["file"].endswith("squeezenet1_1.yaml"))
    assert alexnet["warnings"] and alexnet["warnings"][0]["code"] == "AS801"


def _calls_without_code():
    """Every place the code base raises a spec error names the rule it broke (a code)."""
    missing = []
    for path in sorted((ROOT / "archspec").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            positional = {"error": 99, "SpecError": 4}.get(name)
            if positional is None or (name == "error" and not isinstance(func, ast.Attribute)):
                continue
            if name == "error" and not _looks_like_src(func):
                continue
            has_code = any(k.arg == "code" for k in node.keywords) or len(node.args) >= positional
            if not has_code:
                missing.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return missing


def _looks_like_src(func: ast.Attribute) -> bool:
    # src.error(...), src.child(...).error(...), where.error(...), template.src.error(...)
    target = func.value
    text = ast.unparse(target)
    return "src" in text or text in ("where", "body_src") or text.endswith(".src")


def test_every_raise_site_names_its_code():
    assert _calls_without_code() == []


def test_every_code_in_the_code_base_is_catalogued():
    used = set()
    for path in (ROOT / "archspec").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and len(node.value) == 5 \
                    and node.value.startswith("AS") and node.value[2:].isdigit():
                used.add(node.value)
    assert used <= set(CODES), sorted(used - set(CODES))


def test_codes_reference_is_fresh():
    from archspec.report.codes import render

    committed = (ROOT / "docs" / "errors.md").read_text()
    assert committed == render(), "docs/errors.md is stale: run python -m archspec.report.codes > docs/errors.md"
