"""Quick fixes: take a "did you mean 'kernel'?" (a misspelt key, op, block, variable, template
argument or `from` id), and add `- flatten` before a layer that needs a (features,) input but
follows one with spatial axes (a `linear` after a conv)."""
from __future__ import annotations

import difflib
import re

from lsprotocol import types

from archspec.lsp.cursor import entry_at
from archspec.lsp.diagnostics import diagnostic
from archspec.lsp.model import Problem, Span
from archspec.lsp.text import View, lsp_range

_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")
_QUOTED = re.compile(r"'([^']+)'")
NEEDS_FEATURES = "needs a (features,) input"  # the rank rule's wording (ops/registry.need_rank)


def code_actions(view: View, uri: str, within: types.Range) -> list[types.CodeAction]:
    """Fixes for the problems of the current version that touch `within`."""
    model = view.model
    if view.to_model is not None:  # positions of an older version: no edits from it
        return []
    actions = []
    for problem in model.problems:
        if not _touches(problem.span, within, view):
            continue
        if problem.suggestion:
            action = _replace(view, uri, problem)
            if action is not None:
                actions.append(action)
        if problem.code == "AS401" and NEEDS_FEATURES in problem.message:
            action = _add_flatten(view, uri, problem)
            if action is not None:
                actions.append(action)
    return actions


def _touches(span: Span, within: types.Range, view: View) -> bool:
    got = lsp_range(span, view.lines, view.encoding)
    return not (_pos(got.end) < _pos(within.start) or _pos(within.end) < _pos(got.start))


def _pos(p: types.Position) -> tuple:
    return (p.line, p.character)


def _replace(view: View, uri: str, problem: Problem) -> types.CodeAction | None:
    """Replace the misspelt word in the problem's range: the one the message quotes, else the
    one closest to the suggestion."""
    span, new = problem.span, problem.suggestion
    text = view.lines[span.line] if span.line < len(view.lines) else ""
    end = span.end_col if span.end_line == span.line else len(text)
    tokens = [m for m in _TOKEN.finditer(text, span.col, end) if m.group(0) != new]
    if not tokens:
        return None
    quoted = set(_QUOTED.findall(problem.message))
    named = [m for m in tokens if m.group(0) in quoted]
    best = named[0] if named else max(tokens, key=lambda m: difflib.SequenceMatcher(None, m.group(0), new).ratio())
    old = best.group(0)
    edit = types.TextEdit(range=lsp_range(Span(span.line, best.start(), span.line, best.end()), view.lines,
                                          view.encoding), new_text=new)
    return types.CodeAction(title=f"Replace '{old}' with '{new}'", kind=types.CodeActionKind.QuickFix,
                            diagnostics=[diagnostic(problem, view.model, view.encoding)], is_preferred=True,
                            edit=types.WorkspaceEdit(changes={uri: [edit]}))


def _add_flatten(view: View, uri: str, problem: Problem) -> types.CodeAction | None:
    entry = entry_at(view.model, problem.span.line, problem.span.col)
    if entry is None:
        return None
    line, col = entry.span.line, entry.span.col
    text = view.lines[line]
    dash = text.rfind("-", 0, col)
    if dash >= 0 and not text[:dash].strip() and not text[dash + 1:col].strip():
        at, new_text = Span(line, 0, line, 0), f"{text[:dash]}- flatten\n"  # a block-style list item
    else:
        at, new_text = Span(line, col, line, col), "flatten, "  # an item of a flow list
    edit = types.TextEdit(range=lsp_range(at, view.lines, view.encoding), new_text=new_text)
    return types.CodeAction(title=f"Add '- flatten' before '{entry.id or entry.kind}'",
                            kind=types.CodeActionKind.QuickFix,
                            diagnostics=[diagnostic(problem, view.model, view.encoding)],
                            edit=types.WorkspaceEdit(changes={uri: [edit]}))
