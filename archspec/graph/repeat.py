"""`repeat: N`: N copies of a layer in sequence, named as PyTorch code names them.

- With an `id`, the copies form a group: `layer1.0`, `layer1.1`, ... (ResNet's stages).
- Unnamed in a list, they take the list's next indices, as `nn.Sequential(a, *copies)` numbers
  them (MobileNetV2's flat `features`; a stage `nn.Sequential(first, *rest)`).
- `copy_id: 'block1-{index}'` names each copy instead (torchvision's RegNet).

`first` overrides settings of copy 0, and each copy's settings are resolved with the variable
`index` set to its number, so a copy can compute from it (a stochastic-depth probability that
grows block by block).
"""
from __future__ import annotations

from dataclasses import replace

from archspec.graph.entries import REPEAT_INDEX
from archspec.graph.tie import tie_layer
from archspec.spec.compose import Placed
from archspec.spec.schema import COPY_INDEX


def build_repeat(builder, kind, body, first, src, envelope, name, copies, inputs, scope, what) -> str:
    """Build the copies of a repeated layer entry (`body`, its settings unresolved; `copies`
    the ListNames of its list when it is unnamed there, else None). Returns the last copy's
    output. Once copy 1 is built its cost predicts the rest, so a repeat that would blow the
    budget stops at once instead of after the budget's worth of work."""
    if copies is None:
        inner = builder._enter(name, "repeat", src.child(kind), inputs, scope, what)
        builder.graph.blocks[name].repeat = envelope.repeat
        builder.graph.blocks[name].kind = kind
    else:
        inner = replace(scope, input=builder._one_input(inputs, src.child(kind), what))
    current = inner.input
    for i in range(envelope.repeat):
        entry = dict(body)
        if i == 0 and first:
            entry.update(first)
        copy_name = copies.take() if copies is not None else inner.qualify(str(i))
        if envelope.copy_id is not None:
            copy_name = inner.qualify(envelope.copy_id.replace(COPY_INDEX, str(i)))
        steps, nodes = builder.steps, len(builder.graph.nodes)
        copy_scope = replace(inner, env={**inner.env, REPEAT_INDEX: i})
        current, _ = builder.build_layer(Placed({kind: entry}, src), src, copy_scope, copy_name, current)
        if envelope.tie is not None:  # each copy; the copy `tie` names keeps its parameters
            tie_layer(builder, copy_name, envelope.tie, copy_scope, src.child(kind).child("tie"), what,
                      copy=True)
        if i == 1 and envelope.repeat > 2:
            left = envelope.repeat - 2
            builder._afford(builder.steps - steps, left, src, f"repeat: {envelope.repeat:,}")
            builder._afford_nodes(len(builder.graph.nodes) - nodes, left, src,
                                  f"{what}: repeat: {envelope.repeat:,}")
    return current
