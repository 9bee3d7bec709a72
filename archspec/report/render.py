"""Render a `Report` as a text table, JSON, Markdown or CSV."""
from __future__ import annotations

import csv
import io
import json

from archspec.graph.analyze import Report

COLUMNS = ("layer", "op", "output", "params", "macs", "rf")


def _field(sizes: list) -> str:
    """'11' when every spatial axis has the same field, else '3x7x7'; '-' without spatial axes."""
    if not sizes:
        return "-"
    return str(sizes[0]) if len(set(sizes)) == 1 else "x".join(map(str, sizes))


def field_cell(s, bound: str = "≤") -> str:
    """The receptive field as the table shows it (docs/format.md, "Receptive field"):
    '427', '3x7x7', '427+g' with global context, 'global' after a global reduction, '≤96'
    where it is an upper bound."""
    if not s.receptive_field:
        return "-"
    if not s.rf_resolved:
        return "global"
    text = ("" if s.rf_exact else bound) + _field(s.receptive_field)
    return text + ("+g" if s.global_context else "")


def _rows(report: Report):
    for s in report.layers:
        rf = field_cell(s)
        name = s.name + (" *" if s.training_only else "")
        yield (name, s.op, "x".join(map(str, s.shape)), f"{s.params:,}" if s.params else "-",
               f"{s.macs:,}" if s.macs else "-", str(rf))


def _human(n: float, unit: str = "") -> str:
    for suffix, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.2f} {suffix}{unit}"
    return f"{n:g} {unit}".rstrip()


def _mib(n: int) -> str:
    return f"{n / 2**20:,.2f} MiB"


def summary_lines(report: Report) -> list[str]:
    t = report.totals
    frozen = t["params"] - t["trainable_params"]
    lines = [
        f"input {'x'.join(map(str, report.input))} -> output {'x'.join(map(str, report.output))}",
        f"params: {t['params']:,} ({_human(t['params'])}); trainable {t['trainable_params']:,}"
        + (f", frozen {frozen:,}" if frozen else ""),
        f"MACs: {t['macs']:,} ({_human(t['macs'])}) per sample",
        f"param memory: {_mib(t['param_bytes'])} (fp32); activations: {_mib(t['activation_bytes'])} "
        "per sample (fp32, forward)",
    ]
    aux = report.training_only
    if aux and aux.get("params"):
        lines.append(f"training-only heads (*): {aux['params']:,} params, {aux['macs']:,} MACs "
                     "(not in the totals above)")
    return lines


def render_table(report: Report) -> str:
    header = ("Layer", "Op", "Output", "Params", "MACs", "RF")
    rows = list(_rows(report))
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    right = {3, 4, 5}

    def fmt(row):
        return "  ".join(str(c).rjust(w) if i in right else str(c).ljust(w)
                         for i, (c, w) in enumerate(zip(row, widths))).rstrip()

    rule = "-" * len(fmt(header))
    out = [f"{report.name}", rule, fmt(header), rule, *(fmt(r) for r in rows), rule]
    out += summary_lines(report)
    out += [f"{w}" for w in report.warnings]
    return "\n".join(out)


def render_markdown(report: Report) -> str:
    out = [f"## {report.name}", "", "| Layer | Op | Output | Params | MACs | RF |", "|---|---|---|--:|--:|--:|"]
    out += [f"| `{r[0]}` | {r[1]} | {r[2]} | {r[3]} | {r[4]} | {r[5]} |" for r in _rows(report)]
    out += [""] + [f"- {line}" for line in summary_lines(report)]
    out += [f"- warning: {w}" for w in report.warnings]
    return "\n".join(out)


def render_csv(report: Report) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["name", "op", "shape", "params", "trainable_params", "macs", "param_bytes",
                     "activation_bytes", "receptive_field", "training_only"])
    for s in report.layers:
        writer.writerow([s.name, s.op, "x".join(map(str, s.shape)), s.params, s.trainable_params,
                         s.macs, s.param_bytes, s.activation_bytes,
                         "x".join(map(str, s.receptive_field)), s.training_only])
    return buf.getvalue()


def render_json(report: Report) -> str:
    return json.dumps(report.to_json(), indent=2)


RENDERERS = {"table": render_table, "json": render_json, "markdown": render_markdown, "csv": render_csv}


def render_sharing(rows: list[dict]) -> str:
    """What weight sharing saves: shared vs locally connected vs fully connected parameters."""
    header = ("Layer", "Op", "Output", "Shared", "Unshared", "Fully connected", "Saving")
    body = [(r["name"], r["op"], "x".join(map(str, r["shape"])), f"{r['shared']:,}", f"{r['unshared']:,}",
             f"{r['fully_connected']:,}", f"{r['unshared'] / max(r['shared'], 1):,.0f}x") for r in rows]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
             for row in [header, *body]]
    return "\n".join(lines)
