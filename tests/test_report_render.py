"""The report people read: folded rows that add up, declared columns, several input sizes side
by side, colour only on a terminal, warnings on stderr."""
from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys

import pytest

import archspec
from archspec.report.columns import COLUMNS, Column, add_column, choose_columns
from archspec.report.rows import folded_rows
from conftest import ROOT, SPECS, run_cli, zoo_specs

ADDITIVE = ("params", "trainable_params", "macs", "param_bytes", "activation_bytes")


def graph_and_report(path):
    graph = archspec.expand(archspec.load(path))
    return graph, archspec.analyze(graph)


@pytest.mark.parametrize("path", zoo_specs(), ids=lambda p: p.stem)
def test_folded_rows_add_up_to_the_unfolded_ones(path):
    graph, report = graph_and_report(path)
    deepest = max((len(n.blocks) for n in graph.nodes.values()), default=0)
    for depth in range(deepest + 1):
        rows = folded_rows(report, graph, depth)
        members = [s.name for row in rows for s in row.members]
        assert sorted(members) == sorted(s.name for s in report.layers), depth  # each op once
        for key in ADDITIVE:
            assert sum(row.total(key) for row in rows) == sum(getattr(s, key) for s in report.layers)
            main = sum(row.total(key) for row in rows if not row.training_only)
            assert main == report.totals[key], (path.stem, depth, key)


