"""Inlay hints: at the end of each layer's line, what it expands to —
`→ 256x56x56 · 70.4k params · 231M MACs`, `×3 → ...` for a repeat (the block's totals)."""
from __future__ import annotations

from lsprotocol import types

from archspec.lsp.figures import one_line
from archspec.lsp.text import View, units


def inlay_hints(view: View, within: types.Range) -> list[types.InlayHint]:
    hints = []
    for line, entry in _one_per_line(view.model.entries).items():
        current = view.current_line(line)
        if current is None or not within.start.line <= current <= within.end.line:
            continue
        text = one_line(entry)
        if text is None:
            continue
        end = units(view.lines[current].rstrip(), view.encoding)
        hints.append(types.InlayHint(
            position=types.Position(line=current, character=end), label=text,
            kind=types.InlayHintKind.Type, padding_left=True,
            tooltip=entry.id or entry.kind))
    return hints


def _one_per_line(entries) -> dict:
    """The outermost entry starting on each line (a flow list of layers on one line gets one
    hint: its block's)."""
    chosen: dict = {}
    for entry in entries:
        line = entry.key_span.line
        if line not in chosen or len(entry.path) < len(chosen[line].path):
            chosen[line] = entry
    return chosen
