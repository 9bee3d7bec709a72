"""archspec: a compiler for convolutional network architectures written as YAML.

    spec = archspec.load("specs/resnet50.yaml")      # validated, with source locations
    graph = archspec.expand(spec)                     # flat graph of primitive ops, shapes inferred
    report = archspec.analyze(graph)                  # params, MACs, memory, receptive field
    model = archspec.build(spec)                      # torch.fx GraphModule (imports torch)

The static path (load/expand/analyze) never imports torch or onnx.
"""
from __future__ import annotations

__version__ = "0.1.0"

from archspec.errors import SpecError
from archspec.graph.analyze import Report, analyze
from archspec.graph.build import build_graph as expand
from archspec.graph.ir import Graph
from archspec.spec.compose import Spec, load_spec as load, load_spec_text as loads


def build(spec, **kwargs):
    """Compile a spec (or a path to one) to a torch.fx GraphModule. Imports torch."""
    from archspec.compile.torch_fx import build as _build

    return _build(spec, **kwargs)


__all__ = ["SpecError", "Spec", "Graph", "Report", "load", "loads", "expand", "analyze", "build"]
