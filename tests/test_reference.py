"""docs/reference.md is generated from the registries and committed; it must be up to date."""
import re

from archspec.blocks import BLOCKS
from archspec.ops import OPS
from archspec.report import reference
from conftest import ROOT

COMMITTED = ROOT / "docs" / "reference.md"


def test_committed_reference_is_up_to_date():
    assert COMMITTED.exists(), f"docs/reference.md is missing; generate it: {reference.REGENERATE}"
    assert COMMITTED.read_text() == reference.generate(), (
        "docs/reference.md is out of date with the op/block docstrings and Params; regenerate it:\n"
        f"    {reference.REGENERATE}")


def sections(text):
    """op name -> its section's text."""
    parts = re.split(r'<a id="op-([a-z0-9_]+)"></a>', text.split("\n## Blocks")[0])
    return dict(zip(parts[1::2], parts[2::2]))


def test_every_op_is_documented_with_shapes_settings_and_an_example():
    ops = sections(reference.generate())
    assert set(ops) == set(OPS)
    for name, text in ops.items():
        assert f"#### {name}\n" in text
        summary = text.split(f"#### {name}\n", 1)[1].strip().splitlines()[0]
        assert summary, f"op '{name}' has no docstring summary"
        assert "**Input:**" in text and "**Output:**" in text, \
            f"op '{name}': its docstring needs 'Input shape: ... Output shape: ...'"
        assert "```yaml\n- " in text, f"op '{name}': its docstring needs a ```yaml example"
        for field in OPS[name].Params.model_fields:
            assert f"| `{field}` |" in text, (name, field)


def test_conv_section_in_detail():
    conv = sections(reference.generate())["conv"]
    assert "**Input:** (C, L), (C, H, W) or (C, D, H, W)" in conv
    assert "**Output:** (out, L'), (out, H', W') or (out, D', H', W'), per axis i' = floor((i + 2p - d(k-1) - 1)/s) + 1" in conv
    assert "| `kernel` | int ≥ 1 or list of int ≥ 1 | required |" in conv
    assert "| `stride` | int ≥ 1 or list of int ≥ 1 | `1` |" in conv
    assert '| `padding` | int ≥ 0 or list of int ≥ 0 or "same" or "valid" | `0` |' in conv
    assert "- conv: {id: conv1, out: 96, kernel: 11, stride: 4}" in conv


def test_blocks_and_keys_are_documented():
    text = reference.generate()
    for name in BLOCKS:
        assert f'<a id="block-{name}"></a>' in text and f"#### `{name}` settings" in text
    assert "| `repeat` | int ≥ 1, ≤ 100000 | — |" in text
    assert "| `layers` | *layers* | — |" in text  # the top-level key
    assert "| `branches` | mapping of name → *layer or layers* | required |" in text
