"""The editors' JSON Schema: committed copy up to date, every zoo spec valid against it, and
typical mistakes rejected."""
import json

import jsonschema  # a test dependency (the `test` extra)
import pytest
import yaml

from archspec.spec import jsonschema as generator
from conftest import ROOT, run_cli, zoo_specs

COMMITTED = ROOT / "schemas" / "archspec.schema.json"


@pytest.fixture(scope="module")
def validator():
    schema = json.loads(COMMITTED.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_committed_schema_is_up_to_date():
    fresh = generator.render()
    assert COMMITTED.exists(), f"schemas/archspec.schema.json is missing; generate it: {generator.REGENERATE}"
    assert COMMITTED.read_text() == fresh, (
        f"schemas/archspec.schema.json is out of date with the op/block registries; regenerate it:\n"
        f"    {generator.REGENERATE}")


def test_schema_command_prints_the_same(tmp_path):
    result = run_cli("schema")
    assert result.returncode == 0, result.stderr
    assert result.stdout == generator.render()
    out = tmp_path / "s.json"
    assert run_cli("schema", "-o", out).returncode == 0
    assert out.read_text() == generator.render()


@pytest.mark.parametrize("path", zoo_specs(), ids=lambda p: p.name)
def test_zoo_spec_validates(validator, path):
    errors = sorted(validator.iter_errors(yaml.safe_load(path.read_text())), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message[:300]}" for e in errors[:5])


HEAD = "archspec: 1\ninput: [3, 32, 32]\n"

GOOD = {
    "ops and names": HEAD + "layers:\n  - conv: {id: c1, out: 8, kernel: [3, 1], padding: same}\n  - relu\n  - relu:\n",
    "expressions": HEAD + "vars: {c: 8, k: 3}\nlayers:\n  - conv: {out: $c, kernel: '${k}', stride: [1, '$k']}\n",
    "envelope": HEAD + ("layers:\n  - conv: {id: a, out: 8, kernel: 3, repeat: 2, first: {stride: 2}, "
                        "expect: [8, 16, 16], trainable: false, doc: hi}\n  - add: {from: [a, input]}\n"),
    "templates": HEAD + ("templates:\n  cbr:\n    args: {out: required, k: 3}\n    body:\n"
                         "      - conv: {out: $out, kernel: $k}\n      - relu\n"
                         "layers:\n  - cbr: {id: x, out: 8}\n  - cbr: {out: 8, k: 1, repeat: 2}\n"),
    "blocks": HEAD + ("layers:\n  - residual:\n      body: [{conv: {out: 3, kernel: 3, padding: 1}}, relu]\n"
                      "      shortcut: [identity]\n      after: [relu]\n"
                      "  - inception:\n      branches:\n        a: {conv: {out: 4, kernel: 1}}\n"
                      "        b: [{conv: {out: 4, kernel: 1}}, relu]\n"
                      "  - seq: {id: s, layers: [relu, {maxpool: {kernel: 2}}]}\n"),
    "extends": "archspec: 1\nextends: base.yaml\noverride:\n  fc: {linear: {out: 10}}\n",
    "tie": HEAD + ("layers:\n  - conv: {id: a, out: 3, kernel: 3, padding: 1}\n  - conv: {out: 3, kernel: 3, padding: 1, tie: a}\n"
                   "  - conv_transpose: {out: 3, kernel: 3, padding: 1, tie: {to: a, transpose: true}}\n"),
}

BAD = {
    "misspelt setting": HEAD + "layers:\n  - conv: {out: 8, kernal: 3}\n",
    "missing setting": HEAD + "layers:\n  - conv: {out: 8}\n",
    "op that needs settings as a string": HEAD + "layers:\n  - conv\n",
    "two ops in one layer": HEAD + "layers:\n  - conv: {out: 8, kernel: 3}\n    relu: {}\n",
    "wrong type": HEAD + "layers:\n  - conv: {out: eight, kernel: 3}\n",
    "bad enum": HEAD + "layers:\n  - conv: {out: 8, kernel: 3, padding: full}\n",
    "bad id": HEAD + "layers:\n  - relu: {id: 'a b'}\n",
    "first key unknown to the op": HEAD + "layers:\n  - conv: {out: 8, kernel: 3, repeat: 2, first: {strid: 2}}\n",
    "unknown top-level key": HEAD + "layerz: [relu]\n",
    "bad nested layer": HEAD + "layers:\n  - seq: {layers: [{conv: {out: 8}}]}\n",
    "input too long": "archspec: 1\ninput: [1, 2, 3, 4, 5]\nlayers: [relu]\n",
    "tie mapping without to": HEAD + "layers:\n  - conv: {out: 3, kernel: 1, tie: {transpose: true}}\n",
    "tie mapping, transpose not a boolean": HEAD + "layers:\n  - conv: {out: 3, kernel: 1, tie: {to: a, transpose: 1}}\n",
}


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_example_validates(validator, path):
    errors = list(validator.iter_errors(yaml.safe_load(path.read_text())))
    assert not errors, [e.message[:200] for e in errors]


@pytest.mark.parametrize("name", GOOD)
def test_accepts(validator, name):
    errors = list(validator.iter_errors(yaml.safe_load(GOOD[name])))
    assert not errors, [e.message[:200] for e in errors]


@pytest.mark.parametrize("name", BAD)
def test_rejects(validator, name):
    assert list(validator.iter_errors(yaml.safe_load(BAD[name]))), name


def test_every_op_and_block_is_in_the_schema():
    from archspec.blocks import BLOCKS
    from archspec.ops import OPS

    defs = generator.generate()["$defs"]
    entry = defs["layer_entry"]["properties"]
    assert set(entry) == set(OPS) | set(BLOCKS)
    for name in OPS:
        assert f"op.{name}" in defs
    for name in BLOCKS:
        assert f"block.{name}" in defs
