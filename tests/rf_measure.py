"""Receptive fields measured by gradients on a compiled module — the independent measurement
the static fields (archspec/graph/receptive.py) are tested against.

The module is compiled from the spec (`archspec.build`) with positive weights, zero biases,
batch norm in eval mode with its default positive scale, and a positive input, so no
activation is cut at zero and no sum cancels. The field of one output position is then the set
of input positions whose gradient is non-zero, and its box along an axis is the first and last
such position. Three devices, each a way of seeing what a rule connects rather than what one
input happens to select or what a float can hold:

- Max pooling passes gradient to one winner per window; 1e-3 times the window's average is
  added to its output, so every position of each window gets gradient (the union of what the
  max can pick over all inputs) — PyTorch's own average pooling, with the same kernel, stride,
  padding and ceil_mode, so the windows are PyTorch's.
- Each node's gradient has its magnitudes compressed on the way back (`_support`), so float32
  reaches the edge of the deepest fields.
- `cut_global=True` measures the spatially resolved field alone: global reductions (global
  pooling, flatten) pass no gradient, and group/instance norms pass gradient straight through
  position by position (their statistics are held constant). Without it, a node that sees
  global context has gradient on every input position.
"""
from __future__ import annotations

import torch
import torch.fx
import torch.nn.functional as F

import archspec
from archspec.ops import OPS

SMOOTH = 1e-3
_AVG = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


def positive_model(graph, dtype=torch.float64):
    """The compiled module with positive weights (activations stay near 1: no saturated gate)
    and zero biases, in eval mode, in `dtype`, without in-place ops, weights not requiring grad."""
    # PyTorch's own initialisation is random enough: its magnitudes, made positive, are the
    # weights (drawing new ones costs seconds on VGG's classifier).
    model = archspec.build(graph, seed=0, init="torch").eval().to(dtype)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2 and not name.endswith("layer_scale"):  # conv / linear weights
                # positive, none near 0, and each output's weights summing to 1: activations
                # neither fade nor grow layer by layer
                p.abs_().add_(p.mean() * 0.1 + torch.finfo(dtype).tiny)
                p.div_(p.sum(dim=tuple(range(1, p.dim())), keepdim=True))
            elif name.endswith("bias"):
                p.zero_()
            p.requires_grad_(False)
    for module in model.modules():
        if getattr(module, "inplace", False):
            module.inplace = False
    return model


class Probe(torch.fx.Interpreter):
    """Runs the module, keeping every archspec node's output (see the module docstring)."""

    def __init__(self, model, graph, cut_global: bool = False):
        super().__init__(model)
        self.graph_ = graph
        self.cut_global = cut_global
        self.values = {}
        self.failed_at = None

    def run_node(self, n):
        name = n.target if n.op == "call_module" else n.meta.get("archspec_node")
        try:
            out = super().run_node(n)
        except Exception:
            self.failed_at = name  # where PyTorch gave up
            raise
        node = self.graph_.nodes.get(name) if name is not None else None
        if node is None:
            return out
        if isinstance(self.fetch_attr(n.target) if n.op == "call_module" else None,
                      (torch.nn.MaxPool1d, torch.nn.MaxPool2d, torch.nn.MaxPool3d)):
            out = out + SMOOTH * self._window_average(self.fetch_attr(n.target), self.env[n.args[0]], out)
        kind = OPS[node.op].spatial_kind(node.params)
        if self.cut_global and kind == "global":
            out = out.detach()
        elif self.cut_global and kind == "context":
            x = self.env[n.args[0]]
            out = out.detach() + (x - x.detach())  # statistics held: the gradient is the identity
        if out.requires_grad:
            out.register_hook(_support)
        self.values[name] = out
        return out

    @staticmethod
    def _window_average(pool, x, like):
        dims = x.dim() - 2
        if pool.dilation not in (1, (1,) * dims):
            raise NotImplementedError("dilated max pooling: no average pooling with its windows")
        avg = _AVG[dims](x, pool.kernel_size, pool.stride, pool.padding, ceil_mode=pool.ceil_mode)
        assert avg.shape == like.shape, (avg.shape, like.shape)
        return avg


def _support(grad):
    """A node's gradient with its magnitudes compressed (the fourth root, sign kept): zero
    stays zero and every other value stays non-zero with its sign and order, so the positions
    the input gradient reaches do not change (the weights are positive: nothing cancels); but
    the values no longer shrink layer after layer into underflow — DenseNet-201's field edge
    is otherwise 1e-215 of its centre, beyond even float64's range. (Not a plain 0/1 mask:
    a layer norm's gradient of a constant is exactly zero.)"""
    return grad.sign() * grad.abs().pow(0.25)


def node_outputs(graph, model, x, cut_global=False) -> dict:
    probe = Probe(model, graph, cut_global)
    probe.run(x)
    return probe.values


def gradient_hits(y, x, position) -> torch.Tensor:
    """Input positions (a bool tensor over the spatial axes) with a non-zero gradient of output
    position `position` of y (indices or slices, one per spatial axis) (channels weighted unequally: a plain sum of a normalised output
    would be a constant)."""
    weights = torch.linspace(1.0, 2.0, y.shape[1], dtype=y.dtype)
    picked = y[(0, slice(None), *position)]
    picked = (picked * weights.view(-1, *[1] * (picked.dim() - 1))).sum()
    (grad,) = torch.autograd.grad(picked, x, retain_graph=True)
    return grad[0].abs().sum(dim=0) > 0


def box(hits, axis) -> tuple[int, int] | None:
    """(first, last) position with a hit along `axis`, or None."""
    others = tuple(a for a in range(hits.dim()) if a != axis)
    along = hits.any(dim=others) if others else hits
    idx = along.nonzero().flatten()
    return (int(idx.min()), int(idx.max())) if len(idx) else None


def widest_gap(hits, axis) -> int:
    """The largest distance between neighbouring positions with a hit along `axis` (1 when
    they are contiguous; more where strides or dilation skip positions)."""
    others = tuple(a for a in range(hits.dim()) if a != axis)
    idx = (hits.any(dim=others) if others else hits).nonzero().flatten()
    return int((idx[1:] - idx[:-1]).max()) if len(idx) > 1 else 1
