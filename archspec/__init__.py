"""archspec: a compiler for convolutional network architectures written as YAML.

    spec = archspec.load("specs/resnet50.yaml")      # validated, with source locations
    graph = archspec.expand(spec)                     # flat graph of primitive ops, shapes inferred
    report = archspec.analyze(graph)                  # params, MACs, memory, receptive field
    model = archspec.build(spec)                      # torch.fx GraphModule (imports torch)
    archspec.export(spec, "r50.onnx")                 # verified ONNX file (imports torch, onnx)

The static path (load/loads/expand/analyze) never imports torch or onnx. The names below are
imported on first use (PEP 562), so `import archspec` — and the command line, which starts
with it — costs only what a command needs. docs/api.md is generated from this module's
docstrings (archspec/report/apidoc.py).
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


def export(spec, path, *, force: bool = False, input_shape=None, **kwargs):
    """Export a spec (a path, Spec or Graph) to one verified, self-contained ONNX file at
    `path`, as `archspec export` does (the same `export_onnx`); returns its `ExportResult`
    (`path`, `bytes`, `opset`, `input`/`output` as (name, dims, dtype), the verification
    `report`; `.lines()` is what the command prints). Imports torch and onnx (the `onnx` extra).

    `force=True` replaces an existing file (otherwise `archspec.io.OutputExists`); `input_shape`
    overrides the input size of a spec path, like `--input`. Other keyword arguments go to
    `archspec.compile.onnx_export.export_onnx`: `weights` (a state_dict or checkpoint file),
    `opset`, `fp16`, `verify` (default True: checker, shape inference, ONNX Runtime against
    PyTorch at batch 1, 2 and 5), `quantize="int8"`, `calibration`, `seed`.

    Raises `ModelTooLarge` for a model that cannot be verified at batch 5 in this process's
    memory, `SpecError` for an invalid spec or an op that cannot be exported faithfully, and
    `ExportError` when a check fails; on any failure nothing is left at `path`."""
    from archspec.compile.onnx_export import export_onnx
    from archspec.compile.torch_fx import as_graph, refuse_unsafe_graph
    from archspec.resources import check_fits

    graph = as_graph(spec, input_shape)
    refuse_unsafe_graph(graph)
    check_fits(graph, 5, hint="use a smaller input_shape")  # verification runs batch 5
    return export_onnx(graph, path, force=force, **kwargs)


__all__ = ["SpecError", "ModelTooLarge", "Spec", "Graph", "Report", "load", "loads", "expand", "analyze",
           "build", "export"]
