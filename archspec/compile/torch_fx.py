"""Compile an expanded graph to a torch.fx GraphModule with generated, straight-line code.

Every node becomes a submodule at its hierarchical name (`layer1.0.conv1`), so state_dict
keys read like hand-written code; fx writes `forward` as one call per node.

fx writes module names into the `forward` source it generates and execs, so before any code
is generated every name is checked again (`refuse_unsafe_graph`), against the attributes the
installed torch actually has: a graph built without the loader cannot smuggle code in.

The module returns the main output; a spec with extra outputs (`output: true`) returns the
tuple `(main, *extras)` in spec order, and so does a build with `training_heads` (the
training-only heads among the extras).
"""
from __future__ import annotations

import functools
import keyword
import operator
import re
from pathlib import Path

import torch
import torch.fx as fx
import torch.nn as nn

from archspec.compile import modules
from archspec.errors import SpecError
from archspec.graph.build import build_graph
from archspec.graph.inplace import in_place_inputs, overwritable_inputs  # noqa: F401 - re-exported
from archspec.graph.ir import INPUT, Graph
from archspec.names import name_problem
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
    """Compile `spec` to a GraphModule taking (N, *input_shape) and returning the main output,
    or the tuple `(main, *extras)` when the spec declares extra outputs (`output: true`) or,
    with `training_heads`, has training-only heads (`module_outputs` lists them in order).

    `init` names the weight-initialisation scheme (archspec/compile/init.py: kaiming, resnet,
    googlenet, torch) and `zero_init_residual` zeroes the last batch norm of residual branches.
    With `seed`, construction and initialisation draw from a private generator seeded with it,
    so the same seed gives the same weights and torch's global RNG is left untouched."""
    from archspec.compile.init import SCHEMES

    if init not in SCHEMES:
        raise ValueError(f"unknown init scheme '{init}'; choose one of {', '.join(SCHEMES)}")
    graph = as_graph(spec, input_shape)
    refuse_unsafe_graph(graph)
    if seed is None:
        return _build(graph, training_heads, init, zero_init_residual)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _build(graph, training_heads, init, zero_init_residual)


def _build(graph: Graph, training_heads: bool, init: str, zero_residual: bool) -> fx.GraphModule:
    from archspec.compile.init import initialize, zero_init_residual

    keep = [n for n in graph.nodes.values() if training_heads or not n.training_only]
    outputs = module_outputs(graph, training_heads)
    refuse_dead_nodes(graph, keep, outputs)
    writable = in_place_inputs(graph, keep, outputs)
    root = nn.Module()
    args = {}
    for node in keep:
        if node.tie is not None and not node.tie_transposed:  # calls its owner's module (graph/tie.py)
            args[node.name] = tuple(node.inputs)
            continue
        in_shapes = [graph.shape(i) for i in node.inputs]
        module = OPS[node.op].torch(node.params, in_shapes, node.shape)
        bare = OPS[node.op].bare_parameter
        if node.tie_transposed:  # its own bias, its owner's weight passed in (never in place)
            module = modules.TransposedTie(module)
        args[node.name] = tuple(node.inputs) if bare or node.tie else _in_place(node, module, writable.get(node.name))
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
        code.output(values[outputs[0]])
    module = fx.GraphModule(root, code, class_name=_class_name(graph.name))
    for name, child in root.named_children():  # fx rebuilt the levels as plain Modules: use ours
        setattr(module, name, child)
    module.archspec_graph = graph  # kept for tools (parity checks, export); not part of state
    return module


def module_outputs(graph: Graph, training_heads: bool = False) -> list:
    """The node names the compiled module returns, in order: the main output, then the extra
    outputs in spec order (`output: true` layers; training-only heads only with
    `training_heads`). One name means the module returns a tensor, several a tuple."""
    extras = [name for name in graph.extra_outputs
              if training_heads or name == INPUT or not graph.nodes[name].training_only]
    return [graph.output, *extras]


# ---- the second wall: names are data, never code ------------------------------------------


@functools.lru_cache(maxsize=1)
def live_attributes() -> frozenset:
    """Every attribute a submodule name could shadow: those of real fx.GraphModule and Group
    instances of the installed torch (not only the list archspec.names writes down for the
    static path, which is included too)."""
    from archspec.names import MODULE_ATTRIBUTES

    graph_module = fx.GraphModule(nn.Module(), fx.Graph())
    return frozenset(dir(graph_module)) | frozenset(dir(modules.Group())) | MODULE_ATTRIBUTES


