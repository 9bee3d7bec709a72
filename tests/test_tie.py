"""Tied weights (`tie: other`): one set of parameters used by several layers — counted once,
computed twice, compiled as one module, trained from every use; refused, with a located error,
where the layers could not share parameters."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import archspec
from archspec.errors import SpecError
from test_compile_parity import check_parity, tiny
from test_flops import check_flops
from test_memory import check_graph

pytestmark = pytest.mark.usefixtures("one_torch_thread")
ROOT = Path(__file__).resolve().parent.parent
SIAMESE = ROOT / "examples" / "siamese.yaml"
TOWER = ("conv1", "bn1", "conv2", "embed")


def siamese(tied: bool = True):
    text = SIAMESE.read_text()
    if not tied:
        text = text.replace("tie: left", "doc: untied twin")
    return archspec.expand(archspec.loads(text, file=str(SIAMESE)))


# ---- the Siamese example --------------------------------------------------------------------


def test_siamese_counts_the_shared_tower_once():
    report = archspec.analyze(siamese())
    layers = {s.name: s for s in report.layers}
    for name in TOWER:
        assert layers[f"right.{name}"].params == 0
        assert layers[f"right.{name}"].tied_to == f"left.{name}"
        assert layers[f"right.{name}"].macs == layers[f"left.{name}"].macs
    untied = archspec.analyze(siamese(tied=False))
    tower = sum(layers[f"left.{n}"].params for n in TOWER)
    assert report.totals["params"] == untied.totals["params"] - tower == 7_057
    assert report.totals["macs"] == untied.totals["macs"]  # both passes are computed
    assert report.totals["flops"] == untied.totals["flops"]


def test_siamese_module_holds_one_copy():
    graph = siamese()
    model = check_parity(graph)  # per-node params (a tied node has none), shapes, totals
    report = archspec.analyze(graph)
    assert sum(p.numel() for p in model.parameters()) == report.totals["params"]
    keys = set(model.state_dict())
    assert not any(k.startswith("right.") for k in keys)
    assert {"left.conv1.weight", "left.bn1.running_mean", "left.embed.weight", "head.weight"} <= keys
    # a state_dict with one copy of the tower loads strictly and gives the same outputs
    fresh = archspec.build(graph, seed=1).eval()
    fresh.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(3, 2, 28, 28)
    with torch.no_grad():
        assert torch.equal(fresh(x), model.eval()(x))


def test_siamese_macs_counted_per_use():
    """FlopCounterMode sees the tower's convolutions and matmuls run twice: 2 FLOPs per MAC."""
    graph = siamese()
    model = archspec.build(graph, seed=0).eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.randn(2, 2, 28, 28))
    assert counter.get_total_flops() == 2 * 2 * archspec.analyze(graph).totals["macs"]
    check_flops(graph)


def test_siamese_gradients_flow_from_both_towers():
    """The shared weights' gradient is the sum of what each tower contributes: an untied twin
    with the same weights in both towers gets the two parts separately."""
    tied = archspec.build(siamese(), seed=0).train()
    twin = archspec.build(siamese(tied=False), seed=0).train()
    state = tied.state_dict()
    state.update({k.replace("left.", "right.", 1): v for k, v in state.items() if k.startswith("left.")})
    twin.load_state_dict(state, strict=True)
    x = torch.randn(4, 2, 28, 28)
    tied(x).square().sum().backward()
    twin(x).square().sum().backward()
    for name in TOWER:
        for kind in ("weight",):
            shared = tied.get_parameter(f"left.{name}.{kind}").grad
            left = twin.get_parameter(f"left.{name}.{kind}").grad
            right = twin.get_parameter(f"right.{name}.{kind}").grad
            assert left.abs().sum() > 0 and right.abs().sum() > 0 and not torch.allclose(left, right)
            torch.testing.assert_close(shared, left + right)


def test_siamese_shares_batch_norm_statistics():
    """One batch norm module: a training forward pass updates its running statistics once per
    tower."""
    model = archspec.build(siamese(), seed=0).train()
    model(torch.randn(4, 2, 28, 28))
    assert int(model.left.bn1.num_batches_tracked) == 2


def test_siamese_memory_matches_pytorch():
    check_graph(siamese())


def test_siamese_report_cli():
    import json

    from conftest import run_cli

    data = json.loads(run_cli("report", SIAMESE, "-f", "json").stdout)
    layers = {layer["name"]: layer for layer in data["layers"]}
    assert layers["right.conv2"]["tied_to"] == "left.conv2" and layers["right.conv2"]["params"] == 0
    assert data["totals"]["params"] == 7_057


# ---- repeats, templates, bare parameters --------------------------------------------------------


