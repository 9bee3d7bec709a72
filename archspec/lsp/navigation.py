"""Go to definition (`from` and `tie` ids, template uses, `$vars` and template arguments, the `extends`
target) and the document outline (vars, templates, layers and blocks, nested)."""
from __future__ import annotations

import re

from lsprotocol import types

from archspec.lsp.cursor import resolve, target_at
from archspec.lsp.diagnostics import location
from archspec.lsp.figures import one_line
from archspec.lsp.model import Entry, Place, Span
from archspec.lsp.text import View

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def definition(view: View, position: types.Position) -> list[types.Location] | None:
    where = view.position(position)
    if where is None:
        return None
    model = view.model
    target = target_at(model, *where)
    if target is None:
        return None
    place = None
    if target.what == "reference":
        found = resolve(model, target.text, target.entry)
        if found is not None:
            place = _here(view, found.id_span or found.key_span)
    elif target.what == "kind" and target.text in model.templates:
        place = model.templates[target.text].place
    elif target.what == "setting" and target.entry.kind in model.templates:
        place = model.templates[target.entry.kind].arg_places.get(target.setting)
    elif target.what == "expression":
        place = _variable(model, target, where[1] - target.span.col)
    elif target.what == "extends":
        place = model.extends
    if place is None:
        return None
    return [location(place, view.encoding)]


def _here(view: View, span: Span) -> Place | None:
    moved = view.span(span)
    if moved is None:
        return None
    return Place(_abs(view.model.file), moved, view.lines[moved.line])


def _variable(model, target, offset: int) -> Place | None:
    """The variable (or template argument) named at `offset` in the expression."""
    name = None
    for m in _NAME.finditer(target.text):
        if m.start() <= offset <= m.end() or name is None:
            name = m.group(0)
    if name is None:
        return None
    path = target.path
    if len(path) >= 2 and path[0] == "templates" and path[1] in model.templates:
        place = model.templates[path[1]].arg_places.get(name)
        if place is not None:
            return place
    variable = model.variables.get(name)
    return variable.place if variable is not None else None


def _abs(path: str) -> str:
    import os

    return os.path.abspath(path)


# ---- outline ----------------------------------------------------------------------------------


def symbols(view: View) -> list[types.DocumentSymbol]:
    model = view.model
    children: dict = {}
    for entry in model.entries:
        children.setdefault(entry.parent if entry.parent is not None else _section(entry), []).append(entry)
    out = []
    for key in ("vars", "templates", "layers", "override"):
        section = _section_symbol(view, key, children)
        if section is not None:
            out.append(section)
    return out


def _section(entry: Entry) -> tuple:
    return entry.path[:2] if entry.path[0] == "templates" else entry.path[:1]


def _section_symbol(view: View, key: str, children: dict) -> types.DocumentSymbol | None:
    model = view.model
    key_mark = next((m for m in model.marks if m.path == (key,) and m.is_key), None)
    value_mark = next((m for m in model.marks if m.path == (key,) and not m.is_key), None)
    if key_mark is None or value_mark is None:
        return None
    if key == "vars":
        kids = [_symbol(view, name, str(v.written), types.SymbolKind.Variable, v.place.span, v.place.span, [])
                for name, v in model.variables.items() if v.place is not None and v.place.file == _abs(model.file)]
    elif key == "templates":
        kids = [_symbol(view, name, "template", types.SymbolKind.Class,
                        _whole(model, ("templates", name)), t.place.span,
                        _entries(view, children.get(("templates", name), []), children))
                for name, t in model.templates.items() if t.place is not None and t.place.file == _abs(model.file)]
    else:
        kids = _entries(view, children.get((key,), []), children)
    whole = Span(key_mark.span.line, key_mark.span.col, value_mark.span.end_line, value_mark.span.end_col)
    return _symbol(view, key, None, types.SymbolKind.Namespace, whole, key_mark.span, [k for k in kids if k])


def _entries(view: View, entries: list, children: dict) -> list:
    out = []
    for entry in entries:
        kind = {"op": types.SymbolKind.Function, "block": types.SymbolKind.Module,
                "template": types.SymbolKind.Struct}.get(entry.category, types.SymbolKind.Null)
        hint = one_line(entry)
        detail = " ".join(part for part in (entry.kind if entry.id else None, hint) if part)
        out.append(_symbol(view, entry.id or entry.kind, detail or None, kind, entry.span, entry.key_span,
                           _entries(view, children.get(entry.path, []), children)))
    return [s for s in out if s is not None]


def _whole(model, path: tuple) -> Span:
    key = next(m for m in model.marks if m.path == path and m.is_key)
    value = next((m for m in model.marks if m.path == path and not m.is_key), key)
    return Span(key.span.line, key.span.col, value.span.end_line, value.span.end_col)


def _symbol(view: View, name: str, detail, kind, span: Span, selection: Span, kids: list):
    whole, chosen = view.range(span), view.range(selection)
    if whole is None or chosen is None:
        return None
    return types.DocumentSymbol(name=name, detail=detail, kind=kind, range=whole, selection_range=chosen,
                                children=kids or None)

