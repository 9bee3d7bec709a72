"""Hovers: a layer's shapes and costs, an op's or block's reference section, an expression's
value, a setting's type and default."""
from __future__ import annotations

from lsprotocol import types

from archspec.lsp import registry_docs
from archspec.lsp.cursor import Target, resolve, target_at
from archspec.lsp.figures import count, shape, size
from archspec.lsp.model import Entry, FileModel, Stats
from archspec.lsp.text import View
from archspec.spec.expr import ExprError, evaluate

MAX_ROWS = 8  # instances listed for an entry that appears many times


def hover(view: View, position: types.Position) -> types.Hover | None:
    where = view.position(position)
    if where is None:
        return None
    target = target_at(view.model, *where)
    if target is None:
        return None
    text = _RENDER[target.what](view.model, target)
    if not text:
        return None
    return types.Hover(contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=text),
                       range=view.range(target.span))


def _expression(model: FileModel, target: Target) -> str:
    """`$classes` = 1000; inside a template body, its value at each use."""
    token = target.text
    env = {name: v.value for name, v in model.variables.items() if not v.failed}
    template = _template_around(model, target)
    if template is not None and template.uses:
        rows = [f"| `{use}` | {_evaluate(token, {**env, **args})} |" for use, args in template.uses[:MAX_ROWS]]
        more = len(template.uses) - MAX_ROWS
        return "\n".join([f"`{token}` in template `{template.name}`, by use:", "", "| use | value |",
                          "|---|---|", *rows] + ([f"\n… and {more} more"] if more > 0 else []))
    if template is not None:
        return f"`{token}` in template `{template.name}` (arguments: {', '.join(template.args) or 'none'})"
    return f"`{token}` = `{_evaluate(token, env)}`"


def _evaluate(token: str, env: dict) -> str:
    try:
        return repr(evaluate(token, env))
    except ExprError as exc:
        return f"error: {exc}"


def _template_around(model: FileModel, target: Target):
    path = target.path
    if len(path) >= 2 and path[0] == "templates":
        return model.templates.get(path[1])
    return None


def _reference(model: FileModel, target: Target) -> str:
    if target.text == "input":
        return "`input`: the input of the enclosing block (of the network, at the top level)"
    found = resolve(model, target.text, target.entry)
    return layer_markdown(found) if found is not None else f"`{target.text}`: no layer with this id above"


def _kind(model: FileModel, target: Target) -> str:
    name = target.text
    if name in model.templates:
        template = model.templates[name]
        args = ", ".join(f"`{a}`" + ("" if d == "required" else f" = `{d}`") for a, d in template.args.items())
        text = f"### {name} (template)\n\n{template.doc}\n\nArguments: {args or 'none'}"
    else:
        text = registry_docs.markdown(name) or f"`{name}`: unknown op or block"
    stats = layer_markdown(target.entry) if target.entry is not None and target.entry.instances else ""
    return f"{stats}\n\n---\n\n{text}" if stats else text


def _setting(model: FileModel, target: Target) -> str:
    entry, key = target.entry, target.setting
    if entry.kind in model.templates and key in model.templates[entry.kind].args:
        default = model.templates[entry.kind].args[key]
        return f"`{key}`: argument of template `{entry.kind}`; default {default}"
    for setting in registry_docs.settings(entry.kind) + registry_docs.envelope_settings():
        if setting.key == key:
            owner = entry.kind if setting in registry_docs.settings(entry.kind) else "any layer"
            return registry_docs.setting_markdown(setting, owner)
    return ""


def _top(model: FileModel, target: Target) -> str:
    for setting in registry_docs.top_level_settings():
        if setting.key == target.text:
            return f"`{setting.key}`: {setting.type}\n\n{setting.meaning}"
    return ""


def _variable(model: FileModel, target: Target) -> str:
    variable = model.variables.get(target.text)
    if variable is None:
        return ""
    if variable.failed:
        return f"`{target.text}`: cannot be evaluated (see the error)"
    written = "" if variable.written == variable.value else f" (`{variable.written}`)"
    return f"`{target.text}` = `{variable.value!r}`{written}"


def _extends(model: FileModel, target: Target) -> str:
    if model.extends is None:
        return f"`{target.text}`: no such file"
    return f"extends `{model.extends.file}`"


def _entry(model: FileModel, target: Target) -> str:
    return layer_markdown(target.entry) if target.entry is not None else ""


def layer_markdown(entry: Entry) -> str:
    """A layer's hover: name, kind, and what it expanded to (each use, when there are several)."""
    title = f"**{entry.id or entry.kind}** · `{entry.kind}`"
    found = entry.instances
    if not found:
        return title + "\n\n(not built: see the errors above it)"
    if entry.instance_count == 1:
        stats = found[0]
        repeat = f" ×{stats.repeat}" if stats.repeat > 1 else ""
        summary = registry_docs.summary(entry.kind)
        head = f"{title}{repeat}" + (f" — {summary}" if summary else "")
        return head + "\n\n" + _table(stats)
    rows = [f"| `{s.name}` | {shape(s.shape)} | {count(s.params)} | {count(s.macs)} |" for s in found[:MAX_ROWS]]
    more = entry.instance_count - min(len(found), MAX_ROWS)
    return "\n".join([f"{title} — appears {entry.instance_count} times", "",
                      "| instance | output | params | MACs |", "|---|---|---|---|", *rows]
                     + ([f"\n… and {more} more"] if more > 0 else []))


def _table(stats: Stats) -> str:
    inputs = ", ".join(f"{shape(s)} (`{name}`)" for name, s in stats.inputs) or "—"
    trainable = "" if stats.trainable_params == stats.params else f" ({stats.trainable_params:,} trainable)"
    rows = [("input", inputs), ("output", shape(stats.shape)), ("params", f"{stats.params:,}{trainable}"),
            ("MACs", f"{stats.macs:,}")]
    if stats.receptive_field:  # none for a network whose input has no spatial axes
        rf = "x".join(map(str, stats.receptive_field))
        rows.append(("receptive field", f"{rf} (jump {'x'.join(map(str, stats.jump))})"))
    ops = f", {stats.nodes} ops" if stats.nodes > 1 else ""
    rows.append(("activations", f"{size(stats.activation_bytes)} (fp32, batch 1{ops})"))
    if stats.param_bytes:
        rows.append(("weights", f"{size(stats.param_bytes)} (fp32)"))
    return "\n".join(["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows])


_RENDER = {"expression": _expression, "reference": _reference, "kind": _kind, "setting": _setting,
           "top": _top, "extends": _extends, "variable": _variable, "entry": _entry}
