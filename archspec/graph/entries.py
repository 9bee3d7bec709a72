"""How a layer entry is written, read by the graph builder: `- relu` or `- conv: {...}`, the
names and flags it declares, and the spec's `vars`."""
from __future__ import annotations

from archspec.spec.compose import evaluate_vars  # noqa: F401 (read here by the language server)
from archspec.spec.load import Src

REPEAT_INDEX = "index"  # inside a repeated layer's settings: the copy's number, from 0


class ListNames:
    """The names of a list's unnamed layers: their index, as nn.Sequential numbers its
    children. An unnamed `repeat` takes one index per copy, so `[a, {b: {repeat: 3}}, c]` is
    named like `nn.Sequential(a, *[b] * 3, c)`: 0, 1, 2, 3, 4."""

    def __init__(self, scope):
        self.scope = scope
        self.taken = 0

    def peek(self) -> str:
        return self.scope.qualify(str(self.taken))

    def take(self) -> str:
        name = self.peek()
        self.taken += 1
        return name

    @property
    def last(self) -> str:
        return self.scope.qualify(str(max(self.taken - 1, 0)))


def normalize(raw, src: Src):
    """A layer is written `- relu` or `- conv: {...}`; return (kind, settings, settings' Src)."""
    if isinstance(raw, str):
        return raw, {}, src
    if isinstance(raw, dict) and len(raw) == 1:
        (kind, body), = raw.items()
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise src.child(kind).error(f"{path_text(src.path)} ({kind}): settings must be a mapping "
                                        f"like '{kind}: {{...}}'. Received: {_show(body)}", code="AS205")
        return kind, dict(body), src.child(kind)
    if isinstance(raw, dict):
        keys = ", ".join(map(str, raw)) or "nothing"
        raise src.error(f"{path_text(src.path)}: a layer has exactly one op or block name as its key "
                        f"(e.g. '- conv: {{out: 64, kernel: 3}}'). Received keys: {keys}",
                        hint="indent the settings under the op name", code="AS205")
    raise src.error(f"{path_text(src.path)}: a layer is '- op' or '- op: {{...}}'. Received: {_show(raw)}",
                    code="AS205")


def declared(raw, qualify, default_name: str) -> tuple[str, bool]:
    """(name, side branch?) an entry declares, read without validating it: what a layer that
    failed would have been called, and whether the main chain continued past it."""
    body = next(iter(raw.values())) if isinstance(raw, dict) and len(raw) == 1 else None
    if not isinstance(body, dict):
        return default_name, False
    ident = body.get("id")
    name = qualify(ident) if isinstance(ident, str) and ident else default_name
    return name, body.get("training_only") is True or body.get("output") is True


def is_layer_entry(value: dict) -> bool:
    return len(value) == 1 and isinstance(next(iter(value.values())), dict)


def path_text(path: tuple) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "spec"


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
