"""When and where documents are analysed: debouncing, one worker process, cancelling stale
analyses, and a time guard.

Each change to a document restarts its debounce timer; when it fires, the document's latest
text is queued. One runner task sends queued documents, one at a time, to the worker process
and awaits the answer without blocking the event loop. An answer for a version that is no
longer the latest is dropped; an analysis that is still running when a newer version arrives
is given `STALE_GRACE` seconds to finish (most take milliseconds) and is then cancelled by
killing the worker (a fresh one starts for the next analysis). An analysis that runs past the
time guard is stopped the same way and reported on the document.

A spec that `extends` another open document is checked against that document's buffer, saved or
not: each request carries the texts of the other open specs (`overlay`, by resolved path). So a
change to a document (after its debounce), its opening and its closing also queue the open
documents composed from it (`FileModel.files`, the whole `extends` chain).
"""
from __future__ import annotations

import asyncio
import logging
import os
import pickle
import sys
from dataclasses import dataclass, field
from pathlib import Path

import archspec
from archspec.lsp.analysis import is_spec
from archspec.lsp.model import FileModel, Problem, Span, split_lines
from archspec.lsp.worker import HEADER
from archspec.spec.load import MAX_BYTES

STALE_GRACE = 0.25  # seconds a stale analysis may go on before it is cancelled
OVERLAY_CHARS = 4 * MAX_BYTES  # at most this much buffer text goes with one request
logger = logging.getLogger(__name__)


class WorkerGone(Exception):
    pass


