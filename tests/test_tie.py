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


def only_error(text: str) -> SpecError:
    """The one located error expanding `text` gives."""
    with pytest.raises(SpecError) as info:
        archspec.expand(archspec.loads(text, file="tie.yaml"))
    errors = info.value.errors
    assert len(errors) == 1, [str(e) for e in errors]
    return errors[0]


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_tie_refusals_are_located(case):
    layers, code, message = REFUSED[case]
    text = tiny((3, 4, 4), layers)
    error = only_error(text)
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


# ---- tied transposed: the tied autoencoder -------------------------------------------------------

AUTOENCODER = ROOT / "examples" / "tied_autoencoder.yaml"
DECODER = {"dec2": "enc2", "dec1": "enc1"}


def autoencoder(tied: bool = True):
    text = AUTOENCODER.read_text()
    if not tied:
        for dec, enc in DECODER.items():
            text = text.replace(f"tie: {{to: {enc}, transpose: true}}", "doc: untied")
    return archspec.expand(archspec.loads(text, file=str(AUTOENCODER)))


class HandTiedAutoencoder(torch.nn.Module):
    """The same network written by hand in PyTorch: the decoder calls conv_transpose2d with the
    encoder's weights and biases of its own."""

    def __init__(self):
        super().__init__()
        self.enc1 = torch.nn.Conv2d(1, 16, 3, stride=2, padding=1)
        self.enc2 = torch.nn.Conv2d(16, 32, 3, stride=2, padding=1)
        self.dec2_bias = torch.nn.Parameter(torch.zeros(16))
        self.dec1_bias = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        F = torch.nn.functional
        h = F.relu(self.enc2(F.relu(self.enc1(x))))  # (N, 32, 7, 7)
        h = F.relu(F.conv_transpose2d(h, self.enc2.weight, self.dec2_bias, stride=2, padding=1, output_padding=1))
        return torch.sigmoid(F.conv_transpose2d(h, self.enc1.weight, self.dec1_bias, stride=2, padding=1,
                                                output_padding=1))  # (N, 1, 28, 28)


def test_autoencoder_counts_the_shared_weights_once():
    report = archspec.analyze(autoencoder())
    layers = {s.name: s for s in report.layers}
    for dec, enc in DECODER.items():
        assert layers[dec].tied_to == enc and layers[dec].tied_transposed
        assert layers[dec].params == layers[dec].trainable_params == layers[dec].shape[0]  # its bias
        assert layers[dec].macs == layers[enc].macs  # the same weight, used once each way
    untied = archspec.analyze(autoencoder(tied=False))
    assert report.totals["params"] == 4_817 == untied.totals["params"] - (32 * 16 * 9 + 16 * 9)
    assert report.totals["macs"] == untied.totals["macs"] == 508_032
    assert report.totals["flops"] == untied.totals["flops"]
    training = report.memory["training"]
    assert training["params"] == training["gradients"] == 4 * 4_817  # fp32 bytes: one weight, one gradient


def test_autoencoder_module_holds_each_weight_once():
    graph = autoencoder()
    model = check_parity(graph)  # per-node params (the decoder's: its bias), shapes, totals
    assert set(model.state_dict()) == {"enc1.weight", "enc1.bias", "enc2.weight", "enc2.bias",
                                       "dec2.bias", "dec1.bias"}
    assert sum(p.numel() for p in model.parameters()) == 4_817
    fresh = archspec.build(graph, seed=1)
    fresh.load_state_dict(model.state_dict(), strict=True)
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(fresh(x), model(x))


