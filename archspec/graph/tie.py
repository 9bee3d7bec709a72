"""Tied weights: `tie: other` makes a layer use the parameters of an earlier layer.

A tied node keeps its own name, inputs and output (its MACs and FLOPs are its own) but owns no
parameters: it points at the node that does (`Node.tie`, always the first owner, never a
node that is itself tied), the report counts the parameters there once, and the compiler calls
the owner's module. The two must be the same op with equal settings and parameters of the same
shape (same input channels and rank, `Op.weight_key`), equally trainable; a layer of the
inference network cannot use a training-only layer's parameters (inference drops those).

On a block, template use or repeat copy, every node inside is tied to the node at the same
name relative to the target block: both must have the same structure. A tied batch norm shares
its running statistics too (one module: both uses update them in training).

`tie: {to: other, transpose: true}` (one layer to one layer) shares the weight only, used as its
transpose: the op must be the other's `adjoint` (a conv_transpose with a conv's weight, the
reverse, a linear with a linear's weight as W.t()), with the same groups and a weight of the
shape its own would have (`Op.adjoint_weight_shape` against the owner's `Op.weight_shape`:
the tied autoencoder's decoder maps C2 -> C1 with the encoder's C1 -> C2 weight). The layer
keeps its own bias (`Node.tie_transposed`); the owner is untied, or plainly tied (then its
owner is used), never itself tied transposed.
"""
from __future__ import annotations

from archspec.errors import did_you_mean
from archspec.ops import OPS


def tie_layer(builder, name: str, tie, scope, src, what: str, copy: bool = False) -> None:
    """Tie the layer just built as `name` to the earlier layer `tie` names (a name, or a `Tie`
    mapping: `to`, `transpose`), resolved like `from`: from the innermost scope outwards. `src`
    locates the `tie` value for errors. With `copy` (a repeat's copy, its scope the repeat's),
    `tie` may name the copy itself: copy 0 with `tie: 0` keeps its parameters, and the other
    copies use them."""
    ref, transpose = (tie, False) if isinstance(tie, str) else (tie.to, tie.transpose)
    target = resolve_target(builder, name, ref, scope, src, what, copy)
    if target == name and copy:
        return
    if transpose:
        node, owner = _transposed_pair(builder, name, target, src, what)
        _check_transposed(builder, node, owner, src, what)
        node.tie, node.tie_transposed = owner.tie or owner.name, True
        return
    for node, owner in _pairs(builder, name, target, src, what):
        if owner.tie_transposed:
            raise src.error(f"{what}: cannot tie to '{owner.name}', which uses '{owner.tie}''s weight "
                            "transposed and keeps its own bias; tie to a layer that owns its parameters",
                            code="AS310")
        _check(builder, node, owner, src, what)
        node.tie = owner.tie or owner.name


def resolve_target(builder, name: str, ref: str, scope, src, what: str, copy: bool = False) -> str:
    """The qualified name of the layer `ref` names, which must be built already."""
    from archspec.graph.build import FAILED, Unknown

    prefix = scope.prefix
    while True:
        candidate = f"{prefix}.{ref}" if prefix else ref
        if candidate in builder.ids:
            break
        if not prefix:
            known = [k.rpartition(".")[2] for k in builder.ids] + list(builder.ids)
            raise src.error(f"{what}: 'tie: {ref}' names no earlier layer", hint=did_you_mean(ref, known),
                            code="AS309")
        prefix = prefix.rpartition(".")[0]
    if name.startswith(candidate + ".") or candidate.startswith(name + "."):
        raise src.error(f"{what}: 'tie: {ref}' names a layer that contains this one or is inside it; "
                        "a layer can only use the parameters of a layer built before it", code="AS309")
    if candidate == name and not copy:
        raise src.error(f"{what}: 'tie: {ref}' names this layer itself; name an earlier layer",
                        code="AS309")
    if builder.ids[candidate] == FAILED:
        raise Unknown(candidate)  # that layer's own error is reported
    return candidate


def _pairs(builder, name: str, target: str, src, what: str) -> list:
    """(node, owner) pairs: the two nodes, or the nodes of two blocks matched by relative name."""
    nodes = builder.graph.nodes
    if name in nodes or target in nodes:
        if name not in nodes or target not in nodes:
            kind = "an op" if target in nodes else "a block"
            raise src.error(f"{what}: cannot tie to '{target}', which is {kind} while this layer is not",
                            code="AS310")
        if not _has_params(builder, nodes[name]):
            raise src.error(f"{what}: cannot tie to '{target}': {nodes[name].op} has no parameters to share",
                            code="AS310")
        return [(nodes[name], nodes[target])]
    mine, theirs = _members(builder, name, recent=True), _members(builder, target)
    if mine.keys() != theirs.keys() or any(mine[k].op != theirs[k].op for k in mine):
        extra = sorted(mine.keys() ^ theirs.keys())
        detail = f": '{extra[0]}' is in one of them only" if extra else ": their ops differ"
        raise src.error(f"{what}: cannot tie to '{target}', whose structure differs{detail}", code="AS310")
    return [(mine[k], theirs[k]) for k in reversed(mine) if _has_params(builder, mine[k])]


