"""The expanded graph: primitive nodes with hierarchical names, in topological order."""
from __future__ import annotations

from dataclasses import dataclass, field

from archspec.errors import Location
from archspec.spec.load import Src

INPUT = "input"  # the name of the network's input everywhere in the graph


@dataclass
class Node:
    """One primitive op of the expanded graph."""

    name: str  # hierarchical, unique: 'layer1.0.conv1'
    op: str  # the op's name in the registry (`archspec.ops.OPS`): 'conv', 'add', ...
    params: object  # the op's validated OpParams
    inputs: tuple  # names of producing nodes (or INPUT)
    shape: tuple  # output shape without batch
    src: Src  # where in the spec it comes from (`node.loc` is its file:line:col)
    trainable: bool = True  # false: its parameters are frozen (`trainable: false`)
    training_only: bool = False  # part of a training-only head (`training_only: true`)
    blocks: tuple = ()  # enclosing block names, outermost first
    tie: str | None = None  # the node whose parameters this one uses (`tie`), never itself tied
    tie_transposed: bool = False  # uses `tie`'s weight transposed and keeps its own bias

    @property
    def loc(self) -> Location:
        return self.src.loc


@dataclass
class BlockInfo:
    name: str
    kind: str  # 'seq', 'repeat', 'residual', a template's name, ...
    src: Src
    repeat: int = 1


@dataclass
class Diagnostic:
    """A warning about a node: the spec is valid, but probably not what was meant."""

    loc: Location
    node: str
    message: str
    code: str = "AS801"

    def __str__(self) -> str:
        return f"{self.loc}: warning: '{self.node}': {self.message} [{self.code}]"

    def to_json(self) -> dict:
        from archspec.errors import diagnostic_json

        return {**diagnostic_json(self.loc, "warning", self.code, self.message), "node": self.node}


@dataclass
class Graph:
    """A spec expanded into primitive ops (`archspec.expand`), shapes inferred. `shape(name)`
    gives a node's output shape, `consumers()` who reads each node, `to_networkx()` a
    networkx DiGraph for graph algorithms."""

    name: str  # the spec's name
    input_shape: tuple  # without the batch axis: (C, H, W), (C, L) or (C, D, H, W)
    nodes: dict = field(default_factory=dict)  # name -> Node, in topological order
    output: str = INPUT  # the node whose output is the network's main output
    extra_outputs: list = field(default_factory=list)  # training-only heads, extra outputs
    blocks: dict = field(default_factory=dict)  # name -> BlockInfo
    warnings: list = field(default_factory=list)  # Diagnostic objects (AS8xx): valid, but probably not meant
    files: list = field(default_factory=list)  # the spec file and every file it `extends`

    def shape(self, name: str) -> tuple:
        return self.input_shape if name == INPUT else self.nodes[name].shape

    def consumers(self) -> dict:
        users = {name: [] for name in self.nodes}
        users[INPUT] = []
        for node in self.nodes.values():
            for src in node.inputs:
                users[src].append(node.name)
        return users

    def inference_nodes(self) -> list:
        return [n for n in self.nodes.values() if not n.training_only]

    def to_networkx(self):
        """The graph as a networkx DiGraph (nodes carry `node=Node`, edges carry `shape`)."""
        import networkx as nx

        dag = nx.DiGraph(name=self.name)
        dag.add_node(INPUT, node=None, shape=self.input_shape)
        for node in self.nodes.values():
            dag.add_node(node.name, node=node, shape=node.shape)
            for src in node.inputs:
                dag.add_edge(src, node.name, shape=self.shape(src))
        return dag