def test_autoencoder_matches_hand_written_pytorch_and_its_gradients():
    """Same weights copied into a hand-written tied autoencoder: same output, same loss, same
    gradients; the encoder weight's gradient sums the encoder's and the decoder's use of it (an
    untied twin with copies of the weights gets the two parts separately)."""
    model = archspec.build(autoencoder(), seed=0, init="torch").train()
    hand = HandTiedAutoencoder().train()
    hand.load_state_dict({k.replace("dec2.bias", "dec2_bias").replace("dec1.bias", "dec1_bias"): v
                          for k, v in model.state_dict().items()}, strict=True)
    assert model.dec2.bias.abs().sum() > 0  # the torch scheme keeps conv_transpose's default bias
    x = torch.rand(4, 1, 28, 28)
    loss = torch.nn.functional.mse_loss(model(x), x)
    hand_loss = torch.nn.functional.mse_loss(hand(x), x)
    torch.testing.assert_close(loss, hand_loss, rtol=0, atol=0)
    loss.backward()
    hand_loss.backward()
    for name, param in model.named_parameters():
        torch.testing.assert_close(param.grad, hand.get_parameter(name.replace(".bias", "_bias")
                                                                  if name.startswith("dec") else name).grad)

    twin = archspec.build(autoencoder(tied=False), seed=0, init="torch").train()
    state = dict(model.state_dict())
    state.update({f"{dec}.weight": state[f"{enc}.weight"] for dec, enc in DECODER.items()})
    twin.load_state_dict(state, strict=True)
    torch.nn.functional.mse_loss(twin(x), x).backward()
    for dec, enc in DECODER.items():
        mine, theirs = twin.get_parameter(f"{enc}.weight").grad, twin.get_parameter(f"{dec}.weight").grad
        assert mine.abs().sum() > 0 and theirs.abs().sum() > 0
        torch.testing.assert_close(model.get_parameter(f"{enc}.weight").grad, mine + theirs)


def test_autoencoder_decoder_bias_follows_the_init_scheme():
    model = archspec.build(autoencoder(), seed=0)  # kaiming: conv biases zero
    assert not model.dec2.bias.any() and not model.dec1.bias.any()
    assert model.enc2.weight.std() > 0


def test_autoencoder_flops_and_memory_match_pytorch():
    graph = autoencoder()
    check_flops(graph)  # every node, against FlopCounterMode and real sizes
    check_graph(graph)  # saved activations in training (saved_tensors_hooks) and the inference peak
    model = archspec.build(graph, seed=0).eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.rand(2, 1, 28, 28))
    assert counter.get_total_flops() == 2 * 2 * archspec.analyze(graph).totals["macs"]


def test_autoencoder_report_cli():
    import json

    from conftest import run_cli

    data = json.loads(run_cli("report", AUTOENCODER, "-f", "json").stdout)
    layers = {layer["name"]: layer for layer in data["layers"]}
    assert layers["dec2"]["tied_to"] == "enc2" and layers["dec2"]["tied_transposed"] is True
    assert layers["dec2"]["params"] == 16 and data["totals"]["params"] == 4_817
    table = run_cli("report", AUTOENCODER).stdout
    row = next(line for line in table.splitlines() if line.startswith("dec2 "))
    assert "16 + enc2ᵀ" in row


def test_autoencoder_exports_to_onnx_and_matches(tmp_path):
    """`archspec export` verifies the file against PyTorch with ONNX Runtime; the encoder's
    weights are one initializer each, and the decoder has its biases only."""
    import onnx

    from conftest import run_cli

    out = tmp_path / "tied_autoencoder.onnx"
    result = run_cli("export", AUTOENCODER, "-o", out)
    assert result.returncode == 0, result.stderr
    model = onnx.load(out)
    names = [i.name for i in model.graph.initializer]
    assert names.count("enc1.weight") == names.count("enc2.weight") == 1
    assert not any(n.startswith("dec") and n.endswith("weight") for n in names)
    assert sum(n.op_type == "ConvTranspose" for n in model.graph.node) == 2


LINEAR_AUTOENCODER = tiny((1, 6, 6), """\
  - flatten
  - linear: {id: enc, out: 8}
  - relu
  - linear: {id: dec, out: 36, tie: {to: enc, transpose: true}}
""")


