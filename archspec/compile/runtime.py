"""ONNX Runtime sessions: pick the execution provider, keep CPU-only machines quiet, and
report the provider that actually runs (ORT silently falls back to CPU when CUDA fails).

    session = create_session("model.onnx", device="auto")
    active_provider(session)  # 'CPUExecutionProvider' or 'CUDAExecutionProvider'
"""
from __future__ import annotations

from pathlib import Path

DEVICES = ("auto", "cpu", "cuda")
CPU, CUDA = "CPUExecutionProvider", "CUDAExecutionProvider"
QUIET = 3  # ORT log severity: 0 verbose, 1 info, 2 warning, 3 error, 4 fatal


class DeviceError(RuntimeError):
    """The requested device cannot be used here (an environment problem: the CLI exits 2)."""


def _ort():
    import onnxruntime as ort

    ort.set_default_logger_severity(QUIET)
    return ort


def cuda_usable() -> bool:
    """True when torch sees a CUDA device and this onnxruntime build has the CUDA provider."""
    import torch

    return torch.cuda.is_available() and CUDA in _ort().get_available_providers()


def providers_for(device: str = "auto") -> list[str]:
    """The provider list to ask ONNX Runtime for; raises DeviceError for an unusable 'cuda'."""
    if device not in DEVICES:
        raise DeviceError(f"--device must be one of {', '.join(DEVICES)}. Received: '{device}'")
    if device == "cpu":
        return [CPU]
    import torch

    ort = _ort()
    if not torch.cuda.is_available():
        if device == "cuda":
            raise DeviceError("--device cuda: no CUDA device is available to PyTorch on this machine "
                              "(use --device cpu or auto)")
        return [CPU]
    if CUDA not in ort.get_available_providers():
        if device == "cuda":
            raise DeviceError("--device cuda: this onnxruntime build has no CUDAExecutionProvider "
                              "(install onnxruntime-gpu)")
        return [CPU]
    preload = getattr(ort, "preload_dlls", None)
    if preload is not None:  # load the CUDA/cuDNN libraries that torch ships, before ORT needs them
        try:
            preload()
        except Exception:  # noqa: BLE001 - a failed preload only means ORT falls back to CPU
            pass
    return [CUDA, CPU]


def create_session(model, device: str = "auto", *, threads: int | None = None):
    """An InferenceSession for `model` (a path or serialized bytes) on `device`.

    With device 'cuda', raises DeviceError unless CUDA is the provider that actually runs."""
    ort = _ort()
    options = ort.SessionOptions()
    options.log_severity_level = QUIET
    if threads:
        options.intra_op_num_threads = threads
    source = str(model) if isinstance(model, Path) else model
    session = ort.InferenceSession(source, sess_options=options, providers=providers_for(device))
    if device == "cuda" and active_provider(session) != CUDA:
        raise DeviceError(f"--device cuda: ONNX Runtime fell back to {active_provider(session)} "
                          "(CUDA provider failed to load; check the CUDA/cuDNN libraries)")
    return session


def active_provider(session) -> str:
    """The provider ORT actually uses first for this session."""
    return session.get_providers()[0]


def torch_device_for(provider: str) -> str:
    """The torch device matching an ORT provider, for side-by-side comparisons."""
    return "cuda" if provider == CUDA else "cpu"


def input_meta(session):
    """(name, shape without batch, numpy dtype) of the session's first input."""
    import numpy as np

    meta = session.get_inputs()[0]
    dtype = {"tensor(float)": np.float32, "tensor(float16)": np.float16,
             "tensor(double)": np.float64}.get(meta.type, np.float32)
    return meta.name, tuple(meta.shape[1:]), dtype
