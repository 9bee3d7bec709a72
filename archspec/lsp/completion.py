"""Completion, read from the text being typed (which rarely parses mid-word) with names from the
last model: op, block and template names after `- ` in a layer list, an op's settings (with
their defaults) or a template's arguments inside `{...}` or under the layer, ids after `from:` and `tie:`,
`$vars` (and template arguments inside a template body), top-level keys."""
from __future__ import annotations

import re

from lsprotocol import types

from archspec.blocks import BLOCKS
from archspec.lsp import registry_docs
from archspec.lsp.analysis import is_spec
from archspec.lsp.figures import one_line
from archspec.lsp.model import FileModel
from archspec.lsp.text import from_client, to_client, units
from archspec.ops import OPS

TRIGGERS = ["$", "{", ",", " ", "-", "["]
LAYER_LISTS = {"layers", "body", *(key for block in BLOCKS.values() for key in block.nested)}
_KEY_LINE = re.compile(r"^(\s*)(-\s+)?([A-Za-z_$][\w.$-]*)\s*:(\s*(#.*)?$)?")
_VARIABLE = re.compile(r"\$\{[^}]*?([A-Za-z_]\w*)?$|\$([A-Za-z_]\w*)?$")
_REFERENCE = re.compile(r"\b(?:(?:from|shortcut_from):\s*(?:\[(?:[^\]]*,)?\s*)?|tie:\s*(?:\{\s*to:\s*)?)"
                        r"([\w.-]*)$")
_LAYER_ITEM = re.compile(r"^(\s*)-\s+([\w-]*)$")
_FLOW_LAYER = re.compile(r"\b(\w+):\s*\[(?:[^\]\[{}]*,)?\s*([\w-]*)$")
_FLOW_KEY = re.compile(r"([\w-]+):\s*\{([^{}]*?,)?\s*([\w-]*)$")
_BLOCK_KEY = re.compile(r"^(\s*)([\w-]*)$")


def completion(model: FileModel | None, lines: list, position: types.Position, encoding: str):
    if any(line.strip() for line in lines) and not is_spec("\n".join(lines)):
        return None  # some other YAML file
    text = lines[position.line] if position.line < len(lines) else ""
    col = from_client(text, position.character, encoding)
    before = text[:col]
    for context in (_variables, _references, _layer_names, _settings, _top_level):
        found = context(model, lines, position.line, before)
        if found is not None:
            items, typed = found
            start = types.Position(line=position.line, character=to_client(text, col - len(typed), encoding))
            edit_range = types.Range(start=start, end=types.Position(line=position.line,
                                                                     character=units(before, encoding)))
            for item in items:
                item.text_edit = types.TextEdit(range=edit_range, new_text=item.insert_text or item.label)
                item.insert_text = None
            return types.CompletionList(is_incomplete=False, items=items)
    return None


# ---- contexts: each returns (items, the part already typed) or None ---------------------------


def _variables(model, lines, line, before):
    m = _VARIABLE.search(before)
    if m is None or model is None:
        return None
    braced = m.group(0).startswith("${")
    typed = (m.group(1) or "") if braced else m.group(0)
    names = {n: f"= {v.written}" for n, v in model.variables.items()}
    chain = key_chain(lines, line)
    if len(chain) >= 2 and chain[-1][0] == "templates" and chain[-2][0] in model.templates:
        for arg, default in model.templates[chain[-2][0]].args.items():
            names[arg] = f"argument of {chain[-2][0]}" + ("" if default == "required" else f" (default {default})")
    items = [types.CompletionItem(label=name if braced else f"${name}", kind=types.CompletionItemKind.Variable,
                                  detail=detail) for name, detail in sorted(names.items())]
    return items, typed


def _references(model, lines, line, before):
    m = _REFERENCE.search(before)
    if m is None:
        return None
    items = [types.CompletionItem(label="input", kind=types.CompletionItemKind.Reference,
                                  detail="the enclosing block's input", sort_text="z")]
    if model is not None:
        region = _region(key_chain(lines, line))
        above = [e for e in model.entries if e.id and _region_of(e.path) == region and e.span.line < line]
        for distance, entry in enumerate(reversed(above)):
            items.append(types.CompletionItem(label=entry.id, kind=types.CompletionItemKind.Reference,
                                              detail=f"{entry.kind} {one_line(entry) or ''}".strip(),
                                              sort_text=f"{distance:06d}"))
    return _unique(items), m.group(1)


def _layer_names(model, lines, line, before):
    m = _LAYER_ITEM.match(before)
    if m is not None:
        chain = key_chain(lines, line, indent=len(m.group(1)), list_item=True)
        if chain and not _layer_list(chain):
            return None
        return _kinds(model), m.group(2)
    m = _FLOW_LAYER.search(before)
    if m is not None and m.group(1) in LAYER_LISTS:
        return _kinds(model), m.group(2)
    return None


