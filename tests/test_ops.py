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
                                           "scaled_tanh", "softmax", "identity", "silu", "hardswish",
                                           "hardsigmoid", "mish", "log_softmax")],
    # ---- 1-D (C, L) and 3-D (C, D, H, W) inputs: same per-axis formula, Conv1d/3d etc.
    ("conv", {"out": 8, "kernel": 80, "stride": 16}, [(1, 8000)]),
    ("conv", {"out": 6, "kernel": 5, "stride": 2, "padding": 3, "dilation": 2, "groups": 3}, [(3, 41)]),
    ("conv", {"out": 4, "kernel": 4, "padding": "same", "dilation": 3}, [(2, 17)]),
    ("conv", {"out": 4, "kernel": [3], "padding": "valid"}, [(2, 9)]),
    ("conv", {"out": 3, "kernel": 3, "connections": [[0], [0, 1], [1]]}, [(2, 12)]),
    ("conv", {"out": 8, "kernel": [3, 7, 7], "stride": [1, 2, 2], "padding": [1, 3, 3]}, [(3, 8, 29, 30)]),
    ("conv", {"out": 4, "kernel": 3, "stride": 2, "padding": 1, "groups": 2, "dilation": [1, 2, 1]},
     [(2, 5, 9, 8)]),
    ("conv", {"out": 4, "kernel": [2, 3, 4], "padding": "same"}, [(2, 5, 6, 7)]),
    ("conv", {"out": 3, "kernel": 3, "connections": [[0], [0, 1], [1]]}, [(2, 4, 5, 6)]),
    ("conv_transpose", {"out": 4, "kernel": 4, "stride": 3, "padding": 1, "output_padding": 2}, [(2, 7)]),
    ("conv_transpose", {"out": 4, "kernel": [2, 3, 3], "stride": [2, 1, 2], "output_padding": [1, 0, 1],
                        "groups": 2}, [(2, 3, 4, 5)]),
    ("maxpool", {"kernel": 4}, [(3, 497)]),
    ("maxpool", {"kernel": 3, "stride": 2, "padding": 1, "ceil_mode": True}, [(3, 10)]),
    ("maxpool", {"kernel": [1, 3, 3], "stride": [1, 2, 2], "dilation": [1, 2, 1]}, [(3, 4, 11, 10)]),
    ("maxpool", {"kernel": 2, "stride": 2, "padding": 1, "ceil_mode": True}, [(3, 5, 5, 6)]),
    ("avgpool", {"kernel": 3, "stride": 2, "padding": 1, "count_include_pad": False}, [(3, 12)]),
    ("avgpool", {"kernel": [2, 3, 3], "stride": 2, "ceil_mode": True}, [(3, 5, 9, 8)]),
    ("global_avgpool", {}, [(8, 13)]),
    ("global_avgpool", {}, [(8, 3, 7, 5)]),
    ("global_maxpool", {}, [(8, 13)]),
    ("global_maxpool", {}, [(8, 3, 7, 5)]),
    ("adaptive_avgpool", {"size": 5}, [(8, 13)]),
    ("adaptive_avgpool", {"size": [1, 3, 2]}, [(8, 3, 7, 5)]),
    ("batchnorm", {}, [(4, 9)]),
    ("batchnorm", {"eps": 1e-3}, [(4, 2, 3, 3)]),
    ("lrn", {"size": 3}, [(6, 9)]),
    ("lrn", {"size": 4}, [(6, 2, 3, 3)]),
    ("scale", {}, [(6, 2, 3, 3)]),
    ("upsample", {"scale": 3}, [(4, 7)]),
    ("upsample", {"size": 11, "mode": "linear", "align_corners": True}, [(4, 7)]),
    ("upsample", {"scale": [1, 2, 2]}, [(4, 3, 5, 6)]),
    ("upsample", {"size": [4, 9, 11], "mode": "trilinear", "align_corners": False}, [(4, 3, 5, 6)]),
    ("dropout", {"p": 0.3}, [(4, 3, 3, 3)]),
    ("flatten", {}, [(4, 3, 3, 3)]),
    ("concat", {}, [(4, 2, 5, 5), (6, 2, 5, 5)]),
    ("add", {}, [(4, 7), (4, 7)]),
    ("mul", {}, [(4, 3, 5, 5), (4, 1, 1, 1)]),
    ("mul", {}, [(4, 7), (4, 1)]),
    # ---- new ops
    ("layer_norm", {"eps": 1e-6}, [(8, 5, 6)]),
    ("layer_norm", {}, [(12,)]),
    ("layer_norm", {"bias": False}, [(8, 9)]),
    ("layer_norm", {"affine": False}, [(8, 2, 3, 4)]),
    ("group_norm", {"groups": 4}, [(8, 5, 6)]),
    ("group_norm", {"groups": 2, "affine": False}, [(8, 9)]),
    ("group_norm", {"groups": 8, "eps": 1e-3}, [(8, 2, 3, 4)]),
    ("instance_norm", {}, [(8, 5, 6)]),
    ("instance_norm", {"affine": True}, [(8, 9)]),
    ("instance_norm", {"affine": True, "track_running_stats": True}, [(8, 2, 3, 4)]),
    ("channel_shuffle", {"groups": 3}, [(12, 5, 6)]),
    ("channel_shuffle", {"groups": 2}, [(6, 9)]),
    ("chunk", {"parts": 2, "index": 1}, [(116, 7, 7)]),
    ("chunk", {"parts": 3, "index": 2}, [(7, 9)]),  # ceil(7/3) = 3: parts of 3, 3, 1
    ("chunk", {"parts": 4, "index": 2}, [(5, 2, 3, 3)]),  # ceil(5/4) = 2: parts of 2, 2, 1
    ("channel_slice", {"start": 3, "stop": 7}, [(8, 5, 6)]),
    ("channel_slice", {"stop": 2}, [(8, 9)]),
    ("drop_path", {"p": 0.2}, [(4, 5, 5)]),
    ("pixel_shuffle", {"factor": 2}, [(12, 5, 6)]),
    ("pixel_shuffle", {"factor": 3}, [(9, 4, 2)]),
    ("linear", {"out": 7, "per_pixel": True}, [(5, 4, 3)]),
    ("linear", {"out": 7, "per_pixel": True, "bias": False}, [(5, 9)]),
    ("linear", {"out": 3, "per_pixel": True}, [(5, 2, 4, 3)]),
    ("layer_scale", {}, [(6, 4, 5)]),
    ("layer_scale", {"init": 0.5}, [(6,)]),
    ("layer_scale", {}, [(6, 2, 4, 5)]),
]


