"""Every mistake in a spec is one located line (plus a hint), exit code 1, never a traceback."""
import pytest

import archspec
from archspec.errors import SpecError
from conftest import run_cli

HEAD = "archspec: 1\nname: t\ninput: [3, 32, 32]\n"


def spec_error(write_spec, text) -> SpecError:
    path = write_spec(text)
    with pytest.raises(SpecError) as info:
        archspec.expand(archspec.load(path))
    return info.value


def where(err):
    return err.loc.line, err.loc.col


def test_misspelt_key_cli(write_spec):
    path = write_spec(HEAD + "layers:\n  - conv: {out: 16, kernal: 3}\n")
    result = run_cli("check", path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"{path}:5:21: error: ")
    assert "unknown key 'kernal'" in first
    assert "did you mean 'kernel'?" in result.stderr


def test_misspelt_op_cli(write_spec):
    path = write_spec(HEAD + "layers:\n  - conv: {out: 16, kernel: 3}\n  - rleu\n")
    result = run_cli("check", path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"{path}:6:5: error: ")
    assert "unknown op or block 'rleu'" in result.stderr and "did you mean 'relu'?" in result.stderr


def test_misspelt_top_level_key(write_spec):
    err = spec_error(write_spec, HEAD + "layer:\n  - relu\n")
    assert where(err) == (4, 1) and "unknown key 'layer'" in str(err) and "did you mean 'layers'?" in str(err)


@pytest.mark.parametrize("layers, line, col, words", [
    ("  - conv: {out: 15, kernel: 3, groups: 5}\n", 5, 11,
     "groups must divide in_channels. Received: in_channels=3, groups=5"),
    ("  - linear: {out: 10}\n", 5, 13, "add '- flatten' before it"),
    ("  - conv: {out: 16, kernel: 3, expect: [16, 32, 32]}\n", 5, 40,
     "output shape is [16, 30, 30], but 'expect' says [16, 32, 32]"),
    ("  - conv: {out: 16, kernel: 40}\n", 5, 11, "window is larger than its (padded) input"),
    ("  - conv: {out: 16, kernel: x}\n", 5, 29, "kernel"),
    ("  - conv: {out: $width, kernel: 3}\n", 5, 17, "unknown variable 'width'"),
    ("  - conv: {out: '${2 +* 3}', kernel: 3}\n", 5, 17, "cannot parse expression"),
    ("  - conv: {out: '${__import__(1)}', kernel: 3}\n", 5, 17, "unsupported syntax"),
    ("  - conv: {id: a, out: 4, kernel: 1}\n  - conv: {id: a, out: 4, kernel: 1}\n", 6, 16,
     "the name 'a' is already taken"),
    ("  - conv: {out: 4, kernel: 1}\n  - relu: {from: nowhere}\n", 6, 18, "'from: nowhere' names no earlier layer"),
    ("  - conv: {id: a, out: 4, kernel: 1}\n  - conv: {id: b, out: 4, kernel: 1}\n  - relu: {from: a}\n", 6, 11,
     "its output is never used"),
    ("  - conv: {out: 4, kernel: 1}\n  - relu: 3\n", 6, 11, "settings must be a mapping"),
    ("  - {conv: {out: 4, kernel: 1}, relu: {}}\n", 5, 5, "exactly one op or block name"),
    ("  - maxpool: {kernel: 2, padding: 2}\n", 5, 14, "padding must be at most half the kernel"),
    ("  - conv: {out: 4, kernel: 3, padding: same, stride: 2}\n", 5, 11, "padding='same' needs stride 1"),
])
def test_layer_errors_are_located(write_spec, layers, line, col, words):
    err = spec_error(write_spec, HEAD + "layers:\n" + layers)
    assert words in str(err), str(err)
    assert where(err) == (line, col), str(err)


def test_error_names_layer_and_op(write_spec):
    err = spec_error(write_spec, HEAD + "layers:\n  - relu\n  - conv: {id: c3, out: 4, kernel: 3, groups: 2}\n")
    assert "layers[1] 'c3' (conv): groups must divide in_channels" in str(err)


def test_template_arguments(write_spec):
    base = HEAD + "templates:\n  block:\n    args: {out: required}\n    body:\n      - conv: {out: $out, kernel: 1}\n"
    err = spec_error(write_spec, base + "layers:\n  - block: {}\n")
    assert "missing required argument 'out'" in str(err)
    err = spec_error(write_spec, base + "layers:\n  - block: {out: 4, uot: 5}\n")
    assert "unknown argument 'uot'" in str(err) and where(err) == (10, 21)


def test_template_cannot_shadow_op(write_spec):
    err = spec_error(write_spec, HEAD + "templates:\n  conv:\n    body: [relu]\nlayers: [relu]\n")
    assert "has the name of a built-in op" in str(err) and where(err) == (5, 3)


def test_missing_input_and_layers(write_spec):
    assert "missing required key 'input'" in str(spec_error(write_spec, "archspec: 1\nlayers: [relu]\n"))
    assert "missing required key 'layers'" in str(spec_error(write_spec, "archspec: 1\ninput: [3, 4, 4]\n"))


def test_format_version(write_spec):
    err = spec_error(write_spec, "archspec: 2\ninput: [3, 4, 4]\nlayers: [relu]\n")
    assert where(err) == (1, 11) and "archspec" in str(err)


def test_extends_rules(tmp_path, write_spec):
    write_spec(HEAD + "layers:\n  - flatten\n  - linear: {id: fc, out: 10}\n", "base.yaml")
    err = spec_error(write_spec, "archspec: 1\nextends: base.yaml\noverride:\n  fx: {linear: {out: 2}}\n")
    assert "no layer with id 'fx'" in str(err) and where(err) == (4, 3)
    err = spec_error(write_spec, "archspec: 1\nextends: ../elsewhere.yaml\n")
    assert "leaves the spec's directory" in str(err)
    write_spec("archspec: 1\nextends: loop_b.yaml\n", "loop_a.yaml")
    write_spec("archspec: 1\nextends: loop_a.yaml\n", "loop_b.yaml")
    with pytest.raises(SpecError, match="cycle"):
        archspec.load(tmp_path / "loop_a.yaml")
    spec = archspec.load(write_spec("archspec: 1\nextends: base.yaml\noverride:\n  fc: {linear: {out: 2}}\n"))
    assert archspec.analyze(archspec.expand(spec)).output == [2]


def test_cli_usage_errors_exit_2(tmp_path):
    assert run_cli("check", tmp_path / "missing.yaml").returncode == 2
    assert run_cli("report", "specs/vgg16.yaml", "--input", "3xbig").returncode == 2
    assert run_cli("report", "specs/vgg16.yaml", "--format", "xml").returncode == 2


def test_check_many_reports_each(write_spec, tmp_path):
    good = write_spec(HEAD + "layers: [relu]\n", "good.yaml")
    bad = write_spec(HEAD + "layers: [rleu]\n", "bad.yaml")
    result = run_cli("check", good, bad)
    assert result.returncode == 1
    assert "good.yaml: ok" in result.stdout and "bad.yaml:4:10: error" in result.stderr
