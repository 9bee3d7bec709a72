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
"""
from __future__ import annotations

from archspec.errors import did_you_mean
from archspec.ops import OPS


def tie_layer(builder, name: str, ref: str, scope, src, what: str, copy: bool = False) -> None:
    """Tie the layer just built as `name` to the earlier layer `ref` (resolved like `from`:
    from the innermost scope outwards). `src` locates the `tie` value for errors. With `copy`
    (a repeat's copy, its scope the repeat's), `tie` may name the copy itself: copy 0 with
    `tie: 0` keeps its parameters, and the other copies use them."""
    target = resolve_target(builder, name, ref, scope, src, what, copy)
    if target == name and copy:
        return
    for node, owner in _pairs(builder, name, target, src, what):
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
        raise src.error(f"{label}: {_settings(node)} differs from {_settings(owner)}", code="AS310")
    if op.weight_key(node.params, shapes) != op.weight_key(owner.params, owner_shapes):
        raise src.error(f"{label}: their parameters would have different shapes (inputs {list(shapes[0])} "
                        f"and {list(owner_shapes[0])})", code="AS310")
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
