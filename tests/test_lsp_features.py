"""Language server features over a real stdio session: inlay hints, hovers, completion,
definitions, the outline, quick fixes, warnings, broken files and `extends`.

Expected figures come from the papers' tables, torchvision's models or arithmetic on the
architecture (a k×k conv from C to C' channels on an HxW output has k·k·C·C' weights and
k·k·C·C'·H·W MACs), never from archspec's own output."""
import re

import pytest
import yaml
from lsprotocol import types

import lsp_session as lsp
from archspec.ops import OPS
from lsp_session import ROOT, client, doc, position  # noqa: F401 (client: the fixture)

SPECS = ROOT / "specs"
pytestmark = pytest.mark.asyncio(loop_scope="module")
EVERYTHING = types.Range(start=types.Position(line=0, character=0), end=types.Position(line=10_000, character=0))


async def opened(client, path, text=None, version=1):
    text = path.read_text() if text is None else text
    uri = lsp.uri_of(path)
    return uri, text, await lsp.open_text(client, uri, text, version)


async def hover_text(client, uri, where) -> str:
    found = await client.text_document_hover_async(types.HoverParams(doc(uri), where))
    return found.contents.value if found is not None else ""


async def complete(client, uri, text, where):
    found = await client.text_document_completion_async(types.CompletionParams(doc(uri), where))
    return {item.label: item for item in (found.items if found else [])}


# ---- inlay hints ------------------------------------------------------------------------------


async def test_inlay_hints_show_shape_params_and_macs_at_the_end_of_each_layer_line(client):
    uri, text, _ = await opened(client, SPECS / "resnet50.yaml")
    hints = await client.text_document_inlay_hint_async(types.InlayHintParams(doc(uri), EVERYTHING))
    lines = text.split("\n")
    by_line = {h.position.line: h for h in hints}
    assert len(by_line) == len(hints) == 11  # one per layer line
    conv1 = by_line[lsp.line_of(text, "id: conv1")]
    assert conv1.position.character == len(lines[conv1.position.line].rstrip())
    # 7·7·3·64 = 9,408 weights (no bias); 9,408 · 112·112 = 118,013,952 MACs
    assert conv1.label == "→ 64x112x112 · 9.41k params · 118M MACs"
    # Table 1: conv2_x, 3 bottlenecks, 56x56x256; torchvision's layer1 has 215,808 parameters
    assert by_line[lsp.line_of(text, "id: layer1")].label.startswith("×3 → 256x56x56 · 216k params · ")
    assert by_line[lsp.line_of(text, "id: layer4")].label.startswith("×3 → 2048x7x7 · ")
    # fc: 2048·1000 weights + 1000 biases; 2,048,000 MACs
    assert by_line[lsp.line_of(text, "id: fc")].label == "→ 1000 · 2.05M params · 2.05M MACs"
    assert by_line[lsp.line_of(text, "- flatten")].label == "→ 2048"
    lsp.close(client, uri)


async def test_template_body_hints_list_each_use(client):
    uri, text, _ = await opened(client, SPECS / "cifar10_cnn.yaml")
    hints = await client.text_document_inlay_hint_async(types.InlayHintParams(doc(uri), EVERYTHING))
    by_line = {h.position.line: h.label for h in hints}
    # the template's conv runs at 32, 16, 8 and 4 pixels with 32..256 channels, once per stage
    assert by_line[lsp.line_of(text, "- conv: {id: conv")].startswith(
        "→ 32x32x32, 64x16x16, 128x8x8, … (×4)")
    assert by_line[lsp.line_of(text, "stage: {id: stage2")].startswith("→ 64x16x16 · ")
    lsp.close(client, uri)


# ---- hover -------------------------------------------------------------------------------------


async def test_hover_on_an_op_name_shows_its_layer_and_its_settings_table(client):
    uri, text, _ = await opened(client, SPECS / "resnet50.yaml")
    value = await hover_text(client, uri, position(text, "- conv: {id: conv1", offset=3))
    assert "| input | 3x224x224 (`input`) |" in value and "| output | 64x112x112 |" in value
    assert "| params | 9,408 |" in value and "| MACs | 118,013,952 |" in value
    assert "| receptive field | 7x7 (jump 2x2) |" in value
    assert re.search(r"\| `kernel` \| int ≥ 1 [^|]* \| required \|", value)  # the registry's table
    assert type(OPS["conv"]).summary() in value
    lsp.close(client, uri)


