"""A model's problems as LSP diagnostics: source `archspec`, the error code as `code`, the hint
on a second line, a base spec's location as related information."""
from __future__ import annotations

from lsprotocol import types
from pygls.uris import from_fs_path

from archspec.lsp.model import FileModel, Place, Problem
from archspec.lsp.text import lsp_range, to_client

SOURCE = "archspec"
_SEVERITY = {"error": types.DiagnosticSeverity.Error, "warning": types.DiagnosticSeverity.Warning}


def diagnostics(model: FileModel, encoding: str) -> list[types.Diagnostic]:
    return [diagnostic(p, model, encoding) for p in model.problems]


def diagnostic(problem: Problem, model: FileModel, encoding: str) -> types.Diagnostic:
    message = problem.message + (f"\nhint: {problem.hint}" if problem.hint else "")
    related = [types.DiagnosticRelatedInformation(location=location(place, encoding), message=text)
               for place, text in problem.related]
    return types.Diagnostic(
        range=lsp_range(problem.span, model.lines, encoding), message=message,
        severity=_SEVERITY.get(problem.severity, types.DiagnosticSeverity.Error),
        code=problem.code, source=SOURCE, related_information=related or None,
        data={"suggestion": problem.suggestion} if problem.suggestion else None)


def location(place: Place, encoding: str) -> types.Location:
    """A place in any file, its columns converted with the line text it carries."""
    span = place.span
    end_text = place.line_text if span.end_line == span.line else ""
    start = types.Position(line=span.line, character=to_client(place.line_text, span.col, encoding))
    end = types.Position(line=span.end_line, character=to_client(end_text, span.end_col, encoding)
                         if end_text else span.end_col)
    return types.Location(uri=from_fs_path(place.file) or place.file, range=types.Range(start=start, end=end))
