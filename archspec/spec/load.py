"""Safe YAML loading that remembers where every node came from.

Only plain YAML is accepted: mappings, sequences and the standard scalar types.
Anchors, aliases, ``<<`` merges, explicit tags, duplicate keys and non-UTF-8 bytes are
rejected with a located error. The result is plain Python data plus a `Doc` that maps
each node's path (``("layers", 3, "conv", "kernel")``) to its line and column.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from archspec.errors import Location, SpecError

MAX_BYTES = 2 * 1024 * 1024  # a spec is text written by hand; 2 MiB is generous
MAX_DEPTH = 64

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_PLAIN_TAGS = {
    "tag:yaml.org,2002:str", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:seq", "tag:yaml.org,2002:map",
}
_constructor = yaml.constructor.SafeConstructor()

Path_ = tuple  # a node path: keys and indices from the document root


@dataclass
class Doc:
    """A loaded YAML document: its data and the location of every node in it."""

    file: str
    data: object
    marks: dict = field(default_factory=dict)  # path -> Location of the value
    key_marks: dict = field(default_factory=dict)  # path -> Location of the key naming it

    def loc(self, path: Path_ = (), key: bool = False) -> Location:
        """Location of the node at `path` (its key if `key`), or of its nearest ancestor."""
        path = tuple(path)
        table = self.key_marks if key else self.marks
        for end in range(len(path), -1, -1):
            prefix = path[:end]
            if prefix in table:
                return table[prefix]
            if prefix in self.marks:
                return self.marks[prefix]
        return Location(self.file, 1, 1)

    def src(self, path: Path_ = ()) -> "Src":
        return Src(self, tuple(path))


@dataclass(frozen=True)
class Src:
    """A cursor into a Doc: where a piece of spec came from."""

    doc: Doc
    path: tuple

    def child(self, *keys) -> "Src":
        return Src(self.doc, self.path + tuple(keys))

    @property
    def loc(self) -> Location:
        return self.doc.loc(self.path)

    @property
    def key_loc(self) -> Location:
        return self.doc.loc(self.path, key=True)

    def error(self, message: str, hint: str | None = None, key: bool = False) -> SpecError:
        return SpecError(message, self.key_loc if key else self.loc, hint)


def _location(file: str, mark) -> Location:
    return Location(file, mark.line + 1, mark.column + 1)


def read_text(path: str | os.PathLike, display: str | None = None) -> tuple[str, str]:
    """Read a spec file as UTF-8 text, enforcing the size cap. Returns (display_name, text)."""
    name = display or str(path)
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        raise SpecError(f"cannot read spec: {exc.strerror}", Location(name, 1, 1)) from None
    if size > MAX_BYTES:
        raise SpecError(f"spec file is too large: {size} bytes, the limit is {MAX_BYTES}",
                        Location(name, 1, 1))
    raw = Path(path).read_bytes()
    try:
        return name, raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise SpecError(f"spec is not valid UTF-8: byte 0x{raw[exc.start]:02x} cannot be decoded",
                        Location(name, line, col)) from None


def load_text(text: str, file: str = "<spec>") -> Doc:
    """Parse YAML text into a Doc. Raises SpecError for anything but plain YAML."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise SpecError(f"spec is too large, the limit is {MAX_BYTES} bytes", Location(file, 1, 1))
    try:
        for event in yaml.parse(text, Loader=_Loader):
            if isinstance(event, yaml.AliasEvent):
                raise SpecError("YAML aliases are not supported; write the value out, or use a "
                                "template or vars", _location(file, event.start_mark))
            if getattr(event, "anchor", None):
                raise SpecError(f"YAML anchors are not supported (found '&{event.anchor}'); use a "
                                "template or vars instead", _location(file, event.start_mark))
        nodes = list(yaml.compose_all(text, Loader=_Loader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        loc = _location(file, mark) if mark else Location(file, 1, 1)
        raise SpecError(f"invalid YAML: {exc.problem or exc.context}", loc) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"invalid YAML: {exc}", Location(file, 1, 1)) from None
    if len(nodes) != 1:
        raise SpecError(f"a spec file holds exactly one YAML document, found {len(nodes)}",
                        Location(file, 1, 1))
    doc = Doc(file, None)
    root = nodes[0]
    if not isinstance(root, yaml.MappingNode):
        raise SpecError("a spec must be a mapping (name: ..., input: ..., layers: ...)",
                        _location(file, root.start_mark))
    doc.data = _convert(root, (), doc, 0)
    return doc


def load_file(path: str | os.PathLike, display: str | None = None) -> Doc:
    name, text = read_text(path, display)
    return load_text(text, name)


def _convert(node, path: tuple, doc: Doc, depth: int):
    doc.marks[path] = _location(doc.file, node.start_mark)
    if depth > MAX_DEPTH:
        raise SpecError(f"spec is nested too deeply (more than {MAX_DEPTH} levels)", doc.marks[path])
    if node.tag not in _PLAIN_TAGS:
        raise SpecError(f"YAML tag '{node.tag}' is not supported; only plain values are allowed",
                        doc.marks[path])
    if isinstance(node, yaml.MappingNode):
        out = {}
        for key_node, value_node in node.value:
            key_loc = _location(doc.file, key_node.start_mark)
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise SpecError("YAML merge keys ('<<') are not supported; use a template or "
                                "'extends' instead", key_loc)
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag not in _PLAIN_TAGS:
                raise SpecError("mapping keys must be plain words", key_loc)
            key = _constructor.construct_object(key_node)
            if not isinstance(key, str):
                key = str(key) if not isinstance(key, bool) else str(key).lower()
            if key in out:
                first = doc.key_marks[path + (key,)]
                raise SpecError(f"duplicate key '{key}' (first defined at line {first.line})", key_loc)
            doc.key_marks[path + (key,)] = key_loc
            out[key] = _convert(value_node, path + (key,), doc, depth + 1)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, path + (i,), doc, depth + 1) for i, item in enumerate(node.value)]
    return _constructor.construct_object(node)