def table_rows(text: str, header: str) -> tuple[list[str], list[list[str]]]:
    """The plain table's header cells and body rows (cells split on runs of 2+ spaces)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    end = next(i for i in range(start + 2, len(lines)) if lines[i].startswith("---"))
    split = lambda line: re.split(r"\s{2,}", line.strip())  # noqa: E731
    return split(lines[start]), [split(line) for line in lines[start + 2:end]]


def number(cell: str) -> int:
    return 0 if cell == "-" else int(cell.replace(",", ""))


def test_depth_table_sums_to_the_totals_it_prints():
    result = run_cli("report", SPECS / "resnet50.yaml", "--depth", "1")
    assert result.returncode == 0, result.stderr
    headers, body = table_rows(result.stdout, "Layer")
    params, macs = headers.index("Params"), headers.index("MACs")
    assert sum(number(r[params]) for r in body) == 25_557_032  # torchvision's resnet50
    printed = re.search(r"MACs: ([\d,]+)", result.stdout).group(1)
    assert sum(number(r[macs]) for r in body) == number(printed)
    names = [r[0] for r in body]
    assert "layer1.0" in names and "layer1.1–2" in names and "layer3.1–5" in names
    assert any(r[1] == "residual ×5" for r in body)


def test_percent_columns_are_shares_of_the_totals():
    headers, body = table_rows(run_cli("report", SPECS / "resnet50.yaml", "--depth", "0").stdout, "Layer")
    fc = next(r for r in body if r[0] == "fc")
    assert fc[headers.index("Params") + 1] == f"{100 * 2_049_000 / 25_557_032:.1f}"


def test_columns_on_request():
    result = run_cli("report", SPECS / "alexnet.yaml", "--columns", "+input,+kernel,+stride,-rf")
    headers, body = table_rows(result.stdout, "Layer")
    assert {"Input", "Kernel", "Stride"} <= set(headers) and "RF" not in headers
    conv1 = dict(zip(headers, next(r for r in body if r[0] == "conv1")))
    assert (conv1["Input"], conv1["Kernel"], conv1["Stride"]) == ("3x227x227", "11", "4")
    exact = run_cli("report", SPECS / "alexnet.yaml", "--columns", "layer,memory")
    assert table_rows(exact.stdout, "Layer")[0] == ["Layer", "Activations"]
    bad = run_cli("report", SPECS / "alexnet.yaml", "--columns", "layer,bogus")
    assert bad.returncode == 2 and "unknown column 'bogus'" in bad.stderr


def test_a_new_column_is_one_declaration():
    column = add_column(Column("line", "Line", lambda row, report: str(row.out.line), default=False))
    try:
        graph, report = graph_and_report(SPECS / "lenet5.yaml")
        from archspec.report.render import View, render_table

        text = render_table(report, View(columns=choose_columns("+line")))
        assert table_rows(text, "Layer")[0][-1] == "Line"
    finally:
        COLUMNS.remove(column)


def test_several_input_sizes_side_by_side():
    result = run_cli("report", SPECS / "vgg16.yaml", "--input", "224,320")
    assert result.returncode == 0, result.stderr
    headers, body = table_rows(result.stdout, "Layer")
    assert headers == ["Layer", "3x224x224", "3x320x320"]
    rows = {r[0]: r[1:] for r in body}
    assert rows["features.30"] == ["512x7x7", "512x10x10"]
    assert rows["avgpool"] == ["512x7x7", "512x7x7"]  # the adaptive pooling keeps the classifier
    assert rows["params"] == ["138,357,544"] * 2 and "params are the same" in result.stdout
    assert rows["MACs"][0] == "15,470,264,320"  # torchvision's VGG-16: 15.47 G multiply-adds
    data = json.loads(run_cli("report", SPECS / "vgg16.yaml", "--input", "3x224x224,3x320x320", "-f", "json").stdout)
    single = json.loads(run_cli("report", SPECS / "vgg16.yaml", "--input", "3x320x320", "-f", "json").stdout)
    assert [d["input"] for d in data] == [[3, 224, 224], [3, 320, 320]] and data[1] == single


def test_sizes_that_change_the_weights_are_named(tmp_path):
    # A classifier on the flattened map (AlexNet's, LeNet's): the linear layer's weights grow
    # with the input — as the modules PyTorch builds at both sizes say.
    spec = tmp_path / "head.yaml"
    spec.write_text("archspec: 1\nname: head\ninput: [3, 32, 32]\nlayers:\n"
                    "  - conv: {id: conv, out: 8, kernel: 3, padding: 1}\n  - maxpool: {id: pool, kernel: 2}\n"
                    "  - flatten\n  - linear: {id: fc1, out: 16}\n  - linear: {id: fc2, out: 10}\n")
    result = run_cli("report", spec, "--input", "32,48")
    assert result.returncode == 0, result.stderr
    changed = re.search(r"params change with the input size at: (.+)", result.stdout).group(1).split(", ")
    counts = {}
    for side in (32, 48):
        model = archspec.build(spec, input_shape=(3, side, side))
        counts[side] = {}
        for name, p in model.named_parameters():
            layer = name.rsplit(".", 1)[0]
            counts[side][layer] = counts[side].get(layer, 0) + p.numel()
    assert changed == [k for k in counts[32] if counts[32][k] != counts[48][k]] == ["fc1"]
    vgg = run_cli("report", SPECS / "vgg16.yaml", "--input", "224,256")
    assert "params are the same at every size" in vgg.stdout  # its adaptive pooling keeps 7x7


def test_layers_option_and_its_errors():
    result = run_cli("report", SPECS / "resnet50.yaml", "--input", "224,448", "--layers", "layer1,layer4")
    headers, body = table_rows(result.stdout, "Layer")
    assert [r[0] for r in body[:2]] == ["layer1.2.relu", "layer4.2.relu"]
    assert body[1][1:] == ["2048x7x7", "2048x14x14"]
    bad = run_cli("report", SPECS / "resnet50.yaml", "--input", "224,448", "--layers", "nope")
    assert bad.returncode == 2 and "'nope'" in bad.stderr
    bad = run_cli("report", SPECS / "resnet50.yaml", "--input", "224,x")
    assert bad.returncode == 2 and "--input" in bad.stderr


def test_se_resnet50_json_last_stage_field():
    """The must-show: SE-ResNet-50's last stage sees ResNet-50's 427 pixels plus global context
    (427 is measured on resnet50 by gradients in tests/test_receptive_field.py)."""
    data = json.loads(run_cli("report", SPECS / "se_resnet50.yaml", "-f", "json").stdout)
    last = next(layer for layer in data["layers"] if layer["name"] == "layer4.2.relu")
    assert last["receptive_field"] == [427, 427] and last["jump"] == [32, 32]
    assert last["global_context"] is True and last["rf_exact"] is True and last["rf_resolved"] is True
    assert max(max(layer["receptive_field"] or [0]) for layer in data["layers"]) < 1000


# ---- where the words go ----------------------------------------------------------------------


def run_on_terminal(*args, env=None) -> tuple[int, str]:
    """The CLI with stdout on a pseudo-terminal (what a user's shell gives it)."""
    main, side = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "archspec", *map(str, args)], stdout=side,
                            stderr=subprocess.PIPE, cwd=ROOT, env=env or os.environ.copy())
    os.close(side)
    out = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the other end closed
            break
        if not chunk:
            break
        out += chunk
    os.close(main)
    return proc.wait(timeout=120), out.decode()


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def test_colour_on_a_terminal_only():
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TERM")}
    rc, text = run_on_terminal("report", SPECS / "lenet5.yaml", env=env)
    assert rc == 0 and ANSI.search(text), text[:200]
    plain = ANSI.sub("", text)
    assert "c1" in plain and "60,840" in plain  # the same figures
    rc, text = run_on_terminal("report", SPECS / "lenet5.yaml", env={**env, "NO_COLOR": "1"})
    assert rc == 0 and not ANSI.search(text) and "60,840" in text
    piped = run_cli("report", SPECS / "lenet5.yaml", env=env)
    assert not ANSI.search(piped.stdout) and "60,840" in piped.stdout


def test_warnings_go_to_stderr_and_quiet_silences_them(tmp_path):
    spec = tmp_path / "floors.yaml"  # (8 - 3)/2 is not whole: the conv never sees the last row
    spec.write_text("archspec: 1\ninput: [1, 8, 8]\nlayers:\n  - conv: {out: 2, kernel: 3, stride: 2}\n"
                    "  - global_avgpool\n")
    for fmt in ("table", "markdown", "csv"):
        result = run_cli("report", spec, "-f", fmt)
        assert result.returncode == 0, result.stderr
        assert "[AS801]" in result.stderr and "warning" not in result.stdout, fmt
    for command in (["report", spec, "-q"], ["sizes", spec, "--range", "6:9", "-q"]):
        result = run_cli(*command)
        assert result.returncode == 0 and result.stderr == "", result.stderr
    drawn = run_cli("graph", spec, "-o", tmp_path / "a.dot")
    assert "[AS801]" in drawn.stderr
