"""The language server under stress, over real stdio sessions: debouncing, cancelling a stale
analysis, the time guard, a worker that dies, hostile specs, position encodings, and specs that
depend on a saved base."""
import asyncio
import os
import pickle
import shlex
import signal
import subprocess
import sys
import time

import pytest
from lsprotocol import types

import lsp_session as lsp
from lsp_session import ROOT, doc
from test_hostile import CASES

SPECS = ROOT / "specs"
pytestmark = pytest.mark.asyncio
HEAD = "archspec: 1\ninput: [3, 8, 8]\n"
SLOW = HEAD + "layers:\n  - seq: {repeat: 700, layers: [{relu: {repeat: 280}}]}\n"  # 196,000 nodes: seconds
SMALL = HEAD + "layers:\n  - conv: {id: c1, out: 4, kernel: 3}\n"


async def session(**options):
    return await lsp.start(options)


async def finish(client):
    await client.shutdown_session()
    await client.stop()


async def status(client) -> dict:
    return await client.workspace_execute_command_async(types.ExecuteCommandParams(command="archspec.status"))


async def test_typing_is_debounced_only_the_last_version_is_checked(tmp_path):
    client = await session(debounceMs=1000)  # far longer than the gaps between the changes
    try:
        uri = lsp.uri_of(tmp_path / "d.yaml")
        await lsp.open_text(client, uri, SMALL)
        for version, out in enumerate((5, 6, 7, 8, 9), start=2):
            await lsp.change(client, uri, SMALL.replace("out: 4", f"out: {out}"), version, wait=False)
            await asyncio.sleep(0.02)
        last_change = time.perf_counter()
        assert await lsp.diagnostics(client, uri, 6) == []
        assert time.perf_counter() - last_change >= 0.9  # it waited for typing to pause
        versions = [p.version for _, p in client.published if p.uri == uri]
        assert versions == [1, 6]
    finally:
        await finish(client)


async def test_a_stale_analysis_is_cancelled_and_the_latest_version_answers_fast(tmp_path):
    client = await session()
    try:
        uri = lsp.uri_of(tmp_path / "s.yaml")
        before = (await status(client))["worker_pid"]
        client.text_document_did_open(types.DidOpenTextDocumentParams(
            types.TextDocumentItem(uri=uri, language_id="yaml", version=1, text=SLOW)))
        await asyncio.sleep(0.3)  # the slow version is being checked
        started = time.perf_counter()
        assert await lsp.change(client, uri, SMALL, 2) == []
        took = time.perf_counter() - started
        assert took < 6, took  # checking the slow version alone takes far longer (see the next test)
        assert [p.version for _, p in client.published if p.uri == uri] == [2]  # v1 was never published
        assert (await status(client))["worker_pid"] != before  # the worker was stopped and replaced
    finally:
        await finish(client)


async def test_the_time_guard_stops_a_runaway_analysis_and_the_server_goes_on(tmp_path):
    client = await session(timeLimit=1)
    try:
        uri = lsp.uri_of(tmp_path / "t.yaml")
        started = time.perf_counter()
        found = await lsp.open_text(client, uri, SLOW)
        assert time.perf_counter() - started < 5
        assert len(found) == 1 and "stopped checking this file after 1 s" in found[0].message
        assert found[0].code == "AS502"  # a code an editor or CI can match, like every other
        assert found[0].range.start.line == 0
        assert await lsp.change(client, uri, SMALL, 2) == []
    finally:
        await finish(client)


async def test_a_worker_that_dies_mid_analysis_is_a_diagnostic_not_a_dead_server(tmp_path):
    client = await session()
    try:
        uri = lsp.uri_of(tmp_path / "k.yaml")
        client.text_document_did_open(types.DidOpenTextDocumentParams(
            types.TextDocumentItem(uri=uri, language_id="yaml", version=1, text=SLOW)))
        await asyncio.sleep(0.5)
        os.kill((await status(client))["worker_pid"], signal.SIGKILL)
        found = await lsp.diagnostics(client, uri, 1)
        assert [d.code for d in found] == ["AS900"] and "stopped unexpectedly" in found[0].message
        assert await lsp.change(client, uri, SMALL, 2) == []
    finally:
        await finish(client)


