"""File output: every command that writes a file (`report -o`, `graph -o`, `build -o`,
`export -o`, `schema -o`, `run -o`) goes through here.

    write_bytes("out/report.json", data)              # bytes we hold
    with output_file("m.onnx", overwrite=False) as tmp:  # a tool writes the file itself
        program.save(tmp)

What happens to the target:

- A regular file, new or existing, is written atomically: the data goes to a temporary file
  in the same directory, is flushed to disk, then renamed over the target. A reader sees the
  old file or the new one, never half of one. A new file gets the mode `open()` would give it
  (0666 minus the umask); an existing one keeps its permission bits (and its owner, where the
  process may set it).
- Without overwriting (`overwrite=False`, `export` without `--force`), the finished file is
  published with a hard link, which fails if the target appeared meanwhile: of two concurrent
  runs exactly one wins, the other gets `OutputExists`.
- Not a regular file: a character device (`/dev/null`) or a FIFO is written to directly and
  never replaced (a FIFO must already have a reader: nothing blocks); `/dev/stdout`,
  `/dev/stderr` and `/dev/fd/N` write to this process's own descriptor. Block devices,
  sockets and directories are refused.
- A symbolic link is written through: the file it points to is replaced (in its own
  directory) and the link stays. A dangling link creates its target; a loop is an error.
- Temporary files are named `.<name>.archspec-<pid>-<random>.tmp...`; each write removes
  those in its directory whose process is no longer running (left by a killed run).
- Every failure (missing permission, read-only or full file system, a directory in the way)
  raises `OutputError` with the path and the system's reason; nothing is left behind.
"""
from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import stat
import sys
import tempfile
from pathlib import Path

MAX_LINKS = 40  # symbolic links followed, as the kernel does
_STALE = re.compile(r"^\..*\.archspec-(\d+)-[a-z0-9_]+\.tmp")
_FD = re.compile(r"^/proc/(?:self|thread-self|%d)/fd/(\d+)$" % os.getpid())


class OutputError(OSError):
    """A file could not be written: `path` and the reason (the CLI exits 2)."""

    def __init__(self, path, reason: str, code: int = 0):
        super().__init__(code or errno.EIO, reason)
        self.path, self.reason = str(path), reason

    def __str__(self) -> str:
        return f"cannot write {self.path}: {self.reason}"


class OutputExists(OutputError, FileExistsError):
    """The target exists and overwriting was not asked for."""

    def __init__(self, path):
        super().__init__(path, "it already exists (use --force to overwrite)", errno.EEXIST)

    def __str__(self) -> str:
        return f"{self.path} already exists (use --force to overwrite)"


def write_bytes(path, data: bytes, *, overwrite: bool = True) -> None:
    """Write `data` to `path` by the rules in the module docstring."""
    with output_file(path, overwrite=overwrite) as tmp:
        with _reraise(tmp, path):
            with open(tmp, "wb") as fh:
                fh.write(data)


write_atomic = write_bytes  # the older name


@contextlib.contextmanager
def output_file(path, *, overwrite: bool = True):
    """Yield a temporary path for a tool to write the file into; when the block succeeds it
    becomes `path` (published by the module's rules), when it raises nothing is left."""
    shown = path
    where = _resolve(path)
    if isinstance(where, int) or _special(where, shown, overwrite):
        with tempfile.TemporaryDirectory(prefix="archspec-out-") as scratch:
            tmp = Path(scratch) / (Path(str(path)).name or "output")
            with _reraise(tmp, shown):  # a full or failing disk while the tool writes
                yield tmp
            _stream(tmp, where, shown)
        return
    tmp = _temporary(where, shown)
    try:
        with _reraise(tmp, shown):
            yield tmp
        _publish(tmp, where, shown, overwrite)
    finally:
        _remove(tmp)


# ---- where the bytes go ------------------------------------------------------------------


def _resolve(path):
    """The regular-file path to replace (symbolic links followed), or the number of this
    process's file descriptor when the path names one (/dev/stdout, /dev/fd/1)."""
    current = os.path.abspath(os.fspath(path))
    if str(path).endswith(os.sep):
        raise OutputError(path, "is a directory", errno.EISDIR)
    for _ in range(MAX_LINKS):
        parent, leaf = os.path.split(current)
        current = os.path.join(os.path.realpath(parent), leaf)
        fd = _FD.match(current)
        if fd:
            return int(fd.group(1))
        if not os.path.islink(current):
            return Path(current)
        try:
            current = os.path.join(os.path.dirname(current), os.readlink(current))
        except OSError as exc:
            raise OutputError(path, _reason(exc), exc.errno) from None
    raise OutputError(path, "too many levels of symbolic links", errno.ELOOP)


def _special(where: Path, shown, overwrite: bool) -> bool:
    """True when `where` exists and is not a regular file (written in place); raises for what
    cannot be written at all."""
    try:
        info = os.stat(where)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise OutputError(shown, _reason(exc), exc.errno) from None
    if stat.S_ISREG(info.st_mode):
        if not overwrite:
            raise OutputExists(shown)
        return False
    if stat.S_ISDIR(info.st_mode):
        raise OutputError(shown, "is a directory", errno.EISDIR)
    if not overwrite:
        raise OutputExists(shown)
    if stat.S_ISBLK(info.st_mode) or stat.S_ISSOCK(info.st_mode):
        kind = "a block device" if stat.S_ISBLK(info.st_mode) else "a socket"
        raise OutputError(shown, f"is {kind}; archspec writes files, character devices and FIFOs only")
    return True


