import ctypes
import ctypes.util
import gc
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"


# the smallest network the CLI tests export, run and bench: a few seconds end to end
TINY_SPEC = """\
archspec: 1
name: tiny
input: [3, 8, 8]
layers:
  - conv: {id: c1, out: 4, kernel: 3, padding: 1}
  - relu
  - flatten
  - linear: {id: fc, out: 6}
"""


def zoo_specs():
    """Every spec in the zoo, found at collection time so a new spec is tested automatically."""
    return sorted(SPECS.glob("*.yaml"))


@pytest.fixture
def write_spec(tmp_path):
    """Write spec text to a file in a temporary directory and return its path."""

    def write(text: str, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


@pytest.fixture
def one_torch_thread():
    """One torch thread: the tensors in these tests are small, and on a busy 2-core runner
    two threads spin-wait on each other (10x slower). Restores the setting afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


_LIBC = ctypes.CDLL(ctypes.util.find_library("c")) if sys.platform.startswith("linux") else None
HEAVY_TEST_SECONDS = 1.0


@pytest.fixture(autouse=True)
def release_memory_after_heavy_tests():
    """After a test that ran for a second or more (one that built, ran or exported a real
    network), collect the garbage and give the freed heap back to the system. ONNX export
    leaves reference cycles that only a full collection frees, and glibc keeps freed memory
    for the process: without this, a worker running the VGG exports one after another grew
    by half a GiB per test, and two such workers can exhaust a 24 GiB runner."""
    start = time.perf_counter()
    yield
    if time.perf_counter() - start >= HEAVY_TEST_SECONDS:
        gc.collect()
        if _LIBC is not None and hasattr(_LIBC, "malloc_trim"):
            _LIBC.malloc_trim(0)


def run_cli(*args, env=None, cwd=None):
    """Run the real CLI in a subprocess, as a user would."""
    return subprocess.run([sys.executable, "-m", "archspec", *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=cwd or ROOT, timeout=600)