def run_op(name, settings_, shapes):
    op = OPS[name]
    p = op.Params.model_validate(settings_)
    static = tuple(op.infer(p, list(shapes)))
    module = op.torch(p, list(shapes), static)
    xs = [torch.randn(2, *s) for s in shapes]
    with torch.no_grad():
        if op.bare_parameter:  # the compiled graph multiplies the input by the parameter
            real, n_params = xs[0] * module, module.numel()
        else:
            real, n_params = module(*xs), sum(t.numel() for t in module.parameters())
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


# ---- ranks: a number broadcasts to every spatial axis, a list must match the input's rank ----

@pytest.mark.parametrize("name, settings_, shape, message", [
    ("conv", {"out": 4, "kernel": [3, 3]}, (2, 9),
     r"'kernel' needs one entry per spatial axis of a \(C, L\) input \(1 axis\), or one number for all. "
     r"Received: kernel=\[3, 3\], input=\[2, 9\]"),
    ("conv", {"out": 4, "kernel": 3, "stride": [1, 2]}, (2, 4, 9, 9),
     r"'stride' needs one entry per spatial axis of a \(C, D, H, W\) input \(3 axes\)"),
    ("maxpool", {"kernel": [1, 2, 2]}, (2, 9, 9), r"'kernel' needs one entry per spatial axis of a \(C, H, W\)"),
    ("adaptive_avgpool", {"size": [2, 2]}, (2, 4, 9, 9), r"'size' needs one entry per spatial axis"),
    ("conv", {"out": 4, "kernel": 3}, (12,), r"conv needs a \(C, L\) or \(C, H, W\) or \(C, D, H, W\) input"),
    ("linear", {"out": 4}, (3, 5, 5), r"linear needs a \(features,\) input; add '- flatten' before it"),
    ("linear", {"out": 4, "per_pixel": True}, (12,), r"on \(features,\) leave per_pixel out"),
    ("locally_connected", {"out": 4, "kernel": 3}, (2, 9), r"it is 2-D only"),
    ("pixel_shuffle", {"factor": 2}, (8, 2, 5, 5), r"2-D only"),
    ("pixel_shuffle", {"factor": 2}, (6, 5, 5), r"channels divisible by factor²"),
    ("upsample", {"scale": 2, "mode": "bilinear"}, (2, 9), r"mode 'bilinear' interpolates 2 spatial axes; use 'linear'"),
    ("chunk", {"parts": 4, "index": 3}, (5, 2, 2),
     r"part 3 would be empty: torch.chunk cuts 5 channels into parts of ceil\(5/4\) = 2, so only 3 parts exist"),
    ("channel_slice", {"start": 2, "stop": 9}, (8, 2, 2), r"stop must be at most the number of channels"),
    ("channel_shuffle", {"groups": 3}, (8, 2, 2), r"groups must divide the channels"),
    ("group_norm", {"groups": 3}, (8, 2, 2), r"groups must divide the channels"),
    ("instance_norm", {}, (8,), r"instance_norm needs a \(C, L\) or \(C, H, W\) or \(C, D, H, W\) input"),
])
def test_rank_and_channel_errors_name_the_rule(name, settings_, shape, message):
    op = OPS[name]
    with pytest.raises(ShapeError, match=message):
        op.infer(op.Params.model_validate(settings_), [shape])


