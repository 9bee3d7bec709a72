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
        first = doc.split("\n\n")[0].replace("\n", " ")
        title = re.split(r"[:.](?:\s|$)", first, maxsplit=1)[0].strip() or module.rpartition(".")[2]
        families.append((title, doc, modules[module]))
    return families


def _op_section(op: Op) -> list[str]:
    cls = type(op)
    doc = inspect.cleandoc(cls.__doc__ or "")
    examples = [m.strip("\n") for m in _YAML_BLOCK.findall(doc)]
    text = _YAML_BLOCK.sub("", doc).strip()
    paragraphs = [p.strip() for p in text.split("\n\n") if p.strip()]
    summary = _join(paragraphs[0]) if paragraphs else ""
    rest = "\n\n".join(paragraphs[1:])
    shape_in = shape_out = None
    if (m := _INPUT.search(rest)) is not None:
        shape_in = _join(m.group(1)).rstrip(".")
        rest = rest[:m.start()] + rest[m.end():]
    if (m := _OUTPUT.search(rest)) is not None:
        shape_out = _join(m.group(1)).rstrip(".")
        rest = rest[:m.start()] + rest[m.end():]
    if shape_in is None and cls.infer is Op.infer:
        shape_in, shape_out = "any", "the same as the input"
    notes = [_join(p) for p in re.split(r"\n\s*\n", rest) if p.strip()]

    out = [f'<a id="op-{op.name}"></a>', "", f"#### {op.name}", "", summary, ""]
    facts = []
    if shape_in is not None:
        facts.append(f"**Input:** {shape_in}")
    if shape_out is not None:
        facts.append(f"**Output:** {shape_out}")
    low, high = cls.arity
    if (low, high) != (1, 1):
        facts.append(f"**Takes:** {low} to {high} inputs" if high != low else f"**Takes:** {low} inputs")
    if cls.onnx_notes:
        facts.append(f"**ONNX:** {cls.onnx_notes}")
    facts.append(f"**FLOPs:** {cls.flops_rule}")
    facts.append(f"**Saved for backward:** {cls.saves_rule}")
    if facts:
        out += ["  \n".join(facts), ""]
    out += [n + "\n" for n in notes]
    out += _table(cls.Params, {}, empty="No settings.")
    if not examples and not _required(cls.Params):
        examples = [f"- {op.name}"]
    for example in examples:
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


def _block_modules():
    """[(documentation, [blocks])]: blocks documented by one module docstring are grouped."""
    groups: dict = {}
    for name in sorted(BLOCKS):
        block = BLOCKS[name]
        cls = type(block)
        own = cls.__dict__.get("__doc__")
        key = f"{cls.__module__}.{cls.__name__}" if own else cls.__module__
        doc = own or sys.modules[cls.__module__].__doc__ or ""
        groups.setdefault(key, (inspect.cleandoc(doc), []))[1].append(block)
    return list(groups.values())


# ---- settings tables ------------------------------------------------------------------------


def _required(model) -> list[str]:
    return [n for n, f in model.model_fields.items() if f.is_required()]


def _table(model, meanings: dict, nested=(), empty: str | None = None) -> list[str]:
    fields = model.model_fields
    if not fields:
        return [empty, ""] if empty else []
    schema = model.model_json_schema(by_alias=True)
    defs = schema.get("$defs", {})
    props = schema.get("properties", {})
    rows = []
    for name, info in fields.items():
        key = info.alias or name
        prop = props.get(key, {})
        kind = _nested_type(prop) if name in nested else _type(prop, defs)
        meaning = meanings.get(key) or info.description or ""
        rows.append((f"`{key}`", kind, _default(info), meaning))
    with_meaning = any(r[3] for r in rows)
    header = ["Key", "Type", "Default"] + (["Meaning"] if with_meaning else [])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = row if with_meaning else row[:3]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return lines + [""]


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _default(info) -> str:
    if info.is_required():
        return "required"
    value = info.get_default(call_default_factory=True)
    if value is None or value is PydanticUndefined:
        return "—"
    if value == "" or value == {} or value == []:
        return "`" + json.dumps(value) + "`"
    return "`" + json.dumps(value, ensure_ascii=False) + "`"


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
