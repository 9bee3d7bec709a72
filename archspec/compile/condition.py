"""Random weights under which every layer's output matters, for exports that verification
can trust.

An untrained network with textbook initialisation can make its outputs tiny (1e-8 after a
deep stack of depthwise convolutions) or dominated by a constant, and batch norm at its
initial statistics (mean 0, variance 1) is nearly the identity, so a wrong batch-norm export
goes unseen. Comparing such outputs says little about the file. `condition` therefore:

1. draws normalisation statistics and affine parameters at random (running mean ~ N(0, 0.5²),
   running variance ~ U(0.5, 2), γ ~ U(0.5, 1.5), β ~ N(0, 0.2²); batch, instance, group and
   layer norm), so normalisation is never the identity;
2. runs one forward pass on a standard normal batch and, layer by layer in execution order,
   divides each linear layer's weight and bias (convolutions, transposed convolutions, linear,
   connection-table and locally connected layers, per-channel scales: all linear in their
   weights) by the RMS of that layer's output, so every such output has RMS 1 on that input.
   This is LSUV-style initialisation (Mishkin & Matas 2016) without the orthogonal start.

Only randomly initialised models are conditioned (`archspec export` without `--weights`):
weights a user loads are never touched. Seeded by a private generator: the same seed gives
the same weights, and torch's global random state is left alone.
"""
from __future__ import annotations

import functools

import torch
import torch.nn as nn

from archspec.compile import modules

BATCH = 4
_NORM = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.InstanceNorm1d, nn.InstanceNorm2d,
         nn.InstanceNorm3d, nn.GroupNorm, nn.LayerNorm)
_LINEAR_IN_WEIGHTS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
                      nn.ConvTranspose3d, nn.Linear, modules.TableConv, modules.LocallyConnected2d,
                      modules.ChannelScale)  # nn.Linear covers PerPixelLinear


@torch.no_grad()
def condition(module: nn.Module, input_shape, seed: int = 0) -> nn.Module:
    """Condition `module` (in place) as the module docstring says; returns it."""
    generator = torch.Generator().manual_seed(seed)
    for sub in module.modules():
        if isinstance(sub, _NORM):
            _randomize_norm(sub, generator)
    scaled = set()  # a module called twice (tied weights) is rescaled at its first call only
    hooks = [sub.register_forward_hook(functools.partial(_unit_rms, scaled)) for sub in module.modules()
             if isinstance(sub, _LINEAR_IN_WEIGHTS)]
    was_training = module.training
    module.eval()
    try:
        module(torch.randn(BATCH, *input_shape, generator=generator))
    finally:
        for hook in hooks:
            hook.remove()
        module.train(was_training)
    return module


def _randomize_norm(norm, generator) -> None:
    if getattr(norm, "running_mean", None) is not None:
        norm.running_mean.copy_(torch.randn(norm.running_mean.shape, generator=generator) * 0.5)
        norm.running_var.copy_(torch.rand(norm.running_var.shape, generator=generator) * 1.5 + 0.5)
    if getattr(norm, "weight", None) is not None:
        norm.weight.copy_(torch.rand(norm.weight.shape, generator=generator) + 0.5)
    if getattr(norm, "bias", None) is not None:
        norm.bias.copy_(torch.randn(norm.bias.shape, generator=generator) * 0.2)


def _unit_rms(scaled: set, layer, _inputs, output):
    """Forward hook: rescale the layer so this output has RMS 1, and pass on the rescaled
    output (exactly what the rescaled layer computes, as it is linear in its weights)."""
    if id(layer) in scaled:
        return None  # a later call of a tied module: its weights are already final
    scaled.add(id(layer))
    rms = float(output.detach().double().pow(2).mean().sqrt())
    if not 0.0 < rms < float("inf"):
        return None  # all zeros (or overflow): leave the layer as it is
    for name in ("weight", "bias"):
        tensor = getattr(layer, name, None)
        if isinstance(tensor, torch.Tensor):
            tensor.div_(rms)
    return output / rms
