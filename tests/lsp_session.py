"""A real LSP client session against `python -m archspec lsp` over stdio, for the language
server's tests and benchmarks/lsp_latency.py: open and edit documents, wait for the diagnostics
of a given version, and find positions by the text they hold (no hard-coded line numbers)."""
from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import pytest_asyncio
from lsprotocol import types
from pygls.protocol import default_converter
from pygls.uris import from_fs_path
from pytest_lsp import LanguageClient, client_capabilities
from pytest_lsp.client import DEFAULT_CLIENT_FEATURES, register_lsp_features

ROOT = Path(__file__).resolve().parent.parent
SERVER = [sys.executable, "-m", "archspec", "lsp"]


def _on_publish(client: LanguageClient, params: types.PublishDiagnosticsParams):
    client.diagnostics[params.uri] = params.diagnostics
    client.published.append((time.perf_counter(), params))
    client.arrived.set()


def _on_inlay_refresh(client: LanguageClient, params: None):
    client.inlay_refreshes += 1


def make_client() -> LanguageClient:
    """pytest-lsp's test client, also recording every publishDiagnostics with its arrival time."""
    client = LanguageClient(converter_factory=default_converter)
    features = dict(DEFAULT_CLIENT_FEATURES)
    features[types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS] = _on_publish
    features[types.WORKSPACE_INLAY_HINT_REFRESH] = _on_inlay_refresh
    register_lsp_features(client, features)
    client.published = []
    client.arrived = asyncio.Event()
    client.inlay_refreshes = 0
    return client


async def start(options: dict | None = None, capabilities: str = "neovim@v0.10.0",
                root: Path = ROOT, env: dict | None = None, server_args: list | None = None) -> LanguageClient:
    client = make_client()
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    await client.start_io(*SERVER, *(server_args or []), env=environment, cwd=str(root))
    result = await client.initialize_session(types.InitializeParams(
        capabilities=client_capabilities(capabilities), root_uri=from_fs_path(str(root)),
        initialization_options={"debounceMs": 0, **(options or {})}))
    client.server_capabilities = result.capabilities
    return client


def uri_of(path) -> str:
    return from_fs_path(str(path))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client():
    """One server for a test module (import it: `from lsp_session import client`)."""
    session = await start()
    yield session
    await session.shutdown_session()
    await session.stop()


async def _more(client, deadline: float) -> bool:
    """Wait for the next publication until `deadline`; False once the time is up."""
    left = deadline - time.perf_counter()
    if left <= 0:
        return False
    client.arrived.clear()
    try:
        await asyncio.wait_for(client.arrived.wait(), left)
    except asyncio.TimeoutError:
        pass
    return True


async def diagnostics(client, uri: str, version: int, timeout: float = 30.0, since: int = 0) -> list:
    """The diagnostics the server publishes for `version` of the document (among those that
    arrived after the first `since`: a document opened again starts at version 1 again)."""
    deadline = time.perf_counter() + timeout
    while True:
        for _, params in reversed(client.published[since:]):
            if params.uri == uri and params.version == version:
                return list(params.diagnostics)
        if not await _more(client, deadline):
            raise TimeoutError(f"no diagnostics for {uri} version {version}")


async def settled(client, uri: str, version: int, wanted, timeout: float = 30.0, since: int = 0) -> list:
    """The first of the server's publications for `version` of the document (after the first
    `since`) that satisfies `wanted(diagnostics)`: where several checks of a document are in
    flight (a base changed, then saved), an older one may publish after the newer one started.
    Raises with the last publication seen when none does in time."""
    deadline, seen = time.perf_counter() + timeout, since
    last = None
    while True:
        for index in range(seen, len(client.published)):
            params = client.published[index][1]
            if params.uri == uri and params.version == version:
                last = list(params.diagnostics)
                if wanted(last):
                    return last
        seen = len(client.published)
        if not await _more(client, deadline):
            raise TimeoutError(f"no satisfying diagnostics for {uri} version {version}; last: {last}")


async def open_text(client, uri: str, text: str, version: int = 1) -> list:
    since = len(client.published)
    client.text_document_did_open(types.DidOpenTextDocumentParams(
        types.TextDocumentItem(uri=uri, language_id="yaml", version=version, text=text)))
    return await diagnostics(client, uri, version, since=since)


async def change(client, uri: str, text: str, version: int, wait: bool = True) -> list | None:
    """Replace the whole text (as a full-document change)."""
    since = len(client.published)
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        types.VersionedTextDocumentIdentifier(uri=uri, version=version),
        [types.TextDocumentContentChangeWholeDocument(text=text)]))
    return await diagnostics(client, uri, version, since=since) if wait else None


def close(client, uri: str) -> None:
    client.text_document_did_close(types.DidCloseTextDocumentParams(types.TextDocumentIdentifier(uri)))


def position(text: str, needle: str, nth: int = 0, offset: int = 0) -> types.Position:
    """The position of the `nth` occurrence of `needle` (plus `offset` characters) in `text`,
    in UTF-16 units (the texts used with this helper are ASCII up to the needle)."""
    index = -1
    for _ in range(nth + 1):
        index = text.index(needle, index + 1)
    index += offset
    line = text.count("\n", 0, index)
    return types.Position(line=line, character=index - (text.rfind("\n", 0, index) + 1))


def line_of(text: str, needle: str, nth: int = 0) -> int:
    return position(text, needle, nth).line


def doc(uri: str) -> types.TextDocumentIdentifier:
    return types.TextDocumentIdentifier(uri=uri)


def apply_edits(text: str, edits) -> str:
    """Apply LSP text edits (ASCII text, so UTF-16 columns are string indices)."""
    lines = text.split("\n")
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line) + 1)

    def index(p: types.Position) -> int:
        return offsets[p.line] + p.character

    for edit in sorted(edits, key=lambda e: index(e.range.start), reverse=True):
        text = text[:index(edit.range.start)] + edit.new_text + text[index(edit.range.end):]
    return text
