"""The language server: pygls over stdio, wiring LSP requests to the feature modules.

Documents are analysed by the `Analyzer` (scheduler.py) in a worker process; requests about a
position wait briefly for the analysis of the latest version, then answer from its model (or,
while the text does not parse, from the last model that did, on the lines that are unchanged).

Initialization options (all optional): `debounceMs` (default 150: how long typing must pause
before a change is analysed), `timeLimit` (seconds, default 10: the time guard of one analysis).
"""
from __future__ import annotations

import asyncio
import os
import statistics
import sys

from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path

import archspec
from archspec.lsp import actions, completion, diagnostics, hover, inlay, navigation
from archspec.lsp.model import split_lines
from archspec.lsp.scheduler import Analyzer, Document
from archspec.lsp.text import View

HEAVY = ("torch", "torchvision", "onnx", "onnxruntime", "onnxscript")
WAIT = 1.5  # seconds a request waits for the analysis of the latest version


class ArchspecServer(LanguageServer):
    def __init__(self, debounce: float = 0.15, time_limit: float = 10.0, allow_outside: bool = False):
        super().__init__("archspec", archspec.__version__,
                         text_document_sync_kind=types.TextDocumentSyncKind.Incremental)
        self.debounce, self.time_limit, self.allow_outside = debounce, time_limit, allow_outside
        self.analyzer: Analyzer | None = None

    @property
    def encoding(self) -> str:
        return self.workspace.position_encoding or types.PositionEncodingKind.Utf16

    def publish(self, document: Document, model) -> None:
        self.text_document_publish_diagnostics(types.PublishDiagnosticsParams(
            uri=document.uri, version=document.version,
            diagnostics=diagnostics.diagnostics(model, self.encoding)))
        capabilities = self.client_capabilities.workspace
        if capabilities and capabilities.inlay_hint and capabilities.inlay_hint.refresh_support:
            asked = self.workspace_inlay_hint_refresh(None)
            asked.add_done_callback(lambda done: done.cancelled() or done.exception())  # refused: fine

    def changed(self, uri: str, immediate: bool) -> None:
        text_document = self.workspace.get_text_document(uri)
        file, base_dir = self.locate(uri)
        self.analyzer.update(uri, text_document.version, text_document.source, file, base_dir, immediate)

    def locate(self, uri: str) -> tuple[str, str]:
        """The file name a document is checked as, and the directory `extends` starts from (an
        unsaved buffer's own directory; the workspace's for a buffer that has no file)."""
        path = to_fs_path(uri) if uri.startswith("file:") else None
        if path:
            return os.path.abspath(path), os.path.dirname(os.path.abspath(path))
        root = self.workspace.root_path or os.getcwd()
        return uri, root

    async def view(self, uri: str, wait: float = WAIT) -> View | None:
        """The latest model that parsed, seen from the current text."""
        document = await self.analyzer.model(uri, wait) if self.analyzer else None
        if document is None:
            return None
        model = document.model if document.model is not None and document.model.loaded else document.good
        if model is None:
            return None
        lines = split_lines(self.workspace.get_text_document(uri).source)
        return View(model, lines, self.encoding)


def build(debounce: float = 0.15, time_limit: float = 10.0, allow_outside: bool = False) -> ArchspecServer:
    server = ArchspecServer(debounce, time_limit, allow_outside)
    _register_documents(server)
    _register_requests(server)
    _register_navigation(server)
    _register_commands(server)
    return server


def _register_documents(server: ArchspecServer) -> None:
    """The session and the documents' lifecycle: each change (re)starts the document's check,
    and that of the open specs that extend it (they read it from its buffer); closing it checks
    those against the file on disk."""

    @server.feature(types.INITIALIZE)
    def initialize(ls: ArchspecServer, params: types.InitializeParams):
        options = params.initialization_options if isinstance(params.initialization_options, dict) else {}
        debounce = options.get("debounceMs", ls.debounce * 1000) / 1000
        limit = options.get("timeLimit", ls.time_limit)
        outside = options.get("allowOutside", ls.allow_outside)
        ls.analyzer = Analyzer(ls.publish, debounce=max(0.0, float(debounce)), time_limit=float(limit),
                               allow_outside=outside is True)
        ls.analyzer.start()

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: ArchspecServer, params: types.DidOpenTextDocumentParams):
        ls.changed(params.text_document.uri, immediate=True)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: ArchspecServer, params: types.DidChangeTextDocumentParams):
        ls.changed(params.text_document.uri, immediate=False)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: ArchspecServer, params: types.DidSaveTextDocumentParams):
        ls.changed(params.text_document.uri, immediate=True)  # and the open specs that extend it

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: ArchspecServer, params: types.DidCloseTextDocumentParams):
        ls.analyzer.close(params.text_document.uri)
        ls.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=params.text_document.uri,
                                                                            diagnostics=[]))

    @server.feature(types.SHUTDOWN)
    async def shutdown(ls: ArchspecServer, params):
        if ls.analyzer is not None:
            await ls.analyzer.shutdown()



