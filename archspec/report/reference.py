"""The spec reference (docs/reference.md), generated from the registries.

Every op's section comes from its class docstring (summary, shape lines, notes, YAML
example) and its `Params` model (the settings table); every block's from its module (or
class) docstring and `Params`; the top-level and layer keys from `spec/schema.py` with the
meanings in `spec/jsonschema.py`. Nothing here is written twice by hand: regenerate with

    python -m archspec.report.reference > docs/reference.md
"""
from __future__ import annotations

import inspect
import json
import re
import sys

from pydantic_core import PydanticUndefined

from archspec.blocks import BLOCKS
from archspec.ops import OPS, Op
from archspec.spec.jsonschema import ENVELOPE_DOCS, TEMPLATE_DOCS, TOP_LEVEL_DOCS
from archspec.spec.schema import Envelope, SpecFile, TemplateDef

REGENERATE = "python -m archspec.report.reference > docs/reference.md"

_YAML_BLOCK = re.compile(r"```yaml\n(.*?)```", re.S)
_INPUT = re.compile(r"Input shapes?:\s*(.*?)\s*(?=Output shape:)", re.S)
_OUTPUT = re.compile(r"Output shape:\s*(.*?)(?:\.(?=\s*\n|\s+[A-Z`]|\s*$)|\Z)", re.S)


def generate() -> str:
    out = [
        "# Spec reference",
        "",
        f"<!-- Generated from the op and block registries by `{REGENERATE}`; do not edit. -->",
        "",
        "Every key, op and block of the spec format, with its settings. The format itself "
        "(layers, ids, `from`, templates, `extends`) is described in [format.md](format.md); "
        "editors can check specs with [the JSON Schema](../schemas/archspec.schema.json).",
        "",
        "Shapes leave out the batch axis: (C, H, W) for images, (F,) for feature vectors. "
        "Any setting may be a variable `$name` or an expression `${...}`.",
        "",
    ]
    families = _op_families()
    blocks = _block_modules()
    out += ["## Contents", "", "- [Top-level keys](#top-level-keys)",
            "- [Keys any layer may carry](#keys-any-layer-may-carry)",
            "- [Template definitions](#template-definitions)", "- [Ops](#ops)"]
    for title, _, ops in families:
        links = ", ".join(f"[`{op.name}`](#op-{op.name})" for op in ops)
        out.append(f"  - {title}: {links}")
    out.append("- [Costs per op](#costs-per-op)")
    out.append("- [Blocks](#blocks): " + ", ".join(
        f"[`{b.name}`](#block-{b.name})" for _, members in blocks for b in members))
    out.append("")

    out += ["## Top-level keys", ""]
    out += _table(SpecFile, TOP_LEVEL_DOCS, nested=("layers",))
    out += ["## Keys any layer may carry", "",
            "Beside its op's or block's own settings, any layer may carry these:", ""]
    out += _table(Envelope, ENVELOPE_DOCS)
    out += ["## Template definitions", "", "Each entry under `templates:` has:", ""]
    out += _table(TemplateDef, TEMPLATE_DOCS)

    out += ["## Ops", ""]
    for title, intro, ops in families:
        out += [f"### {title}", ""]
        if intro:
            out += [intro, ""]
        for op in ops:
            out += _op_section(op)
    out += _cost_table()
    out += ["## Blocks", "",
            "Blocks expand into primitive ops (drawn as clusters by `archspec graph`). Settings "
            "listed as *layers* hold nested layer lists, built in the block's own scope.", ""]
    for doc, members in blocks:
        out += [f"### {', '.join(b.name for b in members)}", ""]
        for block in members:
            out.append(f'<a id="block-{block.name}"></a>')
        out += ["", doc, ""]
        for block in members:
            out += [f"#### `{block.name}` settings", ""]
            out += _table(block.Params, {}, nested=getattr(block, "nested", ()), empty="No settings.")
    text = "\n".join(out)
    return re.sub(r"\n{3,}", "\n\n", text).rstrip("\n") + "\n"


# ---- ops --------------------------------------------------------------------------------------


def _op_families():
    """[(title, intro, [ops])] by module, modules in name order, ops in registration order."""
    modules: dict = {}
    for op in OPS.values():
        modules.setdefault(type(op).__module__, []).append(op)
    families = []
    for module in sorted(modules):
        doc = inspect.cleandoc(sys.modules[module].__doc__ or "")
        families.append((_family_title(module), doc, modules[module]))
    return families


def _family_title(module: str) -> str:
    """The title of an op module's section: its docstring's first phrase."""
    doc = inspect.cleandoc(sys.modules[module].__doc__ or "")
    first = doc.split("\n\n")[0].replace("\n", " ")
    return re.split(r"[:.](?:\s|$)", first, maxsplit=1)[0].strip() or module.rpartition(".")[2]


