"""The format features today's families need: op names from variables (`- $act`), layers left
out by `if`, repeats named as nn.Sequential names them (and `copy_id`), the copy number
`index`, template defaults that use other arguments, the `when_same` shortcut and stochastic
depth on residual branches, `make_divisible`, SE's two rounding rules, variables in `input`,
and `--set` on every command that takes a spec.

Expected names come from the torch modules the specs stand for; expected widths from
torchvision's own functions; never from archspec's output.
"""
from __future__ import annotations

import json

import pytest

import archspec
from archspec.errors import SpecError
from archspec.spec.compose import VarOverrideError
from conftest import SPECS, run_cli


def spec(layers: str, *, input_shape=(8, 16, 16), extra: str = "") -> str:
    return f"archspec: 1\nname: t\ninput: {list(input_shape)}\n{extra}layers:\n{layers}"


def graph_of(text: str, **kwargs):
    return archspec.expand(archspec.loads(text, **kwargs))


def error_of(text: str, **kwargs) -> SpecError:
    with pytest.raises(SpecError) as info:
        graph_of(text, **kwargs)
    return info.value


# ---- op and block names from variables -------------------------------------------------------

ACT_TEMPLATE = """\
vars: {act: hardswish}
templates:
  conv_act:
    args: {out: required, act: relu}
    body:
      - conv: {out: $out, kernel: 3, padding: 1}
      - $act
"""


def test_an_activation_named_by_a_variable_compiles_to_that_module():
    torch_nn = pytest.importorskip("torch.nn")
    text = spec("  - conv: {out: 8, kernel: 1}\n  - $act\n"
                "  - conv_act: {id: a, out: 8, act: $act}\n"  # a template argument set from the variable
                "  - conv_act: {id: b, out: 8}\n", extra=ACT_TEMPLATE)  # the argument's default
    graph = graph_of(text)
    assert [graph.nodes[n].op for n in ("1", "a.1", "b.1")] == ["hardswish", "hardswish", "relu"]
    model = archspec.build(graph)
    assert type(model.get_submodule("1")) is torch_nn.Hardswish
    assert type(model.get_submodule("a.1")) is torch_nn.Hardswish
    assert type(model.get_submodule("b.1")) is torch_nn.ReLU
    # the same spec with the variable set from outside
    model = archspec.build(graph_of(text, var_overrides={"act": "silu"}))
    assert type(model.get_submodule("1")) is torch_nn.SiLU


def test_an_op_named_by_a_variable_takes_settings():
    graph = graph_of(spec("  - $act: {id: act, negative_slope: 0.2}\n", extra="vars: {act: leaky_relu}\n"))
    node = graph.nodes["act"]
    assert node.op == "leaky_relu" and node.params.negative_slope == 0.2


def test_a_template_named_by_a_variable():
    extra = ACT_TEMPLATE.replace("vars: {act: hardswish}", "vars: {act: hardswish, unit: conv_act}")
    graph = graph_of(spec("  - $unit: {id: u, out: 4}\n", extra=extra))
    assert list(graph.nodes) == ["u.0", "u.1"] and graph.blocks["u"].kind == "conv_act"


@pytest.mark.parametrize("value, message, hint", [
    ("hardswsh", "'$act' is 'hardswsh', which is not an op, block or template", "did you mean 'hardswish'?"),
    ("3", "'$act' is 3, which is not an op, block or template", None),
])
def test_a_variable_naming_no_op_is_a_located_error(value, message, hint):
    text = spec("  - conv: {out: 8, kernel: 1}\n  - $act\n", extra=f"vars: {{act: {value}}}\n")
    err = error_of(text)
    assert err.code == "AS204" and message in err.message
    assert (err.loc.line, err.loc.col) == (7, 5)
    if hint:
        assert err.hint == hint


def test_an_unknown_variable_as_an_op_name():
    err = error_of(spec("  - $actt\n", extra="vars: {act: relu}\n"))
    assert err.code == "AS207" and "unknown variable 'actt'" in err.message and "did you mean 'act'" in err.message


