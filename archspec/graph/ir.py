"""The expanded graph: primitive nodes with hierarchical names, in topological order."""
from __future__ import annotations

from dataclasses import dataclass, field

from archspec.errors import Location
from archspec.spec.load import Src

INPUT = "input"  # the name of the network's input everywhere in the graph


@dataclass
class Node:
    name: str  # hierarchical, unique: 'layer1.0.conv1'
    op: str
    params: object  # the op's validated OpParams
    inputs: tuple  # names of producing nodes (or INPUT)
    shape: tuple  # output shape without batch
    src: Src
    trainable: bool = True
    training_only: bool = False
    blocks: tuple = ()  # enclosing block names, outermost first
    tie: str | None = None  # the node whose parameters this one uses (`tie`), never itself tied

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
    name: str
    input_shape: tuple
    nodes: dict = field(default_factory=dict)  # name -> Node, in topological order
    output: str = INPUT
    extra_outputs: list = field(default_factory=list)  # training-only heads, extra outputs
    blocks: dict = field(default_factory=dict)  # name -> BlockInfo
    warnings: list = field(default_factory=list)
    files: list = field(default_factory=list)

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
