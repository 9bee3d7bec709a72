"""Static analysis: receptive fields against published values, totals consistent with layers."""
import json

import archspec
from conftest import SPECS, run_cli

ALEXNET_FEATURES = """
archspec: 1
name: alexnet_features
input: [3, 227, 227]
layers:
  - conv: {id: conv1, out: 96, kernel: 11, stride: 4}
  - maxpool: {id: pool1, kernel: 3, stride: 2}
  - conv: {id: conv2, out: 256, kernel: 5, padding: 2, groups: 2}
  - maxpool: {id: pool2, kernel: 3, stride: 2}
  - conv: {id: conv3, out: 384, kernel: 3, padding: 1}
  - conv: {id: conv4, out: 384, kernel: 3, padding: 1, groups: 2}
  - conv: {id: conv5, out: 256, kernel: 3, padding: 1, groups: 2}
  - maxpool: {id: pool5, kernel: 3, stride: 2}
"""


def report_of(path):
    return archspec.analyze(archspec.expand(archspec.load(path)))


def fields(report):
    return {s.name: s.receptive_field[0] for s in report.layers}


def test_alexnet_receptive_fields(write_spec):
    # Published receptive fields of AlexNet's feature layers (e.g. Araujo et al., Distill 2019).
    rf = fields(report_of(write_spec(ALEXNET_FEATURES)))
    assert [rf[k] for k in ("conv1", "pool1", "conv2", "pool2", "conv3", "conv4", "conv5", "pool5")] == \
        [11, 19, 51, 67, 99, 131, 163, 195]


def test_vgg16_receptive_fields():
    # VGG-16: conv5_3 sees 196x196 pixels, pool5 212x212 (published receptive-field tables).
    report = report_of(SPECS / "vgg16.yaml")
    rf = fields(report)
    assert rf["features.28"] == 196 and rf["features.30"] == 212
    assert rf["avgpool"] == 212  # adaptive pooling 7 -> 7 is the identity
    jumps = {s.name: s.jump[0] for s in report.layers}
    assert jumps["features.30"] == 32


def test_totals_are_sums_of_layers():
    report = report_of(SPECS / "vgg16.yaml")
    for key in ("params", "trainable_params", "macs", "param_bytes", "activation_bytes"):
        assert report.totals[key] == sum(getattr(s, key) for s in report.layers)
    assert report.totals["param_bytes"] == 4 * report.totals["params"]
    conv1 = report.layers[0]
    assert conv1.activation_bytes == 4 * 64 * 224 * 224


def test_json_contract():
    result = run_cli("report", SPECS / "vgg16.yaml", "--format", "json")
    data = json.loads(result.stdout)
    assert set(data) >= {"name", "input", "output", "totals", "layers", "warnings"}
    assert set(data["totals"]) >= {"params", "trainable_params", "macs", "param_bytes", "activation_bytes"}
    assert set(data["layers"][0]) >= {"name", "op", "shape", "params", "macs"}
    assert data["input"] == [3, 224, 224] and data["output"] == [1000]


def test_trainable_false_counts_as_frozen(write_spec):
    path = write_spec("archspec: 1\ninput: [3, 8, 8]\nlayers:\n"
                      "  - conv: {out: 4, kernel: 3, trainable: false}\n  - flatten\n  - linear: {out: 2}\n")
    totals = report_of(path).totals
    assert totals["params"] == 4 * 27 + 4 + 4 * 36 * 2 + 2
    assert totals["trainable_params"] == 4 * 36 * 2 + 2


def test_floor_warning_on_alexnet_at_224(write_spec):
    text = ALEXNET_FEATURES.replace("[3, 227, 227]", "[3, 224, 224]")
    report = report_of(write_spec(text))
    assert any("'conv1'" in w and "the last 1 input rows" in w for w in report.warnings)
    assert not report_of(write_spec(ALEXNET_FEATURES, "ok.yaml")).warnings


def test_parameter_sharing_report():
    # The course's numbers: AlexNet conv1 has 34,944 parameters thanks to sharing; with a
    # separate filter bank at each of its 55x55 positions it would need 105,705,600.
    result = run_cli("report", SPECS / "alexnet.yaml", "--sharing", "--format", "json")
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["conv1"]["shared"] == 34_944
    assert rows["conv1"]["unshared"] == 105_705_600
    assert rows["conv1"]["fully_connected"] == (227 * 227 * 3) * (96 * 55 * 55) + 96 * 55 * 55
    table = run_cli("report", SPECS / "alexnet.yaml", "--sharing").stdout
    assert "105,705,600" in table and "3,025x" in table