async def test_hover_on_a_variable_shows_its_value(client):
    uri, text, _ = await opened(client, SPECS / "resnet50.yaml")
    assert await hover_text(client, uri, position(text, "$classes", offset=3)) == "`$classes` = `1000`"
    assert await hover_text(client, uri, position(text, "vars: {classes", offset=9)) == "`classes` = `1000`"
    lsp.close(client, uri)


async def test_hover_on_an_argument_in_a_template_body_shows_its_value_at_each_use(client):
    uri, text, _ = await opened(client, SPECS / "unet_small.yaml")
    value = await hover_text(client, uri, position(text, "out: $out", offset=7))
    assert "| `enc1` | 32 |" in value and "| `bottleneck` | 256 |" in value
    lsp.close(client, uri)


async def test_hover_on_a_setting_and_on_a_from_id(client):
    uri, text, _ = await opened(client, SPECS / "unet_small.yaml")
    value = await hover_text(client, uri, position(text, "kernel: 2, stride: 2}   # 128", offset=2))
    assert re.fullmatch(r"`kernel` of `conv_transpose`: int ≥ 1 or .+; default required", value)
    value = await hover_text(client, uri, position(text, "from: [up1, enc3]", offset=14))
    assert value.startswith("**enc3** · `double_conv`") and "| output | 128x16x16 |" in value
    lsp.close(client, uri)


# ---- completion ---------------------------------------------------------------------------------


async def edit_and_complete(client, path, old, new, marker, version=2):
    uri, text, _ = await opened(client, path)
    edited = text.replace(old, new, 1)
    await lsp.change(client, uri, edited, version)
    items = await complete(client, uri, edited, position(edited, marker, offset=len(marker)))
    lsp.close(client, uri)
    return items


async def test_completion_of_settings_inside_braces_with_defaults(client, tmp_path):
    items = await edit_and_complete(client, SPECS / "resnet18.yaml", "  - batchnorm: {id: bn1}\n",
                                    "  - batchnorm: {id: bn1}\n  - conv: {out: 8, \n", "{out: 8, ")
    assert "out" not in items  # already written
    assert re.fullmatch(r"int ≥ 1 or .+ — default required", items["kernel"].detail)
    assert items["stride"].detail.endswith(("default `1`", "default `[1, 1]`"))  # PyTorch's stride=1
    assert items["kernel"].sort_text < items["stride"].sort_text < items["repeat"].sort_text
    assert items["kernel"].text_edit.new_text == "kernel: "


async def test_completion_of_settings_under_a_block_style_layer(client):
    items = await edit_and_complete(client, SPECS / "resnet18.yaml", "  - batchnorm: {id: bn1}\n",
                                    "  - batchnorm:\n      id: bn1\n      mom\n", "      mom")
    assert "momentum" in items and "id" not in items


async def test_completion_of_template_arguments(client):
    items = await edit_and_complete(client, SPECS / "unet_small.yaml", "  - maxpool: {id: pool1, kernel: 2}\n",
                                    "  - maxpool: {id: pool1, kernel: 2}\n  - double_conv: {\n", "double_conv: {")
    assert items["out"].detail == "required"


async def test_completion_of_from_ids_nearest_first(client):
    items = await edit_and_complete(client, SPECS / "unet_small.yaml", "  - concat: {id: cat1, from: [up1, enc3]}",
                                    "  - concat: {id: cat1, from: [up1, e]}", "from: [up1, e")
    labels = sorted(items, key=lambda label: items[label].sort_text)
    assert labels[:3] == ["up1", "bottleneck", "pool3"] and "enc3" in labels and "input" in labels
    assert "cat2" not in labels  # below: not a valid input
    assert items["enc3"].text_edit.range.end.character - items["enc3"].text_edit.range.start.character == 1


