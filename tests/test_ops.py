"""Each op's static shape rule agrees with what PyTorch actually produces.

Shapes come from running the op's own PyTorch module on a real tensor; the table covers the
edge cases where formulas usually go wrong (ceil_mode windows starting in padding, dilation,
output_padding, 'same' padding with even kernels, non-divisible adaptive pooling).
"""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from archspec.errors import ShapeError
from archspec.ops import OPS
from archspec.ops.formulas import conv_out, conv_transpose_out

CASES = [
    ("conv", {"out": 96, "kernel": 11, "stride": 4}, [(3, 227, 227)]),
    ("conv", {"out": 96, "kernel": 11, "stride": 4}, [(3, 224, 224)]),
    ("conv", {"out": 8, "kernel": [3, 5], "stride": [1, 2], "padding": [1, 2]}, [(4, 17, 19)]),
    ("conv", {"out": 8, "kernel": 3, "dilation": 2, "padding": 2}, [(4, 15, 15)]),
    ("conv", {"out": 8, "kernel": 4, "padding": "same"}, [(4, 9, 9)]),
    ("conv", {"out": 8, "kernel": 3, "padding": "valid"}, [(4, 9, 9)]),
    ("conv", {"out": 32, "kernel": 3, "groups": 32, "padding": 1, "stride": 2}, [(32, 15, 15)]),
    ("conv", {"out": 3, "kernel": 5, "connections": [[0, 1], [1, 2], [0, 1, 2]]}, [(3, 12, 12)]),
    ("locally_connected", {"out": 4, "kernel": 3, "stride": 2, "padding": 1}, [(3, 9, 9)]),
    ("conv_transpose", {"out": 8, "kernel": 2, "stride": 2}, [(4, 7, 7)]),
    ("conv_transpose", {"out": 8, "kernel": 3, "stride": 2, "padding": 1, "output_padding": 1, "groups": 2},
     [(4, 7, 7)]),
    ("conv_transpose", {"out": 4, "kernel": 3, "stride": 3, "dilation": 2, "output_padding": 2}, [(4, 5, 6)]),
    ("maxpool", {"kernel": 3, "stride": 2}, [(8, 55, 55)]),
    ("maxpool", {"kernel": 3, "stride": 2, "ceil_mode": True}, [(8, 112, 112)]),
    ("maxpool", {"kernel": 2, "stride": 2, "padding": 1, "ceil_mode": True}, [(8, 5, 5)]),
    ("maxpool", {"kernel": 3, "stride": 3, "padding": 1, "ceil_mode": True}, [(8, 5, 5)]),
    ("maxpool", {"kernel": 3, "stride": 2, "padding": 1, "dilation": 2}, [(8, 10, 11)]),
    ("avgpool", {"kernel": 2, "stride": 2, "padding": 1, "ceil_mode": True, "count_include_pad": False},
     [(8, 6, 6)]),
    ("avgpool", {"kernel": 5, "stride": 3}, [(8, 14, 14)]),
    ("global_avgpool", {}, [(8, 7, 5)]),
    ("global_maxpool", {}, [(8, 7, 5)]),
    ("adaptive_avgpool", {"size": 7}, [(8, 10, 10)]),
    ("adaptive_avgpool", {"size": [3, 2]}, [(8, 10, 7)]),
    ("flatten", {}, [(8, 3, 3)]),
    ("linear", {"out": 5}, [(12,)]),
    ("dropout", {"p": 0.3}, [(4, 3, 3)]),
    ("batchnorm", {}, [(4, 3, 3)]),
    ("batchnorm", {}, [(12,)]),
    ("lrn", {"size": 4}, [(6, 3, 3)]),
    ("scale", {}, [(6, 3, 3)]),
    ("rbf", {"out": 10}, [(84,)]),
    ("upsample", {"scale": 2}, [(4, 5, 6)]),
    ("upsample", {"size": [9, 11], "mode": "bilinear", "align_corners": False}, [(4, 5, 6)]),
    ("add", {}, [(4, 5, 5), (4, 5, 5)]),
    ("mul", {}, [(4, 5, 5), (4, 1, 1)]),
    ("concat", {}, [(4, 5, 5), (6, 5, 5), (1, 5, 5)]),
    *[(name, {}, [(4, 5, 5)]) for name in ("relu", "relu6", "leaky_relu", "elu", "gelu", "sigmoid", "tanh",
                                           "scaled_tanh", "softmax", "identity")],
]