def _register_requests(server: ArchspecServer) -> None:
    @server.feature(types.TEXT_DOCUMENT_HOVER)
    async def on_hover(ls: ArchspecServer, params: types.HoverParams):
        view = await ls.view(params.text_document.uri)
        return hover.hover(view, params.position) if view else None

    @server.feature(types.TEXT_DOCUMENT_INLAY_HINT)
    async def on_inlay_hint(ls: ArchspecServer, params: types.InlayHintParams):
        view = await ls.view(params.text_document.uri)
        return inlay.inlay_hints(view, params.range) if view else []

    @server.feature(types.TEXT_DOCUMENT_COMPLETION,
                    types.CompletionOptions(trigger_characters=completion.TRIGGERS))
    async def on_completion(ls: ArchspecServer, params: types.CompletionParams):
        document = ls.analyzer.documents.get(params.text_document.uri) if ls.analyzer else None
        if document is None:  # not open (or not yet initialized)
            return None
        model = document.model if document.model is not None and document.model.loaded else document.good
        lines = split_lines(ls.workspace.get_text_document(params.text_document.uri).source)
        return completion.completion(model, lines, params.position, ls.encoding)


def _register_navigation(server: ArchspecServer) -> None:
    @server.feature(types.TEXT_DOCUMENT_DEFINITION)
    async def on_definition(ls: ArchspecServer, params: types.DefinitionParams):
        view = await ls.view(params.text_document.uri)
        return navigation.definition(view, params.position) if view else None

    @server.feature(types.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    async def on_symbols(ls: ArchspecServer, params: types.DocumentSymbolParams):
        view = await ls.view(params.text_document.uri)
        return navigation.symbols(view) if view else []

    @server.feature(types.TEXT_DOCUMENT_CODE_ACTION,
                    types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.QuickFix]))
    async def on_code_action(ls: ArchspecServer, params: types.CodeActionParams):
        uri = params.text_document.uri
        document = await ls.analyzer.model(uri, WAIT) if ls.analyzer else None
        if document is None or document.model is None:
            return []
        lines = split_lines(ls.workspace.get_text_document(uri).source)
        return actions.code_actions(View(document.model, lines, ls.encoding), uri, params.range)


def _register_commands(server: ArchspecServer) -> None:
    @server.command("archspec.status")
    async def status(ls: ArchspecServer, *args):
        """The server's and the worker's process ids, whether either imported a heavy library
        (torch, onnx: neither should), and how long recent analyses took."""
        starting = ls.analyzer.starting if ls.analyzer else None
        if starting is not None and not starting.done():
            await asyncio.wait([starting], timeout=WAIT)
        worker = ls.analyzer.worker if ls.analyzer else None
        worker_modules = []
        if worker is not None and worker.alive and ls.analyzer.job is None:
            worker_modules = await worker.request({"modules": True})
        timings = ls.analyzer.timings if ls.analyzer else []
        return {"pid": os.getpid(), "worker_pid": worker.proc.pid if worker and worker.alive else None,
                "heavy": sorted({m.partition(".")[0] for m in sys.modules} & set(HEAVY)),
                "worker_heavy": sorted(set(worker_modules) & set(HEAVY)),
                "worker_modules": len(worker_modules),
                "analysis_median_s": statistics.median(timings) if timings else None}


def serve(debounce: float = 0.15, time_limit: float = 10.0, allow_outside: bool = False) -> None:
    build(debounce, time_limit, allow_outside).start_io()
