"""`archspec graph`: DOT built from the expanded graph, rendered by the real Graphviz `dot`."""
import os
import re
import shutil
import sys
import xml.etree.ElementTree as ET

import pytest

import archspec
from archspec.report import diagram
from conftest import ROOT, run_cli

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")

# A small net with every kind of grouping: a seq stage, a residual block (with a projection
# shortcut), a repeated template whose first repetition differs, and a training-only head.
NET = """\
archspec: 1
name: tiny
input: [3, 32, 32]
templates:
  basic:
    args: {out: required, stride: 1}
    body:
      residual:
        body:
          - conv: {id: conv1, out: $out, kernel: 3, stride: $stride, padding: 1, bias: false}
          - batchnorm: {id: bn1}
          - relu
          - conv: {id: conv2, out: $out, kernel: 3, padding: 1, bias: false}
          - batchnorm: {id: bn2}
        after: [relu]
layers:
  - seq:
      id: stem
      layers:
        - conv: {out: 16, kernel: 3, padding: 1}
        - relu
  - basic: {id: stage1, out: 16, repeat: 3}
  - basic: {id: stage2, out: 32, repeat: 3, first: {stride: 2}}
  - seq:
      id: aux
      training_only: true
      layers:
        - global_avgpool
        - flatten
        - linear: {out: 10}
  - global_avgpool: {id: pool}
  - flatten
  - linear: {id: fc, out: 10}
"""


@pytest.fixture
def net(write_spec):
    return write_spec(NET, "tiny.yaml")


def graph_of(path, **kwargs):
    return archspec.expand(archspec.load(path, **kwargs))


def svg_root(path):
    root = ET.parse(path).getroot()  # raises if the SVG is not well-formed XML
    assert root.tag.endswith("svg")
    return root


def svg_texts(root):
    text = " ".join((t.text or "").strip() for t in root.iter() if t.tag.endswith("text"))
    return re.sub(r"\s+", " ", text.replace("\xa0", " "))


def svg_titles(root):
    return {t.text for t in root.iter() if t.tag.endswith("title")}


@needs_dot
def test_svg_is_valid_xml_with_clusters_for_blocks(net, tmp_path):
    out = tmp_path / "net.svg"
    result = run_cli("graph", net, "-o", out, "--depth", "9")
    assert result.returncode == 0, result.stderr
    root = svg_root(out)
    titles = svg_titles(root)
    for block in ("stem", "stage1", "stage1.0", "stage2.0", "stage2.0.downsample", "aux"):
        assert f"cluster_{block}" in titles, sorted(titles)
    texts = svg_texts(root)
    for name in ("stem", "stage1", "stage2", "aux", "input", "output"):
        assert name in texts
    assert "stage2.0.conv1 · 32×16×16" in texts  # op nodes show their name and shape
    assert "conv 3×3/2, 32" in texts  # op + kernel/stride + out
    assert "32×16×16" in texts  # shapes on the edges


@needs_dot
def test_collapsed_repeat_is_one_box_times_n(net, tmp_path):
    out = tmp_path / "net.svg"
    result = run_cli("graph", net, "-o", out, "--depth", "0")
    assert result.returncode == 0, result.stderr
    root = svg_root(out)
    texts = svg_texts(root)
    assert "stage1 basic ×3" in texts and "stage2 basic ×3" in texts
    assert not any(t.startswith("cluster_") for t in svg_titles(root))
    assert "stage1.0.conv1" not in texts  # collapsed: the ops inside are not drawn


def test_inner_repetitions_fold_when_the_stage_is_expanded(net):
    dot = diagram.to_dot(graph_of(net), depth=1)
    # stage2.0 differs (stride 2, projection shortcut); stage2.1 and stage2.2 are identical.
    assert '"block/stage2.0"' in dot
    assert "stage2.1–2</B> basic ×2" in dot
    assert "16×32×32 · 4.67K params each" in dot or "params each" in dot
    # stage1's three repetitions are all identical: one ×3 box inside the stage1 cluster
    assert "stage1.0–2</B> basic ×3" in dot
    assert "subgraph cluster_stage1 {" in dot and "cluster_stage1.0" not in dot


def test_branches_side_by_side_are_never_folded(write_spec):
    path = write_spec("""\
archspec: 1
input: [8, 16, 16]
templates:
  cr:
    args: {out: required}
    body: [{conv: {out: $out, kernel: 1}}, relu]
layers:
  - inception:
      id: mix
      branches:
        a: [{cr: {out: 4}}]
        b: [{cr: {out: 4}}]
""")
    dot = diagram.to_dot(graph_of(path), depth=2)
    assert "fold/" not in dot and '"block/mix.a.0"' in dot and '"block/mix.b.0"' in dot


def test_training_only_nodes_are_dashed(net):
    dot = diagram.to_dot(graph_of(net))
    line = next(x for x in dot.splitlines() if x.strip().startswith('"aux.2" ['))
    assert "dashed" in line
    fc = next(x for x in dot.splitlines() if x.strip().startswith('fc ['))
    assert "dashed" not in fc
    assert re.search(r'"aux.1" -> "aux.2" \[label=" 32" style=dashed\]', dot)
    assert '"io/output/aux.2"' in dot  # the head's output is drawn, dashed


