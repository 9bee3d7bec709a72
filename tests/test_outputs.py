"""Every file archspec writes goes through archspec/io.py, and every way writing can go wrong
ends in one line and exit 2, with nothing left behind.

Devices and FIFOs are written in place (never replaced by a regular file), symbolic links are
written through, an existing file keeps its mode, no-overwrite is atomic, temporary files of
killed runs are recognisable and cleaned up, and standard output that is closed or full is
handled. Full and read-only file systems are real: a tiny tmpfs when the tests may mount one
(as root), the kernel's /dev/full for streams.
"""
from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from archspec import io
from conftest import ROOT, SPECS, run_cli

TINY = "archspec: 1\nname: tiny\ninput: [3, 8, 8]\nlayers:\n  - conv: {id: c1, out: 4, kernel: 3}\n" \
       "  - relu\n  - flatten\n  - linear: {id: fc, out: 5}\n"


def one_line_error(result, *words) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and result.returncode != -signal.SIGABRT
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def tiny_spec(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


def _mount(where: Path, options: str):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; the stream cases cover /dev/full without it")
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    return where


@pytest.fixture
def full_disk(tmp_path):
    """A 64 KiB file system: anything bigger than a few KiB fills it."""
    where = _mount(tmp_path / "full", "size=64k")
    yield where
    subprocess.run(["umount", str(where)], check=True)


@pytest.fixture
def read_only_dir(tmp_path):
    if os.geteuid() == 0:  # root ignores permission bits: use a read-only file system
        where = _mount(tmp_path / "ro", "size=64k,ro")
        yield where
        subprocess.run(["umount", str(where)], check=True)
        return
    where = tmp_path / "ro"
    where.mkdir()
    where.chmod(0o555)
    yield where
    where.chmod(0o755)


# ---- devices and streams ----------------------------------------------------------------------


def test_report_to_dev_null_leaves_it_a_device():
    before = os.stat("/dev/null")
    result = run_cli("report", SPECS / "vgg16.yaml", "-o", "/dev/null")
    assert result.returncode == 0, result.stderr
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full")
def test_report_to_dev_full_is_exit_2():
    result = run_cli("report", SPECS / "vgg16.yaml", "-o", "/dev/full")
    one_line_error(result, "/dev/full", "No space left on device")
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


def test_report_to_dev_stdout_writes_standard_output():
    result = run_cli("report", SPECS / "lenet5.yaml", "-o", "/dev/stdout")
    assert result.returncode == 0 and result.stdout.startswith("lenet5"), result.stderr


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full")
@pytest.mark.parametrize("command", [["report"], ["check"], ["schema"]])
def test_full_standard_output_is_exit_2(command):
    args = [*command] + ([] if command == ["schema"] else [str(SPECS / "lenet5.yaml")])
    with open("/dev/full", "w") as full:
        result = subprocess.run([sys.executable, "-m", "archspec", *args], stdout=full, stderr=subprocess.PIPE,
                                text=True, cwd=ROOT, timeout=120)
    one_line_error(result, "standard output", "No space left on device")
    assert "Exception ignored" not in result.stderr


def test_closed_pipe_on_standard_output_is_quiet():
    """The reader goes away (`archspec report x | true`): no message, no traceback, exit 2."""
    proc = subprocess.Popen([sys.executable, "-m", "archspec", "report", str(SPECS / "densenet201.yaml"),
                             "-f", "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    proc.stdout.close()  # 450 KB of JSON cannot fit in the pipe: writing fails with EPIPE
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 2 and stderr == "", stderr


def test_closed_standard_output(tmp_path):
    """Started with fd 1 closed (`>&-`): a result meant for stdout is an error, a file is not."""
    def run(*args):
        return subprocess.run([sys.executable, "-m", "archspec", *map(str, args)], stderr=subprocess.PIPE,
                              text=True, cwd=ROOT, timeout=120, preexec_fn=lambda: os.close(1))

    one_line_error(run("report", SPECS / "lenet5.yaml"), "standard output")
    done = run("report", SPECS / "lenet5.yaml", "-o", tmp_path / "r.txt")
    assert done.returncode == 0 and (tmp_path / "r.txt").read_text().startswith("lenet5"), done.stderr


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_is_written_in_place_or_refused_without_a_reader(tmp_path):
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    start = time.perf_counter()
    result = run_cli("report", SPECS / "lenet5.yaml", "-o", fifo)
    one_line_error(result, str(fifo), "no process is reading")
    assert time.perf_counter() - start < 60  # never blocks waiting for a reader
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE)
    time.sleep(0.2)
    result = run_cli("report", SPECS / "lenet5.yaml", "-o", fifo)
    assert result.returncode == 0, result.stderr
    assert reader.communicate(timeout=60)[0].decode().startswith("lenet5")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


# ---- regular files -------------------------------------------------------------------------


def test_existing_file_keeps_its_mode_and_new_files_follow_the_umask(tmp_path):
    target = tmp_path / "r.txt"
    target.write_text("old")
    target.chmod(0o640)
    io.write_bytes(target, b"new")
    assert target.read_bytes() == b"new" and stat.S_IMODE(target.stat().st_mode) == 0o640
    old = os.umask(0o027)
    try:
        io.write_bytes(tmp_path / "fresh.txt", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "fresh.txt").stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fresh.txt", "r.txt"]


def test_symlink_is_written_through(tmp_path):
    (tmp_path / "real.txt").write_text("old")
    (tmp_path / "link.txt").symlink_to("real.txt")
    (tmp_path / "dangling.txt").symlink_to("sub/new.txt")
    (tmp_path / "sub").mkdir()
    io.write_bytes(tmp_path / "link.txt", b"through")
    io.write_bytes(tmp_path / "dangling.txt", b"created")
    assert (tmp_path / "link.txt").is_symlink() and (tmp_path / "real.txt").read_bytes() == b"through"
    assert (tmp_path / "sub" / "new.txt").read_bytes() == b"created"


def test_symlink_loop_and_directory_are_exit_2(tmp_path):
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    one_line_error(run_cli("report", SPECS / "lenet5.yaml", "-o", tmp_path / "a"), "symbolic links")
    one_line_error(run_cli("report", SPECS / "lenet5.yaml", "-o", tmp_path), str(tmp_path), "is a directory")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]


def test_read_only_directory_is_exit_2(read_only_dir):
    for args in (["report", SPECS / "lenet5.yaml"], ["schema"]):
        target = read_only_dir / "out.txt"
        one_line_error(run_cli(*args, "-o", target), str(target))
    assert list(read_only_dir.iterdir()) == []


@pytest.mark.parametrize("command, name", [
    (["report", str(SPECS / "densenet201.yaml"), "-f", "json"], "r.json"),
    (["schema"], "schema.json"),
    (["graph", str(SPECS / "resnet18.yaml")], "g.svg"),
    (["build", str(SPECS / "resnet18.yaml")], "m.pth"),
    (["build", str(SPECS / "lenet5.yaml")], "m.pt2"),
    (["export", str(SPECS / "lenet5.yaml")], "m.onnx"),
])
def test_full_disk_is_exit_2_and_leaves_nothing(full_disk, command, name):
    result = run_cli(*command, "-o", full_disk / name)
    one_line_error(result, str(full_disk / name), "No space left on device")
    assert list(full_disk.iterdir()) == []


def test_no_overwrite_is_atomic(tmp_path):
    """The target appears after the early check, while the file is being made: publishing
    refuses it (hard link, not check-then-rename) and the other file is untouched."""
    target = tmp_path / "m.onnx"
    with pytest.raises(io.OutputExists):
        with io.output_file(target, overwrite=False) as tmp:
            tmp.write_bytes(b"mine")
            target.write_bytes(b"theirs")  # another run won the race
    assert target.read_bytes() == b"theirs"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


@pytest.mark.slow
def test_two_concurrent_exports_exactly_one_wins(tmp_path, tiny_spec):
    target = tmp_path / "m.onnx"
    cmd = [sys.executable, "-m", "archspec", "export", str(tiny_spec), "-o", str(target), "--no-verify"]
    procs = [subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [(p.wait(timeout=600), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, err in results if code == 2)
    assert "already exists" in loser and "Traceback" not in loser
    import onnx

    onnx.checker.check_model(str(target))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "tiny.yaml"]


def test_stale_temporaries_of_dead_runs_are_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its pid no longer runs (reuse within this test is vanishingly unlikely)
    stale = tmp_path / f".m.onnx.archspec-{dead.pid}-abc123_x.tmp.onnx"
    live = tmp_path / f".m.onnx.archspec-{os.getpid()}-zzz999_x.tmp.onnx"
    other = tmp_path / ".m.onnx.someone-else.tmp"
    for path in (stale, live, other):
        path.write_bytes(b"partial")
    io.write_bytes(tmp_path / "report.txt", b"x")
    assert not stale.exists() and live.exists() and other.exists()


@pytest.mark.slow
def test_killed_export_leaves_a_recognisable_temporary_that_the_next_run_removes(tmp_path, tiny_spec):
    proc = subprocess.Popen([sys.executable, "-m", "archspec", "export", str(tiny_spec), "-o",
                             str(tmp_path / "m.onnx")], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    temporaries = []
    while time.time() < deadline and not temporaries and proc.poll() is None:
        temporaries = [p for p in tmp_path.iterdir() if ".archspec-" in p.name]
        time.sleep(0.05)
    if not temporaries:
        proc.kill()
        pytest.skip("the export finished before its temporary file could be seen")
    proc.send_signal(signal.SIGKILL)
    if proc.wait() != -signal.SIGKILL:
        pytest.skip("the export finished just before it could be killed")
    if (tmp_path / "m.onnx").exists():  # killed after publishing, while it was exiting
        pytest.skip("the export had published its file just before it was killed")
    assert all(f".archspec-{proc.pid}-" in p.name for p in temporaries)
    result = run_cli("report", tiny_spec, "-o", tmp_path / "r.txt")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.txt", "tiny.yaml"]


def test_every_writer_refuses_a_directory_target(tmp_path, tiny_spec):
    target = tmp_path / "out.d"
    target.mkdir()
    for args in (["report", tiny_spec, "-o", target], ["schema", "-o", target]):
        one_line_error(run_cli(*args), str(target), "is a directory")
    for suffix, args in ((".dot", ["graph", tiny_spec]), (".pth", ["build", tiny_spec]),
                         (".onnx", ["export", tiny_spec])):
        path = tmp_path / f"dir{suffix}"
        path.mkdir()
        result = run_cli(*args, "-o", path)
        one_line_error(result, str(path))
        assert path.is_dir() and list(path.iterdir()) == []
