"""Safe YAML loading that remembers where every node came from.

Only plain YAML is accepted: mappings, sequences and the standard scalar types.
Anchors, aliases, ``<<`` merges, explicit tags, duplicate keys and non-UTF-8 bytes are
rejected with a located error. The result is plain Python data plus a `Doc` that maps
each node's path (``("layers", 3, "conv", "kernel")``) to its line and column.
"""
from __future__ import annotations

import math
import os
import re
import stat
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
    lines: list = field(default_factory=list, repr=False)  # the source text, line by line

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

    def error(self, message: str, hint: str | None = None, key: bool = False, *,
              code: str) -> SpecError:
        """A located error at this node (at its key with `key`), with its rule's code."""
        return SpecError(message, self.key_loc if key else self.loc, hint, code)


def _location(file: str, mark, end=None) -> Location:
    if end is None:
        return Location(file, mark.line + 1, mark.column + 1)
    return Location(file, mark.line + 1, mark.column + 1, end.line + 1, end.column + 1)


def _span(doc: "Doc", node) -> Location:
    """The node's range. A block collection's end mark lies where the next node starts (the
    start of a later line, or after its '- '); end the range at the end of the node's own last
    line instead, so editors underline the node, not the line that follows."""
    start, end = node.start_mark, node.end_mark
    if end.line > start.line and end.line <= len(doc.lines):
        before = doc.lines[end.line][:end.column] if end.line < len(doc.lines) else ""
        if before.strip() in ("", "-"):
            last = end.line  # 0-based index of the line before the end mark
            while last > start.line + 1 and not doc.lines[last - 1].strip():
                last -= 1
            return Location(doc.file, start.line + 1, start.column + 1, last,
                            len(doc.lines[last - 1].rstrip()) + 1)
    return _location(doc.file, start, end)


def read_text(path: str | os.PathLike, display: str | None = None) -> tuple[str, str]:
    """Read a spec file as UTF-8 text, enforcing the size cap. Only regular files are read
    (a device, FIFO or directory is refused before a byte is read, so `/dev/zero` cannot fill
    memory and a FIFO cannot block). Returns (display_name, text)."""
    name = display or str(path)
    where = Location(name, 1, 1)
    try:
        info = os.stat(path)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise SpecError(f"cannot read spec: {reason}", where, code="AS100") from None
    if not stat.S_ISREG(info.st_mode):
        kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise SpecError(f"cannot read spec: {name} is {kind}", where, code="AS100")
    if info.st_size > MAX_BYTES:
        raise SpecError(f"spec file is too large: {info.st_size} bytes, the limit is {MAX_BYTES}",
                        where, code="AS100")
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_BYTES + 1)  # bounded even if the file grows while we read
    except OSError as exc:
        raise SpecError(f"cannot read spec: {exc.strerror or exc}", where, code="AS100") from None
    if len(raw) > MAX_BYTES:
        raise SpecError(f"spec file is too large: the limit is {MAX_BYTES} bytes", where, code="AS100")
    try:
        return name, raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise SpecError(f"spec is not valid UTF-8: byte 0x{raw[exc.start]:02x} cannot be decoded",
                        Location(name, line, col), code="AS101") from None


_AMBIGUOUS_BREAKS = re.compile("[\x85\u2028\u2029]")
_BREAK_NAMES = {"\x85": "next line (U+0085)", "\u2028": "line separator (U+2028)",
                "\u2029": "paragraph separator (U+2029)"}


def _refuse_ambiguous_breaks(text: str, file: str) -> None:
    """U+0085, U+2028 and U+2029 end a line for PyYAML (YAML 1.1) but not for YAML 1.2, editors
    or the language server protocol, so every line number after one would point elsewhere (and
    a comment holding one would go on as YAML). Refused at the position an editor shows."""
    found = _AMBIGUOUS_BREAKS.search(text)
    if found is None:
        return
    before = text[:found.start()].replace("\r\n", "\n").replace("\r", "\n")
    line, col = before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1
    raise SpecError(f"the spec contains a {_BREAK_NAMES[found.group()]}: YAML 1.1 (archspec's parser) "
                    "ends a line there, editors and YAML 1.2 do not, so line numbers would disagree",
                    Location(file, line, col), hint="replace it with a newline or a space", code="AS107")


