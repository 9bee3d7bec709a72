"""Expansion: a `Spec` becomes a flat `Graph` of primitive ops with hierarchical names.

Shapes are inferred while expanding, by the same per-op rules the report uses, because some
blocks decide their structure from shapes (a residual shortcut projects only when the shape
changes) and because an error is best reported at the layer that causes it.

Every independent error is reported, not just the first: a layer that fails stands for an
unknown output (`FAILED`), layers that depend on it are still checked for what does not need
its shape (their settings, names and references) but are not shape-checked, so one mistake
never causes a cascade of others. Expansion runs on a budget (nodes, steps, name length),
checked as it proceeds, so a tiny file cannot make archspec work or allocate without end.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from archspec.blocks import BLOCKS
from archspec.errors import ShapeError, SpecError, did_you_mean, raise_all
from archspec.graph.entries import ListNames, declared, evaluate_vars, is_layer_entry, normalize, path_text
from archspec.graph.ir import INPUT, BlockInfo, Diagnostic, Graph, Node
from archspec.graph.repeat import build_repeat
from archspec.graph.tie import tie_layer
from archspec.names import name_problem
from archspec.ops import OPS
from archspec.spec.compose import Placed, Spec, Template
from archspec.spec.expr import ExprError, evaluate, is_expression
from archspec.spec.load import Src
from archspec.spec.schema import ENVELOPE_KEYS, Envelope
from archspec.spec.validate import validate

MAX_NODES = 200_000  # primitive ops in the expanded graph
MAX_STEPS = 250_000  # layer, block and template instantiations (empty ones count too)
MAX_NAME_CHARS = 16 * 2 ** 20  # all hierarchical names together
MAX_DIM = 2 ** 53  # any dimension of an inferred shape, like every number in a spec (AS106)
MAX_ERRORS = 50  # reported per file; the rest are summarised
FAILED = "<failed>"  # the output of a layer that had an error: its shape is unknown


class Unknown(Exception):
    """A shape is needed but comes from a layer that failed. The layer is skipped quietly:
    the failure's own error is already reported."""


class BudgetExceeded(SpecError):
    """The expansion went past a limit; fatal (the rest of the file is not expanded)."""

    def __init__(self, message: str, loc=None, hint: str | None = None):
        super().__init__(message, loc, hint, code="AS501")


class TooManyErrors(Exception):
    pass


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


def build_graph(spec: Spec, *, check_expect: bool = True) -> Graph:
    """Expand `spec` into a Graph. Raises a located SpecError, or SpecErrors listing every
    independent problem (its `partial` holds what could be built). `check_expect=False` skips
    the layers' `expect:` shapes (which hold at the spec's own input size), for sweeps over
    other sizes."""
    return Builder(spec, check_expect=check_expect).build()