# ---- repeat: names as nn.Sequential gives them ----------------------------------------------------

def test_an_unnamed_repeat_in_a_list_takes_the_lists_next_indices():
    """`[a, {b: {repeat: 3}}, c]` is named like nn.Sequential(a, *[b, b, b], c)."""
    nn = pytest.importorskip("torch.nn")
    text = spec("  - seq:\n      id: features\n      layers:\n"
                "        - conv: {out: 8, kernel: 1}\n"
                "        - conv: {out: 8, kernel: 3, padding: 1, repeat: 3}\n"
                "        - batchnorm\n")
    reference = nn.Sequential(nn.Conv2d(8, 8, 1), *[nn.Conv2d(8, 8, 3, padding=1) for _ in range(3)],
                              nn.BatchNorm2d(8))
    model = archspec.build(graph_of(text))
    assert list(model.state_dict()) == [f"features.{k}" for k in reference.state_dict()]


def test_a_stage_of_repeated_blocks_is_named_like_torchvisions_stages():
    """EfficientNet's features.2 = nn.Sequential(block, block): features.2.0, features.2.1 —
    not features.2.0.0; a stage whose first block differs: nn.Sequential(first, *rest)."""
    text = spec("  - seq:\n      id: features\n      layers:\n"
                "        - conv: {out: 8, kernel: 1}\n"
                "        - seq:\n            layers:\n"
                "              - residual: {repeat: 2, body: [{conv: {id: c, out: 8, kernel: 1}}]}\n"
                "        - seq:\n            layers:\n"
                "              - conv: {out: 16, kernel: 1}\n"
                "              - residual: {repeat: 2, body: [{conv: {id: c, out: 16, kernel: 1}}]}\n")
    assert list(graph_of(text).nodes) == [
        "features.0", "features.1.0.c", "features.1.0.add", "features.1.1.c", "features.1.1.add",
        "features.2.0", "features.2.1.c", "features.2.1.add", "features.2.2.c", "features.2.2.add"]


def test_a_named_repeat_is_a_group_as_before():
    graph = graph_of(spec("  - conv: {id: layer1, out: 8, kernel: 1, repeat: 2}\n  - relu\n"))
    assert list(graph.nodes) == ["layer1.0", "layer1.1", "1"]  # a group holds one index
    assert graph.blocks["layer1"].repeat == 2


def test_copy_id_names_the_copies():
    text = spec("  - seq:\n      id: block2\n      layers:\n"
                "        - conv: {repeat: 3, copy_id: 'block2-{index}', out: 8, kernel: 1}\n"
                "  - conv: {id: block3, repeat: 2, copy_id: 'block3-{index}', out: 8, kernel: 1}\n")
    assert list(graph_of(text).nodes) == ["block2.block2-0", "block2.block2-1", "block2.block2-2",
                                          "block3.block3-0", "block3.block3-1"]


@pytest.mark.parametrize("layer, code, words", [
    ("conv: {repeat: 2, copy_id: 'block', out: 8, kernel: 1}", "AS203", "must contain '{index}' once"),
    ("conv: {repeat: 2, copy_id: '1x-{index}', out: 8, kernel: 1}", "AS206", "'1x-0'"),
    ("conv: {copy_id: 'b-{index}', out: 8, kernel: 1}", "AS203", "'copy_id' only applies with 'repeat'"),
])
def test_copy_id_errors(layer, code, words):
    err = error_of(spec(f"  - {layer}\n"))
    assert err.code == code and words in str(err)


def test_each_copy_sees_its_number_as_index():
    graph = graph_of(spec("  - dropout: {id: d, repeat: 4, p: '${0.1 * index}', first: {p: 0.05}}\n"))
    assert [graph.nodes[f"d.{i}"].params.p for i in range(4)] == [0.05, 0.1, 0.2, 0.1 * 3]