def run_op(name, settings_, shapes):
    op = OPS[name]
    p = op.Params.model_validate(settings_)
    static = tuple(op.infer(p, list(shapes)))
    module = op.torch(p, list(shapes), static)
    with torch.no_grad():
        real = module(*[torch.randn(2, *s) for s in shapes])
    n_params = sum(t.numel() for t in module.parameters())
    return op, p, static, tuple(real.shape[1:]), n_params


@pytest.mark.parametrize("name, settings_, shapes", CASES, ids=lambda v: str(v) if isinstance(v, str) else None)
def test_static_shape_and_params_match_pytorch(name, settings_, shapes):
    op, p, static, real, n_params = run_op(name, settings_, shapes)
    assert static == real
    assert op.params(p, list(shapes), static) == n_params


def test_every_registered_op_has_a_case():
    assert {name for name, _, _ in CASES} == set(OPS)


def test_duplicate_registration_raises():
    with pytest.raises(ValueError, match="already registered"):
        OPS.register(type(OPS["relu"]))


def test_parameter_sharing_numbers():
    # AlexNet conv1 (227 input): shared filters vs one filter bank per output position.
    conv, lc = OPS["conv"], OPS["locally_connected"]
    p = conv.Params.model_validate({"out": 96, "kernel": 11, "stride": 4})
    q = lc.Params.model_validate({"out": 96, "kernel": 11, "stride": 4})
    shape = [(3, 227, 227)]
    assert conv.infer(p, shape) == (96, 55, 55)
    assert conv.params(p, shape, (96, 55, 55)) == 34_944
    assert lc.params(q, shape, (96, 55, 55)) == 105_705_600


def test_textbook_formula():
    # o = floor((i - k + 2p) / s) + 1
    assert conv_out(227, 11, 4) == 55
    assert conv_out(32, 5, 1, 2) == 32
    assert conv_transpose_out(7, 2, 2) == 14


def test_merge_errors_name_shapes():
    with pytest.raises(ShapeError, match=r"\[4, 5, 5\], \[4, 6, 6\]"):
        OPS["add"].infer(None, [(4, 5, 5), (4, 6, 6)])
    with pytest.raises(ShapeError, match="equal sizes on every axis but channels"):
        OPS["concat"].infer(None, [(4, 5, 5), (4, 6, 6)])
    with pytest.raises(ShapeError):
        OPS["mul"].infer(None, [(4, 5, 5), (3, 1, 1)])


@settings(max_examples=150, deadline=None)
@given(i=st.integers(1, 40), k=st.integers(1, 7), s=st.integers(1, 4), p=st.integers(0, 3),
       d=st.integers(1, 3), ceil=st.booleans())
def test_pool_formula_matches_pytorch(i, k, s, p, d, ceil):
    """Property: wherever PyTorch accepts a max-pool configuration, our formula gives its size."""
    try:
        real = torch.nn.functional.max_pool2d(torch.zeros(1, 1, i, i), k, s, p, d, ceil_mode=ceil).shape[-1]
    except RuntimeError:
        real = None  # PyTorch rejects it (padding > k/2, empty output)
    op = OPS["maxpool"]
    try:
        params = op.Params.model_validate({"kernel": k, "stride": s, "padding": p, "dilation": d,
                                           "ceil_mode": ceil})
        ours = op.infer(params, [(1, i, i)])[-1]
    except (ValueError, ShapeError):
        ours = None  # our schema or shape rule rejects it, with a located message
    assert ours == real


@settings(max_examples=100, deadline=None)
@given(i=st.integers(1, 30), k=st.integers(1, 6), s=st.integers(1, 4), p=st.integers(0, 3),
       d=st.integers(1, 3), op=st.integers(0, 3))
def test_conv_formulas_match_pytorch(i, k, s, p, d, op):
    x = torch.zeros(1, 1, i, i)
    w = torch.zeros(1, 1, k, k)
    try:
        real = torch.nn.functional.conv2d(x, w, None, s, p, d).shape[-1]
    except RuntimeError:
        real = None
    ours = conv_out(i, k, s, p, d)
    assert (ours if ours >= 1 else None) == real
    if op < max(s, d):
        real_t = torch.nn.functional.conv_transpose2d(x, w, None, s, p, op, 1, d).shape[-1] \
            if conv_transpose_out(i, k, s, p, d, op) >= 1 else None
        ours_t = conv_transpose_out(i, k, s, p, d, op)
        assert (ours_t if ours_t >= 1 else None) == real_t
