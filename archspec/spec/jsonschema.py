"""A JSON Schema (draft 2020-12) of the spec format, for editors' completion and checking.

Generated from the registries — every op's `Params` model, every block's `Params` and
`nested` keys, the layer envelope and the top-level `SpecFile` — so it never drifts from the
compiler. The committed copy is `schemas/archspec.schema.json`; regenerate it with

    python -m archspec.spec.jsonschema > schemas/archspec.schema.json

(or `archspec schema -o schemas/archspec.schema.json`). A layer is a string (an op, or a
template without arguments) or a one-key mapping whose key — the discriminator — names an
op, a block or a user template (templates are the spec's own, so any other key is accepted
with free-form arguments). Any value may also be a `$var` / `${expr}` string.

The schema checks structure and parameter types; `archspec check` remains the authority
(shapes, references, cross-field rules).
"""
from __future__ import annotations

import json
import sys

from archspec.blocks import BLOCKS
from archspec.ops import OPS
from archspec.spec.schema import Envelope, SpecFile

REGENERATE = "python -m archspec.spec.jsonschema > schemas/archspec.schema.json"
DIALECT = "https://json-schema.org/draft/2020-12/schema"

# What each key means; shared with the generated reference (docs/reference.md).
TOP_LEVEL_DOCS = {
    "archspec": "Format version; always 1.",
    "name": "The network's name (default: the file name without extension).",
    "description": "Free text about the network.",
    "input": "Input shape without the batch axis: [C, H, W] (or [C, L], [C, D, H, W], [F]); sizes may be "
             "`$vars` (`[3, $resolution, $resolution]`).",
    "vars": "Named constants, used in values as `$name` or `${expression}`; `--set name=value` overrides one.",
    "templates": "User-defined blocks: `{name: {args: {a: required, b: 1}, body: <layer or list>}}`.",
    "layers": "The network: a list of layers, applied in order.",
    "extends": "A base spec (path relative to this file) whose layers, vars and templates this one inherits.",
    "override": "Replacements for layers of the base spec, by id path: `{id.path: <layer>}` (the id is kept).",
}
ENVELOPE_DOCS = {
    "id": "The layer's name (default: its index in the sequence); unique within its block.",
    "from": "Input(s): an id, or a list of ids (`input` is the enclosing block's input). Default: the previous layer.",
    "trainable": "false freezes the layer's parameters (inherited by everything inside a block).",
    "expect": "The output shape this layer must have, e.g. [64, 56, 56]; checked by `archspec check`.",
    "training_only": "A side branch used only in training (auxiliary heads): the main chain continues from the layer before.",
    "output": "An extra output of the network: the main chain continues from the layer before.",
    "repeat": "Repeat the layer N times in sequence: with an id, a group `<id>.0`, `<id>.1`, ...; unnamed "
              "in a list, the copies take the list's next indices (as `nn.Sequential(a, *copies)` numbers "
              "them). The copy's number is the variable `index` in its settings.",
    "first": "Settings that override the layer's own for the first repetition only (with `repeat`).",
    "copy_id": "With `repeat`: the name of each copy, with `{index}` where its number goes "
               "(`block1-{index}`: torchvision's RegNet names).",
    "if": "false leaves the layer out (no node, no index; its id names its input): "
          "`if: '${expand != 1}'` for a layer only some configurations have.",
    "doc": "Free text about the layer.",
    "tie": "An earlier layer (id, resolved like `from`) whose parameters this one uses instead of its own: "
           "same op and settings, counted once, one module called twice. On a block or template use, every "
           "layer inside is tied to its namesake in the other; with `repeat`, each copy is tied "
           "(`tie: 0` shares copy 0's parameters). `tie: {to: enc, transpose: true}` uses one layer's weight "
           "transposed and keeps its own bias: a conv_transpose with a conv's weight (or the reverse), a "
           "linear with a linear's weight as W.t() (the tied autoencoder's decoder).",
}
TEMPLATE_DOCS = {
    "args": "Argument names with their defaults (`required` for arguments without one).",
    "body": "One layer (the template's uses take its name) or a list of layers.",
    "doc": "Free text about the template.",
}

_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_VALUES = ("items", "not", "additionalProperties", "contains", "if", "then", "else")