def test_repeat_with_tie_0_shares_copy_0():
    text = tiny((4, 6, 6), "  - conv: {id: c, out: 4, kernel: 3, padding: 1, repeat: 3, tie: 0}\n")
    graph = archspec.expand(archspec.loads(text))
    assert [graph.nodes[f"c.{i}"].tie for i in range(3)] == [None, "c.0", "c.0"]
    model = check_parity(graph)
    assert set(model.state_dict()) == {"c.0.weight", "c.0.bias"}
    x = torch.randn(2, 4, 6, 6)
    with torch.no_grad():
        conv = model.c[0]
        assert torch.equal(model(x), conv(conv(conv(x))))


def test_repeated_template_ties_every_layer_inside():
    text = """\
archspec: 1
input: [3, 8, 8]
templates:
  unit:
    body:
      - conv: {id: conv, out: 3, kernel: 3, padding: 1, bias: false}
      - batchnorm: {id: bn}
      - relu
layers:
  - unit: {id: stage, repeat: 3, tie: 0}
  - conv: {id: other, out: 3, kernel: 1}
  - unit: {id: again, tie: stage.0}
"""
    graph = archspec.expand(archspec.loads(text))
    owners = {n.name: n.tie for n in graph.nodes.values() if n.tie}
    assert owners == {"stage.1.conv": "stage.0.conv", "stage.1.bn": "stage.0.bn",
                      "stage.2.conv": "stage.0.conv", "stage.2.bn": "stage.0.bn",
                      "again.conv": "stage.0.conv", "again.bn": "stage.0.bn"}  # a path, as `from` takes
    with pytest.raises(SpecError, match="structure differs"):  # the repeat holds three units
        archspec.expand(archspec.loads(text.replace("tie: stage.0", "tie: stage")))
    check_parity(graph)
    check_graph(graph)


def test_tie_to_a_repeat_matches_copies_by_name():
    text = tiny((3, 8, 8), """\
  - conv: {id: a, out: 3, kernel: 3, padding: 1, repeat: 2}
  - seq:
      id: b
      tie: a
      layers:
        - conv: {out: 3, kernel: 3, padding: 1}
        - conv: {out: 3, kernel: 3, padding: 1}
""")
    graph = archspec.expand(archspec.loads(text))
    assert graph.nodes["b.0"].tie == "a.0" and graph.nodes["b.1"].tie == "a.1"
    assert archspec.analyze(graph).totals["params"] == 2 * (3 * 27 + 3)
    check_parity(graph)


def test_template_body_ties_to_an_outer_layer():
    """Inside a template, `tie` resolves like `from`: the template's own ids first, then outward."""
    text = """\
archspec: 1
input: [4, 6, 6]
templates:
  branch:
    body:
      - conv: {id: reduce, out: 4, kernel: 1, tie: shared}
      - relu
layers:
  - conv: {id: shared, out: 4, kernel: 1}
  - branch: {id: b1}
  - branch: {id: b2}
  - add: {from: [b1, b2]}
"""
    graph = archspec.expand(archspec.loads(text))
    assert graph.nodes["b1.reduce"].tie == graph.nodes["b2.reduce"].tie == "shared"
    assert archspec.analyze(graph).totals["params"] == 4 * 4 + 4
    check_parity(graph)
    check_flops(graph)
    check_graph(graph)


def test_layer_scale_tie_multiplies_by_the_owner_parameter():
    text = tiny((4, 3, 3), "  - layer_scale: {id: g, init: 0.5}\n  - layer_scale: {id: h, init: 0.5, tie: g}\n")
    graph = archspec.expand(archspec.loads(text))
    model = check_parity(graph)
    assert list(model.state_dict()) == ["g"]
    x = torch.randn(2, 4, 3, 3)
    with torch.no_grad():
        torch.testing.assert_close(model(x), x * 0.25)


# ---- refusals --------------------------------------------------------------------------------------