def test_edges_carry_shapes_and_direction(net):
    dot = diagram.to_dot(graph_of(net), direction="LR")
    assert "rankdir=LR" in dot
    assert '"io/input" -> "stem.0" [label=" 3×32×32"]' in dot
    assert 'fc -> "io/output" [label=" 10"]' in dot


def test_input_override_changes_the_shapes(net, tmp_path):
    out = tmp_path / "net.dot"
    result = run_cli("graph", net, "-o", out, "--input", "3x64x64")
    assert result.returncode == 0, result.stderr
    assert "3×64×64" in out.read_text() and "3×32×32" not in out.read_text()


def test_default_depth_keeps_small_nets_whole_and_folds_big_ones(write_spec, net):
    assert diagram.default_depth(graph_of(net)) is None
    big = NET.replace("repeat: 3, first", "repeat: 40, first")
    graph = graph_of(write_spec(big, "big.yaml"))
    assert len(graph.nodes) > 300
    depth = diagram.default_depth(graph)
    assert depth is not None and diagram.cost(graph, depth) <= diagram.BUDGET
    dot = diagram.to_dot(graph, depth)
    assert "stage2.1–39</B> basic ×39" in dot
    assert dot.count("[label=<") < 40


@needs_dot
def test_png_and_pdf(net, tmp_path):
    for suffix, magic in ((".png", b"\x89PNG"), (".pdf", b"%PDF")):
        out = tmp_path / f"net{suffix}"
        result = run_cli("graph", net, "-o", out)
        assert result.returncode == 0, result.stderr
        assert out.read_bytes().startswith(magic)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.pdf", "net.png", "tiny.yaml"]  # no temp files


def test_usage_errors_exit_2(net, tmp_path):
    for args, words in ((["-o", tmp_path / "x.jpg"], ".svg, .png, .pdf or .dot"),
                        (["-o", tmp_path / "x.dot", "--direction", "up"], "TB or LR"),
                        (["-o", tmp_path / "x.dot", "--input", "3xx"], "--input")):
        result = run_cli("graph", net, *args)
        assert result.returncode == 2, (args, result.stderr)
        assert words in result.stderr and "Traceback" not in result.stderr
    assert not list(tmp_path.glob("x.*"))


def test_invalid_spec_exits_1(write_spec, tmp_path):
    path = write_spec("archspec: 1\ninput: [3, 8, 8]\nlayers:\n  - conv: {out: 4}\n")
    result = run_cli("graph", path, "-o", tmp_path / "x.dot")
    assert result.returncode == 1
    assert result.stderr.startswith(f"{path}:4:") and "Traceback" not in result.stderr


def test_without_dot_on_path(net, tmp_path):
    """No Graphviz: .dot still works, other formats fail with one clear line, exit 2."""
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {**os.environ, "PATH": str(empty)}
    assert shutil.which("dot", path=str(empty)) is None
    svg = tmp_path / "net.svg"
    result = run_cli("graph", net, "-o", svg, env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "'dot'" in lines[0] and "Graphviz" in lines[0] and ".dot" in lines[0]
    assert not svg.exists()
    dot = tmp_path / "net.dot"
    result = run_cli("graph", net, "-o", dot, env=env)
    assert result.returncode == 0, result.stderr
    assert dot.read_text().startswith('digraph tiny {')


@needs_dot
@pytest.mark.skipif(not (ROOT / "specs" / "resnet50.yaml").exists(), reason="no resnet50 in the zoo")
def test_resnet50_renders_its_stages_collapsed(tmp_path):
    out = tmp_path / "resnet50.svg"
    result = run_cli("graph", ROOT / "specs" / "resnet50.yaml", "-o", out)
    assert result.returncode == 0, result.stderr
    root = svg_root(out)
    titles, texts = svg_titles(root), svg_texts(root)
    for stage in ("layer1", "layer2", "layer3", "layer4"):
        assert f"cluster_{stage}" in titles
    assert "×5" in texts  # layer3's repetitions after the first, folded
    nodes = [g for g in root.iter() if g.tag.endswith("g") and g.get("class") == "node"]
    assert len(nodes) < 40, len(nodes)


def test_every_zoo_spec_makes_dot_text():
    for path in sorted((ROOT / "specs").glob("*.yaml")):
        graph = graph_of(path)
        text = diagram.to_dot(graph, diagram.default_depth(graph))
        assert text.startswith("digraph") and text.rstrip().endswith("}"), path


@needs_dot
def test_dot_accepts_every_depth(net):
    import subprocess

    graph = graph_of(net)
    for depth in (0, 1, 2, 3, None):
        proc = subprocess.run(["dot", "-Tsvg"], input=diagram.to_dot(graph, depth).encode(),
                              capture_output=True, timeout=120)
        assert proc.returncode == 0 and not proc.stderr, (depth, proc.stderr[:300])
        ET.fromstring(proc.stdout)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))
