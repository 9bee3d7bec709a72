"""docs/api.md is generated from the package (archspec/report/apidoc.py) and committed: it must
be fresh, cover the whole public API, document every field, and its example must run."""
import dataclasses
import inspect
import re

import pytest

import archspec
from archspec.report import apidoc
from conftest import ROOT

COMMITTED = ROOT / "docs" / "api.md"


def test_committed_api_reference_is_up_to_date():
    assert COMMITTED.exists(), f"docs/api.md is missing; generate it: {apidoc.REGENERATE}"
    assert COMMITTED.read_text() == apidoc.generate(), (
        f"docs/api.md is out of date with the docstrings and fields; regenerate it:\n    {apidoc.REGENERATE}")


def test_every_public_name_is_documented():
    functions = {n for n in archspec.__all__ if inspect.isfunction(getattr(archspec, n))}
    classes = {getattr(archspec, n) for n in archspec.__all__ if inspect.isclass(getattr(archspec, n))}
    assert functions == set(apidoc.FUNCTIONS)
    assert classes <= set(apidoc.CLASSES), classes - set(apidoc.CLASSES)
    for name in apidoc.FUNCTIONS:
        doc = inspect.cleandoc(getattr(archspec, name).__doc__ or "")
        assert len(doc) > 80, f"archspec.{name}: thin docstring"


def test_every_field_has_its_comment():
    assert apidoc.undocumented() == [], "add a '# meaning' comment on these fields' lines"
    text = apidoc.generate()
    for cls in apidoc.CLASSES:
        for f in dataclasses.fields(cls) if dataclasses.is_dataclass(cls) else ():
            assert re.search(rf"^\| `{f.name}` \|.*\| \S[^|]* \|$", text, re.M), (cls.__name__, f.name)


def test_the_example_at_the_top_runs(monkeypatch):
    """The first python block of the committed file, executed from the repository root."""
    block = re.search(r"```python\n(.*?)```", COMMITTED.read_text(), re.S).group(1)
    assert "archspec.load(" in block and "var_overrides=" in block and "input_override=" in block
    monkeypatch.chdir(ROOT)
    exec(compile(block, "docs/api.md", "exec"), {})  # its asserts check the figures


@pytest.mark.slow
def test_export_function_writes_a_verified_file(write_spec, tmp_path):
    """`archspec.export` is the `export` command's code: a verified file, never a silent overwrite."""
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    import numpy as np

    from archspec.io import OutputExists

    spec = write_spec("archspec: 1\nname: small\ninput: [3, 16, 16]\nlayers:\n"
                      "  - conv: {out: 4, kernel: 3, padding: 1}\n  - relu\n  - global_avgpool\n"
                      "  - flatten\n  - linear: {id: fc, out: 5}\n")
    out = tmp_path / "small.onnx"
    result = archspec.export(spec, out, input_shape=(3, 8, 8))
    assert result.path == out and result.report is not None and "verified:" in result.lines()
    assert result.input == ("input", ["batch", 3, 8, 8], "float32")  # input_shape as --input
    assert result.output == ("logits", ["batch", 5], "float32")
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"input": np.zeros((2, 3, 8, 8), np.float32)})
    assert logits.shape == (2, 5)
    with pytest.raises(OutputExists):
        archspec.export(spec, out)
    assert archspec.export(spec, out, force=True, verify=False).report is None
