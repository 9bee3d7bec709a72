"""Compile an expanded graph to a torch.fx GraphModule with generated, straight-line code.

Every node becomes a submodule at its hierarchical name (`layer1.0.conv1`), so state_dict
keys read like hand-written code; fx writes `forward` as one call per node.
"""
from __future__ import annotations

import operator
import re
from pathlib import Path

import torch
import torch.fx as fx
import torch.nn as nn

from archspec.compile import modules
from archspec.graph.build import build_graph
from archspec.graph.inplace import in_place_inputs, overwritable_inputs  # noqa: F401 - re-exported
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


def build(spec, *, input_shape=None, training_heads: bool = False, seed: int | None = None,
          init: str = "kaiming", zero_init_residual: bool = False) -> fx.GraphModule:
    """Compile `spec` to a GraphModule taking (N, *input_shape) and returning the main output
    (or, with `training_heads`, a tuple of the main output and the training-only heads).

    `init` names the weight-initialisation scheme (archspec/compile/init.py: kaiming, resnet,
    googlenet, torch) and `zero_init_residual` zeroes the last batch norm of residual branches.
    With `seed`, construction and initialisation draw from a private generator seeded with it,
    so the same seed gives the same weights and torch's global RNG is left untouched."""
    from archspec.compile.init import SCHEMES

    if init not in SCHEMES:
        raise ValueError(f"unknown init scheme '{init}'; choose one of {', '.join(SCHEMES)}")
    graph = as_graph(spec, input_shape)
    if seed is None:
        return _build(graph, training_heads, init, zero_init_residual)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _build(graph, training_heads, init, zero_init_residual)


def _build(graph: Graph, training_heads: bool, init: str, zero_residual: bool) -> fx.GraphModule:
    from archspec.compile.init import initialize, zero_init_residual

    keep = [n for n in graph.nodes.values() if training_heads or not n.training_only]
    outputs = [graph.output, *graph.extra_outputs] if training_heads else [graph.output]
    writable = in_place_inputs(graph, keep, outputs)
    root = nn.Module()
    args = {}
    for node in keep:
        if node.tie is not None:  # calls its owner's module: one set of parameters (graph/tie.py)
            args[node.name] = tuple(node.inputs)
            continue
        in_shapes = [graph.shape(i) for i in node.inputs]
        module = OPS[node.op].torch(node.params, in_shapes, node.shape)
        bare = OPS[node.op].bare_parameter
        args[node.name] = tuple(node.inputs) if bare else _in_place(node, module, writable.get(node.name))
        if not node.trainable:
            module.requires_grad_(False)
        _install(root, node.name, module)
    initialize(root, init)
    if zero_residual:
        zero_init_residual(root, graph, [n.name for n in keep])

    code = fx.Graph()
    values = {INPUT: code.placeholder("x")}
    for node in keep:
        inputs = tuple(values[i] for i in args[node.name])
        if OPS[node.op].bare_parameter:
            values[node.name] = _multiply_by_parameter(code, node.tie or node.name, inputs[0], node.name)
        else:
            values[node.name] = _call_module(code, node, inputs)
    if len(outputs) > 1:
        code.output(tuple(values[n] for n in outputs))
    else:
        code.output(values[graph.output])
    module = fx.GraphModule(root, code, class_name=_class_name(graph.name))
    for name, child in root.named_children():  # fx rebuilt the levels as plain Modules: use ours
        setattr(module, name, child)
    module.archspec_graph = graph  # kept for tools (parity checks, export); not part of state
    return module


def _in_place(node, module: nn.Module, slot) -> tuple:
    """Decide whether `module` runs in place and return the inputs in the order to pass them.

    Activations built with inplace=True (ReLU, ReLU6) stay in place only when their input is
    theirs to overwrite (`slot`, from archspec/graph/inplace.py, which the memory analysis
    reads too). An `add` accumulates into an input that is its to overwrite (as torchvision's
    `out += identity`), passed first."""
    inputs = tuple(node.inputs)
    if isinstance(module, modules.Add):
        module.inplace = slot is not None
        if slot:
            inputs = (inputs[slot],) + inputs[:slot] + inputs[slot + 1:]
    elif getattr(module, "inplace", False) and slot != 0:
        module.inplace = False
    return inputs


def _call_module(code: fx.Graph, node, inputs: tuple) -> fx.Node:
    """A call of the node's submodule; a tied node calls its owner's, under its own name in the
    generated code (`right_conv1 = self.left.conv1(...)`, meta "archspec_node")."""
    if node.tie is None:
        return code.call_module(node.name, inputs)
    call = code.create_node("call_module", node.tie, inputs, name=node.name.replace(".", "_"))
    call.meta["archspec_node"] = node.name
    return call


def _multiply_by_parameter(code: fx.Graph, target: str, x: fx.Node, name: str) -> fx.Node:
    """`x * self.<target>` for a `bare_parameter` op (`target`: the node's own name, or the
    owner it is tied to); the fx node remembers its archspec node `name` (meta
    "archspec_node"), since it has no submodule of that name."""
    out = code.call_function(operator.mul, (x, code.get_attr(target)))
    out.meta["archspec_node"] = name
    return out


def _install(root: nn.Module, name: str, module) -> None:
    """Put `module` (or a bare nn.Parameter) at the dotted `name`, creating Group levels."""
    *parents, leaf = name.split(".")
    owner = root
    for part in parents:
        if not hasattr(owner, part):
            owner.add_module(part, modules.Group())
        owner = getattr(owner, part)
    if isinstance(module, nn.Parameter):
        owner.register_parameter(leaf, module)
    else:
        owner.add_module(leaf, module)


def _class_name(name: str) -> str:
    words = re.split(r"[^A-Za-z0-9]+", name)
    text = "".join(w[:1].upper() + w[1:] for w in words if w) or "Net"
    return text if text[0].isalpha() else "Net" + text
