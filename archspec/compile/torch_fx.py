"""Compile an expanded graph to a torch.fx GraphModule with generated, straight-line code.

Every node becomes a submodule at its hierarchical name (`layer1.0.conv1`), so state_dict
keys read like hand-written code; fx writes `forward` as one call per node.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch
import torch.fx as fx
import torch.nn as nn

from archspec.graph.build import build_graph
from archspec.graph.ir import INPUT, Graph
from archspec.ops import OPS
from archspec.spec.compose import Spec, load_spec


def as_graph(spec, input_shape=None) -> Graph:
    """Accept a Graph, a Spec or a path to a spec file."""
    if isinstance(spec, Graph):
        return spec
    if isinstance(spec, (str, Path)):
        spec = load_spec(spec, input_override=input_shape)
    if not isinstance(spec, Spec):
        raise TypeError(f"expected a spec path, Spec or Graph, got {type(spec).__name__}")
    return build_graph(spec)


def build(spec, *, input_shape=None, training_heads: bool = False, seed: int | None = None) -> fx.GraphModule:
    """Compile `spec` to a GraphModule taking (N, *input_shape) and returning the main output
    (or, with `training_heads`, a tuple of the main output and the training-only heads)."""
    graph = as_graph(spec, input_shape)
    if seed is not None:
        torch.manual_seed(seed)
    keep = [n for n in graph.nodes.values() if training_heads or not n.training_only]
    root = nn.Module()
    for node in keep:
        in_shapes = [graph.shape(i) for i in node.inputs]
        module = OPS[node.op].torch(node.params, in_shapes, node.shape)
        if not node.trainable:
            module.requires_grad_(False)
        _install(root, node.name, module)

    code = fx.Graph()
    values = {INPUT: code.placeholder("x")}
    for node in keep:
        values[node.name] = code.call_module(node.name, tuple(values[i] for i in node.inputs))
    if training_heads and graph.extra_outputs:
        code.output(tuple(values[n] for n in [graph.output, *graph.extra_outputs]))
    else:
        code.output(values[graph.output])
    module = fx.GraphModule(root, code, class_name=_class_name(graph.name))
    module.archspec_graph = graph  # kept for tools (parity checks, export); not part of state
    return module


def _install(root: nn.Module, name: str, module: nn.Module) -> None:
    *parents, leaf = name.split(".")
    owner = root
    for part in parents:
        if not hasattr(owner, part):
            owner.add_module(part, nn.Module())
        owner = getattr(owner, part)
    owner.add_module(leaf, module)


def _class_name(name: str) -> str:
    words = re.split(r"[^A-Za-z0-9]+", name)
    text = "".join(w[:1].upper() + w[1:] for w in words if w) or "Net"
    return text if text[0].isalpha() else "Net" + text