async def test_completion_of_variables(client):
    items = await edit_and_complete(client, SPECS / "resnet18.yaml", "out: $classes}", "out: $cl}", "$cl")
    assert items["$classes"].detail == "= 1000"


async def test_completion_of_top_level_keys(client):
    items = await edit_and_complete(client, SPECS / "resnet18.yaml", "vars: {classes: 1000}\n",
                                    "vars: {classes: 1000}\ndes\n", "\ndes")
    assert "description" in items and "layers" not in items  # 'layers' is already there


# ---- navigation -------------------------------------------------------------------------------


async def definition(client, uri, where):
    return await client.text_document_definition_async(types.DefinitionParams(doc(uri), where))


async def test_definition_of_a_template_use_a_variable_and_an_argument(client):
    uri, text, _ = await opened(client, SPECS / "unet_small.yaml")
    found = await definition(client, uri, position(text, "- double_conv: {id: dec2", offset=4))
    assert found[0].range.start.line == lsp.line_of(text, "  double_conv:  #")
    found = await definition(client, uri, position(text, "out: $classes", offset=8))
    assert found[0].range.start.line == lsp.line_of(text, "vars: {classes")
    found = await definition(client, uri, position(text, "out: $out", offset=7))
    assert found[0].range.start.line == lsp.line_of(text, "args: {out: required}")
    lsp.close(client, uri)


async def test_definition_of_extends_opens_the_base(client):
    path = ROOT / "examples" / "resnet18_cifar10_head.yaml"
    uri, text, found = await opened(client, path)
    assert found == []
    target = await definition(client, uri, position(text, "../specs/resnet18.yaml", offset=5))
    assert target[0].uri == lsp.uri_of(SPECS / "resnet18.yaml")
    lsp.close(client, uri)


async def test_outline_nests_layers_in_their_blocks(client):
    uri, text, _ = await opened(client, SPECS / "inception_v3.yaml")
    symbols = await client.text_document_document_symbol_async(types.DocumentSymbolParams(doc(uri)))
    sections = {s.name: s for s in symbols}
    assert list(sections) == ["vars", "templates", "layers"]
    layers = {s.name: s for s in sections["layers"].children}
    aux = layers["AuxLogits"]
    assert aux.kind == types.SymbolKind.Module and len(aux.children) == 6
    assert aux.detail.startswith("seq → 1000 · ")  # the auxiliary head's 1000 classes
    templates = {s.name: s for s in sections["templates"].children}
    assert [c.name for c in templates["basic_conv"].children] == ["conv", "bn", "relu"]
    lsp.close(client, uri)


# ---- quick fixes ---------------------------------------------------------------------------------


async def fix(client, path, text, code, title):
    uri = lsp.uri_of(path)
    found = await lsp.open_text(client, uri, text)
    problem = next(d for d in found if d.code == code)
    actions = await client.text_document_code_action_async(types.CodeActionParams(
        doc(uri), problem.range, types.CodeActionContext(diagnostics=[problem])))
    action = next(a for a in actions if a.title == title)
    fixed = lsp.apply_edits(text, action.edit.changes[uri])
    after = await lsp.change(client, uri, fixed, 2)
    lsp.close(client, uri)
    return fixed, after


async def test_quick_fix_for_an_unknown_op_and_an_unknown_variable(client, tmp_path):
    text = (SPECS / "resnet18.yaml").read_text().replace("- relu: {id: relu}", "- reluu: {id: relu}")
    fixed, after = await fix(client, tmp_path / "a.yaml", text, "AS204", "Replace 'reluu' with 'relu'")
    assert after == [] and "- relu: {id: relu}" in fixed
    text = (SPECS / "resnet18.yaml").read_text().replace("out: $classes", "out: $clases")
    fixed, after = await fix(client, tmp_path / "b.yaml", text, "AS207", "Replace 'clases' with 'classes'")
    assert after == [] and "out: $classes" in fixed


