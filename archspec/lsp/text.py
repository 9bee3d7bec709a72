"""Between the model's positions and the client's: encodings, and lines that moved.

A `View` answers a request about the current text from a model of a possibly older version
(the text changed since, or it does not parse right now): lines are matched by content, so a
hint or a hover keeps working on every line that is still there, and is dropped on lines that
changed. Columns are converted between code points (the model) and the client's position
encoding (UTF-16 unless negotiated otherwise).
"""
from __future__ import annotations

import difflib
import re

from lsprotocol import types

from archspec.lsp.model import FileModel, Span

_EXPRESSION = re.compile(r"\$\{[^}\n]*\}?|\$[A-Za-z_][A-Za-z0-9_]*")
_WORD = re.compile(r"[A-Za-z0-9_.\-]+")


def units(text: str, encoding: str) -> int:
    """Length of `text` in the client's code units."""
    if encoding == types.PositionEncodingKind.Utf8:
        return len(text.encode("utf-8"))
    if encoding == types.PositionEncodingKind.Utf32:
        return len(text)
    return len(text.encode("utf-16-le")) // 2


def to_client(line_text: str, col: int, encoding: str) -> int:
    return units(line_text[:col], encoding)


def from_client(line_text: str, character: int, encoding: str) -> int:
    """A client column (in its code units) as a code-point index into `line_text`."""
    count = 0
    for index, char in enumerate(line_text):
        if count >= character:
            return index
        count += units(char, encoding)
    return len(line_text)


def lsp_range(span: Span, lines: list, encoding: str) -> types.Range:
    def position(line: int, col: int) -> types.Position:
        text = lines[line] if 0 <= line < len(lines) else ""
        return types.Position(line=max(line, 0), character=to_client(text, col, encoding))

    return types.Range(start=position(span.line, span.col), end=position(span.end_line, span.end_col))


def token_at(pattern: re.Pattern, line_text: str, col: int) -> tuple[str, int, int] | None:
    """The match of `pattern` on the line around column `col`: (text, start, end)."""
    for m in pattern.finditer(line_text):
        if m.start() <= col <= m.end():
            return m.group(0), m.start(), m.end()
    return None


def expression_at(line_text: str, col: int):
    return token_at(_EXPRESSION, line_text, col)


def word_at(line_text: str, col: int):
    return token_at(_WORD, line_text, col)


class View:
    """A model seen from the current text."""

    def __init__(self, model: FileModel, lines: list, encoding: str):
        self.model, self.lines, self.encoding = model, lines, encoding
        if model.lines == lines:
            self.to_current = self.to_model = None  # identity
        else:
            self.to_current, self.to_model = _match_lines(model.lines, lines)

    def model_line(self, line: int) -> int | None:
        return line if self.to_model is None else self.to_model.get(line)

    def current_line(self, line: int) -> int | None:
        return line if self.to_current is None else self.to_current.get(line)

    def span(self, span: Span) -> Span | None:
        """A model span in current coordinates, or None if its lines changed."""
        start, end = self.current_line(span.line), self.current_line(span.end_line)
        if start is None or end is None:
            return None
        return Span(start, span.col, end, span.end_col)

    def range(self, span: Span) -> types.Range | None:
        moved = self.span(span)
        return lsp_range(moved, self.lines, self.encoding) if moved is not None else None

    def position(self, position: types.Position) -> tuple[int, int] | None:
        """A client position as (model line, code-point column), or None on a changed line."""
        text = self.lines[position.line] if position.line < len(self.lines) else ""
        line = self.model_line(position.line)
        if line is None:
            return None
        return line, from_client(text, position.character, self.encoding)


def _match_lines(old: list, new: list) -> tuple[dict, dict]:
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    to_new, to_old = {}, {}
    for a, b, size in matcher.get_matching_blocks():
        for i in range(size):
            to_new[a + i] = b + i
            to_old[b + i] = a + i
    return to_new, to_old
