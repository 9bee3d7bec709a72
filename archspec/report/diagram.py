"""Architecture diagrams: an expanded `Graph` drawn as Graphviz DOT, rendered by `dot`.

Blocks are drawn as clusters, nested as they are in the spec. Blocks deeper than `depth`
are collapsed into one box (name, kind, output shape, parameters); a collapsed `repeat` is
one "×N" box, and consecutive identical collapsed siblings (the repetitions after the first
in a ResNet stage) are folded into one "×k" box. Edges carry the shape that flows along
them; training-only nodes are dashed.

Without an explicit depth, `default_depth` picks the deepest level whose drawing's `cost`
(boxes, clusters and edges beyond a chain) stays under `BUDGET`, so a 150-layer net shows
its stages and blocks, not 500 ops.

The drawing is a `graphviz.Digraph` (the graphviz package, imported only when drawing: it
quotes ids and values); DOT is its source, other formats are what Graphviz's real `dot`
program renders through `graphviz.pipe` (bytes, within `DOT_TIMEOUT_S`), and every file goes
through archspec.io.
"""
from __future__ import annotations

import contextlib
import shutil
import signal
import threading
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

from archspec.graph.analyze import analyze
from archspec.graph.ir import INPUT, Graph
from archspec.io import write_bytes
from archspec.ops import OPS

FORMATS = ("svg", "png", "pdf", "dot")
DIRECTIONS = ("TB", "LR")
BUDGET = 150  # the most `cost` the automatic depth allows (unless even depth 0 exceeds it)
DOT_TIMEOUT_S = 600

_FONT = "Helvetica"
_SMALL = '<FONT POINT-SIZE="8" COLOR="#555555">{}</FONT>'
_FILL_WEIGHTS = "#dae8fc"  # ops with learned weights that do MACs (conv, linear)
_FILL_WINDOW = "#d5e8d4"  # windowed ops without weights (pooling)
_FILL_MERGE = "#fff2cc"  # several inputs (add, concat)
_FILL_OTHER = "#f7f7f7"  # element-wise (activations, normalisation, reshapes)
_FILL_BLOCK = "#e1d5e7"  # a collapsed block
_CLUSTER_FILLS = ("#f5f7fc", "#eceff7", "#e3e8f3", "#dbe1ee")


class DiagramError(Exception):
    """A problem producing the picture (environment or usage), not with the spec."""


# ---- structure -----------------------------------------------------------------------------


@dataclass
class _Tree:
    """The block hierarchy seen from the nodes: parent, depth and contents of every block."""

    parent: dict = field(default_factory=dict)  # block -> enclosing block (None at top)
    depth: dict = field(default_factory=dict)  # block -> 1 for top-level blocks
    nodes: dict = field(default_factory=dict)  # block -> node names in its subtree, in order
    first: dict = field(default_factory=dict)  # block -> index of its first node
    children: dict = field(default_factory=dict)  # block or None -> direct child blocks, in order


def _tree(graph: Graph) -> _Tree:
    tree = _Tree()
    tree.children[None] = []
    for index, node in enumerate(graph.nodes.values()):
        for level, block in enumerate(node.blocks):
            if block not in tree.parent:
                parent = node.blocks[level - 1] if level else None
                tree.parent[block] = parent
                tree.depth[block] = level + 1
                tree.first[block] = index
                tree.nodes[block] = []
                tree.children.setdefault(parent, []).append(block)
                tree.children[block] = []
            tree.nodes[block].append(node.name)
    return tree


def _kind(graph: Graph, block: str) -> str:
    info = graph.blocks.get(block)
    return "block" if info is None else info.kind


def _repeat(graph: Graph, block: str) -> int:
    info = graph.blocks.get(block)
    return info.repeat if info is not None else 1


def _signature(graph: Graph, tree: _Tree, block: str) -> tuple:
    """Everything that makes two blocks look the same when collapsed."""
    prefix = len(block) + 1
    inside = set(tree.nodes[block])
    parts = []
    for name in tree.nodes[block]:
        node = graph.nodes[name]
        inputs = tuple(i[prefix:] if i in inside else "<in>" for i in node.inputs)
        parts.append((name[prefix:], node.op, repr(node.params), node.shape, inputs,
                      node.trainable, node.training_only))
    first = graph.nodes[tree.nodes[block][0]]
    in_shapes = tuple(graph.shape(i) for i in first.inputs)
    return _kind(graph, block), _repeat(graph, block), in_shapes, tuple(parts)