async def test_quick_fix_adds_flatten_before_a_linear_after_a_conv(client, tmp_path):
    text = (SPECS / "resnet18.yaml").read_text().replace("  - flatten\n", "")
    fixed, after = await fix(client, tmp_path / "c.yaml", text, "AS401", "Add '- flatten' before 'fc'")
    assert after == [] and "  - global_avgpool: {id: avgpool}\n  - flatten\n  - linear" in fixed
    text = "archspec: 1\ninput: [1, 8, 8]\nlayers: [{conv: {out: 4, kernel: 3}}, {linear: {out: 2}}]\n"
    fixed, after = await fix(client, tmp_path / "d.yaml", text, "AS401", "Add '- flatten' before 'linear'")
    assert after == [] and "layers: [{conv: {out: 4, kernel: 3}}, flatten, {linear: {out: 2}}]" in fixed


# ---- warnings, broken files, extends ------------------------------------------------------------


async def test_a_floor_warning_is_a_warning_with_its_code(client, tmp_path):
    # (224 + 0 - 3) / 2 = 110.5: the last column of the input is never read
    text = "archspec: 1\ninput: [3, 224, 224]\nlayers:\n  - conv: {id: c1, out: 8, kernel: 3, stride: 2}\n"
    uri, _, found = await opened(client, tmp_path / "w.yaml", text)
    assert [(d.code, d.severity) for d in found] == [("AS801", types.DiagnosticSeverity.Warning)]
    assert found[0].range.start.line == 3 and "'c1'" in found[0].message
    lsp.close(client, uri)


async def test_yaml_syntax_error_is_located_and_hints_stay_on_unchanged_lines(client, tmp_path):
    path = tmp_path / "r.yaml"
    uri, text, _ = await opened(client, path, (SPECS / "resnet18.yaml").read_text())
    broken = text.replace("  - global_avgpool: {id: avgpool}", "  - global_avgpool: {id: avgpool]")
    with pytest.raises(yaml.MarkedYAMLError) as parser:  # where PyYAML itself says the error is
        yaml.safe_load(broken)
    found = await lsp.change(client, uri, broken, 2)
    assert [d.code for d in found] == ["AS102"]
    mark = parser.value.problem_mark
    assert (found[0].range.start.line, found[0].range.start.character) == (mark.line, mark.column)
    assert mark.line == lsp.line_of(broken, "global_avgpool")
    hints = await client.text_document_inlay_hint_async(types.InlayHintParams(doc(uri), EVERYTHING))
    lines = {h.position.line for h in hints}
    assert lsp.line_of(broken, "id: layer1") in lines  # from the last version that parsed
    assert lsp.line_of(broken, "global_avgpool") not in lines  # the line being edited
    lsp.close(client, uri)


async def test_a_broken_layer_leaves_hover_and_hints_on_the_rest(client, tmp_path):
    text = (SPECS / "resnet18.yaml").read_text().replace("preset: basic, out: 256", "preset: basic, out: 0")
    uri, _, found = await opened(client, tmp_path / "p.yaml", text)
    assert [d.code for d in found] == ["AS203"]
    value = await hover_text(client, uri, position(text, "id: layer2", offset=5))
    assert "| output | 128x28x28 |" in value  # Table 1, conv3_x
    hints = await client.text_document_inlay_hint_async(types.InlayHintParams(doc(uri), EVERYTHING))
    lines = {h.position.line for h in hints}
    assert lsp.line_of(text, "id: layer2") in lines and lsp.line_of(text, "id: layer3") not in lines
    lsp.close(client, uri)


async def test_errors_in_a_base_spec_are_reported_on_the_extends_line(client, tmp_path):
    (tmp_path / "base.yaml").write_text("archspec: 1\ninput: [3, 32, 32]\nlayers:\n"
                                        "  - conv: {id: c1, out: 8, kernal: 3}\n  - relu\n")
    text = "archspec: 1\nextends: base.yaml\nname: child\n"
    uri, _, found = await opened(client, tmp_path / "child.yaml", text)
    assert [d.code for d in found] == ["AS201"]
    problem = found[0]
    assert problem.range.start.line == 1 and problem.message.startswith("base.yaml:4:")
    related = problem.related_information[0].location
    assert related.uri == lsp.uri_of(tmp_path / "base.yaml") and related.range.start.line == 3
    lsp.close(client, uri)


