"""The position index: text positions <-> spec paths, and the layer entries of a document.

Built from the loaded `Doc` (its `marks` and `key_marks`, path tuple -> Location): every key
and value of the YAML becomes a `Mark`, and every layer entry — in `layers`, in a block's
nested lists (the keys its registry entry declares `nested`), in a template body or an
override — becomes an `Entry`. Pure data in, data out; runs in the analysis worker.
"""
from __future__ import annotations

from archspec.blocks import BLOCKS
from archspec.errors import Location
from archspec.lsp.model import Entry, Mark, Span
from archspec.ops import OPS
from archspec.spec.load import Doc


def span_of(loc: Location, lines: list) -> Span:
    """A Location (1-based, end exclusive, end optional) as a 0-based Span. Without an end,
    the span runs to the end of the word at the location."""
    line, col = max(loc.line - 1, 0), max(loc.col - 1, 0)
    if loc.end_line is not None and loc.end_col is not None:
        return Span(line, col, loc.end_line - 1, loc.end_col - 1)
    text = lines[line] if line < len(lines) else ""
    end = col
    while end < len(text) and not text[end].isspace() and text[end] not in ",]}":
        end += 1
    if end == col:  # nothing at the location: the rest of the line
        end = len(text)
    return Span(line, col, line, max(end, col))


def document_marks(doc: Doc) -> list[Mark]:
    marks = [Mark(span_of(loc, doc.lines), path, False) for path, loc in doc.marks.items()]
    marks += [Mark(span_of(loc, doc.lines), path, True) for path, loc in doc.key_marks.items()]
    marks.sort(key=lambda m: (m.span.line, m.span.col, -len(m.path)))
    return marks


def innermost(marks: list[Mark], line: int, col: int) -> Mark | None:
    """The smallest mark containing (line, col): a key before the value it names."""
    best = None
    for mark in marks:
        if mark.span.line > line:
            break
        if mark.span.contains(line, col):
            if best is None or (mark.span.size, not mark.is_key) < (best.span.size, not best.is_key):
                best = mark
    return best


def layer_entries(doc: Doc, templates: set) -> list[Entry]:
    """Every layer entry of the document, in document order. `templates` are the template
    names visible to it (its own and its bases')."""
    data = doc.data if isinstance(doc.data, dict) else {}
    found: list[Entry] = []
    walker = _Walker(doc, templates | set(_own_templates(data)), found)
    if isinstance(data.get("layers"), list):
        walker.sequence(data["layers"], ("layers",), None)
    for name, definition in _own_templates(data).items():
        body = definition.get("body") if isinstance(definition, dict) else None
        where = ("templates", name, "body")
        if isinstance(body, list):
            walker.sequence(body, where, None)
        elif body is not None:
            walker.entry(body, where, None, ("templates", name))
    if isinstance(data.get("override"), dict):
        for target, replacement in data["override"].items():
            walker.entry(replacement, ("override", target), None, ("override",))
    found.sort(key=lambda e: (e.span.line, e.span.col))
    return found


def _own_templates(data: dict) -> dict:
    templates = data.get("templates")
    return templates if isinstance(templates, dict) else {}


class _Walker:
    def __init__(self, doc: Doc, templates: set, found: list):
        self.doc, self.templates, self.found = doc, templates, found

    def sequence(self, items: list, where: tuple, parent: tuple | None) -> None:
        for index, item in enumerate(items):
            self.entry(item, where + (index,), parent, where)

    def entry(self, raw, path: tuple, parent: tuple | None, container: tuple) -> None:
        if path not in self.doc.marks:
            return
        if isinstance(raw, str):
            kind, settings, key_path = raw, {}, path
        elif isinstance(raw, dict) and len(raw) == 1:
            (kind, settings), = raw.items()
            kind, key_path = str(kind), path + (str(kind),)
            settings = settings if isinstance(settings, dict) else {}
        else:
            return
        lines = self.doc.lines
        key_loc = self.doc.key_marks.get(key_path) if key_path != path else self.doc.marks[path]
        ident = settings.get("id")
        entry = Entry(path=path, kind=kind, category=self.category(kind), span=span_of(self.doc.marks[path], lines),
                      key_span=span_of(key_loc or self.doc.marks[path], lines),
                      id=ident if isinstance(ident, str) else None, parent=parent, container=container,
                      settings=dict(settings))
        id_loc = self.doc.marks.get(key_path + ("id",))
        if entry.id is not None and id_loc is not None:
            entry.id_span = span_of(id_loc, lines)
        self.found.append(entry)
        for key in getattr(BLOCKS.get(kind), "nested", ()):
            self.nested(settings.get(key), key_path + (key,), path)

    def nested(self, value, where: tuple, parent: tuple) -> None:
        """A block's nested key: a layer list, or a mapping of named branches (each a layer
        or a list of layers)."""
        if isinstance(value, list):
            self.sequence(value, where, parent)
        elif isinstance(value, dict):
            for name, branch in value.items():
                if isinstance(branch, list):
                    self.sequence(branch, where + (name,), parent)
                else:
                    self.entry(branch, where + (name,), parent, where)

    def category(self, kind: str) -> str:
        if kind in self.templates:
            return "template"
        if kind in BLOCKS:
            return "block"
        if kind in OPS:
            return "op"
        return "unknown"