# ---- what is drawn -------------------------------------------------------------------------


@dataclass
class _Layout:
    rep: dict  # node name -> id of the item that stands for it
    items: dict  # item id -> (kind, payload, parent cluster, first index)
    clusters: list  # expanded blocks that hold something


def _layout(graph: Graph, tree: _Tree, depth: int | None) -> _Layout:
    def expanded(block):
        return depth is None or tree.depth[block] <= depth

    users = graph.consumers()
    signatures: dict = {}

    def signature(block):
        if block not in signatures:
            signatures[block] = _signature(graph, tree, block)
        return signatures[block]

    folds = {}  # block -> the fold item standing for it
    fold_items = {}
    for parent, kids in tree.children.items():
        if parent is not None and not expanded(parent):
            continue
        run: list = []
        for kid in kids + [None]:
            if kid is not None and not expanded(kid) and run and \
                    _chained(graph, tree, users, run[-1], kid) and signature(run[-1]) == signature(kid):
                run.append(kid)
                continue
            if len(run) >= 2:
                item = f"fold/{run[0]}"
                fold_items[item] = (run, parent)
                for member in run:
                    folds[member] = item
            run = [kid] if kid is not None and not expanded(kid) else []

    rep, items = {}, {}
    for index, node in enumerate(graph.nodes.values()):
        chain = node.blocks
        if depth is None or len(chain) <= depth:
            # a group around a single op (a residual's `after: [relu]`) gets no cluster of its own
            groups = [b for b in chain if len(tree.nodes[b]) > 1]
            item, kind, payload, parent = node.name, "node", node.name, groups[-1] if groups else None
        else:
            block = chain[depth]
            parent = chain[depth - 1] if depth else None
            if block in folds:
                item = folds[block]
                kind, payload = "fold", fold_items[item][0]
            elif len(tree.nodes[block]) == 1:  # a one-op block is clearer drawn as the op
                item, kind, payload = node.name, "node", node.name
                groups = [b for b in chain[:depth] if len(tree.nodes[b]) > 1]
                parent = groups[-1] if groups else None
            else:
                item, kind, payload = f"block/{block}", "block", block
        rep[node.name] = item
        if item not in items:
            items[item] = (kind, payload, parent, index)
    used = {parent for (_, _, parent, _) in items.values() if parent is not None}
    clusters = [b for b in tree.parent if expanded(b) and _holds(b, used, tree)]
    return _Layout(rep, items, clusters)


def _chained(graph: Graph, tree: _Tree, users: dict, before: str, after: str) -> bool:
    """Whether `after` takes its input only from `before`, and `before` feeds only `after`
    (a stage's repetitions); blocks side by side (branches) are never folded together."""
    first, second = set(tree.nodes[before]), set(tree.nodes[after])
    both = first | second
    fed = {i for name in second for i in graph.nodes[name].inputs} - second
    if not fed or not fed <= first:
        return False
    ends = {graph.output, *graph.extra_outputs}
    return all(u in both for name in first for u in users[name]) and not ends & first


def _holds(block, used, tree) -> bool:
    return block in used or any(_holds(kid, used, tree) for kid in tree.children.get(block, ()))


def _edges(graph: Graph, layout: _Layout) -> dict:
    """(tail item, head item) -> [shape labels, whether only training-only nodes use it]."""
    edges: dict = {}
    for node in graph.nodes.values():
        head = layout.rep[node.name]
        for source in node.inputs:
            tail = INPUT_ID if source == INPUT else layout.rep[source]
            if tail == head:
                continue
            entry = edges.setdefault((tail, head), [[], True])
            label = _shape(graph.shape(source))
            if label not in entry[0]:
                entry[0].append(label)
            entry[1] = entry[1] and node.training_only
    return edges


def cost(graph: Graph, depth: int | None) -> int:
    """How busy a drawing at `depth` is: its boxes and clusters, plus every edge beyond one
    per box (a chain costs nothing extra; DenseNet's all-to-all concatenations cost a lot)."""
    layout = _layout(graph, _tree(graph), depth)
    boxes = len(layout.items)
    return boxes + len(layout.clusters) + max(0, len(_edges(graph, layout)) - boxes)