REFUSED = {
    "later": ("  - conv: {id: a, out: 3, kernel: 1, tie: b}\n  - conv: {id: b, out: 3, kernel: 1}\n",
              "AS309", "names no earlier layer"),
    "itself": ("  - conv: {id: a, out: 3, kernel: 1, tie: a}\n", "AS309", "this layer itself"),
    "enclosing": ("  - seq: {id: s, layers: [{conv: {out: 3, kernel: 1, tie: s}}]}\n", "AS309",
                  "contains this one"),
    "other_op": ("  - conv: {id: a, out: 3, kernel: 1}\n  - conv_transpose: {out: 3, kernel: 1, tie: a}\n",
                 "AS310", "differs from conv"),
    "other_settings": ("  - conv: {id: a, out: 3, kernel: 1}\n  - conv: {out: 3, kernel: 3, tie: a}\n",
                       "AS310", "differs from"),
    "other_channels": ("  - conv: {id: a, out: 5, kernel: 1}\n  - conv: {out: 5, kernel: 1, tie: a}\n",
                       "AS310", "different shapes"),
    "no_parameters": ("  - relu: {id: a}\n  - relu: {tie: a}\n", "AS310", "no parameters to share"),
    "trainable": ("  - conv: {id: a, out: 3, kernel: 1}\n  - conv: {out: 3, kernel: 1, trainable: false, tie: a}\n",
                  "AS310", "one is trainable"),
    "training_only": ("  - conv: {id: a, out: 3, kernel: 1, training_only: true}\n"
                      "  - conv: {out: 3, kernel: 1, tie: a}\n", "AS310", "training-only"),
    "structure": ("  - seq: {id: s, layers: [{conv: {out: 3, kernel: 1}}]}\n"
                  "  - seq: {id: t, tie: s, layers: [{conv: {out: 3, kernel: 1}}, relu]}\n",
                  "AS310", "structure differs"),
    "op_to_block": ("  - seq: {id: s, layers: [{conv: {out: 3, kernel: 1}}]}\n"
                    "  - conv: {out: 3, kernel: 1, tie: s}\n", "AS310", "which is a block"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_tie_refusals_are_located(case):
    layers, code, message = REFUSED[case]
    text = tiny((3, 4, 4), layers)
    with pytest.raises(SpecError) as info:
        archspec.expand(archspec.loads(text, file="tie.yaml"))
    errors = info.value.errors
    assert len(errors) == 1, [str(e) for e in errors]
    error = errors[0]
    assert error.code == code and message in error.message, str(error)
    line = text.splitlines()[error.loc.line - 1]
    assert line[error.loc.col - 1:].startswith(_tie_value(line)), str(error)


def _tie_value(line: str) -> str:
    return line.split("tie: ")[1].rstrip("}]\n ")[:1]


def test_unknown_tie_suggests_a_name():
    text = tiny((3, 4, 4), "  - conv: {id: stem, out: 3, kernel: 1}\n  - conv: {out: 3, kernel: 1, tie: stme}\n")
    with pytest.raises(SpecError) as info:
        archspec.expand(archspec.loads(text))
    assert "stem" in (info.value.errors[0].hint or "")


def test_check_reports_the_tie_error_with_its_code(write_spec):
    from conftest import run_cli

    path = write_spec(tiny((3, 4, 4), "  - conv: {id: a, out: 3, kernel: 1}\n  - conv: {out: 4, kernel: 1, tie: a}\n"))
    result = run_cli("check", path)
    assert result.returncode == 1 and "[AS310]" in result.stderr and "Traceback" not in result.stderr
    assert f"{path}:6:" in result.stderr


def test_table_names_what_a_tied_layer_shares():
    from conftest import run_cli

    table = run_cli("report", SIAMESE).stdout
    row = next(line for line in table.splitlines() if line.startswith("right.conv1 "))
    assert "= left.conv1" in row


def test_siamese_exports_to_onnx_and_matches(tmp_path):
    """The exported graph runs the shared tower twice from one set of initializers; `export`
    verifies it against PyTorch with ONNX Runtime."""
    import onnx

    from conftest import run_cli

    out = tmp_path / "siamese.onnx"
    result = run_cli("export", SIAMESE, "-o", out)
    assert result.returncode == 0, result.stderr
    model = onnx.load(out)
    names = [i.name for i in model.graph.initializer]
    assert not any("right" in n for n in names)
    assert names.count("left.conv1.weight") == names.count("left.conv2.weight") == 1


@pytest.mark.parametrize("layers, owner, tied", [
    # unnamed in a list: the copies take the list's next indices; `tie` names the first copy's
    ("  - conv: {out: 4, kernel: 1}\n  - conv: {out: 4, kernel: 3, padding: 1, repeat: 3, tie: 1}\n",
     "1", ["2", "3"]),
    # copies named by copy_id
    ("  - conv: {id: s, out: 4, kernel: 3, padding: 1, repeat: 3, copy_id: 'block-{index}', tie: block-0}\n",
     "s.block-0", ["s.block-1", "s.block-2"]),
])
def test_repeat_ties_whatever_the_copies_are_named(layers, owner, tied):
    graph = archspec.expand(archspec.loads(tiny((4, 5, 5), layers)))
    assert graph.nodes[owner].tie is None
    assert [graph.nodes[name].tie for name in tied] == [owner] * len(tied)
    check_parity(graph)
