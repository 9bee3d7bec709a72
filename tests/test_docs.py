"""Every complete spec shown in the README and the docs is valid, so the docs cannot rot."""
import re

import pytest

import archspec
from conftest import ROOT

DOCS = [ROOT / "README.md", ROOT / "docs" / "format.md"]


def doc_specs():
    for path in DOCS:
        for i, block in enumerate(re.findall(r"```yaml\n(.*?)```", path.read_text(), re.S)):
            if "archspec: 1" in block and "input:" in block:
                yield pytest.param(block, id=f"{path.name}-{i}")


@pytest.mark.parametrize("text", list(doc_specs()))
def test_documented_spec_is_valid(text):
    report = archspec.analyze(archspec.expand(archspec.loads(text, "doc.yaml")))
    assert report.totals["params"] > 0


def test_docs_have_specs():
    assert len(list(doc_specs())) >= 2