def default_depth(graph: Graph, budget: int = BUDGET) -> int | None:
    """Everything (None) when the drawing's `cost` fits in `budget`, else the deepest level
    that does (at least 0: every top-level block collapsed)."""
    if cost(graph, None) <= budget:
        return None
    deepest = max((len(n.blocks) for n in graph.nodes.values()), default=0)
    best = 0
    for depth in range(1, deepest + 1):
        if cost(graph, depth) > budget:
            break
        best = depth
    return best


# ---- the drawing ---------------------------------------------------------------------------

# Ids of the items that are not nodes of the graph. Names never contain '/' (archspec/names.py),
# so these cannot clash with a node's name; ':' is avoided because graphviz's `edge()` reads it
# as a port separator.
INPUT_ID = "io/input"
OUTPUT_ID = "io/output"


def draw(graph: Graph, depth: int | None = None, direction: str = "TB"):
    """The diagram as a `graphviz.Digraph` (blocks as clusters); `depth=None` draws every
    block expanded. The graphviz package quotes ids and attribute values; labels that are
    Graphviz HTML (`<...>`) are built here with every user text escaped."""
    import graphviz  # not on the check/report path

    if direction not in DIRECTIONS:
        raise DiagramError(f"direction must be one of {', '.join(DIRECTIONS)}. Received: '{direction}'")
    if depth is not None and depth < 0:
        raise DiagramError(f"depth must be 0 or more. Received: {depth}")
    tree = _tree(graph)
    layout = _layout(graph, tree, depth)
    report = analyze(graph)
    stats = {s.name: s for s in report.layers}

    title = (f"<<B>{escape(graph.name)}</B>  {_shape(graph.input_shape)} → "
             f"{_shape(graph.shape(graph.output))} · {_count(report.totals['params'])} params · "
             f"{_count(report.totals['macs'])} MACs>")
    drawing = graphviz.Digraph(
        name=graph.name,
        graph_attr={"rankdir": direction, "fontname": _FONT, "fontsize": "12", "labelloc": "t",
                    "label": title, "nodesep": "0.25", "ranksep": "0.28", "newrank": "true",
                    "compound": "true", "outputorder": "edgesfirst"},
        node_attr={"shape": "box", "style": "rounded,filled", "fontname": _FONT, "fontsize": "10",
                   "height": "0.3", "margin": "0.10,0.04", "color": "#666666", "penwidth": "0.8",
                   "fillcolor": _FILL_OTHER},
        edge_attr={"fontname": _FONT, "fontsize": "8", "fontcolor": "#555555", "color": "#777777",
                   "arrowsize": "0.6", "penwidth": "0.8"})
    drawing.node(INPUT_ID, f"<<B>input</B><BR/>{_SMALL.format(_shape(graph.input_shape))}>",
                 shape="oval", style="filled", fillcolor="white")

    by_parent: dict = {}
    for item, (kind, payload, parent, index) in layout.items.items():
        by_parent.setdefault(parent, []).append((index, "item", item))
    for block in layout.clusters:
        by_parent.setdefault(tree.parent[block], []).append((tree.first[block], "cluster", block))

    def emit(parent, into):
        for _, what, key in sorted(by_parent.get(parent, [])):
            if what == "item":
                _item(into, graph, tree, stats, key, layout.items[key])
                continue
            level = tree.depth[key]
            all_aux = all(graph.nodes[n].training_only for n in tree.nodes[key])
            with into.subgraph(name="cluster_" + key, graph_attr={
                    "label": f"<{_block_title(graph, key)}>", "labeljust": "l",
                    "style": "rounded,filled,dashed" if all_aux else "rounded,filled",
                    "fillcolor": _CLUSTER_FILLS[(level - 1) % len(_CLUSTER_FILLS)],
                    "color": "#9aa5b8", "fontsize": "10", "margin": "8"}) as cluster:
                emit(key, cluster)

    emit(None, drawing)

    edges = _edges(graph, layout)
    sinks = [graph.output] + [o for o in graph.extra_outputs if o != graph.output]
    for number, name in enumerate(sinks):
        sink = OUTPUT_ID if number == 0 else f"{OUTPUT_ID}/{name}"
        aux = name != graph.output and name in graph.nodes and graph.nodes[name].training_only
        text = "output" if number == 0 else f"output {escape(name)}"
        drawing.node(sink, f"<<B>{text}</B><BR/>{_SMALL.format(_shape(graph.shape(name)))}>",
                     shape="oval", style="filled,dashed" if aux else "filled", fillcolor="white")
        tail = INPUT_ID if name == INPUT else layout.rep[name]
        edges[(tail, sink)] = [[_shape(graph.shape(name))], aux]
    for (tail, head), (labels, aux) in edges.items():
        drawing.edge(tail, head, label=" " + ", ".join(labels), style="dashed" if aux else None)
    return drawing