def _settings(model, lines, line, before):
    m = _FLOW_KEY.search(before)
    if m is not None:
        kind, written = m.group(1), _flow_keys(before[m.start():])
        if kind == "first":  # the first repetition's overrides: the layer's own settings
            outer = _FLOW_KEY.search(before[:m.start()])
            chain = key_chain(lines, line) if outer is None else []
            kind = outer.group(1) if outer else chain[0][0] if chain else kind
        return _setting_items(model, kind, written), m.group(3)
    m = _BLOCK_KEY.match(before)
    if m is None:
        return None
    chain = key_chain(lines, line, indent=len(m.group(1)))
    if not chain:
        return None
    kind = chain[0][0]  # the layer this key belongs to: '- conv:' on a line above
    if not (kind in OPS or kind in BLOCKS or (model is not None and kind in model.templates)):
        return None
    return _setting_items(model, kind, _sibling_keys(lines, line, len(m.group(1)))), m.group(2)


def _top_level(model, lines, line, before):
    if not re.fullmatch(r"[\w]*", before):
        return None
    present = {m.group(3) for text in lines if (m := _KEY_LINE.match(text)) and not m.group(1)}
    items = [types.CompletionItem(label=s.key, kind=types.CompletionItemKind.Property, detail=s.type,
                                  documentation=s.meaning, insert_text=f"{s.key}: ")
             for s in registry_docs.top_level_settings() if s.key not in present]
    return items, before


# ---- items ----------------------------------------------------------------------------------


def _kinds(model) -> list:
    items = []
    for name in sorted(OPS):
        items.append(types.CompletionItem(label=name, kind=types.CompletionItemKind.Function,
                                          detail=f"op — {registry_docs.summary(name)}",
                                          documentation=_markdown(registry_docs.markdown(name))))
    for name in sorted(BLOCKS):
        items.append(types.CompletionItem(label=name, kind=types.CompletionItemKind.Module,
                                          detail=f"block — {registry_docs.summary(name)}",
                                          documentation=_markdown(registry_docs.markdown(name))))
    for name, template in sorted((model.templates if model else {}).items()):
        args = ", ".join(template.args)
        items.append(types.CompletionItem(label=name, kind=types.CompletionItemKind.Struct,
                                          detail=f"template ({args})", documentation=template.doc or None,
                                          sort_text=f"0{name}"))
    return items


def _setting_items(model, kind: str, written: set) -> list:
    items = []
    if model is not None and kind in model.templates:
        for arg, default in model.templates[kind].args.items():
            items.append(types.CompletionItem(
                label=arg, kind=types.CompletionItemKind.Property, insert_text=f"{arg}: ",
                detail="required" if default == "required" else f"default {default}",
                sort_text=("0" if default == "required" else "1") + arg))
    for setting in registry_docs.settings(kind):
        items.append(_setting_item(setting, "0" if setting.required else "1"))
    for setting in registry_docs.envelope_settings():
        items.append(_setting_item(setting, "2"))
    return [i for i in items if i.label not in written]


def _setting_item(setting, rank: str) -> types.CompletionItem:
    return types.CompletionItem(label=setting.key, kind=types.CompletionItemKind.Property,
                                detail=f"{setting.type} — default {setting.default}",
                                documentation=setting.meaning or None, insert_text=f"{setting.key}: ",
                                sort_text=rank + setting.key)


def _markdown(text: str):
    return types.MarkupContent(kind=types.MarkupKind.Markdown, value=text) if text else None


def _unique(items: list) -> list:
    seen, out = set(), []
    for item in items:
        if item.label not in seen:
            seen.add(item.label)
            out.append(item)
    return out


# ---- reading the structure from the text ----------------------------------------------------


def key_chain(lines: list, line: int, indent: int | None = None, list_item: bool = False) -> list:
    """The block-style keys enclosing `line`, innermost first: [(key, is a list item, column)].
    A line holding a list item may sit at its parent key's own indentation (`layers:` then
    `- conv` at column 0)."""
    if indent is None:
        text = lines[line] if line < len(lines) else ""
        indent = len(text) - len(text.lstrip())
    chain = []
    for number in range(min(line, len(lines)) - 1, -1, -1):
        m = _KEY_LINE.match(lines[number])
        stripped = lines[number].strip()
        if not stripped or stripped.startswith("#"):
            continue
        own = len(lines[number]) - len(lines[number].lstrip())
        opens = m is not None and m.group(4) is not None and not m.group(2)
        if own < indent or (list_item and own == indent and opens):
            if m is not None:
                chain.append((m.group(3), bool(m.group(2)), own))
            indent, list_item = own, False
            if own == 0 and not (m and m.group(2)):
                break
    return chain


def _layer_list(chain: list) -> bool:
    key = chain[0][0]
    return key in LAYER_LISTS or (len(chain) > 1 and chain[1][0] == "branches")


def _region(chain: list) -> tuple:
    if chain and chain[-1][0] == "templates" and len(chain) >= 2:
        return ("templates", chain[-2][0])
    return (chain[-1][0],) if chain else ("layers",)


def _region_of(path: tuple) -> tuple:
    return path[:2] if path[0] == "templates" else path[:1]


def _flow_keys(text: str) -> set:
    return set(re.findall(r"[{,]\s*([\w-]+)\s*:", text))


def _sibling_keys(lines: list, line: int, indent: int) -> set:
    keys = set()
    for step in (-1, 1):
        number = line + step
        while 0 <= number < len(lines):
            text = lines[number]
            own = len(text) - len(text.lstrip())
            if text.strip() and own < indent:
                break
            if own == indent and (m := re.match(r"\s*([\w-]+)\s*:", text)):
                keys.add(m.group(1))
            number += step
    return keys
