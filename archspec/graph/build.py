"""Expansion: a `Spec` becomes a flat `Graph` of primitive ops with hierarchical names.

Shapes are inferred while expanding, by the same per-op rules the report uses, because some
blocks decide their structure from shapes (a residual shortcut projects only when the shape
changes) and because an error is best reported at the layer that causes it.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from archspec.blocks import BLOCKS
from archspec.errors import ShapeError, did_you_mean
from archspec.graph.ir import INPUT, BlockInfo, Diagnostic, Graph, Node
from archspec.ops import OPS
from archspec.spec.compose import Placed, Spec, Template
from archspec.spec.expr import ExprError, evaluate, is_expression
from archspec.spec.load import Src
from archspec.spec.schema import ENVELOPE_KEYS, Envelope
from archspec.spec.validate import validate

MAX_NODES = 200_000


@dataclass(frozen=True)
class Scope:
    """Where a layer is being built: its name prefix, its block's input, its variables."""

    prefix: str
    input: str
    env: dict
    trainable: bool = True
    training_only: bool = False
    blocks: tuple = ()
    templates: tuple = ()  # templates being expanded around this scope, outermost first

    def qualify(self, local: str) -> str:
        return f"{self.prefix}.{local}" if self.prefix else local


def build_graph(spec: Spec) -> Graph:
    """Expand `spec` into a Graph, raising a located SpecError for the first problem."""
    return Builder(spec).build()