def test_linear_tied_transposed_uses_the_weight_transposed(tmp_path):
    graph = archspec.expand(archspec.loads(LINEAR_AUTOENCODER))
    assert graph.nodes["dec"].tie == "enc" and graph.nodes["dec"].tie_transposed
    report = archspec.analyze(graph)
    assert report.totals["params"] == 36 * 8 + 8 + 36
    model = check_parity(graph)
    assert set(model.state_dict()) == {"enc.weight", "enc.bias", "dec.bias"}
    torch.nn.init.normal_(model.dec.bias)
    x = torch.randn(3, 1, 6, 6)
    h = torch.relu(model.enc(x.flatten(1)))  # (N, 8)
    out = model(x)
    torch.testing.assert_close(out, h @ model.enc.weight + model.dec.bias)  # weight (8, 36): x @ W
    out.square().sum().backward()
    w = model.enc.weight.detach().requires_grad_()
    b = model.enc.bias.detach()
    hand = torch.relu(x.flatten(1) @ w.t() + b) @ w + model.dec.bias.detach()
    hand.square().sum().backward()
    torch.testing.assert_close(model.enc.weight.grad, w.grad)
    check_flops(graph)
    check_graph(graph)
    onnx_path = tmp_path / "linear.onnx"
    archspec.export(graph, onnx_path)  # verified against PyTorch with ONNX Runtime


@pytest.mark.parametrize("encoder, decoder, input_shape", [
    ("conv: {id: enc, out: 6, kernel: 3, stride: 2}",
     "conv_transpose: {out: 4, kernel: 3, stride: 2, tie: {to: enc, transpose: true}}", (4, 9)),
    ("conv: {id: enc, out: 6, kernel: [1, 3, 3], groups: 2, padding: [0, 1, 1]}",
     "conv_transpose: {out: 4, kernel: [1, 3, 3], groups: 2, padding: [0, 1, 1], tie: {to: enc, transpose: true}}",
     (4, 3, 5, 5)),
    # the reverse: a conv that uses a conv_transpose's weight (its adjoint), without a bias
    ("conv_transpose: {id: enc, out: 6, kernel: 2, stride: 2}",
     "conv: {out: 4, kernel: 2, stride: 2, bias: false, tie: {to: enc, transpose: true}}", (4, 5, 5)),
], ids=["conv1d", "conv3d_groups", "conv_from_transpose"])
def test_conv_ranks_tie_transposed(encoder, decoder, input_shape):
    graph = archspec.expand(archspec.loads(tiny(input_shape, f"  - {encoder}\n  - relu\n  - {decoder}\n")))
    dec = list(graph.nodes.values())[-1]
    assert dec.tie == "enc" and dec.tie_transposed and dec.shape == tuple(input_shape)
    model = check_parity(graph)
    enc = model.enc
    x = torch.randn(2, *input_shape)
    rank = len(input_shape) - 1
    transposed = isinstance(enc, torch.nn.modules.conv._ConvTransposeNd)
    adjoint = getattr(torch.nn.functional, f"conv{rank}d" if transposed else f"conv_transpose{rank}d")
    settings = {k: getattr(model.get_submodule(dec.name), "settings")[k] for k in ("stride", "padding", "groups")}
    with torch.no_grad():
        want = adjoint(torch.relu(enc(x)), enc.weight, model.get_submodule(dec.name).bias, **settings)
        torch.testing.assert_close(model(x), want)
    check_flops(graph)
    check_graph(graph)