def _stream(tmp: Path, where, shown) -> None:
    """Copy the finished temporary file to a descriptor or a device/FIFO, in place."""
    try:
        if isinstance(where, int):
            if where in (1, 2):
                (sys.stdout if where == 1 else sys.stderr).flush()
            _copy(tmp, where, shown)
            return
        flags = os.O_WRONLY | getattr(os, "O_NOCTTY", 0)
        if stat.S_ISFIFO(os.stat(where).st_mode):
            try:  # non-blocking open: fails at once (ENXIO) when nobody reads the FIFO
                fd = os.open(where, flags | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno == errno.ENXIO:
                    raise OutputError(shown, "no process is reading from this FIFO", exc.errno) from None
                raise
            os.set_blocking(fd, True)
        else:
            fd = os.open(where, flags)
        try:
            _copy(tmp, fd, shown)
        finally:
            os.close(fd)
    except OutputError:
        raise
    except OSError as exc:
        raise OutputError(shown, _reason(exc), exc.errno) from None


def _copy(tmp: Path, fd: int, shown) -> None:
    with open(tmp, "rb") as src:
        while chunk := src.read(1 << 20):
            view = memoryview(chunk)
            while view:
                try:
                    view = view[os.write(fd, view):]
                except OSError as exc:
                    raise OutputError(shown, _reason(exc), exc.errno) from None


# ---- regular files: temporary file beside the target, then rename or link ------------------


def _temporary(where: Path, shown) -> Path:
    directory = where.parent
    with _reraise(directory, shown):
        directory.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(directory)
    prefix = f".{where.name[:80]}.archspec-{os.getpid()}-"
    with _reraise(where, shown):
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=prefix, suffix=".tmp" + where.suffix[:16])
        os.close(fd)
    return Path(tmp)


def _publish(tmp: Path, where: Path, shown, overwrite: bool) -> None:
    with _reraise(where, shown):
        _settle(tmp, where)
        if overwrite:
            os.replace(tmp, where)
            return
        try:
            os.link(tmp, where)  # atomic: fails if the target exists
        except FileExistsError:
            raise OutputExists(shown) from None
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                raise
            _exclusive_copy(tmp, where, shown)  # a file system without hard links


def _settle(tmp: Path, where: Path) -> None:
    """Give the temporary file its final mode (and owner), and flush it to disk."""
    try:
        old = os.stat(where)
    except FileNotFoundError:
        old = None
    mode = stat.S_IMODE(old.st_mode) if old else 0o666 & ~_umask()
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fchmod(fd, mode)
        if old is not None and (old.st_uid, old.st_gid) != _owner(fd):
            with contextlib.suppress(OSError):
                os.fchown(fd, old.st_uid, old.st_gid)
        os.fsync(fd)
    finally:
        os.close(fd)


def _owner(fd: int):
    info = os.fstat(fd)
    return info.st_uid, info.st_gid


def _exclusive_copy(tmp: Path, where: Path, shown) -> None:
    try:
        fd = os.open(where, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        raise OutputExists(shown) from None
    try:
        _copy(tmp, fd, shown)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        _remove(where)
        raise
    os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def remove_stale_temporaries(directory: Path) -> list[Path]:
    """Remove temporary files an archspec process left in `directory` when it was killed (its
    pid, in the name, no longer runs). Returns what was removed."""
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        match = _STALE.match(name)
        if not match or _running(int(match.group(1))):
            continue
        path = Path(directory) / name
        with contextlib.suppress(OSError):
            if stat.S_ISREG(os.lstat(path).st_mode):
                path.unlink()
                removed.append(path)
    return removed


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return pid > 0  # someone else's live process (or a number no process has)
    return True


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError, IsADirectoryError, NotADirectoryError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink()


@contextlib.contextmanager
def _reraise(path, shown):
    """OSError -> OutputError naming the target the user gave."""
    try:
        yield
    except OutputError:
        raise
    except OSError as exc:
        raise OutputError(shown, _reason(exc), exc.errno) from None


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


# ---- compatibility with callers written before output_file --------------------------------


def publish(tmp, path) -> None:
    """Move a finished temporary file (from `atomic_target`) into place."""
    where = _resolve(path)
    if isinstance(where, int) or _special(where, path, True):
        _stream(Path(tmp), where, path)
        _remove(Path(tmp))
        return
    _publish(Path(tmp), where, path, True)


def atomic_target(path) -> Path:
    """A temporary path beside `path` (for a tool that writes files itself); hand it to
    `publish` when done, and remove it on failure. Prefer `output_file`."""
    where = _resolve(path)
    if isinstance(where, int):
        return Path(tempfile.mkdtemp(prefix="archspec-out-")) / "output"
    return _temporary(where, path)
