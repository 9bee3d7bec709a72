"""Property: for randomly generated specs, the static analysis agrees with PyTorch.

Hypothesis writes small specs (convs, pools, norms, activations, residual adds and concats);
whenever archspec accepts one, the compiled module's output shape and parameter count equal
the static ones; whenever it rejects one, the error is a located SpecError (never a crash).
"""
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import archspec
from archspec.errors import SpecError


@st.composite
def layer(draw, index):
    kind = draw(st.sampled_from(["conv", "conv", "maxpool", "avgpool", "batchnorm", "relu", "skip", "branch"]))
    if kind == "conv":
        k = draw(st.integers(1, 5))
        return (f"  - conv: {{id: l{index}, out: {draw(st.integers(1, 12))}, kernel: {k}, "
                f"stride: {draw(st.integers(1, 3))}, padding: {draw(st.integers(0, 2))}, "
                f"dilation: {draw(st.integers(1, 2))}}}")
    if kind in ("maxpool", "avgpool"):
        k = draw(st.integers(1, 4))
        return (f"  - {kind}: {{id: l{index}, kernel: {k}, stride: {draw(st.integers(1, 3))}, "
                f"padding: {draw(st.integers(0, k // 2))}, ceil_mode: {str(draw(st.booleans())).lower()}}}")
    if kind == "skip":  # a residual add around a same-shape conv
        c = draw(st.integers(1, 8))
        return (f"  - conv: {{id: l{index}a, out: {c}, kernel: 1}}\n"
                f"  - conv: {{id: l{index}b, out: {c}, kernel: 3, padding: 1}}\n"
                f"  - add: {{id: l{index}, from: [l{index}a, l{index}b]}}")
    if kind == "branch":  # two branches concatenated
        return (f"  - conv: {{id: l{index}a, out: {draw(st.integers(1, 6))}, kernel: 1}}\n"
                f"  - conv: {{id: l{index}b, from: l{index}a, out: {draw(st.integers(1, 6))}, kernel: 3, padding: 1}}\n"
                f"  - concat: {{id: l{index}, from: [l{index}a, l{index}b]}}")
    return f"  - {kind}: {{id: l{index}}}"


@st.composite
def spec_text(draw):
    size = draw(st.integers(4, 24))
    layers = [draw(layer(i)) for i in range(draw(st.integers(1, 6)))]
    return (f"archspec: 1\nname: generated\ninput: [{draw(st.integers(1, 4))}, {size}, {size + draw(st.integers(0, 3))}]\n"
            "layers:\n" + "\n".join(layers) + "\n")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=spec_text())
def test_static_analysis_equals_pytorch(text):
    try:
        graph = archspec.expand(archspec.loads(text, "generated.yaml"))
    except SpecError as exc:
        assert exc.loc is not None and exc.loc.file == "generated.yaml", str(exc)
        return
    report = archspec.analyze(graph)
    model = archspec.build(graph).eval()
    with torch.no_grad():
        out = model(torch.randn(2, *graph.input_shape))
    assert list(out.shape[1:]) == report.output
    assert sum(p.numel() for p in model.parameters()) == report.totals["params"]