def to_dot(graph: Graph, depth: int | None = None, direction: str = "TB") -> str:
    """The diagram as DOT source (what `archspec graph -o net.dot` writes)."""
    return draw(graph, depth, direction).source


def _item(into, graph, tree, stats, item, spec) -> None:
    """Add the box for one layout item (an op, a collapsed block or a fold) to `into`."""
    import graphviz

    kind, payload, _, _ = spec
    if kind == "node":
        node = graph.nodes[payload]
        op = OPS[node.op]
        stat = stats[payload]
        attrs = _attrs(node.params, node.shape)
        head = f"<B>{escape(node.op)}</B>" + (f" {escape(attrs)}" if attrs else "")
        detail = f"{escape(node.name)} · {_shape(node.shape)}"
        if not node.trainable and stat.params:
            detail += " · frozen"
        if len(node.inputs) > 1:
            fill = _FILL_MERGE
        elif stat.macs:
            fill = _FILL_WEIGHTS
        elif op.spatial == "window":
            fill = _FILL_WINDOW
        else:
            fill = _FILL_OTHER
        tip = f"{node.name} ({node.op}) {_shape(node.shape)}, {stat.params:,} params — {node.loc}"
        into.node(item, f"<{head}<BR/>{_SMALL.format(detail)}>", fillcolor=fill,
                  style="rounded,filled,dashed" if node.training_only else None,
                  tooltip=graphviz.escape(tip))  # a path in the location: backslashes are literal
        return
    blocks = payload if kind == "fold" else [payload]
    names = [n for b in blocks for n in tree.nodes[b]]
    params = sum(stats[n].params for n in names)
    last = tree.nodes[blocks[-1]][-1]
    block = blocks[0]
    count = len(blocks)
    if kind == "fold":
        title = f"<B>{escape(_span(blocks))}</B> {escape(_kind(graph, block))} ×{count}"
        each = f"{_count(params // count)} params each" if params else "no params"
        detail = f"{_shape(graph.shape(last))} · {each}"
        shape = "box3d"
    else:
        title = _block_title(graph, block)
        detail = f"{_shape(graph.shape(last))} · {_count(params)} params" if params else \
            f"{_shape(graph.shape(last))}"
        shape = "box3d" if _repeat(graph, block) > 1 else "box"
    aux = all(graph.nodes[n].training_only for n in names)
    tip = f"{_span(blocks)} ({_kind(graph, block)}): {len(names)} ops, {params:,} params"
    into.node(item, f"<{title}<BR/>{_SMALL.format(detail)}>", shape=shape,
              style="filled,dashed" if aux else "filled", fillcolor=_FILL_BLOCK,
              tooltip=graphviz.escape(tip))


def _block_title(graph, block) -> str:
    repeat = _repeat(graph, block)
    times = f" ×{repeat}" if repeat > 1 else ""
    return f"<B>{escape(block)}</B> {escape(_kind(graph, block))}{times}"


def _span(blocks) -> str:
    if len(blocks) == 1:
        return blocks[0]
    first, last = blocks[0], blocks[-1]
    head, _, tail = last.rpartition(".")
    if head and first.startswith(head + "."):
        return f"{first}–{tail}"
    return f"{first} … {last}"


# ---- formatting --------------------------------------------------------------------------


def _as_tuple(value, axes: int = 2) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * axes


