"""A spec that `extends` an open document is checked against that document's buffer, saved or
not, over a real stdio session: a change to the base's buffer re-checks the open child, and
closing the base unsaved re-checks the child against the file on disk. Nothing is ever saved
here: the files on disk keep their first text throughout.

Expected figures are arithmetic on the architecture: on a 3x8x8 input a 3x3 conv gives 6x6, so
a conv of C channels flattens to 36·C features, and the child's `fc` (10 outputs) has 36·C·10
weights + 10 biases and as many MACs as weights."""
import pytest
from lsprotocol import types

import lsp_session as lsp
from archspec.check import check_text
from archspec.graph.counts import totals
from lsp_session import client, doc, position  # noqa: F401 (client: the fixture)

in_session = pytest.mark.asyncio(loop_scope="module")
EVERYTHING = types.Range(start=types.Position(line=0, character=0), end=types.Position(line=10_000, character=0))
BASE = ("archspec: 1\ninput: [3, 8, 8]\nlayers:\n  - conv: {id: c1, out: 4, kernel: 3}\n"
        "  - flatten\n  - linear: {id: fc, out: 5}\n")
CHILD = "archspec: 1\nextends: base.yaml\nname: child\noverride:\n  fc: {linear: {out: 10}}\n"
WAIT = 10.0  # seconds: every check here takes milliseconds


async def open_pair(client, tmp_path):
    """Base and child on disk, both open; the child is clean."""
    base, child = tmp_path / "base.yaml", tmp_path / "child.yaml"
    base.write_text(BASE)
    child.write_text(CHILD)
    base_uri, child_uri = lsp.uri_of(base), lsp.uri_of(child)
    assert await lsp.open_text(client, child_uri, CHILD) == []
    # opening the base checks the child again (a restored editor may open unsaved text)
    assert await child_after(client, child_uri, lambda: lsp.open_text(client, base_uri, BASE)) == []
    return base_uri, child_uri


async def child_after(client, child_uri, action) -> list:
    """The child's diagnostics published after `action` (its version stays 1)."""
    since = len(client.published)
    await action()
    return await lsp.diagnostics(client, child_uri, 1, timeout=WAIT, since=since)


async def fc_hint(client, uri) -> str:
    hints = await client.text_document_inlay_hint_async(types.InlayHintParams(doc(uri), EVERYTHING))
    return [h.label for h in hints if h.position.line == lsp.line_of(CHILD, "fc:")][0]


@in_session
async def test_an_error_typed_into_the_base_buffer_shows_on_the_childs_extends_line(client, tmp_path):
    base_uri, child_uri = await open_pair(client, tmp_path)
    broken = BASE.replace("kernel", "kernal")
    found = await child_after(client, child_uri, lambda: lsp.change(client, base_uri, broken, 2))
    assert [(d.code, d.range.start.line) for d in found] == [("AS201", lsp.line_of(CHILD, "extends:"))]
    assert found[0].message.startswith("base.yaml:4:") and "kernal" in found[0].message
    related = found[0].related_information[0]
    assert related.location.uri == base_uri and related.location.range.start.line == 3
    # the base's own diagnostic is there too, in the base
    assert [d.code for d in client.diagnostics[base_uri]] == ["AS201"]
    assert await child_after(client, child_uri, lambda: lsp.change(client, base_uri, BASE, 3)) == []
    assert (tmp_path / "base.yaml").read_text() == BASE  # never saved
    lsp.close(client, base_uri)
    lsp.close(client, child_uri)


@in_session
async def test_the_childs_figures_follow_the_base_buffer(client, tmp_path):
    base_uri, child_uri = await open_pair(client, tmp_path)
    assert await fc_hint(client, child_uri) == "→ 10 · 1.45k params · 1.44k MACs"  # 144·10 + 10
    wider = BASE.replace("out: 4", "out: 8")
    assert await child_after(client, child_uri, lambda: lsp.change(client, base_uri, wider, 2)) == []
    assert await fc_hint(client, child_uri) == "→ 10 · 2.89k params · 2.88k MACs"  # 288·10 + 10
    found = await client.text_document_hover_async(types.HoverParams(
        doc(child_uri), position(CHILD, "linear", offset=2)))
    assert "2,890" in found.contents.value and "1,450" not in found.contents.value
    lsp.close(client, base_uri)
    lsp.close(client, child_uri)


@in_session
async def test_closing_the_base_unsaved_rechecks_the_child_against_the_disk(client, tmp_path):
    base_uri, child_uri = await open_pair(client, tmp_path)
    broken = BASE.replace("layers:", "layer:")  # the base no longer loads at all
    found = await child_after(client, child_uri, lambda: lsp.change(client, base_uri, broken, 2))
    assert [(d.code, d.range.start.line) for d in found] == [("AS201", 1)]
    assert "unknown key 'layer'" in found[0].message

    async def close_base():
        lsp.close(client, base_uri)
    assert await child_after(client, child_uri, close_base) == []  # the disk's base is fine
    assert await fc_hint(client, child_uri) == "→ 10 · 1.45k params · 1.44k MACs"
    lsp.close(client, child_uri)


@in_session
async def test_a_base_two_links_up_the_chain_is_read_from_its_buffer(client, tmp_path):
    """The chain child -> mid -> base, with mid closed: the base's buffer still counts."""
    (tmp_path / "base.yaml").write_text(BASE)
    (tmp_path / "mid.yaml").write_text("archspec: 1\nextends: base.yaml\n")
    child = tmp_path / "child.yaml"
    child.write_text(CHILD.replace("base.yaml", "mid.yaml"))
    child_uri, base_uri = lsp.uri_of(child), lsp.uri_of(tmp_path / "base.yaml")
    assert await lsp.open_text(client, child_uri, child.read_text()) == []
    assert await child_after(client, child_uri, lambda: lsp.open_text(client, base_uri, BASE)) == []
    wider = BASE.replace("out: 4", "out: 8")
    assert await child_after(client, child_uri, lambda: lsp.change(client, base_uri, wider, 2)) == []
    assert await fc_hint(client, child_uri) == "→ 10 · 2.89k params · 2.88k MACs"
    lsp.close(client, base_uri)
    lsp.close(client, child_uri)


# ---- the overlay keeps the rules of `extends` -------------------------------------------------


def test_an_overlay_replaces_only_the_text_not_the_rules_of_extends(tmp_path):
    inside, outside = tmp_path / "project", tmp_path / "elsewhere"
    inside.mkdir()
    outside.mkdir()
    (inside / "base.yaml").write_text(BASE)
    (outside / "far.yaml").write_text(BASE)
    buffers = {str((inside / "base.yaml").resolve()): BASE.replace("out: 4", "out: 8"),
               str((outside / "far.yaml").resolve()): BASE,
               str((inside / "unsaved.yaml").resolve()): BASE}
    child = str(inside / "child.yaml")

    def check(extends: str, **options):
        return check_text(f"archspec: 1\nextends: {extends}\n", child, base_dir=str(inside),
                          overlay=buffers, **options)

    result = check("base.yaml")
    assert result.ok and result.graph.shape(result.graph.output) == (5,)
    assert totals(result.graph)["params"] == 3 * 9 * 8 + 8 + 288 * 5 + 5  # the buffer's conv of 8
    assert [e.code for e in check("../elsewhere/far.yaml").errors] == ["AS308"]  # leaves the tree
    assert check("../elsewhere/far.yaml", allow_outside=True).ok
    missing = check("unsaved.yaml").errors  # a buffer with no file behind it is not followed
    assert [e.code for e in missing] == ["AS308"] and "no such file" in missing[0].message
