"""Output-size formulas, as pure integer functions (no torch). They match PyTorch exactly.

The textbook form is ``o = floor((i - k + 2p) / s) + 1``; with dilation the effective kernel
is ``d(k-1) + 1``.
"""
from __future__ import annotations

from archspec.ops.registry import AXIS_NAMES


def conv_out(i: int, k: int, s: int = 1, p: int = 0, d: int = 1) -> int:
    """Convolution/pooling output size: floor((i + 2p - d(k-1) - 1) / s) + 1."""
    return (i + 2 * p - d * (k - 1) - 1) // s + 1


def pool_out(i: int, k: int, s: int, p: int = 0, d: int = 1, ceil_mode: bool = False) -> int:
    """Pooling output size, PyTorch rules: with ceil_mode the last window must start inside
    the input or its left padding, else it is dropped."""
    span = i + 2 * p - d * (k - 1) - 1
    if not ceil_mode:
        return span // s + 1
    o = -(-span // s) + 1
    if (o - 1) * s >= i + p:
        o -= 1
    return o


def conv_transpose_out(i: int, k: int, s: int = 1, p: int = 0, d: int = 1, output_padding: int = 0) -> int:
    """Transposed convolution output size: (i-1)s - 2p + d(k-1) + output_padding + 1."""
    return (i - 1) * s - 2 * p + d * (k - 1) + output_padding + 1


def dropped_pixels(i: int, k: int, s: int, p: int = 0, d: int = 1) -> int:
    """Real input pixels at the far edge that no window covers because the formula floors.

    Uncovered padding does not count, nor do windows narrower than the stride (those skip
    pixels everywhere by design, e.g. a strided 1x1 projection)."""
    span = i + 2 * p - d * (k - 1) - 1
    if span < 0 or d * (k - 1) + 1 < s:
        return 0
    return max(0, span % s - p)


def floor_warning(what: str, shape, kernel, stride, padding, dilation=None) -> list[str]:
    """One warning naming the spatial axes of `shape` on which flooring drops input pixels, or
    none. The per-axis settings have one entry per spatial axis of `shape`."""
    spatial = tuple(shape[1:])
    dilation = dilation or (1,) * len(spatial)
    lost = [(axis, dropped_pixels(i, k, s, p, d), i, k, s, p) for axis, i, k, s, p, d in
            zip(AXIS_NAMES[len(shape)], spatial, kernel, stride, padding, dilation)]
    lost = [entry for entry in lost if entry[1]]
    if not lost:
        return []
    parts = "; ".join(f"the last {n} input {axis} (i={i}, k={k}, s={s}, p={p})" for axis, n, i, k, s, p in lost)
    return [f"(i + 2p - k) / s is not an integer, so {what} never sees {parts}"]


def same_padding(k: int, d: int = 1) -> tuple[int, int]:
    """(left, right) padding PyTorch's padding='same' applies for stride 1."""
    total = d * (k - 1)
    return total // 2, total - total // 2
