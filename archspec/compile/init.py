"""Weight initialisation for compiled networks, by family convention.

A scheme decides how convolutions (1-D, 2-D, 3-D, transposed), `nn.Linear` (per-pixel too) and
the norms (batch, group, layer, instance) start out;
archspec's own modules keep the initialisation they define themselves (`TableConv` and
`LocallyConnected2d`: uniform ±1/√fan_in, `ChannelScale`: weight 1 / bias 0, `EuclideanRBF`:
fixed ±1 prototypes; `layer_scale`'s parameter: its `init` value). A layer tied transposed
(`TransposedTie`) has a bias only: the scheme sets it as it would that layer's own.

Schemes (`build(spec, init=...)`, `archspec build --init`):

- ``kaiming`` (default) — torchvision's VGG and MobileNetV2 convention: convolutions
  ``kaiming_normal_(mode="fan_out", nonlinearity="relu")`` with zero bias, batch norm weight 1 and
  bias 0, linear layers ``normal_(0, 0.01)`` with zero bias.
- ``resnet`` — torchvision's ResNet convention: as ``kaiming`` but linear layers keep PyTorch's
  default (Kaiming-uniform, a=√5), as does their bias.
- ``googlenet`` — torchvision's GoogLeNet convention: convolutions and linear layers
  ``trunc_normal_(0, 0.01, a=-2, b=2)`` (biases keep PyTorch's default), batch norm 1/0.
- ``torch`` — leave every module as PyTorch constructs it (AlexNet, LeNet-era nets).

``zero_init_residual`` zeroes the scale (γ) of the last batch norm in each residual branch, so
that every residual block starts as the identity (Goyal et al. 2017; torchvision's
``zero_init_residual=True`` does the same to ``bn2``/``bn3``). A residual branch is an input of an
``add`` node: of its inputs, the shortest chain back to the point where they fork is the
shortcut and is left alone (with no single shortest input, nothing is zeroed); every other
input that is a batch norm is zeroed.
"""
from __future__ import annotations

from types import SimpleNamespace

import torch
import torch.nn as nn

from archspec.compile.modules import TransposedTie
from archspec.graph.ir import INPUT, Graph

_BATCHNORM = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.GroupNorm, nn.LayerNorm,
              nn.modules.instancenorm._InstanceNorm)
_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def _norm(m: nn.Module) -> None:
    if getattr(m, "weight", None) is not None:
        nn.init.ones_(m.weight)
    if getattr(m, "bias", None) is not None:
        nn.init.zeros_(m.bias)


def _kaiming_conv(m) -> None:
    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    if m.bias is not None:
        nn.init.zeros_(m.bias)


def _small_normal_linear(m) -> None:
    nn.init.normal_(m.weight, 0, 0.01)
    if m.bias is not None:
        nn.init.zeros_(m.bias)


def _trunc_normal(m) -> None:
    nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)


def _keep(m) -> None:
    pass


# scheme -> (conv rule, linear rule, norm rule)
SCHEMES = {
    "kaiming": (_kaiming_conv, _small_normal_linear, _norm),
    "resnet": (_kaiming_conv, _keep, _norm),
    "googlenet": (_trunc_normal, _trunc_normal, _norm),
    "torch": (_keep, _keep, _keep),
}


def initialize(module: nn.Module, scheme: str = "kaiming") -> nn.Module:
    """Initialise `module`'s convolutions, linear layers and norms in place, by `scheme`.
    Draws from torch's global generator (seed it, or use `build(..., seed=)`)."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown init scheme '{scheme}'; choose one of {', '.join(SCHEMES)}")
    conv, linear, norm = SCHEMES[scheme]
    for m in module.modules():  # registration order = graph order, so a seed reproduces exactly
        if isinstance(m, _CONV):
            conv(m)
        elif isinstance(m, nn.Linear):
            linear(m)
        elif isinstance(m, _BATCHNORM):
            norm(m)
        elif isinstance(m, TransposedTie):  # its bias, by the rule of the layer it stands for
            (linear if m.is_linear else conv)(SimpleNamespace(weight=torch.empty(m.weight_shape), bias=m.bias))
    return module


def residual_branch_norms(graph: Graph, names) -> list[str]:
    """Names of the batch norms that end a residual branch (see the module docstring), among
    the nodes `names` that were compiled."""
    names = set(names)
    users: dict[str, list[str]] = {}
    for node in graph.nodes.values():
        if node.name in names:
            for src in node.inputs:
                users.setdefault(src, []).append(node.name)

    def chain_length(start: str) -> int:
        """Nodes on the chain of single-consumer nodes that ends at `start` (0 when `start`
        itself is the fork, as for an identity shortcut)."""
        length, name = 0, start
        while name != INPUT and len(users.get(name, ())) == 1:
            length += 1
            node = graph.nodes[name]
            if len(node.inputs) != 1:
                break
            name = node.inputs[0]
        return length

    found = []
    for node in graph.nodes.values():
        if node.name not in names or node.op != "add" or len(node.inputs) < 2:
            continue
        lengths = [chain_length(i) for i in node.inputs]
        if lengths.count(min(lengths)) > 1:
            continue  # no single shortest input: no way to tell the shortcut, leave it be
        shortcut = lengths.index(min(lengths))
        for k, src in enumerate(node.inputs):
            if k != shortcut and src != INPUT and graph.nodes[src].op == "batchnorm":
                if src not in found:
                    found.append(src)
    return found


def zero_init_residual(module: nn.Module, graph: Graph, names) -> list[str]:
    """Zero γ of the last batch norm of every residual branch; returns their names."""
    zeroed = []
    for name in residual_branch_norms(graph, names):
        bn = module.get_submodule(graph.nodes[name].tie or name)  # a tied norm is its owner's
        if getattr(bn, "weight", None) is not None:
            nn.init.zeros_(bn.weight)
            zeroed.append(name)
    return zeroed
