"""What the cursor is on, in spec terms: an expression, a reference to a layer id, an op or
block name, a setting's key, the `extends` target, or just somewhere inside a layer. Hover and
go-to-definition both start here."""
from __future__ import annotations

from dataclasses import dataclass

from archspec.lsp.index import innermost
from archspec.lsp.model import Entry, FileModel, Span
from archspec.lsp.text import expression_at, word_at

REFERENCE_KEYS = ("from", "shortcut_from", "tie")  # settings whose values name layers (tie: {to: id} too)


@dataclass
class Target:
    what: str  # 'expression' | 'reference' | 'kind' | 'setting' | 'extends' | 'top' | 'variable' | 'entry'
    span: Span  # of the token under the cursor (model coordinates)
    text: str = ""
    entry: Entry | None = None  # the innermost layer entry around the cursor
    setting: str | None = None  # for 'setting': its key
    path: tuple = ()  # for 'expression': the spec path it sits at


def target_at(model: FileModel, line: int, col: int) -> Target | None:
    text = model.lines[line] if line < len(model.lines) else ""
    entry = entry_at(model, line, col)
    mark = innermost(model.marks, line, col)
    if (found := expression_at(text, col)) is not None:
        token, start, end = found
        return Target("expression", Span(line, start, line, end), token, entry,
                      path=mark.path if mark is not None else ())
    if mark is None:
        return Target("entry", Span(line, col, line, col), "", entry) if entry else None
    path = mark.path
    if path == ("extends",):
        return Target("extends", mark.span, str(_value(text, mark.span)), entry)
    if len(path) == 1 and mark.is_key:
        return Target("top", mark.span, path[0], entry)
    if len(path) == 2 and path[0] == "vars":
        return Target("variable", mark.span, str(path[1]), entry)
    if entry is not None:
        rest = path[len(entry.path):] if path[:len(entry.path)] == entry.path else None
        bare = entry.key_span == entry.span  # '- relu': the name is the whole entry
        if rest is not None and (rest == () and bare or rest == (entry.kind,) and mark.is_key):
            return Target("kind", entry.key_span, entry.kind, entry)
        if rest is not None and len(rest) >= 2 and rest[1] in REFERENCE_KEYS and not mark.is_key:
            word = word_at(text, col)
            if word is not None:
                token, start, end = word
                return Target("reference", Span(line, start, line, end), token, entry)
        if rest is not None and len(rest) == 2 and mark.is_key:
            return Target("setting", mark.span, rest[1], entry, setting=rest[1])
    return Target("entry", mark.span, "", entry) if entry else None


def entry_at(model: FileModel, line: int, col: int) -> Entry | None:
    """The innermost entry whose range holds the position (a position at the end of an entry's
    line counts as in it: that is where its hint sits)."""
    best = None
    for entry in model.entries:
        span = entry.span
        inside = span.contains(line, col) or (span.line <= line <= span.end_line and col >= span.col
                                               and line != span.end_line)
        if inside and (best is None or len(entry.path) > len(best.path)):
            best = entry
    return best


def resolve(model: FileModel, ref: str, here: Entry | None) -> Entry | None:
    """The entry a `from` id names, looked up as the builder does: from the innermost block
    around `here` outwards, among layers above it. A dotted path resolves its first part."""
    first = ref.split(".")[0]
    region = _region(here.path) if here is not None else ("layers",)
    parents = []
    scope = here.parent if here is not None else None
    while True:
        parents.append(scope)
        if scope is None:
            break
        owner = model.entry_at(scope)
        scope = owner.parent if owner is not None else None
    for parent in parents:
        found = [e for e in model.entries if e.id == first and e.parent == parent
                 and _region(e.path) == region and (here is None or _before(e, here))]
        if found:
            return found[-1]
    named = [e for e in model.entries if e.id == first]
    return named[0] if named else None


def _region(path: tuple) -> tuple:
    return path[:2] if path and path[0] in ("templates", "override") else path[:1]


def _before(entry: Entry, here: Entry) -> bool:
    return (entry.span.line, entry.span.col) < (here.span.line, here.span.col) and entry is not here


def _value(text: str, span: Span) -> str:
    return text[span.col:span.end_col] if span.line == span.end_line else text[span.col:]
