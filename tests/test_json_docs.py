"""docs/json.md cannot drift: each section's command is run as written, and the keys of every
table in the section are exactly the keys of the document at the table's path."""
from __future__ import annotations

import json
import re
import shlex

import pytest

from conftest import ROOT, TINY_SPEC, run_cli

DOC = ROOT / "docs" / "json.md"
DOCUMENTED = {"check", "report", "diff", "sizes", "run", "bench", "export --report", "ops", "ops NAME",
              "ops NAME (a block)"}
NEEDS_RUNTIME = ("run", "bench", "export")  # export a model first: a few seconds each


def sections() -> dict:
    """title -> (command line, {path: [keys]}) for every `## title` of docs/json.md; a table's
    path is `` (the document) or the last `### `path`` heading above it."""
    found, title, path = {}, None, ""
    for line in DOC.read_text().splitlines():
        if line.startswith("## "):
            title, path = line[3:].strip(), ""
            found[title] = [None, {}]
        elif title is None:
            continue
        elif line.startswith("### "):
            path = line[4:].strip().strip("`")
        elif line.startswith("Run: `"):
            found[title][0] = re.match(r"Run: `([^`]+)`", line).group(1)
        elif line.startswith("| `"):
            key = line.split("|")[1].strip().strip("`")
            found[title][1].setdefault(path, []).append(key)
    return {t: (cmd, tables) for t, (cmd, tables) in found.items()}


def objects_at(document, path: str) -> list:
    """The objects a table path names: `a.b`, `a[]` (each element), `*` (each value); nulls skipped."""
    current = [document]
    for part in filter(None, path.split(".")):
        each = part.endswith("[]")
        name = part[:-2] if each else part
        step = []
        for obj in current:
            value = list(obj.values()) if name == "*" else [obj[name]]
            step += [x for v in value if v is not None for x in (v if each else [v])]
        current = step
    return current


def _cases():
    for title, (command, _) in sections().items():
        slow = any(command and command.split()[1] == word for word in NEEDS_RUNTIME)
        yield pytest.param(title, marks=[pytest.mark.slow] if slow else [], id=title.replace(" ", ""))


def test_every_json_command_is_documented():
    found = sections()
    assert DOCUMENTED <= set(found), sorted(DOCUMENTED - set(found))
    for title, (command, tables) in found.items():
        assert command and command.startswith("archspec "), f"section '{title}' has no 'Run: `archspec ...`' line"
        assert "" in tables, f"section '{title}' has no table of the document's keys"


@pytest.mark.parametrize("title", list(_cases()))
def test_documented_keys_are_the_keys_present(title, tmp_path):
    command, tables = sections()[title]
    args = shlex.split(command)[1:]
    if args[0] in NEEDS_RUNTIME:
        pytest.importorskip("onnxruntime")
    report = None
    for flag in ("-o", "--report"):  # files go to tmp_path; the document is --report's file or stdout
        if flag in args:
            i = args.index(flag) + 1
            args[i] = str(tmp_path / args[i])
            report = args[i] if flag == "--report" else report
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr[-2000:]
    document = json.loads(open(report).read() if report else result.stdout)
    for path, keys in tables.items():
        found = objects_at(document, path)
        assert found, f"{title}: nothing at '{path}' in the document"
        for obj in found:
            assert sorted(obj) == sorted(keys), (f"{title} '{path}': documented {sorted(keys)}, "
                                                 f"present {sorted(obj)}")


def test_path_resolution_reads_lists_and_maps():
    doc = {"a": [{"b": {"x": {"k": 1}, "y": {"k": 2}}}, {"b": None}]}
    assert objects_at(doc, "a[].b.*") == [{"k": 1}, {"k": 2}]
    assert objects_at(doc, "") == [doc]


# ---- the values, not only the keys -----------------------------------------------------------

TINY = TINY_SPEC