class Builder:
    def __init__(self, spec: Spec):
        self.spec = spec
        self.graph = Graph(spec.name, tuple(spec.input), files=list(spec.files))
        self.ids: dict[str, str] = {}  # qualified id -> output node of that layer or block
        self.id_src: dict[str, Src] = {}
        self.global_env = _evaluate_vars(spec.vars)
        for name, template in spec.templates.items():
            if name in OPS or name in BLOCKS:
                raise template.src.error(f"template '{name}' has the name of a built-in "
                                         f"{'op' if name in OPS else 'block'}; choose another", key=True)

    # ---- entry point ----------------------------------------------------------------------

    def build(self) -> Graph:
        scope = Scope("", INPUT, self.global_env)
        if not isinstance(self.spec.layers, list) or not self.spec.layers:
            raise self.spec.layers_src.error("'layers' must be a non-empty list")
        self.graph.output = self.build_list(self.spec.layers, self.spec.layers_src, scope)
        self._check_unused()
        return self.graph

    # ---- layers -----------------------------------------------------------------------------

    def build_list(self, items, src: Src, scope: Scope) -> str:
        """Build a sequence: each layer takes the previous one's output unless it says `from`.
        Returns the output of the last layer that continues the chain."""
        if not isinstance(items, list):
            raise src.error(f"expected a list of layers. Received: {type(items).__name__}")
        current = scope.input
        for index, item in enumerate(items):
            item_src = src.child(index)
            out, continues = self.build_layer(item, item_src, scope, scope.qualify(str(index)), current)
            if continues:
                current = out
        return current

    def build_layer(self, raw, src: Src, scope: Scope, default_name: str, default_input: str):
        """Build one layer entry. Returns (output node, whether the main chain continues from it)."""
        if isinstance(raw, Placed):
            raw, src = raw.raw, raw.src
        kind, body, body_src = _normalize(raw, src)
        definition = self._lookup(kind, src)
        nested = getattr(definition, "nested", ())
        body = {k: (v if k in nested else self._resolve(v, body_src.child(k), scope.env))
                for k, v in body.items()}
        env_keys = {k: body.pop(k) for k in list(body) if k in ENVELOPE_KEYS}
        what = f"{_path_text(src.path)} ({kind})"
        envelope = validate(Envelope, env_keys, body_src, what)
        name = scope.qualify(envelope.id) if envelope.id else default_name
        what = f"{_path_text(src.path)} '{name}' ({kind})"
        if envelope.first is not None and envelope.repeat is None:
            raise body_src.child("first").error(f"{what}: 'first' only applies with 'repeat'", key=True)
        inputs = self._inputs(envelope, body_src, scope, default_input, what)
        flags = replace(scope, trainable=scope.trainable if envelope.trainable is None else envelope.trainable,
                        training_only=scope.training_only or envelope.training_only)
        self._claim(name, body_src.child("id") if envelope.id else src, what)
        if envelope.repeat is not None:
            out = self._repeat(kind, body, src, envelope, name, inputs, flags, what)
        elif isinstance(definition, Template):
            out = self._template(definition, body, body_src, name, inputs, flags, what)
        elif kind in BLOCKS:
            out = self._block(definition, body, body_src, name, inputs, flags, what)
        else:
            out = self._op(kind, body, body_src, name, inputs, flags, what)
        if envelope.expect is not None:
            self._check_expect(envelope.expect, out, body_src, what)
        self.ids[name] = out
        continues = not (envelope.training_only or envelope.output) or scope.training_only
        if envelope.output or (envelope.training_only and not scope.training_only):
            self.graph.extra_outputs.append(out)
        return out, continues

    def _op(self, kind, body, src, name, inputs, scope, what) -> str:
        op = OPS[kind]
        params = validate(op.Params, body, src, what)
        low, high = op.arity
        if not low <= len(inputs) <= high:
            raise src.error(f"{what}: takes {low}" + (f" to {high}" if high != low else "") +
                            f" input(s), got {len(inputs)}")
        shapes = [self.graph.shape(i) for i in inputs]
        try:
            shape = tuple(op.infer(params, shapes))
        except ShapeError as exc:
            names = ", ".join(f"'{i}' {list(s)}" for i, s in zip(inputs, shapes))
            extra = f" (inputs: {names})" if len(inputs) > 1 else ""
            raise src.error(f"{what}: {exc.render()}{extra}") from None
        node = Node(name, kind, params, tuple(inputs), shape, src, scope.trainable,
                    scope.training_only, scope.blocks)
        for note in op.warnings(params, shapes, shape):
            self.graph.warnings.append(Diagnostic(src.loc, name, note))
        if len(self.graph.nodes) >= MAX_NODES:
            raise src.error(f"the expanded graph exceeds {MAX_NODES} nodes")
        self.graph.nodes[name] = node
        return name

    def _block(self, block, body, src, name, inputs, scope, what) -> str:
        params = validate(block.Params, body, src, what)
        inner = self._enter(name, block.name, src, inputs, scope, what)
        return block.expand(self, params, inner, src)

    def _template(self, template: Template, body, src, name, inputs, scope, what) -> str:
        definition = template.definition
        if template.name in scope.templates:
            chain = " -> ".join(scope.templates[scope.templates.index(template.name):] + (template.name,))
            raise src.error(f"{what}: template '{template.name}' uses itself ({chain}); a template "
                            "cannot expand forever", hint="use 'repeat: N' for a fixed number of copies")
        scope = replace(scope, templates=scope.templates + (template.name,))
        env = dict(self.global_env)
        for arg, default in definition.args.items():
            if arg in body:
                env[arg] = body.pop(arg)
            elif default == "required":
                raise src.error(f"{what}: missing required argument '{arg}' of template '{template.name}'")
            else:
                env[arg] = self._resolve(default, template.src.child("args", arg), self.global_env)
        if body:
            key = next(iter(body))
            raise src.child(key).error(f"{what}: unknown argument '{key}' for template '{template.name}'",
                                       hint=did_you_mean(key, definition.args), key=True)
        body_src = template.src.child("body")
        if isinstance(definition.body, list):
            inner = replace(self._enter(name, template.name, src, inputs, scope, what), env=env)
            return self.build_list(definition.body, body_src, inner)
        # A single-layer body is the instance itself: it takes the instance's name.
        _, inner_body, _ = _normalize(definition.body, body_src)
        if isinstance(inner_body, dict) and "id" in inner_body:
            raise body_src.error(f"template '{template.name}': a single-layer body takes its id from "
                                 "each use; remove 'id' here or make the body a list")
        if len(inputs) != 1:
            raise src.error(f"{what}: a template takes one input; merge several with 'add' or 'concat' "
                            f"first. Received: from={list(inputs)}")
        self.ids.pop(name, None)
        self.id_src.pop(name, None)
        out, _ = self.build_layer(definition.body, body_src, replace(scope, env=env), name, inputs[0])
        if name in self.graph.blocks:  # drawn and reported as the template, not its inner block
            self.graph.blocks[name].kind = template.name
        return out

    def _repeat(self, kind, body, src, envelope, name, inputs, scope, what) -> str:
        """`repeat: N`: N copies in sequence named name.0 ... name.N-1 (`first` overrides copy 0)."""
        inner = self._enter(name, "repeat", src.child(kind), inputs, scope, what)
        self.graph.blocks[name].repeat = envelope.repeat
        self.graph.blocks[name].kind = kind
        current = inner.input
        for i in range(envelope.repeat):
            entry = dict(body)
            if i == 0 and envelope.first:
                entry.update(envelope.first)
            current, _ = self.build_layer(Placed({kind: entry}, src), src, inner, inner.qualify(str(i)), current)
        return current

    def _enter(self, name, kind, src, inputs, scope, what) -> Scope:
        """Open a block scope named `name` whose input is the block's single input."""
        if len(inputs) != 1:
            raise src.error(f"{what}: a block takes one input; merge several with 'add' or 'concat' "
                            f"first. Received: from={list(inputs)}")
        self.graph.blocks[name] = BlockInfo(name, kind, src)
        return replace(scope, prefix=name, input=inputs[0], blocks=scope.blocks + (name,))

    # ---- for blocks: adding ops and groups directly ----------------------------------------

    def add_op(self, kind: str, name: str, inputs: list, src: Src, scope: Scope, **params) -> str:
        """Add a primitive op node that a block generates (not written by the user)."""
        what = f"{_path_text(src.path)} '{name}' ({kind})"
        self._claim(name, src, what)
        out = self._op(kind, params, src, name, list(inputs), scope, what)
        self.ids[name] = out
        return out

    def enter_group(self, name: str, kind: str, src: Src, scope: Scope, input: str | None = None) -> Scope:
        """Open a named sub-group (a branch, a shortcut) inside a block."""
        self._claim(name, src, f"{_path_text(src.path)} '{name}' ({kind})")
        self.graph.blocks[name] = BlockInfo(name, kind, src)
        return replace(scope, prefix=name, input=scope.input if input is None else input,
                       blocks=scope.blocks + (name,))

    def shape(self, name: str) -> tuple:
        return self.graph.shape(name)

    # ---- references, names, values -------------------------------------------------------

    def _inputs(self, envelope, src, scope, default_input, what) -> list[str]:
        refs = envelope.sources
        if refs is None:
            return [default_input]
        if not refs:
            raise src.child("from").error(f"{what}: 'from' is empty")
        return [self.resolve(ref, scope, src.child("from"), what) for ref in refs]

    def resolve(self, ref: str, scope: Scope, src: Src, what: str) -> str:
        """A layer reference: 'input' (the enclosing block's input), or an id, looked up from
        the innermost scope outwards (so 'conv1' inside a block means that block's conv1)."""
        if ref == "input":
            return scope.input
        prefix = scope.prefix
        while True:
            candidate = f"{prefix}.{ref}" if prefix else ref
            if candidate in self.ids:
                return self.ids[candidate]
            if not prefix:
                break
            prefix = prefix.rpartition(".")[0]
        known = [k.rpartition(".")[2] for k in self.ids] + list(self.ids)
        hint = did_you_mean(ref, known)
        later = "; layers may only take inputs from layers above them (no cycles)"
        raise src.error(f"{what}: 'from: {ref}' names no earlier layer{later}", hint=hint)

    def _claim(self, name: str, src: Src, what: str) -> None:
        if name in self.id_src or name in self.graph.nodes:
            first = self.id_src.get(name)
            where = f" (first used at {first.loc})" if first else ""
            raise src.error(f"{what}: the name '{name}' is already taken{where}; ids must be unique "
                            "within their block")
        if name == INPUT:
            raise src.error(f"{what}: 'input' is reserved for the network's input; choose another id")
        self.id_src[name] = src

    def _resolve(self, value, src: Src, env: dict):
        """Evaluate `$var` / `${expr}` strings inside a value (recursively)."""
        if is_expression(value):
            try:
                return evaluate(value, env)
            except ExprError as exc:
                raise src.error(str(exc)) from None
        if isinstance(value, list):
            return [self._resolve(v, src.child(i), env) for i, v in enumerate(value)]
        if isinstance(value, dict) and not _is_layer_entry(value):
            return {k: self._resolve(v, src.child(k), env) for k, v in value.items()}
        return value

    def _lookup(self, kind: str, src: Src):
        if kind in self.spec.templates:
            return self.spec.templates[kind]
        if kind in BLOCKS:
            return BLOCKS[kind]
        if kind in OPS:
            return OPS[kind]
        known = list(OPS) + list(BLOCKS) + list(self.spec.templates)
        raise src.error(f"{_path_text(src.path)}: unknown op or block '{kind}'",
                        hint=did_you_mean(kind, known) or "see 'archspec ops' for the list", key=True)

    # ---- checks ------------------------------------------------------------------------------

    def _check_expect(self, expect, out, src, what):
        got = list(self.graph.shape(out))
        if got != list(expect):
            raise src.child("expect").error(f"{what}: output shape is {got}, but 'expect' says {list(expect)}")

    def _check_unused(self):
        users = self.graph.consumers()
        allowed = {self.graph.output, *self.graph.extra_outputs}
        for node in self.graph.nodes.values():
            if not users[node.name] and node.name not in allowed:
                raise node.src.error(f"{_path_text(node.src.path)} '{node.name}' ({node.op}): its output "
                                     "is never used",
                                     hint="take it with 'from', mark it 'output: true', or remove it")