def generate() -> dict:
    """The schema as a dict (deterministic: registries are walked in name order)."""
    defs: dict = {
        "expression": {
            "type": "string",
            "pattern": r"^\$",
            "description": "A variable `$name` or an expression `${...}`, evaluated when the spec is built.",
        },
        "layer": {
            "description": "A layer: an op or block name (`- relu`), or a one-key mapping "
                           "`{name: {settings}}` naming an op, a block or a template.",
            "if": {"type": "string"},
            "then": {"$ref": "#/$defs/layer_name"},
            "else": {"$ref": "#/$defs/layer_entry"},
        },
        "layers": {"type": "array", "items": {"$ref": "#/$defs/layer"}},
        "layer_or_layers": {"anyOf": [{"$ref": "#/$defs/layer"}, {"$ref": "#/$defs/layers"}]},
    }
    envelope = _envelope(defs)
    needs_settings = []
    entry_props = {}
    for kind, name, params, summary, nested in _definitions():
        params = _model_schema(params, defs, owner=f"{kind}.{name}")
        required = params.get("required", [])
        if required:
            needs_settings.append(name)
        props = {}
        for key, value in params.get("properties", {}).items():
            props[key] = _nested(value) if key in nested else _allow_expressions(value)
        first = {"type": "object", "propertyNames": {"enum": sorted(props)},
                 "description": ENVELOPE_DOCS["first"]}
        layer_props = {**props, **envelope, "first": first}
        body = {"type": "object" if required else ["object", "null"], "properties": layer_props,
                "additionalProperties": False}
        if required:
            body["required"] = required
        if summary:
            body = {"description": summary, **body}
        defs[f"{kind}.{name}"] = body
        entry_props[name] = {"$ref": f"#/$defs/{kind}.{name}"}

    defs["layer_name"] = {
        "description": "An op or block that needs no settings, or a template without arguments.",
        "anyOf": [
            {"enum": sorted(n for n in list(OPS) + list(BLOCKS) if n not in needs_settings)},
            {"type": "string", "not": {"enum": sorted(needs_settings)}},
        ],
    }
    defs["layer_entry"] = {
        "type": "object",
        "minProperties": 1,
        "maxProperties": 1,
        "properties": entry_props,
        "additionalProperties": {"$ref": "#/$defs/template_use"},
    }
    defs["template_use"] = {
        "description": "A use of a template defined under `templates`: its arguments and any layer keys.",
        "type": ["object", "null"],
        "properties": {**envelope, "first": {"type": "object", "description": ENVELOPE_DOCS["first"]}},
    }
    defs["template"] = {
        "type": "object",
        "properties": {
            "args": {"type": "object", "description": TEMPLATE_DOCS["args"]},
            "body": {"$ref": "#/$defs/layer_or_layers", "description": TEMPLATE_DOCS["body"]},
            "doc": {"type": "string", "description": TEMPLATE_DOCS["doc"]},
        },
        "required": ["body"],
        "additionalProperties": False,
    }

    top = _model_schema(SpecFile, {}, owner="spec")
    props = top["properties"]
    props["input"] = {"type": "array", "minItems": 1, "maxItems": 4,
                      "items": {"anyOf": [{"type": "integer", "minimum": 1}, {"$ref": "#/$defs/expression"}]}}
    props["vars"] = {"type": "object", "propertyNames": {"pattern": r"^[A-Za-z_][A-Za-z0-9_]*$"},
                     "additionalProperties": {"type": ["integer", "number", "boolean", "string"]}}
    props["templates"] = {"type": "object", "additionalProperties": {"$ref": "#/$defs/template"}}
    props["layers"] = {"$ref": "#/$defs/layers", "minItems": 1}
    props["override"] = {"type": "object", "additionalProperties": {"$ref": "#/$defs/layer"}}
    for key, value in props.items():
        if key in TOP_LEVEL_DOCS:
            value["description"] = TOP_LEVEL_DOCS[key]
    return {
        "$schema": DIALECT,
        "title": "archspec spec",
        "description": "A CNN architecture written for archspec (format version 1). Generated by "
                       f"`{REGENERATE}`; do not edit by hand.",
        "type": "object",
        "properties": props,
        "required": top.get("required", ["archspec"]),
        "additionalProperties": False,
        "$defs": dict(sorted(defs.items())),
    }