class Worker:
    """The analysis worker process, spoken to over its stdin and stdout."""

    def __init__(self):
        self.proc: asyncio.subprocess.Process | None = None
        self.lock = asyncio.Lock()  # one request on the pipe at a time
        self.ready = False  # started and idle or working (not starting, not killed)

    async def start(self) -> None:
        env = dict(os.environ)
        package_root = str(Path(archspec.__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "archspec.lsp.worker", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, env=env, limit=2 ** 26)
        async with self.lock:
            await self._read()  # the worker says it is ready once its imports are done
        self.ready = True

    @property
    def alive(self) -> bool:
        """Running and not killed (a killed process is not reaped at once)."""
        return self.ready and self.proc.returncode is None

    async def request(self, obj):
        data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        async with self.lock:
            try:
                self.proc.stdin.write(HEADER.pack(len(data)) + data)
                await self.proc.stdin.drain()
            except (ConnectionError, RuntimeError) as exc:
                raise WorkerGone(str(exc)) from None
            return await self._read()

    async def _read(self):
        try:
            head = await self.proc.stdout.readexactly(HEADER.size)
            (size,) = HEADER.unpack(head)
            return pickle.loads(await self.proc.stdout.readexactly(size))
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            raise WorkerGone(str(exc)) from None

    async def exit_code(self):
        try:
            return await asyncio.wait_for(self.proc.wait(), 2)
        except asyncio.TimeoutError:
            self.kill()
            return None

    def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
        self.ready = False

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.stdin.close()  # the worker exits at end of input
            try:
                await asyncio.wait_for(self.proc.wait(), 2)
            except asyncio.TimeoutError:
                self.proc.kill()


@dataclass
class Document:
    uri: str
    file: str
    base_dir: str
    version: int | None
    text: str
    path: str | None = None  # the resolved file a base's `extends` names; None for an untitled buffer
    revision: int = 0  # counts the changes to this text and to the open bases it extends
    model: FileModel | None = None  # of the latest analysed version
    good: FileModel | None = None  # the latest model whose YAML parsed (hints on broken text)
    timer: asyncio.TimerHandle | None = None
    analysed: asyncio.Event = field(default_factory=asyncio.Event)  # set: model is of `version`


@dataclass
class Job:
    uri: str
    revision: int
    started: float
    cancelled: bool = False


class Analyzer:
    """The documents the editor has open and their analyses. `publish(document, model)` is
    called with each model of a document's latest version."""

    def __init__(self, publish, debounce: float = 0.15, time_limit: float = 10.0,
                 allow_outside: bool = False):
        self.publish = publish
        self.debounce = debounce
        self.time_limit = time_limit
        self.allow_outside = allow_outside  # may 'extends' leave a spec's project
        self.documents: dict[str, Document] = {}
        self.pending: dict[str, None] = {}  # uris to analyse, oldest request first
        self.wake = asyncio.Event()
        self.worker = Worker()
        self.job: Job | None = None
        self.runner: asyncio.Task | None = None
        self.starting: asyncio.Task | None = None
        self.timings: list[float] = []  # seconds the worker took, latest analyses

    # ---- what the server calls -----------------------------------------------------------

    def start(self) -> None:
        """Start the runner and the worker (its imports take a moment: do them before the
        first document arrives)."""
        if self.runner is None:
            self.starting = asyncio.ensure_future(self._start_worker())
            self.runner = asyncio.ensure_future(self._run())

    async def _start_worker(self) -> None:
        self.worker = Worker()
        await self.worker.start()

    async def _ready_worker(self) -> None:
        if self.starting is not None and not self.starting.done():
            await self.starting
        if not self.worker.alive:
            self.starting = asyncio.ensure_future(self._start_worker())
            await self.starting

    def update(self, uri: str, version, text: str, file: str, base_dir: str, immediate: bool = False):
        document = self.documents.get(uri)
        if document is None:
            path = os.path.realpath(file) if os.path.isabs(file) else None
            document = self.documents[uri] = Document(uri, file, base_dir, version, text, path)
        document.version, document.text = version, text
        document.revision += 1
        document.analysed.clear()
        if document.timer is not None:
            document.timer.cancel()
        if immediate or self.debounce <= 0:
            self._changed(uri)
        else:
            document.timer = asyncio.get_running_loop().call_later(self.debounce, self._changed, uri)

    def close(self, uri: str) -> None:
        """Forget a document; the open specs that extend it are checked again, against the
        file on disk."""
        document = self.documents.pop(uri, None)
        if document is not None and document.timer is not None:
            document.timer.cancel()
        self.pending.pop(uri, None)
        if document is not None:
            self._recheck_dependents(document)

    async def model(self, uri: str, wait: float = 1.0) -> Document | None:
        """The document, once its latest version is analysed (or after `wait` seconds, with
        whatever model it has then)."""
        document = self.documents.get(uri)
        if document is None:
            return None
        if not document.analysed.is_set() and wait > 0:
            try:
                await asyncio.wait_for(document.analysed.wait(), wait)
            except asyncio.TimeoutError:
                pass
        return document

    async def shutdown(self) -> None:
        if self.runner is not None:
            self.runner.cancel()
        await self.worker.stop()

    # ---- the runner ------------------------------------------------------------------------

    def _changed(self, uri: str) -> None:
        """A document's text is final for now: check it, and the open specs that extend it."""
        self._queue(uri)
        document = self.documents.get(uri)
        if document is not None:
            self._recheck_dependents(document)

    def _recheck_dependents(self, base: Document) -> None:
        """Queue the open documents composed from `base` (directly or through a chain), their
        versions unchanged."""
        if base.path is None:
            return
        for uri, document in list(self.documents.items()):
            model = document.model
            if document is base:
                continue
            if model is None:  # not checked yet: only a check under way may have read the old text
                composed = self.job is not None and self.job.uri == uri
            else:
                composed = base.path in model.files or base.file in model.files
            if composed:
                document.revision += 1
                document.analysed.clear()
                if document.timer is None:  # a pending timer will queue it anyway
                    self._queue(uri)

    def _overlay(self, document: Document) -> dict:
        """The texts of the other open specs, by resolved path, for a document that extends
        one (the bases it was composed from last time first), up to OVERLAY_CHARS in all; a
        base beyond that is read from the disk."""
        if "extends" not in document.text:
            return {}
        known = set(document.model.files) if document.model is not None else set()
        others = sorted((d for d in self.documents.values() if d is not document and d.path is not None),
                        key=lambda d: d.path not in known)
        overlay, left = {}, OVERLAY_CHARS
        for other in others:
            text = other.text[:MAX_BYTES + 1]  # longer is refused as too large, like the file
            if len(text) <= left and is_spec(text):
                overlay[other.path] = text
                left -= len(text)
        return overlay

    def _queue(self, uri: str) -> None:
        document = self.documents.get(uri)
        if document is None:
            return
        document.timer = None
        self.pending[uri] = None
        self.wake.set()
        job = self.job
        if job is not None and job.uri == uri and job.revision != document.revision:
            loop = asyncio.get_running_loop()
            delay = max(0.0, job.started + STALE_GRACE - loop.time())
            loop.call_later(delay, self._cancel, job)

    def _cancel(self, job: Job) -> None:
        if self.job is job:  # still running: stop it, a fresh worker takes the next one
            job.cancelled = True
            self.worker.kill()

    async def _run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            while self.pending:
                uri = next(iter(self.pending))
                del self.pending[uri]
                document = self.documents.get(uri)
                if document is not None:
                    try:
                        await self._analyse(document)
                    except Exception as exc:  # a bug on the server's side: say so, keep serving
                        self._report_bug(document, exc)

    def _report_bug(self, document: Document, exc: Exception) -> None:
        logger.exception("analysis of %s failed", document.uri)
        model = _stopped(document, document.version, document.text,
                         f"internal error in archspec's language server: {type(exc).__name__}: {exc}",
                         "a bug: please report it with the spec", "AS900")
        document.model = model
        document.analysed.set()
        try:
            self.publish(document, model)
        except Exception:
            logger.exception("publishing the error for %s failed", document.uri)

    async def _analyse(self, document: Document) -> None:
        version, text, revision = document.version, document.text, document.revision
        loop = asyncio.get_running_loop()
        model = None
        try:
            await self._ready_worker()
            self.job = job = Job(document.uri, revision, loop.time())
            request = {"uri": document.uri, "version": version, "text": text, "file": document.file,
                       "base_dir": document.base_dir, "allow_outside": self.allow_outside,
                       "overlay": self._overlay(document)}
            model = await asyncio.wait_for(self.worker.request(request), self.time_limit)
            self.timings = (self.timings + [model.elapsed])[-100:]
        except asyncio.TimeoutError:
            self.worker.kill()
            model = _stopped(document, version, text, f"archspec stopped checking this file after "
                             f"{self.time_limit:g} s; it expands to a very large network",
                             "lower a 'repeat' or a template's uses, or raise the time limit "
                             "(initialization option 'timeLimit')", "AS502")
        except WorkerGone:
            if self.job is not None and self.job.cancelled:
                return  # a stale analysis, cancelled on purpose
            code = await self.worker.exit_code()
            model = _stopped(document, version, text, "internal error in archspec: the analysis process "
                             f"stopped unexpectedly (exit code {code})",
                             "a bug: please report it with the spec", "AS900")
        except (OSError, ValueError) as exc:  # the worker cannot be started or spoken to
            model = _stopped(document, version, text, f"internal error in archspec: the analysis process "
                             f"cannot run: {exc}", "a bug or a broken installation", "AS900")
        finally:
            self.job = None
        if self.documents.get(document.uri) is not document:
            return  # closed meanwhile
        if model.loaded:  # even a stale model serves hints and names on unchanged lines
            document.good = model
        if document.revision == revision:
            document.model = model
            document.analysed.set()
            self.publish(document, model)


def _stopped(document: Document, version, text: str, message: str, hint: str, code) -> FileModel:
    lines = split_lines(text)
    model = FileModel(document.uri, version, document.file, lines)
    model.problems = [Problem(Span(0, 0, 0, len(lines[0]) if lines else 0), "error", code, message, hint)]
    return model