def refuse_unsafe_graph(graph: Graph) -> None:
    """Refuse, before any code is generated, a graph whose module names could act as code or
    shadow a module attribute, or whose structure does not hold together (unknown ops, inputs
    or tied owners that are not earlier nodes, a layer that is also a group). The loader
    enforces all of this; this catches graphs built or edited without it."""
    attributes = live_attributes()
    seen = {INPUT}
    groups = set()
    for key, node in graph.nodes.items():
        _check_node(graph, key, node, seen, attributes)
        seen.add(node.name)
        parts = node.name.split(".")
        groups.update(".".join(parts[:k]) for k in range(1, len(parts)))
    clash = sorted(groups & set(graph.nodes))
    if clash:
        _refuse(graph.nodes[clash[0]], f"'{clash[0]}' is both a layer and a group of layers", "AS302")
    for name in [graph.output, *graph.extra_outputs]:
        if name not in seen:
            raise SpecError(f"the graph's output {_short(name)} is not one of its nodes", code="AS301")


def _check_node(graph: Graph, key, node, seen: set, attributes) -> None:
    name = node.name if isinstance(node.name, str) else None
    if name is None or name != key:
        _refuse(node, f"node {_short(key)} is registered under another name ({_short(node.name)})", "AS302")
    if name == INPUT:
        _refuse(node, f"'{INPUT}' is the network's input and cannot name a layer", "AS206")
    tie = getattr(node, "tie", None)
    for what, path in (("module name", name), ("tied module", tie)):
        for segment in ([] if path is None else str(path).split(".")):
            problem = name_problem(segment, attributes=attributes)
            if problem:
                _refuse(node, f"{what} {_short(path)} cannot be compiled: {problem}", "AS206")
    if node.op not in OPS:
        _refuse(node, f"'{name}': unknown op {_short(node.op)}", "AS204")
    missing = [i for i in node.inputs if i not in seen]
    if missing:
        _refuse(node, f"'{name}' takes input from {_short(missing[0])}, which is not an earlier node", "AS301")
    if tie is not None and (tie not in seen or getattr(graph.nodes[tie], "tie", None) is not None):
        _refuse(node, f"'{name}' is tied to {_short(tie)}, which is not an earlier untied node", "AS301")
    if getattr(node, "tie_transposed", False) and (tie is None or graph.nodes[tie].op != OPS[node.op].adjoint):
        _refuse(node, f"'{name}' ({node.op}) is tied transposed to {_short(tie)}, which is not a "
                      f"{OPS[node.op].adjoint or 'layer it can use transposed'}", "AS301")


def refuse_dead_nodes(graph: Graph, keep, outputs) -> None:
    """Every compiled node must reach a returned output: a layer whose result nothing returns
    would be counted by the report but dropped by exporters (static != runtime)."""
    live = set(outputs)
    for node in reversed(keep):
        if node.name in live:
            live.update(node.inputs)
    dead = [n for n in keep if n.name not in live]
    if dead:
        _refuse(dead[0], f"'{dead[0].name}' ({dead[0].op}): its output reaches none of the module's "
                         "outputs (only training-only layers use it); mark it 'training_only: true' or "
                         "use it in the network", "AS303")


def _refuse(node, message: str, code: str) -> None:
    try:
        loc = node.loc
    except Exception:  # noqa: BLE001 - a hand-built node may carry no usable source
        loc = None
    raise SpecError(message, loc if hasattr(loc, "line") else None, code=code)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


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
    generated code (`right_conv1 = self.left.conv1(...)`, meta "archspec_node"); a node tied
    transposed calls its own with its owner's weight (`self.dec(x, self.enc.weight)`)."""
    if node.tie_transposed:  # self.<name>(x, self.<owner>.weight): one Parameter, two uses
        return code.call_module(node.name, (*inputs, code.get_attr(f"{node.tie}.weight")))
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
    words = re.split(r"[^A-Za-z0-9]+", str(name))
    text = "".join(w[:1].upper() + w[1:] for w in words if w)[:128] or "Net"
    return text if text[0].isalpha() and not keyword.iskeyword(text) else "Net" + text