def op_doc(op: Op) -> dict:
    """What the reference says about an op, as data (`archspec ops NAME`, docs/json.md):
    summary, shape rule, arity, costs, notes, settings and YAML examples."""
    cls = type(op)
    doc = inspect.cleandoc(cls.__doc__ or "")
    examples = [m.strip("\n") for m in _YAML_BLOCK.findall(doc)]
    text = _YAML_BLOCK.sub("", doc).strip()
    paragraphs = [p.strip() for p in text.split("\n\n") if p.strip()]
    summary = _join(paragraphs[0]) if paragraphs else ""
    rest = "\n\n".join(paragraphs[1:])
    shape_in, shape_out, rest = _shape_rule(rest)
    if shape_in is None and cls.infer is Op.infer:
        shape_in, shape_out = "any", "the same as the input"
    if not examples and not _required(cls.Params):
        examples = [f"- {op.name}"]
    low, high = cls.arity
    return {"name": op.name, "kind": "op", "family": _family_title(type(op).__module__),
            "summary": summary, "input": shape_in, "output": shape_out,
            "inputs": {"min": low, "max": high}, "onnx": cls.onnx_notes or None,
            "flops": cls.flops_rule, "saved_for_backward": cls.saves_rule,
            "notes": [_join(p) for p in re.split(r"\n\s*\n", rest) if p.strip()],
            "settings": settings(cls.Params), "examples": examples}


def _shape_rule(text: str):
    """(input shape, output shape, the text without them) from 'Input shape: … Output shape: …'."""
    shape_in = shape_out = None
    if (m := _INPUT.search(text)) is not None:
        shape_in = _join(m.group(1)).rstrip(".")
        text = text[:m.start()] + text[m.end():]
    if (m := _OUTPUT.search(text)) is not None:
        shape_out = _join(m.group(1)).rstrip(".")
        text = text[:m.start()] + text[m.end():]
    return shape_in, shape_out, text


def _op_section(op: Op) -> list[str]:
    doc = op_doc(op)
    out = [f'<a id="op-{op.name}"></a>', "", f"#### {op.name}", "", doc["summary"], ""]
    facts = []
    if doc["input"] is not None:
        facts.append(f"**Input:** {doc['input']}")
    if doc["output"] is not None:
        facts.append(f"**Output:** {doc['output']}")
    low, high = doc["inputs"]["min"], doc["inputs"]["max"]
    if (low, high) != (1, 1):
        facts.append(f"**Takes:** {low} to {high} inputs" if high != low else f"**Takes:** {low} inputs")
    if doc["onnx"]:
        facts.append(f"**ONNX:** {doc['onnx']}")
    facts.append(f"**FLOPs:** {doc['flops']}")
    facts.append(f"**Saved for backward:** {doc['saved_for_backward']}")
    out += ["  \n".join(facts), ""]
    out += [n + "\n" for n in doc["notes"]]
    out += _table(type(op).Params, {}, empty="No settings.")
    for example in doc["examples"]:
        out += ["```yaml", example, "```", ""]
    return out


def _cost_table() -> list[str]:
    """Every op's FLOPs rule and what autograd saves for it, side by side (the conventions of
    `archspec report --flops` and of its training memory; docs/format.md explains them)."""
    out = ["## Costs per op", "",
           "FLOPs per sample at inference (MACs stay multiply-accumulates against learned weights), "
           "and the tensors autograd keeps for backward in training, op by op. "
           "See [format.md](format.md#counting-conventions).", "",
           "| Op | FLOPs | Saved for backward |", "|---|---|---|"]
    for name in sorted(OPS):
        cls = type(OPS[name])
        out.append(f"| [`{name}`](#op-{name}) | {_cell(cls.flops_rule)} | {_cell(cls.saves_rule)} |")
    return out + [""]


def _join(text: str) -> str:
    return re.sub(r"\s*\n\s*", " ", text.strip())


# ---- blocks -----------------------------------------------------------------------------------


def block_doc(block) -> dict:
    """What the reference says about a block, as data (`archspec ops NAME`, docs/json.md): its
    documentation (Markdown) with the summary, shape rule and YAML examples taken from it, and
    its settings. Where one docstring documents several blocks (`dense`, `transition`), the
    shape rule is the first after the paragraph that starts with the block's name, and the
    examples are those that use it."""
    doc = _block_documentation(block)
    text = _YAML_BLOCK.sub("", doc).strip()
    own = re.search(rf"(?m)^`{re.escape(block.name)}`\W", text)
    shape_in, shape_out, _ = _shape_rule(text[own.start():] if own else text)
    examples = [m.strip("\n") for m in _YAML_BLOCK.findall(doc)]
    uses = [e for e in examples if re.search(rf"(?m)^\s*- {re.escape(block.name)}\b", e)]
    return {"name": block.name, "kind": "block", "summary": _join(text.split("\n\n")[0]),
            "input": shape_in, "output": shape_out, "description": doc,
            "settings": settings(block.Params, nested=getattr(block, "nested", ())),
            "examples": uses or examples}