def test_index_is_unknown_outside_a_repeat():
    err = error_of(spec("  - dropout: {p: '${0.1 * index}'}\n"))
    assert err.code == "AS207" and "unknown variable 'index'" in err.message


def test_index_is_not_seen_inside_a_templates_body():
    """Templates see the spec's vars and their arguments only: pass the index as an argument."""
    text = spec("  - drop: {id: d, repeat: 2, p: '${0.1 * index}'}\n",
                extra="templates:\n  drop:\n    args: {p: 0.0}\n    body:\n      - dropout: {p: $p}\n"
                      "      - dropout: {p: '${0.1 * index}'}\n")
    err = error_of(text)
    assert err.code == "AS207" and (err.loc.line, err.loc.col) == (9, 22)


# ---- if ------------------------------------------------------------------------------------------

IF_TEMPLATE = """\
templates:
  block:
    args: {out: required, expand: 1, inp: $out, hidden: '${inp * expand}'}
    body:
      - conv: {if: '${hidden != inp}', out: $hidden, kernel: 1}
      - conv: {out: $out, kernel: 3, padding: 1}
"""


def test_a_layer_left_out_by_if_takes_no_index():
    """torchvision's `if expanded != inp: layers.append(...)`: the next layer is then .0."""
    graph = graph_of(spec("  - block: {id: a, out: 8}\n  - block: {id: b, out: 8, expand: 4}\n",
                          extra=IF_TEMPLATE))
    assert list(graph.nodes) == ["a.0", "b.0", "b.1"]
    assert graph.nodes["a.0"].shape == (8, 16, 16) and graph.nodes["b.0"].shape == (32, 16, 16)


def test_the_id_of_a_layer_left_out_names_its_input():
    graph = graph_of(spec("  - conv: {id: c, out: 8, kernel: 1}\n  - relu: {id: r, if: false}\n"
                          "  - add: {from: [r, c]}\n"))
    assert list(graph.nodes) == ["c", "1"] and graph.nodes["1"].inputs == ("c", "c")  # no index taken


@pytest.mark.parametrize("value", ["1", "'yes'", "'${1 + 1}'"])
def test_if_takes_true_or_false_only(value):
    err = error_of(spec(f"  - relu: {{if: {value}}}\n"))
    assert err.code == "AS203" and "if" in err.message


def test_conditions_in_expressions():
    graph = graph_of(spec("  - relu: {id: a, if: '${s == 1 and not se}'}\n"
                          "  - relu: {id: b, if: '${1 <= s < 2 or se}'}\n"
                          "  - relu: {id: c, if: '${s != 1}'}\n", extra="vars: {s: 1, se: false}\n"))
    assert list(graph.nodes) == ["a", "b"]
    err = error_of(spec("  - relu: {if: '${not s}'}\n", extra="vars: {s: 1}\n"))
    assert err.code == "AS208" and "need true or false" in err.message


def test_template_defaults_may_use_other_arguments():
    graph = graph_of(spec("  - block: {id: a, out: 8, expand: 2}\n  - block: {id: b, out: 8, expand: 2, inp: 4}\n",
                          extra=IF_TEMPLATE))
    assert graph.nodes["a.0"].shape[0] == 16 and graph.nodes["b.0"].shape[0] == 8


# ---- residual: the when_same shortcut and stochastic depth ------------------------------------

def inverted(stride: int, out: int, drop: float = 0.1) -> str:
    return ("  - residual:\n      id: r\n      shortcut: when_same\n      drop_path: " + str(drop) + "\n"
            f"      body: [{{conv: {{id: c, out: {out}, kernel: 3, stride: {stride}, padding: 1}}}}]\n")


def test_when_same_is_an_identity_skip_when_the_shape_is_kept():
    graph = graph_of(spec(inverted(1, 8)))
    assert list(graph.nodes) == ["r.c", "r.stochastic_depth", "r.add"]
    assert graph.nodes["r.add"].inputs == ("r.stochastic_depth", "input")
    assert graph.nodes["r.stochastic_depth"].params.p == 0.1