def _attrs(params, shape) -> str:
    """Key settings of an op, read from its parameter names (never from the op's name):
    '7×7/2, 64' for a 7×7 stride-2 conv with 64 outputs."""
    values = dict(params) if params is not None else {}
    axes = max(len(shape) - 1, 1)  # spatial axes: a kernel of 3 is 3×3×3 on (C, D, H, W)
    parts = []
    kernel = values.get("kernel")
    if kernel is not None:
        text = _pair(kernel, axes=axes)
        stride = values.get("stride", 1)
        stride = kernel if stride is None else stride  # pooling: the stride defaults to the kernel
        if _pair(stride, square=True) != "1":
            text += f"/{_pair(stride, square=True)}"
        parts.append(text)
    for key, fmt in (("dilation", "d{}"), ("groups", "g{}")):
        value = values.get(key)
        if value not in (None, 1, (1, 1)):
            parts.append(fmt.format(_pair(value, square=True)))
    if values.get("out") is not None:
        parts.append(str(values["out"]))
    if values.get("size") is not None and tuple(shape[1:]) == _as_tuple(values["size"], axes):
        parts.append(f"→ {_pair(values['size'], axes=axes)}")  # an output size (adaptive pooling, resizing)
    if values.get("scale") is not None:
        parts.append(f"×{_pair(values['scale'], square=True)}")
    if isinstance(values.get("p"), float):
        parts.append(f"p={values['p']:g}")
    return ", ".join(parts)


def _pair(value, square: bool = False, axes: int = 2) -> str:
    if isinstance(value, (tuple, list)):
        if square and len(set(value)) == 1:
            return str(value[0])
        return "×".join(map(str, value))
    return str(value) if square else "×".join([str(value)] * axes)


def _shape(shape) -> str:
    return "×".join(map(str, shape))


def _count(n: int) -> str:
    for suffix, size in (("G", 10**9), ("M", 10**6), ("K", 10**3)):
        if n >= size:
            return f"{n / size:.3g}{suffix}"
    return str(n)


# ---- rendering -----------------------------------------------------------------------------


def output_format(path) -> str:
    """The format named by the output file's extension ('gv' is DOT too)."""
    suffix = Path(path).suffix.lower().lstrip(".")
    suffix = "dot" if suffix == "gv" else suffix
    if suffix not in FORMATS:
        raise DiagramError(f"cannot tell the format from '{path}': use a .svg, .png, .pdf or .dot file")
    return suffix


_NO_DOT = ("Graphviz's 'dot' program is not on PATH, so only .dot output works; "
           "install Graphviz (e.g. apt install graphviz) or write '-o net.dot'")


def find_dot() -> str:
    """The path of Graphviz's `dot`, or DiagramError with the install hint."""
    exe = shutil.which("dot")
    if exe is None:
        raise DiagramError(_NO_DOT)
    return exe


def render(drawing, fmt: str, timeout: float = DOT_TIMEOUT_S) -> bytes:
    """`drawing` (a graphviz.Digraph) rendered by `dot` to `fmt`, as bytes (nothing on disk).
    `dot` is stopped after `timeout` seconds (from the main thread; a big net drawn to full
    depth can keep it busy for an hour)."""
    import graphviz

    try:
        with _deadline(timeout):
            # graphviz.pipe, not Digraph.pipe: it runs dot through subprocess.run, which kills
            # dot when the deadline interrupts it (Digraph.pipe's Popen would leave it running)
            return graphviz.pipe("dot", fmt, drawing.source.encode(), quiet=True)
    except _Overtime:
        raise DiagramError(f"dot took longer than {timeout:g} s; draw fewer levels with --depth") from None
    except graphviz.ExecutableNotFound:
        raise DiagramError(_NO_DOT) from None
    except graphviz.CalledProcessError as exc:
        reason = (exc.stderr or b"").decode(errors="replace").strip().splitlines()
        raise DiagramError(f"dot failed (exit {exc.returncode})"
                           + (f": {reason[0]}" if reason else "")) from None


class _Overtime(Exception):
    """Raised by the SIGALRM handler of `_deadline`."""


@contextlib.contextmanager
def _deadline(seconds: float):
    """Raise _Overtime in the block after `seconds` (graphviz's pipe takes no timeout). Signals
    reach only the main thread: elsewhere the block runs without a limit."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def expire(signum, frame):
        raise _Overtime

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def write(drawing, path) -> None:
    """Write `drawing` (from `draw`) to `path` in the format its extension names. Every format
    goes through archspec.io's `write_bytes` (atomically, a new file with the mode `open()`
    gives, devices in place): DOT is the source, the rest what `dot` pipes back."""
    fmt = output_format(path)
    data = drawing.source.encode() if fmt == "dot" else render(drawing, fmt)
    write_bytes(path, data)
