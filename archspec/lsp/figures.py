"""Short renderings of shapes, counts and sizes for hints, hovers and the outline."""
from __future__ import annotations

from archspec.lsp.model import Entry, Stats


def shape(value) -> str:
    return "x".join(map(str, value)) if value is not None else "?"


def count(n: int) -> str:
    """70,400 -> '70.4k', 231,211,008 -> '231M': three significant digits."""
    for size, suffix in ((10**12, "T"), (10**9, "G"), (10**6, "M"), (10**3, "k")):
        if abs(n) >= size:
            return f"{n / size:.3g}{suffix}"
    return str(n)


def size(n_bytes: int) -> str:
    for unit, suffix in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if n_bytes >= unit:
            return f"{n_bytes / unit:.3g} {suffix}"
    return f"{n_bytes} B"


def figures(stats: Stats) -> str:
    """'70.4k params · 231M MACs', leaving out zeros."""
    parts = []
    if stats.params:
        parts.append(f"{count(stats.params)} params")
    if stats.macs:
        parts.append(f"{count(stats.macs)} MACs")
    return " · ".join(parts)


def one_line(entry: Entry) -> str | None:
    """What an entry expanded to, in one line (the inlay hint and the outline's detail):
    `→ 256x56x56 · 216k params · 680M MACs`, with `×3` for a repeat; an entry that
    appears several times (in a template body, in a repeated block) shows each distinct shape
    and `(×N)`."""
    found = entry.instances
    if not found:
        return None
    first = found[0]
    if entry.instance_count == 1:
        prefix = f"×{first.repeat} " if first.repeat > 1 else ""
        rest = figures(first)
        return f"{prefix}→ {shape(first.shape)}" + (f" · {rest}" if rest else "")
    shapes = []
    for stats in found:
        if shape(stats.shape) not in shapes:
            shapes.append(shape(stats.shape))
    text = "→ " + ", ".join(shapes[:3]) + (", …" if len(shapes) > 3 else "")
    total = sum(s.params for s in found)
    extra = f" · {count(total)} params in all" if total and len(found) == entry.instance_count else ""
    return f"{text} (×{entry.instance_count}){extra}"