@pytest.mark.parametrize("stride, out", [(2, 8), (1, 16)])
def test_when_same_is_no_shortcut_when_the_shape_changes(stride, out):
    graph = graph_of(spec(inverted(stride, out)))
    assert list(graph.nodes) == ["r.c"]  # no projection, no add, and no stochastic depth either
    assert graph.output == "r.c"


def test_stochastic_depth_drops_whole_samples_in_training_only():
    torch = pytest.importorskip("torch")
    model = archspec.build(graph_of(spec(inverted(1, 8, drop=0.5))), seed=0)
    x = torch.randn(64, 8, 16, 16)
    branch = model.get_submodule("r.c")(x)
    model.train()
    torch.manual_seed(0)
    y = model(x)
    dropped = [bool(torch.equal(y[i], x[i])) for i in range(64)]
    assert 0 < sum(dropped) < 64  # whole residual branches dropped for some samples
    kept = [i for i in range(64) if not dropped[i]]
    torch.testing.assert_close(y[kept], x[kept] + branch[kept] / 0.5)
    model.eval()
    torch.testing.assert_close(model(x), x + branch)


# ---- make_divisible and SE's rounding ---------------------------------------------------------

def test_make_divisible_is_torchvisions():
    from torchvision.models._utils import _make_divisible

    from archspec.spec.expr import evaluate

    for divisor in (1, 4, 8, 16):
        for tenth in range(1, 4000, 7):
            v = tenth / 10
            assert evaluate(f"${{make_divisible({v}, {divisor})}}", {}) == _make_divisible(v, divisor), (v, divisor)
    assert evaluate("${make_divisible(3, 8, 4)}", {}) == _make_divisible(3, 8, 4) == 4
    # the 10 % rule: 18 would round to 16 (11 % down), so it gives 24 (MobileNetV3's 72 // 4)
    assert evaluate("${make_divisible(72 // 4, 8)}", {}) == 24


def test_se_rounds_like_torchvision_by_default_and_like_timm_on_request():
    from torchvision.models import mobilenet_v3_large

    # torchvision's MobileNetV3-Large: an SE gate on 72 channels squeezes to 24
    block = mobilenet_v3_large().features[4].block
    assert block[1].out_channels == 72 and block[2].fc1.out_channels == 24
    graph = graph_of(spec("  - se: {id: se, reduction: 4, divisor: 8}\n", input_shape=(72, 8, 8)))
    assert graph.nodes["se.fc1"].shape[0] == 24
    # timm's SEModule(72, rd_ratio=1/4, rd_divisor=8) uses round_limit=0: 72 / 4 = 18 -> 16
    graph = graph_of(spec("  - se: {id: se, reduction: 4, divisor: 8, round: nearest}\n", input_shape=(72, 8, 8)))
    assert graph.nodes["se.fc1"].shape[0] == 16


def test_se_resnet50_and_mobilenet_v2_keep_their_counts():
    # timm seresnet50: 28,088,024; torchvision mobilenet_v2: 3,504,872
    for name, params in (("se_resnet50", 28_088_024), ("mobilenet_v2", 3_504_872)):
        report = archspec.analyze(archspec.expand(archspec.load(SPECS / f"{name}.yaml")))
        assert report.totals["params"] == params, name


# ---- variables in the input shape, and --set ----------------------------------------------------

SCALED = """\
archspec: 1
name: scaled
input: [3, $resolution, $resolution]
vars: {resolution: 32, width: 8, classes: 10}
layers:
  - conv: {out: '${2 * width}', kernel: 3, padding: 1}
  - global_avgpool
  - flatten
  - linear: {out: $classes}
"""


def test_the_input_shape_may_use_variables():
    spec_ = archspec.loads(SCALED)
    assert spec_.input == (3, 32, 32)
    assert archspec.loads(SCALED, var_overrides={"resolution": "40"}).input == (3, 40, 40)
    assert archspec.loads(SCALED, input_override=(3, 16, 16), var_overrides={"resolution": "40"}).input == (3, 16, 16)
    err = error_of(SCALED.replace("$resolution, $resolution", "$resolution, '${resolution / 3}'"))
    assert err.code == "AS203" and "input[2] must be a positive integer" in err.message


