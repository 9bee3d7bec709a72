"""The language server end to end, as an editor drives it: a real LSP client over stdio against
`python -m archspec lsp` (pytest-lsp), on zoo specs and broken copies of them."""
import pytest
from lsprotocol import types

import lsp_session as lsp
from archspec.ops import OPS
from lsp_session import ROOT, client, doc, position  # noqa: F401 (client: the fixture)

SPECS = ROOT / "specs"
pytestmark = pytest.mark.asyncio(loop_scope="module")


def text_in(text: str, rng: types.Range) -> str:
    lines = text.split("\n")
    if rng.start.line == rng.end.line:
        return lines[rng.start.line][rng.start.character:rng.end.character]
    return "\n".join([lines[rng.start.line][rng.start.character:], *lines[rng.start.line + 1:rng.end.line],
                      lines[rng.end.line][:rng.end.character]])


def broken_unet() -> str:
    """U-Net with a misspelt key on the head and a skip that concatenates 32x32 with 16x16."""
    text = (SPECS / "unet_small.yaml").read_text()
    text = text.replace("- concat: {id: cat2, from: [up2, enc2]}", "- concat: {id: cat2, from: [up2, enc3]}")
    text = text.replace("- conv: {id: head, out: $classes, kernel: 1}", "- conv: {id: head, out: $classes, kernal: 1}")
    assert "kernal" in text and "[up2, enc3]" in text
    return text


async def test_misspelt_key_and_concat_mismatch_are_two_diagnostics_at_their_ranges(client, tmp_path):
    text = broken_unet()
    uri = lsp.uri_of(tmp_path / "unet_broken.yaml")
    found = await lsp.open_text(client, uri, text)
    assert len(found) == 2, [d.message for d in found]
    by_code = {d.code: d for d in found}
    assert set(by_code) == {"AS201", "AS403"}
    assert all(d.source == "archspec" and d.severity == types.DiagnosticSeverity.Error for d in found)
    key = by_code["AS201"]
    assert text_in(text, key.range) == "kernal"  # the key itself, not the line
    assert "did you mean 'kernel'?" in key.message
    merge = by_code["AS403"]
    assert text_in(text, merge.range) == "{id: cat2, from: [up2, enc3]}"
    assert "[64, 32, 32]" in merge.message and "[128, 16, 16]" in merge.message
    lsp.close(client, uri)


async def test_hover_on_layer1_of_resnet50_shows_its_output_shape(client):
    path = SPECS / "resnet50.yaml"
    text = path.read_text()
    uri = lsp.uri_of(path)
    assert await lsp.open_text(client, uri, text) == []
    hover = await client.text_document_hover_async(types.HoverParams(doc(uri), position(text, "id: layer1", offset=6)))
    assert hover is not None
    value = hover.contents.value
    # He et al. 2016, Table 1: conv2_x outputs 56x56 with 256 channels (bottleneck 64-64-256, x3).
    assert "| output | 256x56x56 |" in value
    assert "×3" in value and "residual" in value
    # torchvision.models.resnet50().layer1 has 215,808 parameters.
    assert "| params | 215,808 |" in value
    lsp.close(client, uri)


async def test_completion_after_dash_offers_ops_blocks_and_templates(client, tmp_path):
    text = (SPECS / "unet_small.yaml").read_text()
    edited = text.replace("  - maxpool: {id: pool1, kernel: 2}\n", "  - maxpool: {id: pool1, kernel: 2}\n  - \n", 1)
    uri = lsp.uri_of(tmp_path / "unet.yaml")
    await lsp.open_text(client, uri, text)
    await lsp.change(client, uri, edited, 2)
    where = position(edited, "  - \n", offset=4)
    found = await client.text_document_completion_async(types.CompletionParams(doc(uri), where))
    labels = {item.label: item for item in found.items}
    assert "conv" in labels and "residual" in labels and "double_conv" in labels
    assert labels["conv"].kind == types.CompletionItemKind.Function
    assert labels["conv"].detail == f"op — {type(OPS['conv']).summary()}"  # from the registry
    assert "| `kernel` |" in labels["conv"].documentation.value  # its settings table
    lsp.close(client, uri)


async def test_definition_of_a_from_id_lands_on_that_layer(client):
    path = SPECS / "unet_small.yaml"
    text = path.read_text()
    uri = lsp.uri_of(path)
    await lsp.open_text(client, uri, text)
    where = position(text, "from: [up1, enc3]", offset=len("from: [up1, e"))
    found = await client.text_document_definition_async(types.DefinitionParams(doc(uri), where))
    assert len(found) == 1 and found[0].uri == uri
    target = found[0].range
    assert target.start.line == lsp.line_of(text, "- double_conv: {id: enc3")
    assert text_in(text, target) == "enc3"
    lsp.close(client, uri)


async def test_did_you_mean_action_fixes_the_key_and_the_diagnostic_goes(client, tmp_path):
    text = broken_unet()
    uri = lsp.uri_of(tmp_path / "unet_fix.yaml")
    found = await lsp.open_text(client, uri, text)
    key = next(d for d in found if d.code == "AS201")
    actions = await client.text_document_code_action_async(types.CodeActionParams(
        doc(uri), key.range, types.CodeActionContext(diagnostics=[key])))
    fix = next(a for a in actions if a.title == "Replace 'kernal' with 'kernel'")
    assert fix.kind == types.CodeActionKind.QuickFix and fix.is_preferred
    fixed = lsp.apply_edits(text, fix.edit.changes[uri])
    assert "kernel: 1}" in fixed and "kernal" not in fixed
    after = await lsp.change(client, uri, fixed, 2)
    assert [d.code for d in after] == ["AS403"]  # the key's error is gone; the real shape error stays
    lsp.close(client, uri)


async def test_neither_the_server_nor_its_worker_imports_torch_or_onnx(client):
    path = SPECS / "resnet18.yaml"
    uri = lsp.uri_of(path)
    await lsp.open_text(client, uri, path.read_text())
    await client.text_document_hover_async(types.HoverParams(doc(uri), types.Position(line=10, character=5)))
    status = await client.workspace_execute_command_async(types.ExecuteCommandParams(command="archspec.status"))
    assert status["worker_pid"] and status["pid"] != status["worker_pid"]
    assert status["worker_modules"] > 0  # the worker answered with what it imported
    assert status["heavy"] == [] and status["worker_heavy"] == [], status
    lsp.close(client, uri)
