"""`archspec sizes`: the sweep's answers and rules against what the architecture implies
(papers' stride products), against the compiled module run by PyTorch at chosen sizes, and
as the command line prints them.

What PyTorch says at input size n:
- valid: the module compiled at a size the checker accepts, run at n, fails or not; where it
  fails, at the node the checker names (the heads' linear layers, whose width follows the
  input, are compiled at n itself where n is valid);
- keeps every pixel: with positive weights, the last row (column, ...) of every map has a
  non-zero gradient of the output (max pooling's windows made visible as in
  tests/rf_measure.py) — flooring drops exactly those;
- divides evenly: every strided layer's output is exactly its input / stride.
"""
from __future__ import annotations

import dataclasses
import json
import re

import pytest
import torch

import archspec
from archspec.graph import sizes as analysis
from archspec.graph.build import build_graph
from conftest import SPECS, run_cli
from rf_measure import Probe, positive_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def sweep_of(name, low, high, axes=None):
    spec = archspec.load(SPECS / f"{name}.yaml")
    graph = archspec.expand(spec)
    chosen, letters = analysis.parse_axes(axes, len(spec.input) - 1)
    return spec, analysis.sweep(spec, graph, chosen, letters, low, high)


def answers(sweep, prop):
    return {s.n: bool(s.valid and getattr(s, prop)) for s in sweep.sizes}


# ---- the rules against the architecture ------------------------------------------------------


def test_vgg_keeps_every_pixel_exactly_at_multiples_of_32():
    # Five 2x2/2 max poolings (Simonyan & Zisserman 2015): an odd map loses its last row and
    # column, so every pixel reaches the classifier iff n is a multiple of 2^5; below 32 the
    # fifth pooling has nothing to pool.
    _, sweep = sweep_of("vgg11", 1, 200)
    assert answers(sweep, "valid") == {n: n >= 32 for n in range(1, 201)}
    assert answers(sweep, "keeps_every_pixel") == {n: n >= 32 and n % 32 == 0 for n in range(1, 201)}
    rule = sweep.rules["keeps_every_pixel"]
    assert (rule.period, rule.residues, rule.holds) == (32, (0,), True)
    assert all((n in rule) == ok for n, ok in answers(sweep, "keeps_every_pixel").items())


def test_resnet_divides_evenly_at_multiples_of_32():
    # ResNet's five stride-2 stages (He et al. 2016) give maps of exactly n/32 iff 32 | n;
    # padding lets every size from 1 through.
    _, sweep = sweep_of("resnet18", 1, 160)
    assert sweep.period == 32 and sweep.smallest_valid().n == 1
    assert answers(sweep, "divides_evenly") == {n: n % 32 == 0 for n in range(1, 161)}
    assert all(answers(sweep, "keeps_every_pixel").values())


def test_unet_is_valid_only_where_the_skips_meet():
    # Three 2x2 poolings and three 2x upsamplings: the skip concatenations need n divisible by 8.
    _, sweep = sweep_of("unet_small", 1, 100)
    assert answers(sweep, "valid") == {n: n % 8 == 0 for n in range(1, 101)}
    assert sweep.failure_below().n == 7


def test_one_and_three_dimensional_sweeps():
    _, m5 = sweep_of("m5", 6000, 7000)  # M5's strides multiply to 4·4·4·4·4·4 over its pools
    first = m5.smallest_valid()
    assert first is not None and first.shape[0] == 1 and len(first.shape) == 2
    spec, video = sweep_of("r3d_18", 1, 40, axes="D")
    assert video.letters == "D" and all(s.shape[2:] == tuple(spec.input[2:]) for s in video.sizes)
    assert video.period == 8  # the temporal strides: 2 in each of layer2-4
    with pytest.raises(ValueError, match="--axes"):
        analysis.parse_axes("HW", 1)


# ---- the answers against PyTorch ---------------------------------------------------------------


def failing_node(model, graph, x) -> str | None:
    """The archspec node where PyTorch fails running `model` on x, or None."""
    probe = Probe(model, graph)
    try:
        with torch.no_grad():
            probe.run(x)
    except (RuntimeError, ValueError) as exc:
        del exc
        return probe.failed_at
    return None


def static_failure_node(error) -> str:
    return re.search(r"'([^']+)' \(", error.message).group(1)


def every_map_keeps_its_edge(graph, model, shape) -> bool:
    """Whether the output depends on the last row (column, ...) of every map: flooring drops
    exactly those, so a map whose far edge has no gradient lost pixels."""
    x = torch.rand(1, *shape, requires_grad=True)
    probe = Probe(model, graph)
    out = probe.run(x)
    out = out[0] if isinstance(out, tuple) else out
    maps = {name: v for name, v in {"input": x, **probe.values}.items() if v.dim() > 2}
    grads = torch.autograd.grad(out.sum(), list(maps.values()), allow_unused=True)
    for grad in grads:
        if grad is None:  # a training-only head's map: the main output does not read it
            continue
        for axis in range(2, grad.dim()):
            if not bool(grad.abs().select(axis, -1).sum() > 0):
                return False
    return True