class Builder:
    def __init__(self, spec: Spec, *, max_errors: int = MAX_ERRORS, check_expect: bool = True):
        self.spec = spec
        self.check_expect = check_expect
        self.graph = Graph(spec.name, tuple(spec.input), files=list(spec.files))
        self.ids: dict[str, str] = {}  # qualified id -> output node of that layer or block
        self.id_src: dict[str, Src] = {}
        self.max_errors = max_errors
        self.steps = 0
        self.name_chars = 0
        self.template_cost: dict[str, int] = {}  # smallest number of steps one use has taken
        self.global_env, self.failed_vars, self.errors = evaluate_vars(spec.vars, spec.set_vars)
        for name, template in spec.templates.items():
            if name in OPS or name in BLOCKS:
                self.errors.append(template.src.error(
                    f"template '{name}' has the name of a built-in {'op' if name in OPS else 'block'}; "
                    "choose another", key=True, code="AS206"))

    # ---- entry point ----------------------------------------------------------------------

    def build(self) -> Graph:
        scope = Scope("", INPUT, self.global_env)
        if not isinstance(self.spec.layers, list) or not self.spec.layers:
            raise self.spec.layers_src.error("'layers' must be a non-empty list", code="AS203")
        try:
            self.graph.output = self.build_list(self.spec.layers, self.spec.layers_src, scope)
            if not self.errors:
                self._check_unused()
        except TooManyErrors:
            pass
        except SpecError as exc:  # fatal (the budget): keep what was found before it
            self.errors.extend(exc.errors)
        raise_all(self.errors, partial=self.graph)
        return self.graph

    def _record(self, error: SpecError) -> None:
        """Keep an error (once per place and rule: a template used 16 times with one mistake
        in its body reports it once)."""
        for err in error.errors:
            key = (err.loc, err.code)
            if all((e.loc, e.code) != key for e in self.errors):
                self.errors.append(err)
        if len(self.errors) >= self.max_errors:
            raise TooManyErrors

    # ---- layers -----------------------------------------------------------------------------

    def build_list(self, items, src: Src, scope: Scope) -> str:
        """Build a sequence: each layer takes the previous one's output unless it says `from`.
        Unnamed layers are named by their index (an unnamed `repeat` takes one per copy).
        Returns the output of the last layer that continues the chain."""
        if not isinstance(items, list):
            raise src.error(f"expected a list of layers. Received: {type(items).__name__}", code="AS205")
        current = scope.input
        names = ListNames(scope)
        for index, item in enumerate(items):
            out, continues = self._guarded(item, src.child(index), scope, names, current)
            if continues:
                current = out
        return current

    def _guarded(self, raw, src: Src, scope: Scope, default_name, default_input: str):
        """build_layer, but a failing layer is recorded and stands for an unknown output."""
        taken = default_name.taken if isinstance(default_name, ListNames) else 0
        try:
            return self.build_layer(raw, src, scope, default_name, default_input)
        except BudgetExceeded:
            raise
        except SpecError as exc:
            self._record(exc)
        except Unknown:
            pass
        if isinstance(default_name, ListNames):  # the failed layer still holds its index
            default_name = default_name.take() if default_name.taken == taken else default_name.last
        ident, side_branch = declared(raw, scope.qualify, default_name)
        self.ids.setdefault(ident, FAILED)
        return FAILED, not side_branch

    def build_layer(self, raw, src: Src, scope: Scope, default_name, default_input: str):
        """Build one layer entry. Returns (output node, whether the main chain continues from it).
        `default_name` names it when it has no `id`: a name, or the `ListNames` of its list."""
        if isinstance(raw, Placed):
            raw, src = raw.raw, raw.src
        self._step(src)
        kind, body, body_src = normalize(raw, src)
        kind = self._layer_kind(kind, body_src, scope, key=body_src is not src)
        definition = self._lookup(kind, body_src, key=body_src is not src)
        envelope, first = self._envelope(body, body_src, scope, f"{path_text(src.path)} ({kind})")
        if envelope.if_ is False:  # left out: the chain goes on from its input
            return self._left_out(envelope, body_src, scope, default_input, f"{path_text(src.path)} ({kind})")
        spliced = envelope.repeat is not None and not envelope.id and isinstance(default_name, ListNames)
        if spliced:
            name = None  # the copies take the list's next indices, as nn.Sequential(a, *copies) does
        else:  # a layer holds its index in its list even when its id names it
            name = default_name.take() if isinstance(default_name, ListNames) else default_name
            name = scope.qualify(envelope.id) if envelope.id else name
        what = f"{path_text(src.path)} '{name or default_name.peek()}' ({kind})"
        inputs = self._inputs(envelope, body_src, scope, default_input, what)
        flags = replace(scope, trainable=scope.trainable if envelope.trainable is None else envelope.trainable,
                        training_only=scope.training_only or envelope.training_only)
        if not flags.training_only:
            self._refuse_training_inputs(inputs, body_src, what)
        if name is not None:
            self._claim(name, body_src.child("id") if envelope.id else src, what)
            self.ids[name] = FAILED  # until it is built: a failure inside leaves it unknown
        if envelope.repeat is not None:
            copies = default_name if spliced else None
            out = build_repeat(self, kind, body, first, src, envelope, name, copies, inputs, flags, what)
        else:
            nested = getattr(definition, "nested", ())
            body = {k: (v if k in nested else self._resolve(v, body_src.child(k), scope.env))
                    for k, v in body.items()}
            if isinstance(definition, Template):
                out = self._template(definition, body, body_src, name, inputs, flags, what)
            elif kind in BLOCKS:
                out = self._block(definition, body, body_src, name, inputs, flags, what)
            else:
                out = self._op(kind, body, body_src, name, inputs, flags, what)
        if envelope.expect is not None and self.check_expect:
            self._check_expect(envelope.expect, out, body_src, what)
        if name is not None:
            self.ids[name] = out
        if envelope.tie is not None and envelope.repeat is None:  # a repeat ties each copy
            tie_layer(self, name, envelope.tie, scope, body_src.child("tie"), what)
        continues = not (envelope.training_only or envelope.output) or scope.training_only
        if envelope.output or (envelope.training_only and not scope.training_only):
            self.graph.extra_outputs.append(out)
        return out, continues

    def _envelope(self, body: dict, src: Src, scope: Scope, what: str):
        """Take the keys any layer may carry out of `body` and validate them. Returns the
        Envelope and the raw `first` overrides (resolved per copy, like the repeated settings)."""
        raw = {k: body.pop(k) for k in list(body) if k in ENVELOPE_KEYS}
        first = raw.pop("first", None)
        values = {k: self._resolve(v, src.child(k), scope.env) for k, v in raw.items()}
        if first is not None:
            values["first"] = first
        envelope = validate(Envelope, values, src, what)
        for key in ("first", "copy_id"):
            if getattr(envelope, key) is not None and envelope.repeat is None:
                raise src.child(key).error(f"{what}: '{key}' only applies with 'repeat'", key=True,
                                           code="AS203")
        return envelope, first

    def _left_out(self, envelope, src: Src, scope: Scope, default_input: str, what: str):
        """A layer whose `if` is false is not built: its id (if any) names its input, and the
        chain continues from there."""
        inputs = self._inputs(envelope, src, scope, default_input, what)
        if len(inputs) != 1:
            raise src.child("if").error(f"{what}: a layer left out by 'if' passes its input on, so it "
                                        f"needs one input. Received: from={list(inputs)}", key=True,
                                        code="AS306")
        if envelope.id:
            self.ids[scope.qualify(envelope.id)] = inputs[0]
        return inputs[0], not (envelope.training_only or envelope.output)

    def _op(self, kind, body, src, name, inputs, scope, what) -> str:
        op = OPS[kind]
        params = validate(op.Params, body, src, what)
        low, high = op.arity
        if not low <= len(inputs) <= high:
            raise src.error(f"{what}: takes {low}" + (f" to {high}" if high != low else "") +
                            f" input(s), got {len(inputs)}", code="AS306")
        shapes = [self.shape(i) for i in inputs]  # Unknown if an input failed
        try:
            shape = tuple(op.infer(params, shapes))
        except ShapeError as exc:
            names = ", ".join(f"'{i}' {list(s)}" for i, s in zip(inputs, shapes))
            extra = f" (inputs: {names})" if len(inputs) > 1 else ""
            raise src.error(f"{what}: {exc.render()}{extra}", code=exc.code) from None
        if any(d >= MAX_DIM for d in shape):  # upsampling can grow sizes without end
            raise src.error(f"{what}: output shape has a dimension of 2^53 or more "
                            f"({max(shape).bit_length()} bits); archspec's numbers stay below 2^53",
                            code="AS501")
        node = Node(name, kind, params, tuple(inputs), shape, src, scope.trainable,
                    scope.training_only, scope.blocks)
        for note in op.warnings(params, shapes, shape):
            # an op's warning carries its code (OpWarning); a plain string is a floor warning
            self.graph.warnings.append(Diagnostic(src.loc, name, str(note), getattr(note, "code", "AS801")))
        if len(self.graph.nodes) >= MAX_NODES:
            raise BudgetExceeded(f"the expanded graph exceeds {MAX_NODES:,} nodes", src.loc)
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
                            "cannot expand forever", hint="use 'repeat: N' for a fixed number of copies",
                            code="AS305")
        known = self.template_cost.get(template.name)
        if known is not None:
            self._afford(known, 1, src, f"another use of template '{template.name}'")
        before = self.steps
        out = self._expand_template(template, definition, body, src, name, inputs,
                                    replace(scope, templates=scope.templates + (template.name,)), what)
        cost = self.steps - before
        self.template_cost[template.name] = min(cost, known if known is not None else cost)
        return out

    def _expand_template(self, template, definition, body, src, name, inputs, scope, what) -> str:
        # Given arguments first, then defaults in order: a default may use the given arguments
        # and the defaults before it (`inp: $out`: the input width is the output's unless given).
        given = {arg: body.pop(arg) for arg in definition.args if arg in body}
        env = {**self.global_env, **given}
        for arg, default in definition.args.items():
            if arg in given:
                continue
            if default == "required":
                raise src.error(f"{what}: missing required argument '{arg}' of template '{template.name}'",
                                code="AS209")
            env[arg] = self._resolve(default, template.src.child("args", arg), env)
        if body:
            key = next(iter(body))
            raise src.child(key).error(f"{what}: unknown argument '{key}' for template '{template.name}'",
                                       hint=did_you_mean(key, definition.args), key=True, code="AS209")
        body_src = template.src.child("body")
        if isinstance(definition.body, list):
            inner = replace(self._enter(name, template.name, src, inputs, scope, what), env=env)
            return self.build_list(definition.body, body_src, inner)
        # A single-layer body is the instance itself: it takes the instance's name.
        _, inner_body, _ = normalize(definition.body, body_src)
        if isinstance(inner_body, dict) and "id" in inner_body:
            raise body_src.error(f"template '{template.name}': a single-layer body takes its id from "
                                 "each use; remove 'id' here or make the body a list", code="AS203")
        if len(inputs) != 1:
            raise src.error(f"{what}: a template takes one input; merge several with 'add' or 'concat' "
                            f"first. Received: from={list(inputs)}", code="AS306")
        self.ids.pop(name, None)
        self.id_src.pop(name, None)
        out, _ = self.build_layer(definition.body, body_src, replace(scope, env=env), name, inputs[0])
        if name in self.graph.blocks:  # drawn and reported as the template, not its inner block
            self.graph.blocks[name].kind = template.name
        return out

    def _enter(self, name, kind, src, inputs, scope, what) -> Scope:
        """Open a block scope named `name` whose input is the block's single input."""
        single = self._one_input(inputs, src, what)
        self.graph.blocks[name] = BlockInfo(name, kind, src)
        return replace(scope, prefix=name, input=single, blocks=scope.blocks + (name,))

    @staticmethod
    def _one_input(inputs, src: Src, what: str) -> str:
        if len(inputs) != 1:
            raise src.error(f"{what}: a block takes one input; merge several with 'add' or 'concat' "
                            f"first. Received: from={list(inputs)}", code="AS306")
        return inputs[0]

    # ---- budget -------------------------------------------------------------------------------

    def _step(self, src: Src) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise BudgetExceeded(f"expansion takes more than {MAX_STEPS:,} steps (layer, block and "
                                 "template instantiations)", src.loc,
                                 hint="a repeat or nested templates expand to an enormous network")

    def _afford(self, cost: int, copies: int, src: Src, what: str) -> None:
        if self.steps + cost * copies > MAX_STEPS:
            raise BudgetExceeded(f"{what} would take about {cost * copies:,} more expansion steps, over "
                                 f"the limit of {MAX_STEPS:,}", src.loc,
                                 hint="a repeat or nested templates expand to an enormous network")

    def _afford_nodes(self, per_copy: int, copies: int, src: Src, what: str) -> None:
        if len(self.graph.nodes) + copies * per_copy > MAX_NODES:
            raise BudgetExceeded(f"{what} would expand to more than {MAX_NODES:,} nodes", src.loc)

    # ---- for blocks: adding ops and groups directly ----------------------------------------

    def add_op(self, kind: str, name: str, inputs: list, src: Src, scope: Scope, **params) -> str:
        """Add a primitive op node that a block generates (not written by the user)."""
        self._step(src)
        what = f"{path_text(src.path)} '{name}' ({kind})"
        self._claim(name, src, what)
        out = self._op(kind, params, src, name, list(inputs), scope, what)
        self.ids[name] = out
        return out

    def enter_group(self, name: str, kind: str, src: Src, scope: Scope, input: str | None = None) -> Scope:
        """Open a named sub-group (a branch, a shortcut) inside a block."""
        self._claim(name, src, f"{path_text(src.path)} '{name}' ({kind})")
        self.graph.blocks[name] = BlockInfo(name, kind, src)
        return replace(scope, prefix=name, input=scope.input if input is None else input,
                       blocks=scope.blocks + (name,))

    def shape(self, name: str) -> tuple:
        if name == FAILED:
            raise Unknown(name)
        return self.graph.shape(name)

    # ---- references, names, values -------------------------------------------------------

    def _inputs(self, envelope, src, scope, default_input, what) -> list[str]:
        refs = envelope.sources
        if refs is None:
            return [default_input]
        if not refs:
            raise src.child("from").error(f"{what}: 'from' is empty", code="AS203")
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
        raise src.error(f"{what}: 'from: {ref}' names no earlier layer{later}", hint=hint, code="AS301")

    def _refuse_training_inputs(self, inputs, src: Src, what: str) -> None:
        """A training-only head is dropped from inference and export; nothing that stays may
        read it (it would be counted without the head's cost and fail to build)."""
        for name in inputs:
            node = self.graph.nodes.get(name)
            if node is not None and node.training_only:
                raise src.child("from").error(
                    f"{what}: takes input from the training-only layer '{name}', but is not training-only "
                    "itself; training-only heads are dropped at inference and export",
                    hint="mark this layer 'training_only: true' too, or take the input from a layer "
                         "of the inference network", code="AS304")

    def _claim(self, name: str, src: Src, what: str) -> None:
        if name in self.id_src or name in self.graph.nodes:
            first = self.id_src.get(name)
            where = f" (first used at {first.loc})" if first else ""
            raise src.error(f"{what}: the name '{name}' is already taken{where}; ids must be unique "
                            "within their block", code="AS302")
        if name == INPUT:
            raise src.error(f"{what}: 'input' is reserved for the network's input; choose another id",
                            code="AS206")
        problem = name_problem(name.rpartition(".")[2])
        if problem:  # every name was checked at load time; this catches generated ones too
            raise src.error(f"{what}: {problem}", code="AS206")
        self.name_chars += len(name)
        if self.name_chars > MAX_NAME_CHARS:
            raise BudgetExceeded(f"the expanded network's names take more than {MAX_NAME_CHARS:,} "
                                 "characters", src.loc)
        self.id_src[name] = src

    def _resolve(self, value, src: Src, env: dict):
        """Evaluate `$var` / `${expr}` strings inside a value (recursively)."""
        if is_expression(value):
            try:
                return evaluate(value, env)
            except ExprError as exc:
                if exc.variable in self.failed_vars:
                    raise Unknown(exc.variable) from None  # that variable's error is reported
                raise src.error(str(exc), code=exc.code) from None
        if isinstance(value, list):
            return [self._resolve(v, src.child(i), env) for i, v in enumerate(value)]
        if isinstance(value, dict) and not is_layer_entry(value):
            return {k: self._resolve(v, src.child(k), env) for k, v in value.items()}
        return value

    def _layer_kind(self, kind: str, src: Src, scope: Scope, key: bool) -> str:
        """An op, block or template name, or `$name` / `${...}` holding one (`- $act`)."""
        if not is_expression(kind):
            return kind
        where = src.path[:-1] if key else src.path
        try:
            value = evaluate(kind, scope.env)
        except ExprError as exc:
            if exc.variable in self.failed_vars:
                raise Unknown(exc.variable) from None
            raise src.error(f"{path_text(where)}: {exc}", key=key, code=exc.code) from None
        known = list(OPS) + list(BLOCKS) + list(self.spec.templates)
        if isinstance(value, str) and value in known:
            return value
        raise src.error(f"{path_text(where)}: '{kind}' is {value!r}, which is not an op, block or template",
                        hint=did_you_mean(str(value), known) or "see 'archspec ops' for the list",
                        key=key, code="AS204")

    def _lookup(self, kind: str, src: Src, key: bool):
        if kind in self.spec.templates:
            return self.spec.templates[kind]
        if kind in BLOCKS:
            return BLOCKS[kind]
        if kind in OPS:
            return OPS[kind]
        known = list(OPS) + list(BLOCKS) + list(self.spec.templates)
        where = src.path[:-1] if key else src.path  # the entry, not its settings
        raise src.error(f"{path_text(where)}: unknown op or block '{kind}'",
                        hint=did_you_mean(kind, known) or "see 'archspec ops' for the list",
                        key=key, code="AS204")

    # ---- checks ------------------------------------------------------------------------------

    def _check_expect(self, expect, out, src, what):
        got = list(self.shape(out))
        if got != list(expect):
            raise src.child("expect").error(f"{what}: output shape is {got}, but 'expect' says {list(expect)}",
                                            code="AS402")

    def _check_unused(self):
        users = self.graph.consumers()
        allowed = {self.graph.output, *self.graph.extra_outputs}
        for node in self.graph.nodes.values():
            if not users[node.name] and node.name not in allowed:
                self._record(node.src.error(
                    f"{path_text(node.src.path)} '{node.name}' ({node.op}): its output is never used",
                    hint="take it with 'from', mark it 'output: true', or remove it", code="AS303"))
        self._check_inference_reach()

    def _check_inference_reach(self):
        """An inference layer whose output only training-only heads read would be counted in the
        inference network but computed for nothing (and dropped by exporters)."""
        nodes = self.graph.nodes
        live = {self.graph.output} | {o for o in self.graph.extra_outputs
                                      if o not in nodes or not nodes[o].training_only}
        for node in reversed(list(nodes.values())):
            if node.name in live and not node.training_only:
                live.update(node.inputs)
        for node in nodes.values():
            if not node.training_only and node.name not in live:
                self._record(node.src.error(
                    f"{path_text(node.src.path)} '{node.name}' ({node.op}): its output is only used by "
                    "training-only layers, so the inference network computes it for nothing",
                    hint="mark it 'training_only: true' too, or use it in the network", code="AS303"))