def _transposed_pair(builder, name: str, target: str, src, what: str) -> tuple:
    nodes = builder.graph.nodes
    if name not in nodes or target not in nodes:
        raise src.error(f"{what}: 'transpose: true' ties one layer to another; '{target if name in nodes else name}' "
                        "is a block (tie its layers one by one)", code="AS310")
    node, owner = nodes[name], nodes[target]
    if owner.tie_transposed:
        raise src.error(f"{what}: cannot tie to '{owner.name}', which itself uses '{owner.tie}''s weight "
                        f"transposed; tie to '{owner.tie}'", code="AS310")
    return node, (nodes[owner.tie] if owner.tie else owner)


def _check_transposed(builder, node, owner, src, what: str) -> None:
    """`node` may use `owner`'s weight transposed: adjoint ops, same groups, matching shapes."""
    graph = builder.graph
    op = OPS[node.op]
    shapes = [graph.shape(i) for i in node.inputs]
    owner_shapes = [graph.shape(i) for i in owner.inputs]
    label = f"{what}: cannot tie '{node.name}' to '{owner.name}' transposed"
    if op.adjoint is None:
        pairs = ", ".join(f"{o.name} to {o.adjoint}" for o in OPS.values() if o.adjoint)
        raise src.error(f"{label}: {node.op} has no transposed weight to share (transposed ties: {pairs})",
                        code="AS310")
    if owner.op != op.adjoint:
        raise src.error(f"{label}: a {node.op} can use the weight of a {op.adjoint} transposed, and "
                        f"'{owner.name}' is a {owner.op}", code="AS310")
    mine = op.adjoint_weight_shape(node.params, shapes)
    theirs = OPS[owner.op].weight_shape(owner.params, owner_shapes)
    if mine is None or theirs is None:
        which = _settings(node if mine is None else owner)
        raise src.error(f"{label}: {which} has no single weight tensor to share", code="AS310")
    groups, owner_groups = getattr(node.params, "groups", 1), getattr(owner.params, "groups", 1)
    if groups != owner_groups:
        raise src.error(f"{label}: groups differ. Received: groups={groups} here, {owner_groups} there",
                        code="AS310")
    if mine != theirs:
        raise src.error(f"{label}: its weight would need shape {list(mine)}, and '{owner.name}''s is "
                        f"{list(theirs)} (the decoder maps the encoder's output channels back to its "
                        "input channels, with the same kernel)", code="AS310")
    _check_use(node, owner, src, label)


def _members(builder, group: str, recent: bool = False) -> dict:
    """The nodes of block `group`, by name relative to it. The block just built is at the end of
    the graph (read backwards); a target is read once and remembered (a repeat ties every copy
    to the same one)."""
    cache = builder.__dict__.setdefault("tie_targets", {})
    if not recent and group in cache:
        return cache[group]
    prefix = group + "."
    names = reversed(builder.graph.nodes) if recent else builder.graph.nodes
    found = {}
    for node_name in names:
        if node_name.startswith(prefix):
            found[node_name[len(prefix):]] = builder.graph.nodes[node_name]
        elif recent:
            break  # the block just built owns the last nodes, if any: past them, none are its
    if not recent:
        cache[group] = found
    return found


def _check(builder, node, owner, src, what: str) -> None:
    graph = builder.graph
    op = OPS[node.op]
    shapes = [graph.shape(i) for i in node.inputs]
    owner_shapes = [graph.shape(i) for i in owner.inputs]
    label = f"{what}: cannot tie '{node.name}' to '{owner.name}'"
    if node.op != owner.op or node.params != owner.params:
        hint = (f"'tie: {{to: {owner.name}, transpose: true}}' shares the weight transposed"
                if OPS[node.op].adjoint == owner.op and node.op != owner.op else None)
        raise src.error(f"{label}: {_settings(node)} differs from {_settings(owner)}", hint=hint, code="AS310")
    if op.weight_key(node.params, shapes) != op.weight_key(owner.params, owner_shapes):
        raise src.error(f"{label}: their parameters would have different shapes (inputs {list(shapes[0])} "
                        f"and {list(owner_shapes[0])})", code="AS310")
    _check_use(node, owner, src, label)


def _check_use(node, owner, src, label: str) -> None:
    """Both trainable or both frozen; inference cannot use a training-only layer's parameters."""
    if node.trainable != owner.trainable:
        raise src.error(f"{label}: one is trainable and the other is not; shared parameters are one set",
                        code="AS310")
    if owner.training_only and not node.training_only:
        raise src.error(f"{label}: '{owner.name}' is training-only, so inference would not have its "
                        "parameters", code="AS310")


def _has_params(builder, node) -> bool:
    shapes = [builder.graph.shape(i) for i in node.inputs]
    return OPS[node.op].params(node.params, shapes, node.shape) > 0


def _settings(node) -> str:
    fields = node.params.model_dump(exclude_defaults=True)
    text = ", ".join(f"{k}: {v}" for k, v in fields.items())
    return f"{node.op} {{{text}}}" if text else node.op
