"""Loading trained weights into a compiled network.

`load_weights(model, source)` takes a path to a file written by `torch.save` or a mapping, and
accepts what training scripts commonly write:

- a plain state_dict (`torch.save(model.state_dict(), path)`),
- a checkpoint dict wrapping it under 'state_dict', 'model', 'model_state_dict', 'net' or
  'ema_state_dict'/'state_dict_ema' (the first that holds tensors wins; nested wrappers are
  unwrapped too),
- keys prefixed by 'module.' (DistributedDataParallel / DataParallel) or '_orig_mod.'
  (torch.compile), when every key has the prefix.

Keys that belong to training-only heads the model was built without (GoogLeNet's `aux1.*`)
are dropped: a checkpoint of the full training network loads into the inference network.
Loading is strict by default; a mismatch raises `WeightsError` with one line that names the
first few missing and unexpected keys and the first shape mismatches.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn as nn

from archspec.errors import SpecError

WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "module", "ema_state_dict",
                "state_dict_ema", "model_ema")
PREFIXES = ("module.", "_orig_mod.")
SHOW = 5  # keys named per category in an error


class WeightsError(SpecError):
    """Weights that cannot be read, or do not fit the model. The CLI prints it and exits 1."""

    def __init__(self, message: str, loc=None, hint: str | None = None):
        super().__init__(message, loc, hint, code="AS602")


def read_state_dict(source, *, what: str | None = None) -> dict:
    """The state_dict inside `source` (a path, or a state_dict / checkpoint mapping), with
    wrappers and DDP / torch.compile prefixes removed."""
    what = what or (str(source) if isinstance(source, (str, Path)) else "the state_dict")
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise WeightsError(f"weights file not found: {path}")
        source = _load_file(path)
    if isinstance(source, nn.Module):
        source = source.state_dict()
    state = _unwrap(source, what)
    return _strip_prefixes(state)


def _load_file(path: Path):
    import pickle
    import warnings
    import zipfile

    hint = "expected a file written by torch.save(model.state_dict(), path) or a checkpoint dict holding one"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        if zipfile.is_zipfile(path):
            raise WeightsError(f"cannot read weights from {path}: it holds Python objects besides "
                               "tensors, and unpickling those could run arbitrary code",
                               hint="save model.state_dict() (tensors only)") from None
        raise WeightsError(f"cannot read weights from {path}: not a PyTorch file", hint=hint) from None
    except Exception as exc:  # corrupt or foreign files fail in many ways; report them in one line
        if not zipfile.is_zipfile(path):
            raise WeightsError(f"cannot read weights from {path}: not a PyTorch file", hint=hint) from None
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise WeightsError(f"cannot read weights from {path}: {first}", hint=hint) from None


def _is_state_dict(obj) -> bool:
    return (isinstance(obj, Mapping) and len(obj) > 0
            and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()))


def _unwrap(obj, what: str) -> dict:
    for _ in range(4):  # {'model': {'state_dict': {...}}} and similar
        if _is_state_dict(obj):
            return dict(obj)
        if not isinstance(obj, Mapping):
            raise WeightsError(f"{what} holds a {type(obj).__name__}, not a state_dict",
                               hint="save model.state_dict() (a dict of tensors)")
        inner = next((obj[k] for k in WRAPPER_KEYS if k in obj and isinstance(obj[k], (Mapping, nn.Module))),
                     None)
        if isinstance(inner, nn.Module):
            inner = inner.state_dict()
        if inner is None:
            tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
            if tensors and len(tensors) == len(obj):
                return dict(tensors)
            keys = ", ".join(map(str, list(obj)[:SHOW])) or "none"
            raise WeightsError(f"{what} is not a state_dict and has none under "
                               f"{', '.join(repr(k) for k in WRAPPER_KEYS[:3])} (its keys: {keys})")
        obj = inner
    raise WeightsError(f"{what}: state_dict wrapped too deeply")


def _strip_prefixes(state: dict) -> dict:
    changed = True
    while changed and state:
        changed = False
        for prefix in PREFIXES:
            if all(k.startswith(prefix) for k in state):
                state = {k[len(prefix):]: v for k, v in state.items()}
                changed = True
    return state


def _training_only_prefixes(model: nn.Module) -> tuple:
    graph = getattr(model, "archspec_graph", None)
    if graph is None:
        return ()
    built = {name for name, _ in model.named_modules()}
    return tuple(n.name + "." for n in graph.nodes.values() if n.training_only and n.name not in built)


def _names(keys) -> str:
    keys = list(keys)
    text = ", ".join(keys[:SHOW])
    return text + (f", … (+{len(keys) - SHOW} more)" if len(keys) > SHOW else "")


def load_weights(model: nn.Module, source, *, strict: bool = True):
    """Load `source` (a path or a mapping, see the module docstring) into `model`.

    Strict (the default): every key must match in name and shape, or `WeightsError` is raised
    and the model is left untouched. With strict=False, matching keys are loaded and the rest
    reported. Returns torch's (missing_keys, unexpected_keys) result."""
    what = str(source) if isinstance(source, (str, Path)) else "the state_dict"
    state = read_state_dict(source, what=what)
    skip = _training_only_prefixes(model)
    if skip:
        state = {k: v for k, v in state.items() if not k.startswith(skip)}
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} (file {list(v.shape)}, model {list(own[k].shape)})"
              for k, v in state.items() if k in own and v.shape != own[k].shape]
    if strict and (missing or unexpected or shapes):
        name = getattr(getattr(model, "archspec_graph", None), "name", type(model).__name__)
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing ({_names(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected ({_names(unexpected)})")
        if shapes:
            parts.append(f"{len(shapes)} of another shape ({_names(shapes)})")
        raise WeightsError(f"weights in {what} do not fit '{name}': " + "; ".join(parts),
                           hint="were they saved from a different spec, --input size or class count?")
    if shapes:  # non-strict: leave mismatched tensors as they are
        state = {k: v for k, v in state.items() if k not in own or v.shape == own[k].shape}
    return model.load_state_dict(state, strict=strict)