def load_text(text: str, file: str = "<spec>") -> Doc:
    """Parse YAML text into a Doc. Raises SpecError for anything but plain YAML.

    The event stream is scanned first: it refuses anchors, aliases and nesting deeper than
    MAX_DEPTH *before* the composer (which recurses in C, once per level) sees the text, so a
    file nested 30,000 levels deep is a located error, not a crashed process."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise SpecError(f"spec is too large, the limit is {MAX_BYTES} bytes", Location(file, 1, 1),
                        code="AS100")
    _refuse_ambiguous_breaks(text, file)
    try:
        _scan_events(text, file)
        nodes = list(yaml.compose_all(text, Loader=_Loader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        loc = _location(file, mark) if mark else Location(file, 1, 1)
        if "nesting depth" in str(exc.problem or ""):  # LibYAML >= 0.2.5's own limit, met first when
            # its scanner reads far ahead of the events (a line of thousands of '[')
            raise SpecError(f"spec is nested too deeply (more than {MAX_DEPTH} levels)", loc,
                            code="AS105") from None
        raise SpecError(f"invalid YAML: {exc.problem or exc.context}", loc, code="AS102") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"invalid YAML: {_first_line(exc)}", Location(file, 1, 1), code="AS102") from None
    if len(nodes) != 1:
        raise SpecError(f"a spec file holds exactly one YAML document, found {len(nodes)}",
                        Location(file, 1, 1), code="AS103")
    doc = Doc(file, None, lines=text.splitlines())
    root = nodes[0]
    if not isinstance(root, yaml.MappingNode):
        raise SpecError("a spec must be a mapping (name: ..., input: ..., layers: ...)",
                        _location(file, root.start_mark), code="AS103")
    doc.data = _convert(root, (), doc, 0)
    return doc


def _scan_events(text: str, file: str) -> None:
    depth = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.AliasEvent):
            raise SpecError("YAML aliases are not supported; write the value out, or use a "
                            "template or vars", _location(file, event.start_mark, event.end_mark),
                            code="AS103")
        if getattr(event, "anchor", None):
            raise SpecError(f"YAML anchors are not supported (found '&{event.anchor}'); use a "
                            "template or vars instead", _location(file, event.start_mark),
                            code="AS103")
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise SpecError(f"spec is nested too deeply (more than {MAX_DEPTH} levels)",
                                _location(file, event.start_mark), code="AS105")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def load_file(path: str | os.PathLike, display: str | None = None) -> Doc:
    name, text = read_text(path, display)
    return load_text(text, name)


MAX_INT = 2 ** 53  # integers beyond this are not exact as floats; no network dimension needs them


def _scalar(node, loc: Location):
    """A plain scalar's value, refusing numbers archspec cannot use exactly."""
    try:
        value = _constructor.construct_object(node)
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise SpecError(f"number out of range: {_first_line(exc)}", loc, code="AS106") from None
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and abs(value) >= MAX_INT:
        raise SpecError(f"integer out of range: |x| must be below 2^53. Received: {_short(node.value)}",
                        loc, code="AS106")
    if isinstance(value, float) and not math.isfinite(value):
        raise SpecError(f"number out of range: only finite numbers are allowed. Received: "
                        f"{_short(node.value)}", loc, code="AS106")
    return value


def _convert(node, path: tuple, doc: Doc, depth: int):
    doc.marks[path] = _span(doc, node)
    if depth > MAX_DEPTH:
        raise SpecError(f"spec is nested too deeply (more than {MAX_DEPTH} levels)", doc.marks[path],
                        code="AS105")
    if node.tag not in _PLAIN_TAGS:
        raise SpecError(f"YAML tag '{node.tag}' is not supported; only plain values are allowed",
                        doc.marks[path], code="AS103")
    if isinstance(node, yaml.MappingNode):
        out = {}
        for key_node, value_node in node.value:
            key_loc = _span(doc, key_node)
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise SpecError("YAML merge keys ('<<') are not supported; use a template or "
                                "'extends' instead", key_loc, code="AS103")
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag not in _PLAIN_TAGS:
                raise SpecError("mapping keys must be plain words", key_loc, code="AS103")
            key = _scalar(key_node, key_loc)
            if not isinstance(key, str):
                key = str(key) if not isinstance(key, bool) else str(key).lower()
            if key in out:
                first = doc.key_marks[path + (key,)]
                raise SpecError(f"duplicate key '{key}' (first defined at line {first.line})", key_loc,
                                code="AS104")
            doc.key_marks[path + (key,)] = key_loc
            out[key] = _convert(value_node, path + (key,), doc, depth + 1)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, path + (i,), doc, depth + 1) for i, item in enumerate(node.value)]
    return _scalar(node, doc.marks[path])


def _short(text: str) -> str:
    return text if len(text) <= 40 else text[:20] + f"... ({len(text)} characters)"


def _first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[0][:200] if lines else type(exc).__name__