def _block_documentation(block) -> str:
    """The class docstring when the block has its own, else its module's."""
    cls = type(block)
    return inspect.cleandoc(cls.__dict__.get("__doc__") or sys.modules[cls.__module__].__doc__ or "")


def _block_modules():
    """[(documentation, [blocks])]: blocks documented by one module docstring are grouped."""
    groups: dict = {}
    for name in sorted(BLOCKS):
        block = BLOCKS[name]
        cls = type(block)
        own = cls.__dict__.get("__doc__")
        key = f"{cls.__module__}.{cls.__name__}" if own else cls.__module__
        groups.setdefault(key, (_block_documentation(block), []))[1].append(block)
    return list(groups.values())


# ---- settings tables ------------------------------------------------------------------------


def _required(model) -> list[str]:
    return [n for n, f in model.model_fields.items() if f.is_required()]


def settings(model, meanings: dict | None = None, nested=()) -> list[dict]:
    """A settings model's keys as data: key, type (readable text), required, default (a JSON
    value; None when there is none) and description (`meanings` first, then the field's)."""
    fields = model.model_fields
    if not fields:
        return []
    schema = model.model_json_schema(by_alias=True)
    defs = schema.get("$defs", {})
    props = schema.get("properties", {})
    rows = []
    for name, info in fields.items():
        key = info.alias or name
        prop = props.get(key, {})
        required = info.is_required()
        default = None if required else info.get_default(call_default_factory=True)
        rows.append({"key": key, "type": _nested_type(prop) if name in nested else _type(prop, defs),
                     "required": required, "default": None if default is PydanticUndefined else default,
                     "description": (meanings or {}).get(key) or info.description or ""})
    return rows


def _table(model, meanings: dict, nested=(), empty: str | None = None) -> list[str]:
    rows = [(f"`{row['key']}`", row["type"], default_text(row, "`"), row["description"])
            for row in settings(model, meanings, nested)]
    if not rows:
        return [empty, ""] if empty else []
    with_meaning = any(r[3] for r in rows)
    header = ["Key", "Type", "Default"] + (["Meaning"] if with_meaning else [])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = row if with_meaning else row[:3]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return lines + [""]


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def default_text(row: dict, quote: str = "") -> str:
    """A setting's default as the reference shows it: required, — (none) or the JSON value."""
    if row["required"]:
        return "required"
    if row["default"] is None:
        return "—"
    return quote + json.dumps(row["default"], ensure_ascii=False) + quote


def _type(schema: dict, defs: dict) -> str:
    """A JSON schema as short readable text: 'int ≥ 1 or [int ≥ 1, int ≥ 1]'."""
    if "$ref" in schema:
        target = defs.get(schema["$ref"].rpartition("/")[2], {})
        keys = ", ".join(target.get("properties", {}))
        return f"mapping {{{keys}}}" if keys else "mapping"
    if "const" in schema:
        return json.dumps(schema["const"])
    if "enum" in schema:
        return " or ".join(json.dumps(v) for v in schema["enum"])
    options = [s for s in schema.get("anyOf", []) if s.get("type") != "null"]
    if options:
        texts = []
        for option in options:
            text = _type(option, defs)
            if text not in texts:
                texts.append(text)
        return " or ".join(texts)
    kind = schema.get("type")
    if kind == "integer":
        return "int" + _bounds(schema)
    if kind == "number":
        return "float" + _bounds(schema)
    if kind == "boolean":
        return "bool"
    if kind == "string":
        return f"string matching `{schema['pattern']}`" if "pattern" in schema else "string"
    if kind == "array":
        if "prefixItems" in schema:
            return "[" + ", ".join(_type(s, defs) for s in schema["prefixItems"]) + "]"
        items = schema.get("items")
        return f"list of {_type(items, defs)}" if items else "list"
    if kind == "object":
        values = schema.get("additionalProperties")
        return f"mapping of {_type(values, defs)}" if isinstance(values, dict) and values else "mapping"
    return "any"


def _nested_type(schema: dict) -> str:
    options = schema.get("anyOf", [schema])
    texts = []
    for option in options:
        kind = option.get("type")
        if kind == "null":
            continue
        if kind == "array":
            texts.append("*layers*")
        elif kind == "object":
            texts.append("mapping of name → *layer or layers*")
        else:
            texts.append(_type(option, {}))
    return " or ".join(texts)


def _bounds(schema: dict) -> str:
    low = ("≥", schema["minimum"]) if "minimum" in schema else \
        (">", schema["exclusiveMinimum"]) if "exclusiveMinimum" in schema else None
    high = ("≤", schema["maximum"]) if "maximum" in schema else \
        ("<", schema["exclusiveMaximum"]) if "exclusiveMaximum" in schema else None
    parts = [f"{bound[0]} {_num(bound[1])}" for bound in (low, high) if bound is not None]
    return " " + ", ".join(parts) if parts else ""


def _num(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def main() -> None:
    sys.stdout.write(generate())


if __name__ == "__main__":
    main()
