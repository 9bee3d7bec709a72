"""ONNX Runtime sessions: pick the execution provider, keep CPU-only machines quiet, and
report the provider that actually runs (ORT silently falls back to CPU when CUDA fails).

    session = create_session("model.onnx", device="auto")
    active_provider(session)  # 'CPUExecutionProvider' or 'CUDAExecutionProvider'

Imports neither torch nor the rest of the compiler: deployment machines often have ONNX
Runtime only (`pip install 'archspec[runtime]'`), and `archspec run model.onnx` must start fast.
"""
from __future__ import annotations

import ctypes
import functools
import math
import sys
from dataclasses import dataclass
from pathlib import Path

DEVICES = ("auto", "cpu", "cuda")
CPU, CUDA = "CPUExecutionProvider", "CUDAExecutionProvider"
QUIET = 3  # ORT log severity: 0 verbose, 1 info, 2 warning, 3 error, 4 fatal

# The CUDA driver library, per platform; macOS has had no CUDA driver for years.
CUDA_DRIVER = {"linux": ("libcuda.so.1", "libcuda.so"), "win32": ("nvcuda.dll",)}


class DeviceError(RuntimeError):
    """The requested device cannot be used here (an environment problem: the CLI exits 2)."""


class ModelInputError(ValueError):
    """The model's inputs are not something `archspec run`/`bench` can feed (exit 2)."""


def _ort():
    import onnxruntime as ort

    ort.set_default_logger_severity(QUIET)
    return ort


@functools.lru_cache(maxsize=None)
def cuda_device_count() -> int:
    """CUDA devices the driver reports (honouring CUDA_VISIBLE_DEVICES), asked through the
    driver API with ctypes: `cuInit`, `cuDeviceGetCount`. Needs no torch and no CUDA toolkit,
    only the driver that any GPU machine has; 0 where there is no driver or no device."""
    for name in CUDA_DRIVER.get(sys.platform, ()):
        try:
            driver = ctypes.CDLL(name)
        except OSError:
            continue
        count = ctypes.c_int(0)
        try:
            if driver.cuInit(0) != 0 or driver.cuDeviceGetCount(ctypes.byref(count)) != 0:
                return 0  # a driver without a usable device (CUDA_ERROR_NO_DEVICE and the like)
        except AttributeError:  # not a CUDA driver after all
            return 0
        return count.value
    return 0


def cuda_usable() -> bool:
    """True when a CUDA device exists and this onnxruntime build has the CUDA provider."""
    return cuda_device_count() > 0 and CUDA in _ort().get_available_providers()


def providers_for(device: str = "auto") -> list[str]:
    """The provider list to ask ONNX Runtime for; raises DeviceError for an unusable 'cuda'."""
    if device not in DEVICES:
        raise DeviceError(f"--device must be one of {', '.join(DEVICES)}. Received: '{device}'")
    if device == "cpu":
        return [CPU]
    ort = _ort()
    if cuda_device_count() == 0:
        if device == "cuda":
            raise DeviceError("--device cuda: no CUDA device on this machine (use --device cpu or auto)")
        return [CPU]
    if CUDA not in ort.get_available_providers():
        if device == "cuda":
            raise DeviceError("--device cuda: this onnxruntime build has no CUDAExecutionProvider "
                              "(install onnxruntime-gpu)")
        return [CPU]
    preload = getattr(ort, "preload_dlls", None)
    if preload is not None:  # load CUDA/cuDNN from the nvidia-* wheels before ORT needs them
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


# ---- the model's input -----------------------------------------------------------------------

# ORT's type names of the inputs random or .npy data can feed (images: floating point)
FLOAT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64"}


@dataclass(frozen=True)
class ModelInput:
    """The one input of a model: its name, the shape after the batch axis, the numpy dtype
    name, and the batch size the model fixes (None when the batch axis is free)."""
    name: str
    shape: tuple[int, ...]
    dtype: str
    fixed_batch: int | None = None

    def nbytes(self, batch: int) -> int:
        import numpy as np

        return batch * math.prod(self.shape) * np.dtype(self.dtype).itemsize


def model_input(session, source: str = "the model") -> ModelInput:
    """The single floating-point input of `session`, with fixed sizes after the batch axis;
    ModelInputError (one line, naming `source`) otherwise."""
    inputs = session.get_inputs()
    if not inputs:
        raise ModelInputError(f"{source} has no inputs; archspec feeds models that take one image tensor")
    if len(inputs) > 1:
        names = ", ".join(f"'{m.name}'" for m in inputs)
        raise ModelInputError(f"{source} has {len(inputs)} inputs ({names}); archspec feeds models "
                              "that take one image tensor")
    meta = inputs[0]
    if meta.type not in FLOAT_TYPES:
        raise ModelInputError(f"{source}: input '{meta.name}' is {meta.type}; archspec feeds "
                              f"floating-point tensors ({', '.join(FLOAT_TYPES)})")
    shape = list(meta.shape or [])
    if len(shape) < 2:
        raise ModelInputError(f"{source}: input '{meta.name}' has shape {shape}; archspec feeds "
                              "[batch, C, ...] tensors")
    if any(not isinstance(d, int) or d < 1 for d in shape[1:]):
        raise ModelInputError(f"{source}: input '{meta.name}' has shape {shape}: only the batch axis "
                              "may be free (archspec models have a fixed C, H, W)")
    fixed = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
    return ModelInput(meta.name, tuple(shape[1:]), FLOAT_TYPES[meta.type], fixed)


# A CNN's first activations are several times its input (ResNet's stem 5x, VGG's first block
# 21x), so an input over an eighth of the machine's memory cannot run; 4 GiB where it is unknown.
INPUT_SHARE, INPUT_CAP_UNKNOWN = 8, 4 << 30


def check_feedable(spec: ModelInput, batch: int, memory: int | None, source: str = "the model") -> None:
    """Refuse, before allocating, a batch the model does not accept or an input too large for
    this machine (`memory`: its bytes, None when unknown)."""
    if spec.fixed_batch is not None and batch != spec.fixed_batch:
        raise ModelInputError(f"{source}: input '{spec.name}' fixes the batch size at "
                              f"{spec.fixed_batch}; use --batch {spec.fixed_batch}")
    need = spec.nbytes(batch)
    limit = memory // INPUT_SHARE if memory else INPUT_CAP_UNKNOWN
    if need > limit:
        dims = "x".join(map(str, (batch, *spec.shape)))
        where = (f"an eighth of this machine's {memory / 2**30:,.1f} GiB" if memory
                 else f"{limit / 2**30:,.0f} GiB")
        raise ModelInputError(f"{source}: input '{spec.name}' [{dims}] {spec.dtype} alone needs "
                              f"{need / 2**30:,.1f} GiB, more than {where} (the activations need "
                              "several times more)" + ("; use a smaller --batch" if batch > 1 else ""))
