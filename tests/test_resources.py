"""The memory guard (archspec/resources.py): counts the input, honours cgroup v2 and v1 limits
and `ulimit -v`, prints any size sensibly, and guards the Python API too."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import archspec
from archspec import resources
from archspec.resources import MemoryLimit, ModelTooLarge, cgroup_limits, format_bytes, memory_estimate
from conftest import ROOT, run_cli

BIG_INPUT = ("archspec: 1\nname: big_input\ninput: [3, 100000, 32000]\nlayers:\n"
             "  - conv: {out: 1, kernel: 1, stride: 1000}\n")  # a 38 GB input, a 3.2 KB output


def test_estimate_counts_the_input():
    graph = archspec.expand(archspec.loads(BIG_INPUT))
    report = archspec.analyze(graph)
    need = memory_estimate(graph, 2)
    assert need == 2 * report.totals["param_bytes"] + 2 * (3 * 100000 * 32000 * 4 + report.totals["activation_bytes"])
    assert need > 76 * 10 ** 9  # two 38 GB inputs, where the review's guard saw 1.9 MB


def _fake_tree(root: Path, membership: str, mounts: str, files: dict) -> tuple[Path, Path]:
    proc = root / "proc" / "self"
    proc.mkdir(parents=True)
    (proc / "cgroup").write_text(membership)
    (proc / "mountinfo").write_text(mounts)
    for name, text in files.items():
        path = root / "sys" / name.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "proc", root / "sys"


V2_MOUNT = "30 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw\n"
V1_MOUNT = ("35 25 0:30 / /sys/fs/cgroup/memory rw,nosuid shared:15 - cgroup cgroup rw,memory\n"
            "36 25 0:31 / /sys/fs/cgroup/cpu rw,nosuid shared:16 - cgroup cgroup rw,cpu,cpuacct\n")


def test_cgroup_v2_limit_of_the_process_and_its_ancestors(tmp_path):
    proc, root = _fake_tree(tmp_path, "0::/user.slice/job\n", V2_MOUNT, {
        "sys/fs/cgroup/user.slice/job/memory.max": "max\n",
        "sys/fs/cgroup/user.slice/memory.max": f"{4 * 2**30}\n",
    })
    limits = cgroup_limits(proc, root)
    assert [lim.bytes for lim in limits] == [4 * 2 ** 30] and "cgroup v2" in limits[0].source


def test_cgroup_v1_limit_and_the_no_limit_value(tmp_path):
    proc, root = _fake_tree(tmp_path, "5:cpu,cpuacct:/x\n4:memory:/docker/abc\n", V1_MOUNT, {
        "sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": f"{2 * 2**30}\n",
        "sys/fs/cgroup/memory/docker/memory.limit_in_bytes": "9223372036854771712\n",  # no limit
    })
    limits = cgroup_limits(proc, root)
    assert [lim.bytes for lim in limits] == [2 * 2 ** 30] and "cgroup v1" in limits[0].source


def test_cgroup_namespace_root_and_unreadable_files(tmp_path):
    # Inside a container the process sees itself at the root of a hierarchy mounted at its root.
    mounts = "40 30 0:40 /docker/abc /sys/fs/cgroup ro - cgroup2 cgroup2 rw\n"
    proc, root = _fake_tree(tmp_path, "0::/docker/abc\n", mounts, {"sys/fs/cgroup/memory.max": "1073741824\n"})
    assert [lim.bytes for lim in cgroup_limits(proc, root)] == [2 ** 30]
    assert cgroup_limits(tmp_path / "nowhere", root) == []


def test_the_tightest_limit_wins(tmp_path, monkeypatch):
    proc, root = _fake_tree(tmp_path, "0::/\n", V2_MOUNT, {"sys/fs/cgroup/memory.max": "1048576\n"})
    limit = resources.memory_limit(proc, tmp_path / "sys")
    assert limit.bytes == 2 ** 20 and "cgroup v2" in limit.source


def test_address_space_rlimit_is_honoured():
    code = ("import resource; resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, resource.RLIM_INFINITY)); "
            "from archspec.resources import memory_limit; l = memory_limit(); print(l.bytes, l.source)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    got, source = out.stdout.split(" ", 1)
    assert int(got) <= 3 * 2 ** 30 and ("ulimit -v" in source or int(got) < 3 * 2 ** 30)


SIZES = [(0, "0 bytes"), (1023, "1023 bytes"), (1536, "1.5 KiB"), (38 * 10 ** 9, "35.4 GiB"),
         (2 ** 80, "1.0 YiB"), (10 ** 30, "10^30 bytes"), (10 ** 400, "10^400 bytes"),
         (7 ** 20000, "10^16901 bytes")]


@pytest.mark.parametrize("n, text", SIZES, ids=[text for _, text in SIZES])
def test_sizes_print_sensibly_however_large(n, text):
    assert format_bytes(n) == text


def test_astronomical_model_message_is_sane(write_spec):
    """Dimensions near 2^53 everywhere: the estimate is exact and the message readable."""
    path = write_spec("archspec: 1\ninput: [9007199254740991, 9007199254740991, 9007199254740991]\n"
                      "layers:\n  - relu\n  - relu\n")
    result = run_cli("build", path)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "needs about 10^" in result.stderr and "bytes" in result.stderr, result.stderr


def test_python_api_refuses_unless_forced(monkeypatch):
    spec = archspec.loads("archspec: 1\ninput: [3, 64, 64]\nlayers:\n  - conv: {out: 8, kernel: 3}\n")
    graph = archspec.expand(spec)
    need = memory_estimate(graph, 1)
    monkeypatch.setattr(resources, "memory_limit", lambda: MemoryLimit(need - 1, "a test limit"))
    with pytest.raises(ModelTooLarge) as info:
        archspec.build(spec)
    assert isinstance(info.value, MemoryError) and info.value.need == need
    assert "a test limit" in str(info.value) and "force=True" in str(info.value)
    assert archspec.build(spec, force=True) is not None
    monkeypatch.setattr(resources, "memory_limit", lambda: MemoryLimit(need, "a test limit"))
    assert archspec.build(spec) is not None  # exactly enough is enough