# ---- helpers --------------------------------------------------------------------------------


def _normalize(raw, src: Src):
    """A layer is written `- relu` or `- conv: {...}`; return (kind, settings, settings' Src)."""
    if isinstance(raw, str):
        return raw, {}, src
    if isinstance(raw, dict) and len(raw) == 1:
        (kind, body), = raw.items()
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise src.child(kind).error(f"{_path_text(src.path)} ({kind}): settings must be a mapping "
                                        f"like '{kind}: {{...}}'. Received: {body!r}")
        return kind, dict(body), src.child(kind)
    if isinstance(raw, dict):
        keys = ", ".join(map(str, raw)) or "nothing"
        raise src.error(f"{_path_text(src.path)}: a layer has exactly one op or block name as its key "
                        f"(e.g. '- conv: {{out: 64, kernel: 3}}'). Received keys: {keys}",
                        hint="indent the settings under the op name")
    raise src.error(f"{_path_text(src.path)}: a layer is '- op' or '- op: {{...}}'. Received: {raw!r}")


def _is_layer_entry(value: dict) -> bool:
    return len(value) == 1 and isinstance(next(iter(value.values())), dict)


def _path_text(path: tuple) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "spec"


def _evaluate_vars(vars_: dict) -> dict:
    env: dict = {}
    for name, (value, src) in vars_.items():
        if is_expression(value):
            try:
                value = evaluate(value, env)
            except ExprError as exc:
                raise src.error(f"vars.{name}: {exc}") from None
        env[name] = value
    return env
