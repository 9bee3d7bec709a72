"""`archspec graph` output files and the graph's interop: every format is published by
archspec.io (a new file gets the mode `open()` would give it), the graphviz package quotes
awkward names, a missing `dot` is one line, and `Graph.to_networkx` mirrors the graph."""
import os
import shutil
import stat
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import archspec
from archspec.graph.ir import INPUT
from archspec.report import diagram
from conftest import ROOT, run_cli

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
RESNET18 = ROOT / "specs" / "resnet18.yaml"
MAGIC = {".svg": b"<?xml", ".dot": b"digraph", ".png": b"\x89PNG", ".pdf": b"%PDF"}


def fresh_file_mode(directory, umask) -> int:
    """The mode a plain `open(path, 'w')` gives a new file under `umask`."""
    old = os.umask(umask)
    try:
        probe = directory / f"probe-{umask:03o}"
        with open(probe, "w"):
            pass
    finally:
        os.umask(old)
    return stat.S_IMODE(probe.stat().st_mode)


@needs_dot
@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_every_format_gets_the_mode_of_a_fresh_file(tmp_path, umask):
    expected = fresh_file_mode(tmp_path, umask)
    assert expected == 0o666 & ~umask
    old = os.umask(umask)  # the CLI's subprocess inherits it
    try:
        for suffix, magic in MAGIC.items():
            out = tmp_path / f"r{suffix}"
            result = run_cli("graph", RESNET18, "-o", out)
            assert result.returncode == 0, result.stderr
            assert out.read_bytes().startswith(magic), suffix
            assert stat.S_IMODE(out.stat().st_mode) == expected, (suffix, oct(out.stat().st_mode))
    finally:
        os.umask(old)
    leftovers = [p.name for p in tmp_path.iterdir() if ".archspec-" in p.name]
    assert leftovers == []


@needs_dot
def test_names_dot_treats_as_syntax_are_quoted(write_spec, tmp_path):
    """DOT keywords and '-' in ids: the graphviz package's quoting keeps them node names."""
    path = write_spec("""\
archspec: 1
name: strict
input: [3, 8, 8]
layers:
  - conv: {id: node, out: 4, kernel: 3}
  - relu: {id: edge}
  - seq: {id: block1-0, layers: [{conv: {id: subgraph, out: 4, kernel: 1}}, relu]}
  - flatten: {id: digraph}
""")
    drawing = diagram.draw(archspec.expand(archspec.load(path)))
    svg = diagram.render(drawing, "svg")
    titles = {t.text for t in ET.fromstring(svg).iter() if t.tag.endswith("title")}
    for name in ("node", "edge", "block1-0.subgraph", "digraph", "cluster_block1-0"):
        assert name in titles, sorted(titles)
    assert "node&#45;&gt;edge" in svg.decode()  # the edge between the two, by name


def test_render_without_dot_is_the_install_hint(net_graph, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # graphviz looks `dot` up on PATH when it runs it
    with pytest.raises(diagram.DiagramError) as info:
        diagram.write(diagram.draw(net_graph), tmp_path / "x.svg")
    assert "'dot'" in str(info.value) and "-o net.dot" in str(info.value)
    assert not (tmp_path / "x.svg").exists()
    diagram.write(diagram.draw(net_graph), tmp_path / "x.dot")  # DOT needs no program
    assert (tmp_path / "x.dot").read_text().startswith("digraph resnet18 {")


@pytest.fixture
def net_graph():
    return archspec.expand(archspec.load(RESNET18))


def test_to_networkx_mirrors_the_graph(net_graph):
    import networkx as nx

    dag = net_graph.to_networkx()
    assert nx.is_directed_acyclic_graph(dag)
    assert set(dag.nodes) == {INPUT, *net_graph.nodes}
    assert dag.number_of_edges() == sum(len(n.inputs) for n in net_graph.nodes.values())
    order = {name: i for i, name in enumerate([INPUT, *net_graph.nodes])}
    assert all(order[a] < order[b] for a, b in dag.edges)  # the graph's order is topological
    add = net_graph.nodes["layer2.0.add"]
    assert sorted(dag.predecessors(add.name)) == sorted(add.inputs)
    assert dag.edges["layer2.0.downsample.1", add.name]["shape"] == (128, 28, 28)
    assert dag.nodes["fc"]["node"] is net_graph.nodes["fc"]


def dot_children() -> list:
    """`dot` processes this test process started that still exist (running or unreaped)."""
    found = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
            comm = stat_file.read_text().split("(", 1)[1].rsplit(")", 1)[0]
        except (OSError, IndexError):
            continue
        if comm == "dot" and int(fields[1]) == os.getpid():
            found.append(stat_file.parent.name)
    return found


@needs_dot
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_dot_past_its_time_is_stopped(net_graph):
    """graphviz's pipe has no timeout: render's deadline stops dot (killed and reaped, not
    left running) and says what to do; a full-depth DenseNet-201 once kept dot busy > 10 min."""
    drawing = diagram.draw(net_graph)
    with pytest.raises(diagram.DiagramError, match=r"longer than 0.001 s; draw fewer levels with --depth"):
        diagram.render(drawing, "svg", timeout=0.001)
    assert dot_children() == []
    assert diagram.render(drawing, "svg").startswith(b"<?xml")  # the alarm is off again
