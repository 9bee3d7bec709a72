"""The safe loader: plain YAML only, every rejection located at file:line:col."""
import pytest

from archspec.errors import SpecError
from archspec.spec import load as load_mod
from archspec.spec.load import load_file, load_text

HEAD = "archspec: 1\nname: t\ninput: [3, 8, 8]\n"


def error_of(text, file="t.yaml") -> SpecError:
    with pytest.raises(SpecError) as info:
        load_text(text, file)
    return info.value


def test_marks_point_at_keys_and_values():
    doc = load_text(HEAD + "layers:\n  - conv: {out: 4, kernel: 3}\n", "t.yaml")
    assert doc.data["layers"][0]["conv"]["kernel"] == 3
    assert (doc.loc(("layers", 0, "conv", "kernel")).line, doc.loc(("layers", 0, "conv", "kernel")).col) == (5, 28)
    key = doc.loc(("layers", 0, "conv", "kernel"), key=True)
    assert (key.line, key.col) == (5, 20)


@pytest.mark.parametrize("text, line, col, words", [
    (HEAD + "base: &b {out: 4}\nlayers: []\n", 4, 7, "anchors"),
    (HEAD + "a: 1\nlayers:\n  - conv: *x\n", 6, 11, "alias"),
    (HEAD + "layers:\n  - conv: {<<: {out: 4}, kernel: 3}\n", 5, 12, "merge"),
    (HEAD + "layers: []\nname: again\n", 5, 1, "duplicate key 'name'"),
    (HEAD + "layers:\n  - conv: !!python/object:os.system {}\n", 5, 11, "tag"),
    (HEAD + "layers: [\n", 5, 1, "invalid YAML"),
])
def test_rejections_are_located(text, line, col, words):
    err = error_of(text)
    assert (err.loc.line, err.loc.col) == (line, col), str(err)
    assert words in str(err)
    assert str(err).startswith(f"t.yaml:{line}:{col}: error: ")


def test_document_must_be_a_mapping():
    err = error_of("- conv\n- relu\n")
    assert "must be a mapping" in str(err) and err.loc.line == 1


def test_one_document_only():
    assert "exactly one YAML document" in str(error_of(HEAD + "---\n" + HEAD))


def test_not_utf8_is_located(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"archspec: 1\nname: caf\xe9\n")
    with pytest.raises(SpecError) as info:
        load_file(path)
    assert "not valid UTF-8" in str(info.value)
    assert (info.value.loc.line, info.value.loc.col) == (2, 10)


def test_size_cap(tmp_path, monkeypatch):
    monkeypatch.setattr(load_mod, "MAX_BYTES", 100)
    path = tmp_path / "big.yaml"
    path.write_text(HEAD + "description: " + "x" * 200 + "\n")
    with pytest.raises(SpecError, match="too large"):
        load_file(path)


def test_nesting_cap():
    text = HEAD + "vars: " + "[" * 100 + "]" * 100 + "\n"
    assert "nested too deeply" in str(error_of(text))


def test_plain_values_load():
    doc = load_text(HEAD + "vars: {a: 1, b: 2.5, c: true, d: null, e: text}\n")
    assert doc.data["vars"] == {"a": 1, "b": 2.5, "c": True, "d": None, "e": "text"}


@pytest.mark.parametrize("char", ["\x85", "\u2028", "\u2029"])
@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_line_breaks_yaml_readers_disagree_on_are_refused_where_an_editor_shows_them(char, newline):
    """PyYAML ends a line at U+0085/2028/2029, editors and YAML 1.2 do not: before this, a
    comment holding one went on as YAML ('could not find expected ':'' two lines down)."""
    text = newline.join(["archspec: 1", "input: [3, 8, 8]", f"# a note{char}that goes on",
                         "layers: [relu]", ""])
    error = error_of(text)
    assert (error.code, error.loc.line, error.loc.col) == ("AS107", 3, 9)
    assert "U+" in error.message and error.hint == "replace it with a newline or a space"
    assert load_text(text.replace(char, " ")).data["layers"] == ["relu"]  # a space is fine
