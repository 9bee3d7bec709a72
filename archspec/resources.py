"""The memory guard: refuse, before allocating anything, a model that cannot fit in the memory
this process may use.

    need = memory_estimate(graph, batch=2)
    limit = memory_limit()          # MemoryLimit(bytes, where it comes from), or None
    check_fits(graph, batch=2)      # raises ModelTooLarge (a MemoryError) when need > limit

What the estimate counts (a deliberate upper bound for eager PyTorch inference, fp32):

- the weights twice: the module's parameters, plus as much again for its buffers (batch-norm
  statistics) and the copy of the weights that exporting or saving makes;
- the input tensor and every layer's output at the given batch size, all kept at once (nothing
  freed early, no in-place reuse).

Not counted: transient workspaces inside one op (convolution algorithms, the unfolded input of a
locally connected layer), the Python and PyTorch runtime itself.

What the limit is: the smallest of the machine's physical memory, the memory limit of this
process's cgroup (v2 `memory.max`, or v1 `memory.limit_in_bytes`, the tightest of the cgroup
and its ancestors) and the address-space rlimit (`ulimit -v`).

All arithmetic is on Python integers (no overflow), and sizes print in readable units however
large they are. Torch-free: the static path may import this module.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

BYTES_PER_VALUE = 4  # fp32
WEIGHT_COPIES = 2  # the parameters, plus as much again for buffers and the copy export/saving makes
_UNLIMITED = 2 ** 60  # cgroup v1 writes "no limit" as a number near 2^63


class ModelTooLarge(MemoryError):
    """The model would not fit in the memory this process may use (the CLI exits 2).
    `need` and `limit` are in bytes."""

    def __init__(self, message: str, need: int, limit: int):
        super().__init__(message)
        self.need, self.limit = need, limit


@dataclass(frozen=True)
class MemoryLimit:
    bytes: int
    source: str  # "physical memory", "cgroup v2 memory.max", ...


# ---- the estimate ----------------------------------------------------------------------------


def memory_estimate(graph, batch: int = 1, *, training_heads: bool = False) -> int:
    """Upper bound on the bytes a forward pass of `graph` at `batch` allocates (see the module
    docstring for what it counts). Exact integer arithmetic."""
    from archspec.graph.analyze import analyze

    report = analyze(graph)
    layers = [s for s in report.layers if training_heads or not s.training_only]
    weights = sum(s.param_bytes for s in layers)
    values = math.prod(graph.input_shape) * BYTES_PER_VALUE + sum(s.activation_bytes for s in layers)
    return WEIGHT_COPIES * weights + batch * values


# ---- the limit -------------------------------------------------------------------------------


def memory_limit(proc: str | Path = "/proc", sys_root: str | Path = "/") -> MemoryLimit | None:
    """The tightest memory limit that applies to this process, or None if none can be read.
    `proc` and `sys_root` exist for tests (a fake /proc and file-system root)."""
    found = []
    physical = physical_memory()
    if physical:
        found.append(MemoryLimit(physical, "physical memory"))
    found += cgroup_limits(Path(proc), Path(sys_root))
    rlimit = _address_space_limit()
    if rlimit:
        found.append(MemoryLimit(rlimit, "address-space limit (ulimit -v)"))
    return min(found, key=lambda limit: limit.bytes) if found else None


def physical_memory() -> int | None:
    """This machine's memory in bytes, where the OS tells (Linux, macOS); else None."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _address_space_limit() -> int | None:
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    except (ImportError, AttributeError, ValueError, OSError):
        return None
    return soft if 0 < soft < _UNLIMITED else None


def cgroup_limits(proc: Path, sys_root: Path) -> list[MemoryLimit]:
    """Memory limits of this process's cgroup and its ancestors, v2 and v1 (both may be
    mounted; each that applies counts)."""
    try:
        membership = (proc / "self" / "cgroup").read_text()
        mounts = (proc / "self" / "mountinfo").read_text()
    except OSError:
        return []
    limits = []
    for line in membership.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":  # cgroup v2 (the unified hierarchy)
            files, version = ("memory.max",), "cgroup v2"
            mount = _mount(mounts, "cgroup2", None)
        elif "memory" in controllers.split(","):
            files, version = ("memory.limit_in_bytes",), "cgroup v1"
            mount = _mount(mounts, "cgroup", "memory")
        else:
            continue
        if mount is None:
            continue
        for directory in _ancestors(sys_root, mount, path):
            for name in files:
                value = _read_limit(directory / name)
                if value is not None:
                    limits.append(MemoryLimit(value, f"{version} {name} ({directory / name})"))
    return limits


def _mount(mountinfo: str, fstype: str, option: str | None):
    """(mount point, root inside the hierarchy) of the first mount of `fstype` (with `option`
    among its super options, for cgroup v1), from /proc/self/mountinfo."""
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or len(tail) < 3 or tail[0] != fstype:
            continue
        if option is not None and option not in tail[2].split(","):
            continue
        return fields[4], fields[3]
    return None


def _ancestors(sys_root: Path, mount, path: str) -> list[Path]:
    """The cgroup's directory under its mount point and every ancestor up to the mount point."""
    point, root = mount
    path = path.strip()
    if root != "/" and path.startswith(root):  # the mount shows a sub-tree of the hierarchy
        path = path[len(root):]
    parts = [p for p in path.split("/") if p and p not in (".", "..")]
    base = sys_root / point.lstrip("/")
    return [base.joinpath(*parts[:k]) for k in range(len(parts), -1, -1)]


def _read_limit(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except (OSError, ValueError):
        return None
    if not text.isdigit():  # "max": no limit
        return None
    value = int(text)
    return value if 0 < value < _UNLIMITED else None


# ---- the check -------------------------------------------------------------------------------


def check_fits(graph, batch: int = 1, *, training_heads: bool = False, limit: MemoryLimit | None = None,
               hint: str = "use a smaller input or batch") -> int:
    """Raise ModelTooLarge if `graph` at `batch` needs more than the memory limit; returns the
    estimate. `limit` defaults to memory_limit()."""
    need = memory_estimate(graph, batch, training_heads=training_heads)
    limit = limit if limit is not None else memory_limit()
    if limit is not None and need > limit.bytes:
        raise ModelTooLarge(
            f"{graph.name} needs about {format_bytes(need)} (fp32 weights x{WEIGHT_COPIES}, the input "
            f"and every activation at batch {batch}), more than the {format_bytes(limit.bytes)} of "
            f"{limit.source}; {hint}", need, limit.bytes)
    return need


_UNITS = ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")


def format_bytes(n: int) -> str:
    """'1.5 GiB'; beyond 1024 YiB "10^28 bytes" (integer arithmetic: never overflows)."""
    n = int(n)
    if n < 1024:
        return f"{n} bytes"
    for power, unit in enumerate(_UNITS[1:], start=1):
        if n < 1024 ** (power + 1):
            return f"{n / 1024 ** power:,.1f} {unit}"
    return f"10^{math.floor(math.log10(n))} bytes"  # log10 takes integers of any size
