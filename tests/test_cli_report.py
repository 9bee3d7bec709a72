"""`archspec report` run as a user runs it: a subprocess, real spec files, every format.

Expected numbers come from torchvision (VGG-16) and the papers (LeNet-5, AlexNet), as in
tests/test_zoo_sequential.py.
"""
import csv
import io
import json

import pytest

from conftest import SPECS, run_cli


def report_json(spec, *args):
    result = run_cli("report", SPECS / spec, "--format", "json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def layer(data, name):
    return next(entry for entry in data["layers"] if entry["name"] == name)


def test_vgg16_totals():
    # torchvision's vgg16: 138,357,544 parameters, 15.47 G multiply-adds.
    totals = report_json("vgg16.yaml")["totals"]
    assert totals["params"] == 138_357_544
    assert totals["macs"] == 15_470_264_320


def test_lenet5_frozen_rbf_is_not_trainable():
    # LeCun et al. 1998: 60,000 trainable parameters; the 840 RBF prototypes are fixed.
    totals = report_json("lenet5.yaml")["totals"]
    assert (totals["params"], totals["trainable_params"]) == (60_840, 60_000)


def test_alexnet_conv1_entry():
    # Krizhevsky et al. 2012: 96 kernels of 11x11x3 (+ biases), 55x55 maps.
    conv1 = layer(report_json("alexnet.yaml"), "conv1")
    assert (conv1["params"], conv1["shape"]) == (34_944, [96, 55, 55])


@pytest.mark.parametrize("fmt", ["table", "markdown"])
def test_text_formats_render(fmt):
    result = run_cli("report", SPECS / "alexnet.yaml", "--format", fmt)
    assert result.returncode == 0, result.stderr
    assert "conv1" in result.stdout and "34,944" in result.stdout
    assert "60,965,224" in result.stdout
    if fmt == "markdown":
        assert result.stdout.startswith("## alexnet")
        assert "| `conv1` | conv | 96x55x55 | 34,944 |" in result.stdout


def test_csv_format_parses():
    result = run_cli("report", SPECS / "alexnet.yaml", "--format", "csv")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    conv1 = next(row for row in rows if row["name"] == "conv1")
    assert (conv1["params"], conv1["shape"]) == ("34944", "96x55x55")
    assert sum(int(row["params"]) for row in rows) == 60_965_224


def test_input_override():
    # All-CNN-C is a CIFAR-10 net (Springenberg et al. 2015): 32x32 in, 10 maps of 6x6 averaged.
    data = report_json("allcnn_c.yaml", "--input", "3x32x32")
    assert (data["input"], data["output"]) == ([3, 32, 32], [10])
    assert layer(data, "conv9")["shape"] == [10, 6, 6]
    assert data["totals"]["params"] == 1_369_738


def test_bad_format_is_a_usage_error():
    result = run_cli("report", SPECS / "vgg16.yaml", "--format", "yaml")
    assert result.returncode == 2
    assert "--format" in result.stderr
    assert result.stdout == ""


def test_report_file_is_written_with_a_normal_mode(tmp_path):
    # Outputs are written atomically through a private temporary file; the result must still
    # get the mode any newly created file gets (umask applied), not the temporary's 0600.
    import os

    out = tmp_path / "vgg16.json"
    result = run_cli("report", SPECS / "vgg16.yaml", "-f", "json", "-o", out)
    assert result.returncode == 0, result.stderr
    mask = os.umask(0)
    os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~mask
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