@pytest.mark.slow
def test_export_report_describes_the_file_written(tmp_path):
    pytest.importorskip("onnxruntime")
    import onnx

    spec, model, report = tmp_path / "tiny.yaml", tmp_path / "tiny.onnx", tmp_path / "verify.json"
    spec.write_text(TINY)
    result = run_cli("export", spec, "-o", model, "--report", report, "--seed", "4")
    assert result.returncode == 0, result.stderr
    doc = json.loads(report.read_text())
    assert doc["passed"] and doc["verified"] and doc["failed_check"] is None
    assert doc["bytes"] == model.stat().st_size
    assert doc["opset"] == next(o.version for o in onnx.load(str(model)).opset_import if o.domain in ("", "ai.onnx"))
    assert set(doc["checks"].values()) == {"passed"}
    cmp = doc["comparison"]
    assert cmp["provider"] == "CPUExecutionProvider" and cmp["tolerance"]["rtol"] == 1e-4
    assert [i["seed"] for i in cmp["inputs"]] == [5, 6, 9]  # seed + batch, as verification draws them
    assert [row["batch"] for row in cmp["batches"]] == [1, 2, 5]
    for row in cmp["batches"]:
        (out,) = row["outputs"]
        assert out["name"] == "logits" and out["max_abs"] == row["max_abs"]
        assert 0 < out["max_abs"] <= 1e-4 * out["scale"] * 2  # within atol x scale (+ rtol part)
        assert f"batch {row['batch']}: max abs {row['max_abs']:.2e}" in result.stdout


@pytest.mark.slow
def test_export_report_of_a_failed_check(tmp_path):
    """Weights that overflow float32: ONNX Runtime and PyTorch both give inf, parity fails;
    the report says so, keeps the row that failed, and no model is written."""
    pytest.importorskip("onnxruntime")
    import torch

    import archspec

    spec, weights = tmp_path / "tiny.yaml", tmp_path / "huge.pth"
    spec.write_text(TINY)
    state = {k: v * 1e30 + 1e30 for k, v in archspec.build(spec).state_dict().items()}
    torch.save(state, weights)
    result = run_cli("export", spec, "-o", tmp_path / "tiny.onnx", "--weights", weights,
                     "--report", tmp_path / "verify.json")
    assert result.returncode == 1 and "parity" in result.stderr, result.stderr
    doc = json.loads((tmp_path / "verify.json").read_text())
    assert not doc["passed"] and doc["failed_check"] == "runtime_parity" and "parity" in doc["error"]
    assert doc["comparison"]["batches"][0]["max_abs"] in ("inf", "nan")  # JSON has no infinity
    assert doc["checks"] == {"checker": "passed", "self_contained": "passed", "shape_inference": "passed",
                             "runtime_parity": "failed"}
    assert doc["opset"] is None and doc["bytes"] is None
    assert [row["passed"] for row in doc["comparison"]["batches"]] == [False]
    assert [i["compared"] for i in doc["comparison"]["inputs"]] == [True, False, False]
    assert not (tmp_path / "tiny.onnx").exists()


@pytest.mark.slow
def test_bench_json_figures_agree(tmp_path):
    pytest.importorskip("onnxruntime")
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    result = run_cli("bench", spec, "--batch", "1,3", "--runs", "4", "--warmup", "1", "--threads", "1",
                     "-f", "json")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    doc = json.loads(result.stdout)
    assert doc["provider"] == "CPUExecutionProvider" and doc["runtimes"] == ["pytorch", "onnxruntime"]
    assert doc["threads"] == {"requested": 1, "torch": 1, "onnxruntime": 1}
    assert [b["batch"] for b in doc["batches"]] == [1, 3]
    for row in doc["batches"]:
        pt, ort = row["runtimes"]["pytorch"], row["runtimes"]["onnxruntime"]
        assert pt["runs"] == ort["runs"] == 4
        assert pt["min_ms"] <= pt["median_ms"] <= pt["p90_ms"]
        assert ort["throughput"] == pytest.approx(row["batch"] / ort["median_ms"] * 1e3)
        assert row["speedup"] == pytest.approx(pt["median_ms"] / ort["median_ms"])
        assert 0 <= row["max_abs_diff"] < 1e-3
