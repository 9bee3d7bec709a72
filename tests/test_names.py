"""One naming rule for everything a user names that reaches generated code or the file system."""
from __future__ import annotations

import pytest

import archspec
from archspec.errors import SpecError
from archspec.names import MAX_NAME, MODULE_ATTRIBUTES, name_problem, safe_file_stem
from conftest import ROOT

VALID = ["conv1", "layer1", "0", "17", "Mixed_5b", "_private", "block1-0", "trunk_output", "a-b-c", "x"]
INVALID = ["", " ", "a b", 'a"b', "x\n", "x\")\nimport os\n#", "1a", "-a", "a-", "a--b", "a.b", "é",
           "class", "def", "lambda", "None", "True", "self", "__init__", "__x__",
           "forward", "training", "eval", "graph", "code", "state_dict", "_modules", "a" * (MAX_NAME + 1)]


@pytest.mark.parametrize("name", VALID)
def test_valid_names(name):
    assert name_problem(name) is None


@pytest.mark.parametrize("name", INVALID)
def test_invalid_names(name):
    assert name_problem(name)


LIVE_ATTRIBUTES = """
import json, torch.fx as fx, torch.nn as nn
from archspec.compile.modules import Group
graph = fx.Graph()
graph.output(graph.placeholder("x"))
live = set()
for obj in (fx.GraphModule(nn.Module(), graph), Group()):
    live |= {n for n in set(dir(obj)) | set(vars(obj)) if not (n.startswith("__") and n.endswith("__"))}
print(json.dumps(sorted(live)))
"""


def test_static_attribute_list_covers_the_installed_torch():
    """The static path cannot import torch, so the attributes a layer name must not shadow are
    listed in archspec.names; this checks the list against real instances of the classes the
    compiler builds, in a fresh process (torch.compile adds attributes to modules it has seen,
    so what a test worker sees depends on the tests it ran before). A new torch may add
    attributes: then the list must grow."""
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", LIVE_ATTRIBUTES], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout
    live = set(json.loads(out))
    assert live <= MODULE_ATTRIBUTES, sorted(live - MODULE_ATTRIBUTES)


@pytest.mark.parametrize("name", ["forward", "training", "eval", "class", "self", "code", "graph", "__init__"])
def test_reserved_id_is_a_located_error(write_spec, name):
    path = write_spec(f"archspec: 1\ninput: [3, 8, 8]\nlayers:\n  - conv: {{id: {name}, out: 4, kernel: 3}}\n")
    with pytest.raises(SpecError) as info:
        archspec.expand(archspec.load(path))
    assert info.value.code == "AS206"
    assert (info.value.loc.line, info.value.loc.col) == (4, 16), str(info.value)  # the value


def test_hyphenated_ids_build_and_name_modules(write_spec):
    import torch

    path = write_spec("archspec: 1\ninput: [3, 8, 8]\nlayers:\n"
                      "  - seq: {id: block1, layers: [{conv: {id: block1-0, out: 4, kernel: 3}}, relu]}\n")
    model = archspec.build(archspec.load(path))
    assert "block1.block1-0.weight" in model.state_dict()
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 4, 6, 6)


def test_spec_name_follows_the_rule_and_defaults_from_the_file_name(write_spec):
    with pytest.raises(SpecError) as info:
        archspec.load(write_spec("archspec: 1\nname: '../../etc/x'\ninput: [3]\nlayers: [relu]\n"))
    assert info.value.code == "AS206"
    spec = archspec.load(write_spec("archspec: 1\ninput: [3]\nlayers: [relu]\n", "3d net (v2).yaml"))
    assert name_problem(spec.name) is None and "3d_net_v2" in spec.name


def test_safe_file_stem_stays_one_component():
    for text in ("../../x", "a/b", "..", "", "x\0y", "name with spaces"):
        stem = safe_file_stem(text)
        assert stem and "/" not in stem and "\0" not in stem and stem not in (".", "..")