async def test_an_unsaved_buffer_resolves_extends_from_its_directory(client, tmp_path):
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "net.yaml").write_text((SPECS / "resnet18.yaml").read_text())
    child = tmp_path / "specs" / "new_head.yaml"  # never written to disk
    text = "archspec: 1\nextends: net.yaml\noverride:\n  fc: {linear: {out: 10}}\n"
    uri, _, found = await opened(client, child, text)
    assert found == [] and not child.exists()
    hints = await client.text_document_inlay_hint_async(types.InlayHintParams(doc(uri), EVERYTHING))
    assert [h.label for h in hints] == ["→ 10 · 5.13k params · 5.12k MACs"]  # 512·10 + 10
    lsp.close(client, uri)


async def test_several_open_files_keep_their_own_diagnostics(client, tmp_path):
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good_uri, _, good_found = await opened(client, good, (SPECS / "lenet5.yaml").read_text())
    bad_uri, _, bad_found = await opened(client, bad, "archspec: 1\ninput: [1, 8, 8]\nlayers: [relu, nope]\n")
    assert good_found == [] and [d.code for d in bad_found] == ["AS204"]
    assert list(client.diagnostics[good_uri]) == []
    lsp.close(client, good_uri)
    lsp.close(client, bad_uri)


async def test_other_yaml_files_are_left_alone(client, tmp_path):
    text = "name: ci\non: [push]\njobs:\n  test:\n    runs-on: ubuntu-latest\n    steps:\n      - \n"
    uri, _, found = await opened(client, tmp_path / "workflow.yaml", text)
    assert found == []
    assert await complete(client, uri, text, position(text, "      - ", offset=8)) == {}
    hints = await client.text_document_inlay_hint_async(types.InlayHintParams(doc(uri), EVERYTHING))
    assert list(hints) == []
    lsp.close(client, uri)


async def test_every_zoo_spec_opens_clean_with_a_hint_on_each_top_level_layer(client):
    for path in sorted(SPECS.glob("*.yaml")):
        uri, text, found = await opened(client, path)
        assert not [d for d in found if d.severity == types.DiagnosticSeverity.Error], (path.name, found)
        root = yaml.compose(text)
        layers = next((v for k, v in root.value if k.value == "layers"), None)
        if layers is None:  # a spec that only extends another
            lsp.close(client, uri)
            continue
        expected = {item.start_mark.line for item in layers.value}  # where PyYAML sees each layer
        hints = await client.text_document_inlay_hint_async(types.InlayHintParams(doc(uri), EVERYTHING))
        assert expected <= {h.position.line for h in hints}, path.name
        lsp.close(client, uri)


async def test_definition_of_a_tie_plain_and_transposed(client):
    """`tie: left` and `tie: {to: enc2, transpose: true}` name layers like `from:` does."""
    for path, marker, offset, target in [
            (ROOT / "examples" / "siamese.yaml", "tie: left}", 5, "  - tower: {id: left}"),
            (ROOT / "examples" / "tied_autoencoder.yaml", "tie: {to: enc2", 10, "  - conv: {id: enc2")]:
        uri, text, found = await opened(client, path)
        assert found == []
        places = await definition(client, uri, position(text, marker, offset=offset))
        assert [p.range.start.line for p in places] == [lsp.line_of(text, target)], path
        name = target.split("id: ")[1].rstrip("}")
        value = await hover_text(client, uri, position(text, marker, offset=offset))
        assert value.startswith(f"**{name}** · "), value  # the layer it names, as on a from: id
        lsp.close(client, uri)


async def test_completion_of_tie_ids(client):
    items = await edit_and_complete(client, ROOT / "examples" / "siamese.yaml", "tie: left}", "tie: le}",
                                    "right, tie: le")  # (the header comment says `tie: left` too)
    assert "left" in items and "right" not in items  # a tie names an earlier layer
    items = await edit_and_complete(client, ROOT / "examples" / "tied_autoencoder.yaml", "tie: {to: enc2,",
                                    "tie: {to: en,", "tie: {to: en")
    assert {"enc1", "enc2"} <= set(items) and "dec1" not in items
