"""What the analysis worker sends the server about one version of a document: plain,
picklable data, so the server never needs the graph itself.

Positions are 0-based lines and code-point columns (Python string indices), end exclusive;
the server converts them to the client's encoding (UTF-16 by default) with the text at hand.
"""
from __future__ import annotations

import pickle
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def split_lines(text: str) -> list:
    """Lines as the LSP counts them (only CR, LF and CRLF end a line)."""
    return _LINE_BREAK.split(text)


class Packed(Sequence):
    """A list that crosses the pipe as one pickled blob and is unpacked on first use. The
    server publishes diagnostics without paying for the thousands of marks and entries of a
    long spec; a hover or an inlay-hint request unpacks them (once per version)."""

    def __init__(self, items=(), blob: bytes | None = None):
        self._items = list(items) if blob is None else None
        self._blob = blob

    def __reduce__(self):
        blob = self._blob if self._items is None else pickle.dumps(self._items, pickle.HIGHEST_PROTOCOL)
        return (Packed, ((), blob))

    def _unpacked(self) -> list:
        if self._items is None:
            self._items, self._blob = pickle.loads(self._blob), None
        return self._items

    def __getitem__(self, index):
        return self._unpacked()[index]

    def __len__(self) -> int:
        return len(self._unpacked())

    def __iter__(self):
        return iter(self._unpacked())


@dataclass(frozen=True)
class Span:
    line: int
    col: int
    end_line: int
    end_col: int

    def contains(self, line: int, col: int) -> bool:
        """Whether (line, col) lies inside, the end included (a cursor right after a word
        is still on it)."""
        return (self.line, self.col) <= (line, col) <= (self.end_line, self.end_col)

    @property
    def size(self) -> tuple:
        return (self.end_line - self.line, self.end_col - self.col if self.end_line == self.line else 10**9)


@dataclass(frozen=True)
class Place:
    """A span in some file (this document or a base spec), with the text of its first line so
    the server can convert columns for the client without reading the file."""

    file: str  # absolute path
    span: Span
    line_text: str = ""


@dataclass
class Problem:
    """One error or warning of `check`, placed in this document."""

    span: Span
    severity: str  # 'error' | 'warning'
    code: str | None
    message: str
    hint: str | None = None
    related: list = field(default_factory=list)  # [(Place, message)]
    suggestion: str | None = None  # from a "did you mean 'x'?"


@dataclass
class Stats:
    """What one instance of a layer entry expanded to (a node, or a block's totals)."""

    name: str
    shape: tuple | None
    inputs: list  # [(name, shape)]
    params: int = 0
    trainable_params: int = 0
    macs: int = 0
    activation_bytes: int = 0
    param_bytes: int = 0
    receptive_field: tuple | None = None  # (h, w) sizes
    jump: tuple | None = None
    nodes: int = 1
    repeat: int = 1
    block_kind: str | None = None


@dataclass
class Entry:
    """A layer entry written in this document (`- conv: {...}`), wherever it sits: the layer
    list, a block's nested list, a template body or an override."""

    path: tuple
    kind: str  # op, block or template name as written
    category: str  # 'op' | 'block' | 'template' | 'unknown'
    span: Span  # the whole entry
    key_span: Span  # the op/block name
    id: str | None = None
    id_span: Span | None = None
    parent: tuple | None = None  # path of the enclosing entry
    container: tuple = ()  # path of the list (or mapping) holding it
    settings: dict = field(default_factory=dict)  # the written settings (raw values)
    instances: list = field(default_factory=list)  # [Stats], at most MAX_INSTANCES
    instance_count: int = 0


@dataclass
class Variable:
    name: str
    value: object  # evaluated, when it evaluates
    written: object  # as written
    place: Place | None = None
    failed: bool = False


@dataclass
class TemplateInfo:
    name: str
    args: dict  # name -> default as written ('required' for required ones)
    doc: str
    place: Place | None
    single: bool  # a single-layer body (takes the instance's name)
    arg_places: dict = field(default_factory=dict)  # arg -> Place
    uses: list = field(default_factory=list)  # [(instance name, {arg: value})], this document's uses


@dataclass
class Mark:
    """One node of the YAML document: a key (`is_key`) or a value, with its path."""

    span: Span
    path: tuple
    is_key: bool


@dataclass
class FileModel:
    uri: str
    version: int | None
    file: str
    lines: list  # the analysed text, line by line
    problems: list = field(default_factory=list)  # [Problem]
    loaded: bool = False  # the YAML parsed: marks and entries are meaningful
    marks: list = field(default_factory=list)  # [Mark], document order
    entries: list = field(default_factory=list)  # [Entry], document order
    variables: dict = field(default_factory=dict)  # name -> Variable
    templates: dict = field(default_factory=dict)  # name -> TemplateInfo
    extends: Place | None = None  # the base spec the file extends, when it exists
    extends_span: Span | None = None
    files: list = field(default_factory=list)  # the files it is composed from (absolute paths)
    summary: dict | None = None  # totals of a valid spec
    elapsed: float = 0.0  # seconds the worker spent

    def entry_at(self, path: tuple) -> Entry | None:
        for entry in self.entries:
            if entry.path == path:
                return entry
        return None