def exact_divisions(graph, model, shape) -> bool:
    """Every op whose output steps over s > 1 input positions has exactly input/s outputs,
    read from the tensors PyTorch computes."""
    from archspec.ops import OPS

    x = torch.rand(1, *shape)
    probe = Probe(model, graph)
    with torch.no_grad():
        probe.run(x)
    values = {"input": x, **probe.values}
    for name, node in graph.nodes.items():
        if name not in values or len(node.inputs) != 1 or node.inputs[0] not in values:
            continue
        i, o = values[node.inputs[0]].shape[2:], values[name].shape[2:]
        if len(i) != len(o) or len(node.shape) < 2:
            continue
        steps = [m.step for m in OPS[node.op].field_map(node.params, graph.shape(node.inputs[0]), node.shape)]
        if any(s > 1 and a * s != b for s, a, b in zip(steps, o, i)):
            return False
    return True


CASES = [  # spec, sizes to run: around the smallest valid size and the rules' residues
    ("vgg11", [31, 32, 33]),
    ("resnet18", [1, 31, 32, 33]),
    ("unet_small", [20, 24, 30, 32]),
    ("alexnet", [66, 67, 68, 99]),
    ("squeezenet1_1", [16, 17, 18, 33]),
    ("lenet5", [31, 32, 33, 36]),
]


@pytest.mark.parametrize("name,sizes", CASES, ids=[c[0] for c in CASES])
def test_sweep_agrees_with_pytorch(name, sizes):
    spec = archspec.load(SPECS / f"{name}.yaml")
    reference = build_graph(spec, check_expect=False)
    at_spec_size = archspec.build(reference, seed=0, training_heads=True).eval()
    for n in sizes:
        shape = analysis.shape_at(tuple(spec.input), (0, 1), n)
        check = analysis.check_size(spec, shape, n)
        if not check.valid:
            failed = failing_node(at_spec_size, reference, torch.rand(1, *shape))
            assert failed == static_failure_node(check.error), (name, n, failed, str(check.error))
            continue
        graph = build_graph(dataclasses.replace(spec, input=shape), check_expect=False)
        model = positive_model(graph, torch.float32)  # shallow nets: no underflow
        with torch.no_grad():
            out = model(torch.rand(1, *shape))
        assert tuple(out.shape[1:]) == tuple(check.output), (name, n)
        assert every_map_keeps_its_edge(graph, model, shape) == check.keeps_every_pixel, (name, n)
        assert exact_divisions(graph, model, shape) == check.divides_evenly, (name, n)


# ---- the command line ---------------------------------------------------------------------------


def test_cli_names_resnet50s_smallest_input_and_rule():
    result = run_cli("sizes", SPECS / "resnet50.yaml", "--range", "1:128")
    assert result.returncode == 0, result.stderr
    assert "smallest: 3x1x1" in result.stdout
    assert re.search(r"divides evenly\s+n ≡ 0 \(mod 32\)", result.stdout)
    data = json.loads(run_cli("sizes", SPECS / "resnet50.yaml", "--range", "1:128", "-f", "json").stdout)
    assert data["smallest_valid"] == [3, 1, 1] and data["period"] == 32
    assert data["rules"]["divides_evenly"]["residues"] == [0] and data["rules"]["divides_evenly"]["holds"]
    assert [s["n"] for s in data["sizes"]] == list(range(1, 129))


def test_cli_warns_where_vgg_replicates_values():
    # VGG's classifier at 32x32: its adaptive pooling turns a 1x1 map into 7x7, 49 copies.
    result = run_cli("sizes", SPECS / "vgg16.yaml", "--range", "24:240")
    assert result.returncode == 0, result.stderr
    assert "[AS802]" in result.stderr and "up to 49 outputs" in result.stderr
    assert "n = 32–223" in result.stderr and "AS802" not in result.stdout
    assert "below n = 32 it fails" in result.stdout and "'features.30'" in result.stdout
    assert run_cli("sizes", SPECS / "vgg16.yaml", "--range", "24:240", "-q").stderr == ""
    check = run_cli("check", SPECS / "vgg16.yaml")
    report = run_cli("report", SPECS / "vgg16.yaml", "--input", "3x32x32")
    assert "AS802" not in check.stderr and "[AS802]" in report.stderr


def test_cli_usage_errors():
    for args in (["--range", "9:3"], ["--range", "x"], ["--axes", "Q"], ["-f", "yaml"]):
        result = run_cli("sizes", SPECS / "resnet18.yaml", *args)
        assert result.returncode == 2 and "Traceback" not in result.stderr, (args, result.stderr)
    stepped = run_cli("sizes", SPECS / "resnet18.yaml", "--range", "1:64", "--step", "8")
    assert stepped.returncode == 0 and "--step 1" in stepped.stdout
