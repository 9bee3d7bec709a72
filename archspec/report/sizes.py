"""`archspec sizes` as text and JSON: which input sizes are valid, the smallest, and the rules
(archspec/graph/sizes.py)."""
from __future__ import annotations

from archspec.graph.sizes import AXIS_LETTERS, PROPERTIES, Rule, Sweep

LABELS = {"valid": "valid", "keeps_every_pixel": "keeps every pixel", "divides_evenly": "divides evenly"}
MEANING = {
    "valid": "every shape rule holds",
    "keeps_every_pixel": "no layer's output-size formula drops input pixels",
    "divides_evenly": "every strided layer's output is exactly its input / stride",
}


def property_text(sweep: Sweep, prop: str) -> str:
    """The rule for `prop`, or (sizes skipped) the sizes found."""
    rule = sweep.rules[prop]
    if rule is not None and rule.holds:
        return rule_text(rule, sweep.step)
    found = [s.n for s in sweep.sizes if s.valid and getattr(s, prop)]
    why = (f"every {sweep.step}th size checked" if rule is None else
           f"the range is too short to see the answers repeat with period {sweep.period}")
    return f"n = {_ranges(found, sweep.step)} ({why})" if found else f"none found ({why})"


def rule_text(rule: Rule, step: int = 1) -> str:
    """'every n ≥ 32', 'n ≡ 0 (mod 32)', 'n ≥ 67 with n ≡ 3 (mod 32)', 'none'."""
    parts = []
    if rule.residues:
        d, classes = _coarsest(rule.residues, rule.period)
        if len(classes) == d:
            parts.append(f"every n ≥ {rule.start}")
        else:
            congruence = f"n ≡ {_classes(classes)} (mod {d})"
            first = min(c if c else d for c in classes)  # the smallest positive member
            parts.append(congruence if rule.start <= first else f"n ≥ {rule.start} with {congruence}")
    if rule.extra:
        parts.append(f"n = {_ranges(rule.extra, step)}")
    return " and ".join(parts) if parts else "none"


def _coarsest(residues: tuple, p: int) -> tuple[int, list]:
    """The smallest modulus d (dividing p) that states the same residues mod p, and the classes.
    The residues are a union of classes mod d exactly when there are p/d times as many of them
    as classes, so only d = p/k with k up to their number can do (p may be huge)."""
    wanted = set(residues)
    for k in range(len(wanted), 0, -1):
        if p % k:
            continue
        d = p // k
        classes = {r % d for r in wanted}
        if len(wanted) == len(classes) * k:
            return d, sorted(classes)
    return p, sorted(wanted)


def _classes(classes: list) -> str:
    if len(classes) <= 4:
        return ", ".join(map(str, classes))
    return _ranges(classes, 1)


def _ranges(values, step: int) -> str:
    """'1–3, 7, 9–12' for consecutive runs (consecutive by `step`)."""
    runs = []
    for v in values:
        if runs and v - runs[-1][1] == step:
            runs[-1][1] = v
        else:
            runs.append([v, v])
    return ", ".join(f"{a}" if a == b else f"{a}–{b}" for a, b in runs)


def _shape(shape) -> str:
    return "x".join(map(str, shape))


def swept_text(sweep: Sweep) -> str:
    """'3xnxn (H = W = n)', '3x16xnxn (H = W = n, D = 16)'."""
    names = AXIS_LETTERS[len(sweep.base) - 1]
    dims = [str(sweep.base[0])] + ["n" if a in sweep.axes else str(sweep.base[1 + a]) for a in range(len(names))]
    fixed = [f"{names[a]} = {sweep.base[1 + a]}" for a in range(len(names)) if a not in sweep.axes]
    return "x".join(dims) + f" ({' = '.join(sweep.letters)} = n" + "".join(f", {f}" for f in fixed) + ")"


def render_text(sweep: Sweep) -> str:
    low, high = sweep.sizes[0].n, sweep.sizes[-1].n
    every = "every size" if sweep.step == 1 else f"every {sweep.step}th size"
    lines = [f"{sweep.name}: input {swept_text(sweep)}, n = {low} … {high}, {every} built by the static checker"]
    first = sweep.smallest_valid()
    width = max(map(len, LABELS.values()))
    for prop in PROPERTIES:
        text = property_text(sweep, prop)
        if prop == "valid" and first is not None:
            text += f"   (smallest: {_shape(first.shape)})"
        lines.append(f"  {LABELS[prop].ljust(width)}  {text}")
    failure = sweep.failure_below()
    if failure is not None:
        lines.append(f"below n = {failure.n + sweep.step} it fails (n = {failure.n}):")
        lines.append(f"  {failure.error}".replace("\n", "\n  "))
    holds = all(r is not None and r.holds for r in sweep.rules.values())
    verdict = ("every size checked agrees with the rules" if holds else
               "rules need every size (--step 1)" if sweep.step > 1 else
               "where the range is too short to see the answers repeat, the sizes are listed as found")
    lines.append(f"period {sweep.period} (the product of the strides to the deepest map): {verdict}")
    lines += [f"  {LABELS[p]}: {MEANING[p]}" for p in PROPERTIES]
    return "\n".join(lines)


def replication_warnings(sweep: Sweep) -> list[str]:
    """One AS802 line for the sizes at which an adaptive pooling replicates values."""
    hits = [s for s in sweep.sizes if s.replication]
    if not hits:
        return []
    sizes = _ranges([s.n for s in hits], sweep.step)
    return [f"{hits[0].replication[0]} (at n = {hits[0].n}; it replicates values for n = {sizes})"]


def to_json(sweep: Sweep) -> dict:
    first, failure = sweep.smallest_valid(), sweep.failure_below()
    return {
        "name": sweep.name,
        "input": list(sweep.base),
        "axes": sweep.letters,
        "range": [sweep.sizes[0].n, sweep.sizes[-1].n],
        "step": sweep.step,
        "period": sweep.period,
        "smallest_valid": None if first is None else list(first.shape),
        "failure_below": None if failure is None else
        {"n": failure.n, "code": failure.error.code, "error": str(failure.error)},
        "rules": {prop: _rule_json(sweep.rules[prop]) for prop in PROPERTIES},
        "replication": [s.n for s in sweep.sizes if s.replication],
        "sizes": [{"n": s.n, "input": list(s.shape), "valid": s.valid,
                   "keeps_every_pixel": s.keeps_every_pixel, "divides_evenly": s.divides_evenly,
                   "output": None if s.output is None else list(s.output)} for s in sweep.sizes],
    }


def _rule_json(rule: Rule | None) -> dict | None:
    if rule is None:
        return None
    return {"from": rule.start, "period": rule.period, "residues": list(rule.residues),
            "also": list(rule.extra), "holds": rule.holds, "text": rule_text(rule)}