TRANSPOSED_REFUSED = {
    "other_channels": ("  - conv: {id: a, out: 5, kernel: 3}\n"
                       "  - conv_transpose: {out: 4, kernel: 3, tie: {to: a, transpose: true}}\n",
                       "weight would need shape [5, 4, 3, 3]"),
    "kernel": ("  - conv: {id: a, out: 5, kernel: 3, padding: 1}\n"
               "  - conv_transpose: {out: 3, kernel: 1, tie: {to: a, transpose: true}}\n", "weight would need shape"),
    "groups": ("  - conv: {id: a, out: 4, kernel: 1, groups: 1, bias: false}\n"
               "  - conv_transpose: {out: 6, kernel: 1, groups: 2, tie: {to: a, transpose: true}}\n", "groups differ"),
    "batchnorm": ("  - conv: {id: a, out: 3, kernel: 1}\n  - batchnorm: {tie: {to: a, transpose: true}}\n",
                  "batchnorm has no transposed weight"),
    "conv_to_conv": ("  - conv: {id: a, out: 3, kernel: 1}\n  - conv: {out: 3, kernel: 1, tie: {to: a, transpose: true}}\n",
                     "a conv can use the weight of a conv_transpose"),
    "connections": ("  - conv_transpose: {id: a, out: 3, kernel: 1}\n"
                    "  - conv: {out: 3, kernel: 1, connections: [[0], [1], [2]], tie: {to: a, transpose: true}}\n",
                    "no single weight tensor"),
    "block": ("  - seq: {id: s, layers: [{conv: {out: 3, kernel: 1}}]}\n"
              "  - seq: {tie: {to: s, transpose: true}, layers: [{conv_transpose: {out: 3, kernel: 1}}]}\n",
              "is a block"),
    "tie_to_transposed": ("  - conv: {id: a, out: 3, kernel: 1}\n"
                          "  - conv_transpose: {id: b, out: 3, kernel: 1, tie: {to: a, transpose: true}}\n"
                          "  - conv_transpose: {out: 3, kernel: 1, tie: b}\n", "uses 'a''s weight transposed"),
    "frozen": ("  - conv: {id: a, out: 3, kernel: 1}\n"
               "  - conv_transpose: {out: 3, kernel: 1, trainable: false, tie: {to: a, transpose: true}}\n",
               "one is trainable"),
}


@pytest.mark.parametrize("case", sorted(TRANSPOSED_REFUSED))
def test_transposed_tie_refusals_are_located(case):
    layers, message = TRANSPOSED_REFUSED[case]
    text = tiny((3, 4, 4), layers)
    error = only_error(text)
    assert error.code == "AS310" and message in error.message, str(error)
    line = text.splitlines()[error.loc.line - 1]
    assert line[error.loc.col - 1:].startswith(_tie_value(line)), str(error)


def test_plain_tie_across_adjoint_ops_suggests_transpose():
    text = tiny((3, 4, 4), REFUSED["other_op"][0])
    with pytest.raises(SpecError) as info:
        archspec.expand(archspec.loads(text))
    assert "transpose: true" in (info.value.errors[0].hint or "")


def test_tie_mapping_without_transpose_is_a_plain_tie():
    text = tiny((3, 4, 4), "  - conv: {id: a, out: 3, kernel: 1}\n  - conv: {out: 3, kernel: 1, tie: {to: a}}\n")
    graph = archspec.expand(archspec.loads(text))
    node = list(graph.nodes.values())[-1]
    assert node.tie == "a" and not node.tie_transposed
    assert archspec.analyze(graph).totals["params"] == 12


def test_repeat_ties_copies_transposed_to_copy_0():
    """A square linear applied three times: copies 1 and 2 use copy 0's weight transposed."""
    text = tiny((5,), "  - linear: {id: l, out: 5, repeat: 3, tie: {to: 0, transpose: true}}\n")
    graph = archspec.expand(archspec.loads(text))
    assert [(graph.nodes[f"l.{i}"].tie, graph.nodes[f"l.{i}"].tie_transposed) for i in range(3)] == [
        (None, False), ("l.0", True), ("l.0", True)]
    model = check_parity(graph)
    assert set(model.state_dict()) == {"l.0.weight", "l.0.bias", "l.1.bias", "l.2.bias"}
    x = torch.randn(2, 5)
    w, b = model.l[0].weight, model.l[0].bias
    with torch.no_grad():
        want = (((x @ w.t() + b) @ w) + model.l[1].bias) @ w + model.l[2].bias
        torch.testing.assert_close(model(x), want)


def test_compiler_refuses_a_hand_edited_transposed_tie():
    graph = autoencoder()
    graph.nodes["dec2"].tie = "latent"  # a relu: no weight to use
    with pytest.raises(SpecError) as info:
        archspec.build(graph)
    assert info.value.errors[0].code == "AS301" and "tied transposed" in str(info.value)