@pytest.mark.parametrize("overrides, words", [
    ({"widht": "2"}, "the spec has no variable 'widht'"),
    ({"width": "[1, 2]"}, "a variable holds one number, true/false or string"),
    ({"width": "{a: 1}"}, "a variable holds one number"),
    ({"width": ""}, "a variable holds one number"),
    ({"width": "1\nlayers: []"}, "the value must be on one line"),
])
def test_bad_overrides_are_usage_errors(overrides, words):
    with pytest.raises(VarOverrideError) as info:
        archspec.loads(SCALED, var_overrides=overrides)
    assert info.value.code == "AS210" and words in info.value.message
    if "widht" in overrides:
        assert info.value.hint == "did you mean 'width'?"


def test_override_values_are_read_as_yaml_scalars():
    spec_ = archspec.loads(SCALED, var_overrides={"width": "1.5e+1", "classes": "'7'", "resolution": "0x20"})
    assert spec_.vars["width"][0] == 15.0 and spec_.vars["classes"][0] == "7"
    assert spec_.input == (3, 32, 32)  # YAML's hexadecimal, as in a spec file
    err = error_of(SCALED, var_overrides={"classes": "'7'"})  # a string where a number is needed
    assert err.loc.line == 9


@pytest.mark.parametrize("command", [
    ["check"], ["report"], ["graph", "-o", "{tmp}/x.dot"], ["build"], ["export", "-o", "{tmp}/x.onnx"],
    ["run"], ["bench"], ["diff", "{spec}"],
])
def test_every_command_that_takes_a_spec_takes_set(command, write_spec, tmp_path):
    path = write_spec(SCALED, "scaled.yaml")
    args = [a.format(tmp=tmp_path, spec=path) for a in command]
    bad = run_cli(args[0], path, *args[1:], "--set", "widht=2")
    assert bad.returncode == 2, bad.stderr
    assert "--set widht=2: the spec has no variable 'widht'" in bad.stderr and "[AS210]" in bad.stderr
    assert "did you mean 'width'?" in bad.stderr and "Traceback" not in bad.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["scaled.yaml"]  # nothing written


def test_report_and_check_with_set(write_spec):
    path = write_spec(SCALED, "scaled.yaml")
    result = run_cli("report", path, "-f", "json", "--set", "width=4", "--set", "classes=3",
                     "--set", "resolution=20")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    # conv 3->8 3x3 with bias, linear 8->3: counted by hand
    assert data["totals"]["params"] == 3 * 8 * 9 + 8 + 8 * 3 + 3
    assert data["input"] == [3, 20, 20] and data["output"] == [3]
    assert run_cli("check", path, "--set", "width=4").returncode == 0
    invalid = run_cli("check", path, "--set", "width=0")  # a valid option making the spec invalid
    assert invalid.returncode == 1 and "scaled.yaml:6:" in invalid.stderr
    for args, words in ((["--set", "width"], "--set must look like NAME=VALUE"),
                        (["--set", "width=1", "--set", "width=2"], "--set width is given twice")):
        result = run_cli("report", path, *args)
        assert result.returncode == 2 and words in result.stderr


def test_diff_applies_set_to_both_specs():
    head = SPECS.parent / "examples" / "resnet18_cifar10_head.yaml"
    result = run_cli("diff", SPECS / "resnet18.yaml", head, "--set", "classes=10", "-f", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["output"] == [[10], [10]] and data["layers"] == []


@pytest.mark.parametrize("command", ["run", "bench"])
def test_set_is_refused_for_an_onnx_file(command, tmp_path):
    model = tmp_path / "model.onnx"
    model.write_bytes(b"not read: the options are checked first")
    result = run_cli(command, model, "--set", "width=2")
    assert result.returncode == 2 and "--set applies to specs" in result.stderr