async def test_an_exception_inside_the_analysis_becomes_an_as900_diagnostic():
    """The worker process itself, spoken to over its pipe: a request the analysis cannot handle
    (text that is not a string) gets an AS900 problem back, and the worker keeps answering."""
    from archspec.lsp.worker import HEADER

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    worker = subprocess.Popen([sys.executable, "-m", "archspec.lsp.worker"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, env=env)

    def ask(request):
        data = pickle.dumps(request)
        worker.stdin.write(HEADER.pack(len(data)) + data)
        worker.stdin.flush()
        (size,) = HEADER.unpack(worker.stdout.read(HEADER.size))
        return pickle.loads(worker.stdout.read(size))

    try:
        (size,) = HEADER.unpack(worker.stdout.read(HEADER.size))
        assert "ready" in pickle.loads(worker.stdout.read(size))
        broken = ask({"uri": "u", "version": 1, "text": 42, "file": "x.yaml", "base_dir": "."})
        assert [p.code for p in broken.problems] == ["AS900"]
        assert "internal error in archspec" in broken.problems[0].message
        fine = ask({"uri": "u", "version": 2, "text": SMALL, "file": "x.yaml", "base_dir": "."})
        assert fine.problems == [] and fine.summary["output"] == [4, 6, 6]
    finally:
        worker.stdin.close()
        worker.wait(timeout=10)


async def test_hostile_specs_end_in_one_located_diagnostic(tmp_path):
    client = await session()
    try:
        for number, (name, (text, words)) in enumerate(CASES.items()):
            uri = lsp.uri_of(tmp_path / f"h{number}.yaml")
            found = await lsp.open_text(client, uri, text)
            assert len(found) == 1 and words in found[0].message, (name, found)
            lsp.close(client, uri)
    finally:
        await finish(client)


LINE = '  - conv: {doc: "Größe 😀 ×2", id: c1, out: 8, kernal: 3}'


@pytest.mark.parametrize("capabilities, encoding", [("neovim@v0.10.0", "utf-16"), ("neovim@v0.11.0", "utf-8")])
async def test_ranges_are_in_the_negotiated_position_encoding(tmp_path, capabilities, encoding):
    client = await lsp.start(capabilities=capabilities)
    try:
        assert client.server_capabilities.position_encoding == encoding
        text = "archspec: 1\ninput: [3, 8, 8]\nlayers:\n" + LINE + "\n"
        uri = lsp.uri_of(tmp_path / "u.yaml")
        found = await lsp.open_text(client, uri, text)
        codec = "utf-16-le" if encoding == "utf-16" else "utf-8"
        width = 2 if encoding == "utf-16" else 1
        start = len(LINE[:LINE.index("kernal")].encode(codec)) // width
        assert [(d.code, d.range.start.line, d.range.start.character, d.range.end.character) for d in found] == \
            [("AS201", 3, start, start + len("kernal"))]
        actions = await client.text_document_code_action_async(types.CodeActionParams(
            doc(uri), found[0].range, types.CodeActionContext(diagnostics=found)))
        edit = actions[0].edit.changes[uri][0]
        assert (edit.range.start.character, edit.range.end.character, edit.new_text) == \
            (start, start + 6, "kernel")
    finally:
        await finish(client)


async def test_saving_a_base_rechecks_the_open_specs_that_extend_it(tmp_path):
    client = await session()
    try:
        base, child = tmp_path / "base.yaml", tmp_path / "child.yaml"
        base.write_text(SMALL)
        child_uri, base_uri = lsp.uri_of(child), lsp.uri_of(base)
        assert await lsp.open_text(client, child_uri, "archspec: 1\nextends: base.yaml\n") == []
        since = len(client.published)
        await lsp.open_text(client, base_uri, SMALL)
        assert await lsp.diagnostics(client, child_uri, 1, since=since) == []  # opening it re-checks too
        broken = SMALL.replace("layers:", "layer:")  # the base no longer loads at all
        base.write_text(broken)  # the editor saves the base...
        since = len(client.published)
        await lsp.change(client, base_uri, broken, 2, wait=False)
        client.text_document_did_save(types.DidSaveTextDocumentParams(doc(base_uri)))
        found = await lsp.settled(client, child_uri, 1, bool, since=since)  # ...and the child is checked again
        assert [(d.code, d.range.start.line) for d in found] == [("AS201", 1)]
        assert "unknown key 'layer'" in found[0].message
        base.write_text(SMALL)  # fixed and saved: the child is clean again
        since = len(client.published)
        await lsp.change(client, base_uri, SMALL, 3, wait=False)
        client.text_document_did_save(types.DidSaveTextDocumentParams(doc(base_uri)))
        assert await lsp.settled(client, child_uri, 1, lambda found: found == [], since=since) == []
    finally:
        await finish(client)


async def test_closing_a_document_clears_its_diagnostics(tmp_path):
    client = await session()
    try:
        uri = lsp.uri_of(tmp_path / "c.yaml")
        assert len(await lsp.open_text(client, uri, SMALL.replace("kernel", "kernal"))) == 1
        lsp.close(client, uri)
        for _ in range(100):
            if list(client.diagnostics.get(uri, [None])) == []:
                break
            await asyncio.sleep(0.05)
        assert list(client.diagnostics[uri]) == []
    finally:
        await finish(client)


async def test_without_the_lsp_extra_the_command_says_what_to_install(tmp_path):
    from cli_probe import one_line_error, probe

    result, _ = probe(tmp_path, "lsp", block=["pygls"])
    assert one_line_error(result) == "error: 'archspec lsp' needs pygls (archspec[lsp]): pip install -e " + shlex.quote(f"{ROOT}[lsp]")


async def test_a_line_separator_is_one_diagnostic_where_the_editor_shows_it(tmp_path):
    """The editor counts lines at \\n only; the diagnostic is on the line and column it shows."""
    client = await session()
    try:
        uri = lsp.uri_of(tmp_path / "u.yaml")
        found = await lsp.open_text(client, uri, HEAD + "# a note\u2028more\n" + SMALL[len(HEAD):])
        assert [(d.code, d.range.start.line, d.range.start.character) for d in found] == [("AS107", 2, 8)]
    finally:
        await finish(client)


@pytest.mark.parametrize("how", ["option", "flag"])
async def test_allow_outside_lets_extends_leave_the_project_and_the_hint_says_how(tmp_path, how):
    """The AS308 hint names what the editor user can set (not a command-line flag they cannot
    pass), and setting it (initialization option or the server's flag) lets extends out."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text("")
    (tmp_path / "base.yaml").write_text(SMALL)
    text = "archspec: 1\nextends: ../base.yaml\n"
    uri = lsp.uri_of(project / "child.yaml")
    client = await session()
    try:
        found = await lsp.open_text(client, uri, text)
        assert [(d.code, d.range.start.line) for d in found] == [("AS308", 1)]
        assert "initialization option 'allowOutside'" in found[0].message
        assert "pass --allow-outside" not in found[0].message  # no flag to pass in an editor
    finally:
        await finish(client)
    client = await (session(allowOutside=True) if how == "option"
                    else lsp.start(server_args=["--allow-outside"]))
    try:
        assert await lsp.open_text(client, uri, text) == []
    finally:
        await finish(client)