def test_chunk_sizes_follow_torch_chunk():
    """torch.chunk: parts of ceil(C/parts), the last smaller, and fewer parts when C is small."""
    op = OPS["chunk"]
    for c in range(1, 14):
        for parts in range(1, 6):
            real = torch.zeros(1, c).chunk(parts, 1)
            for index in range(parts):
                p = op.Params.model_validate({"parts": parts, "index": index})
                if index < len(real):
                    assert op.infer(p, [(c,)]) == (real[index].shape[1],)
                else:
                    with pytest.raises(ShapeError, match="would be empty"):
                        op.infer(p, [(c,)])


@settings(max_examples=80, deadline=None)
@given(dims=st.lists(st.tuples(st.integers(1, 20), st.integers(1, 5), st.integers(1, 3), st.integers(0, 2),
                               st.integers(1, 2)), min_size=1, max_size=3),
       ceil=st.booleans(), pool=st.booleans())
def test_nd_windows_match_pytorch(dims, ceil, pool):
    """Property, 1-D to 3-D with different settings per axis: where PyTorch accepts a conv or
    max-pool configuration, our shape rule gives its output shape, else ours rejects it too."""
    import torch.nn.functional as F

    sizes, kernel, stride, padding, dilation = (list(v) for v in zip(*dims))
    x = torch.zeros(1, 1, *sizes)
    n = len(sizes)
    try:
        if pool:
            real = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[n - 1](x, kernel, stride, padding, dilation,
                                                                   ceil_mode=ceil).shape[1:]
        else:
            real = (F.conv1d, F.conv2d, F.conv3d)[n - 1](x, torch.zeros(2, 1, *kernel), None, stride, padding,
                                                         dilation).shape[1:]
    except RuntimeError:
        real = None
    settings_ = {"kernel": kernel, "stride": stride, "padding": padding, "dilation": dilation}
    settings_.update({"ceil_mode": ceil} if pool else {"out": 2})
    op = OPS["maxpool" if pool else "conv"]
    try:
        ours = op.infer(op.Params.model_validate(settings_), [(1, *sizes)])
    except (ValueError, ShapeError):
        ours = None
    assert ours == (tuple(real) if real is not None else None)
