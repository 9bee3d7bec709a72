"""archspec: a compiler for convolutional network architectures written as YAML.

    spec = archspec.load("specs/resnet50.yaml")      # validated, with source locations
    graph = archspec.expand(spec)                     # flat graph of primitive ops, shapes inferred
    report = archspec.analyze(graph)                  # params, MACs, memory, receptive field
    model = archspec.build(spec)                      # torch.fx GraphModule (imports torch)

The static path (load/expand/analyze) never imports torch or onnx. The names below are
imported on first use (PEP 562), so `import archspec` — and the command line, which starts
with it — costs only what a command needs.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> (module, attribute): loaded on first access, then cached in the module
_LAZY = {
    "SpecError": ("archspec.errors", "SpecError"),
    "ModelTooLarge": ("archspec.resources", "ModelTooLarge"),
    "Spec": ("archspec.spec.compose", "Spec"),
    "Graph": ("archspec.graph.ir", "Graph"),
    "Report": ("archspec.graph.analyze", "Report"),
    "load": ("archspec.spec.compose", "load_spec"),
    "loads": ("archspec.spec.compose", "load_spec_text"),
    "expand": ("archspec.graph.build", "build_graph"),
    "analyze": ("archspec.graph.analyze", "analyze"),
}


def __getattr__(name: str):
    try:
        module, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'archspec' has no attribute '{name}'") from None
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


def build(spec, *, force: bool = False, **kwargs):
    """Compile a spec (a path, Spec or Graph) to a torch.fx GraphModule. Imports torch.

    The module returns the main output, or the tuple `(main, *extras)` when the spec declares
    extra outputs (`output: true`; with `training_heads=True`, training-only heads too).
    Keyword arguments go to `archspec.compile.torch_fx.build` (input_shape, training_heads,
    seed, init, zero_init_residual).

    Before allocating anything, a model that cannot run at batch 1 within the memory this
    process may use (archspec/resources.py: weights, input and every activation, against
    physical memory, cgroup and ulimit limits) is refused with `archspec.ModelTooLarge`
    (a MemoryError); `force=True` skips that check."""
    from archspec.compile.torch_fx import as_graph, build as _build, refuse_unsafe_graph
    from archspec.resources import check_fits

    graph = as_graph(spec, kwargs.pop("input_shape", None))
    refuse_unsafe_graph(graph)  # before anything else reads the graph
    if not force:
        check_fits(graph, 1, training_heads=kwargs.get("training_heads", False),
                   hint="pass force=True to build it anyway")
    return _build(graph, **kwargs)


__all__ = ["SpecError", "ModelTooLarge", "Spec", "Graph", "Report", "load", "loads", "expand", "analyze",
           "build"]