def render() -> str:
    return json.dumps(generate(), indent=2, ensure_ascii=False) + "\n"


# ---- pieces ----------------------------------------------------------------------------------


def _definitions():
    """(kind, name, Params model, one-line summary, nested keys) for every op and block."""
    for name in sorted(OPS):
        op = OPS[name]
        yield "op", name, op.Params, type(op).summary(), ()
    for name in sorted(BLOCKS):
        block = BLOCKS[name]
        yield "block", name, block.Params, block_summary(block), tuple(getattr(block, "nested", ()))


def block_summary(block) -> str:
    """A block's one-line summary: its class docstring's, else its module docstring's."""
    doc = type(block).__doc__ or sys.modules[type(block).__module__].__doc__ or ""
    lines = doc.strip().splitlines()
    return lines[0].strip() if lines else ""


def _envelope(defs: dict) -> dict:
    props = _model_schema(Envelope, defs, owner="envelope")["properties"]  # `tie`'s mapping: $defs/Tie
    out = {}
    for key, value in props.items():
        value = _allow_expressions(value)
        if key in ENVELOPE_DOCS:
            value["description"] = ENVELOPE_DOCS[key]
        out[key] = value
    return out


def _model_schema(model, defs: dict, owner: str) -> dict:
    """A pydantic model's JSON schema without titles, its own $defs hoisted into `defs`."""
    schema = _strip_titles(model.model_json_schema(by_alias=True))
    renames = {}
    for name, sub in schema.pop("$defs", {}).items():
        sub = _allow_expressions(sub)  # a nested settings model (residual's `se`)
        key = name if defs.get(name, sub) == sub else f"{owner}.{name}"
        defs[key] = sub
        renames[f"#/$defs/{name}"] = f"#/$defs/{key}"
    return _rename_refs(schema, renames) if renames else schema


def _walk(schema, fn):
    """Apply `fn` to every sub-schema (bottom-up) and return the result."""
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    for key in _SCHEMA_LISTS:
        if key in out:
            out[key] = [_walk(s, fn) for s in out[key]]
    for key in _SCHEMA_VALUES:
        if isinstance(out.get(key), dict):
            out[key] = _walk(out[key], fn)
    for key in ("properties", "$defs"):
        if key in out:
            out[key] = {k: _walk(v, fn) for k, v in out[key].items()}
    return fn(out)


def _strip_titles(schema):
    return _walk(schema, lambda s: {k: v for k, v in s.items() if k != "title"})


def _rename_refs(schema, renames):
    return _walk(schema, lambda s: {**s, "$ref": renames.get(s["$ref"], s["$ref"])} if "$ref" in s else s)


_SCALARS = ("integer", "number", "boolean")


def _allow_expressions(schema):
    """Let every number, boolean and constrained string also be a `$var`/`${expr}` string."""

    def widen(s):
        if "anyOf" in s:  # flatten anyOf-in-anyOf and keep one expression alternative
            flat = []
            for option in s["anyOf"]:
                inner = option["anyOf"] if set(option) == {"anyOf"} else [option]
                flat.extend(o for o in inner if o not in flat)
            return {**s, "anyOf": flat}
        kind = s.get("type")
        constrained = kind == "string" and any(k in s for k in ("enum", "pattern", "const"))
        if kind in _SCALARS or constrained or ("enum" in s and kind is None) or ("const" in s and kind is None):
            keep = {k: v for k, v in s.items() if k in ("default", "description")}
            inner = {k: v for k, v in s.items() if k not in keep}
            return {**keep, "anyOf": [inner, {"$ref": "#/$defs/expression"}]}
        return s

    return _walk(schema, widen)


def _nested(schema):
    """A block's nested key: untyped lists become layer lists, untyped mappings become named
    layers (or lists of layers), as in `inception`'s branches."""

    def typed(s):
        if s.get("type") == "array" and not s.get("items"):
            return {**{k: v for k, v in s.items() if k != "items"}, "items": {"$ref": "#/$defs/layer"}}
        if s.get("type") == "object" and "properties" not in s and s.get("additionalProperties", True) is True:
            return {**s, "additionalProperties": {"$ref": "#/$defs/layer_or_layers"}}
        return s

    return _allow_expressions(_walk(schema, typed))


def main() -> None:
    sys.stdout.write(render())


if __name__ == "__main__":
    main()
