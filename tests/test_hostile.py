"""Hostile or runaway specs end in one located error, quickly — never a traceback, a hang or
an allocation the size of the input's ambition."""
import pytest

import archspec
from archspec.errors import SpecError
from conftest import run_cli

HEAD = "archspec: 1\ninput: [3, 8, 8]\n"

CASES = {
    "self-recursive template": (HEAD + "templates:\n  loop:\n    body: [relu, loop]\nlayers: [loop]\n",
                                "uses itself (loop -> loop)"),
    "mutually recursive templates": (HEAD + "templates:\n  a:\n    body: [relu, b]\n  b:\n    body: {a: {}}\n"
                                     "layers: [a]\n", "uses itself (a -> b -> a)"),
    "repeat explosion": (HEAD + "layers:\n  - residual: {preset: basic, out: 3, repeat: 100000}\n",
                         "over the limit of 250,000"),
    "exponent tower": (HEAD + "vars: {a: '${9 ** 9 ** 9}'}\nlayers: [relu]\n", "exponent too large"),
    "huge value": (HEAD + "vars: {a: '${10 ** 60}'}\nlayers: [relu]\n", "too large"),
    "alias bomb": (HEAD + "a: &a [1, 1]\nb: &b [*a, *a]\nc: [*b, *b]\nlayers: [relu]\n", "anchors are not supported"),
    "python tag": (HEAD + "layers:\n  - !!python/object/apply:os.system ['true']\n", "tag"),
    "eval attempt": (HEAD + "layers:\n  - conv: {out: '${__import__(\"os\").system(\"true\")}', kernel: 1}\n",
                     "unsupported syntax"),
    "attribute access": (HEAD + "vars: {a: 1}\nlayers:\n  - conv: {out: '${a.__class__}', kernel: 1}\n",
                         "unsupported syntax"),
    "negative repeat": (HEAD + "layers:\n  - relu: {repeat: -1}\n", "repeat"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_spec_is_a_located_error(write_spec, name):
    text, words = CASES[name]
    path = write_spec(text)
    with pytest.raises(SpecError) as info:
        archspec.expand(archspec.load(path))
    assert words in str(info.value)
    assert info.value.loc is not None and info.value.loc.file == str(path)


def test_cli_never_shows_a_traceback(write_spec):
    for name, (text, _) in CASES.items():
        result = run_cli("check", write_spec(text, f"{name.replace(' ', '_')}.yaml"))
        assert result.returncode == 1, name
        assert "Traceback" not in result.stderr and result.stderr.count("error:") == 1, result.stderr


@pytest.mark.parametrize("command", ["build", "export", "bench"])
def test_oversized_model_is_refused_before_allocating(write_spec, tmp_path, command):
    # Statically valid (a 100000x100000 input), but no machine runs it: the commands that
    # allocate and run the model refuse it up front (exit 2) instead of being OOM-killed.
    path = write_spec("archspec: 1\ninput: [3, 100000, 100000]\nlayers:\n  - conv: {out: 64, kernel: 3}\n")
    out = tmp_path / ("model.onnx" if command == "export" else "model.pth")
    args = [command, path] + ([] if command == "bench" else ["-o", out])
    result = run_cli(*args)
    assert result.returncode == 2, result.stderr
    assert "needs about" in result.stderr and "GiB" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()
