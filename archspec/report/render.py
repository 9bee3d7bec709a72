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


def _rows(report: Report, flops: bool = False):
    for s in report.layers:
        rf = _field(s.receptive_field)
        name = s.name + (" *" if s.training_only else "")
        params = f"= {s.tied_to}" if s.tied_to else f"{s.params:,}" if s.params else "-"
        counts = (f"{s.macs:,}" if s.macs else "-",) + ((f"{s.flops:,}" if s.flops else "-",) if flops else ())
        yield (name, s.op, "x".join(map(str, s.shape)), params, *counts, str(rf))


def _header(flops: bool) -> tuple:
    return ("Layer", "Op", "Output", "Params", "MACs") + (("FLOPs",) if flops else ()) + ("RF",)


def _human(n: float, unit: str = "") -> str:
    for suffix, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.2f} {suffix}{unit}"
    return f"{n:g} {unit}".rstrip()


def _mib(n: int) -> str:
    return f"{n / 2**20:,.2f} MiB"


def summary_lines(report: Report, flops: bool = False) -> list[str]:
    t = report.totals
    frozen = t["params"] - t["trainable_params"]
    lines = [
        f"input {'x'.join(map(str, report.input))} -> output {'x'.join(map(str, report.output))}",
        f"params: {t['params']:,} ({_human(t['params'])}); trainable {t['trainable_params']:,}"
        + (f", frozen {frozen:,}" if frozen else ""),
        f"MACs: {t['macs']:,} ({_human(t['macs'])}) per sample",
        *([f"FLOPs: {t['flops']:,} ({_human(t['flops'])}) per sample"] if flops else []),
        f"param memory: {_mib(t['param_bytes'])} (fp32); activations: {_mib(t['activation_bytes'])} "
        "per sample (fp32, forward)",
    ]
    lines += _memory_lines(report.memory)
    aux = report.training_only
    if aux and aux.get("params"):
        lines.append(f"training-only heads (*): {aux['params']:,} params, {aux['macs']:,} MACs "
                     "(not in the totals above)")
    return lines


def _memory_lines(memory: dict) -> list[str]:
    """The memory section at its batch and dtype (archspec/graph/memory.py)."""
    if not memory:
        return []
    at = f"batch {memory['batch']}, {memory['dtype']}"
    inf = memory["inference"]
    lines = [f"inference memory ({at}): {_mib(inf['total'])} = weights {_mib(inf['params'] + inf['buffers'])} "
             f"+ peak activations {_mib(inf['activations_peak'])} (at '{inf['peak_at']}')"]
    train = memory.get("training")
    if train:
        lines.append(f"training memory ({at}, {train['optimizer']}): {_mib(train['total'])} = weights "
                     f"{_mib(train['params'] + train['buffers'])} + gradients {_mib(train['gradients'])} + "
                     f"optimizer state {_mib(train['optimizer_state'])} + saved activations "
                     f"{_mib(train['saved_activations'])}")
    return lines


def render_table(report: Report, flops: bool = False) -> str:
    header = _header(flops)
    rows = list(_rows(report, flops))
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    right = set(range(3, len(header)))

    def fmt(row):
        return "  ".join(str(c).rjust(w) if i in right else str(c).ljust(w)
                         for i, (c, w) in enumerate(zip(row, widths))).rstrip()

    rule = "-" * len(fmt(header))
    out = [f"{report.name}", rule, fmt(header), rule, *(fmt(r) for r in rows), rule]
    out += summary_lines(report, flops)
    out += [f"{w}" for w in report.warnings]
    return "\n".join(out)


def render_markdown(report: Report, flops: bool = False) -> str:
    header = _header(flops)
    out = [f"## {report.name}", "", "| " + " | ".join(header) + " |",
           "|---|---|---|" + "--:|" * (len(header) - 3)]
    out += ["| " + " | ".join((f"`{r[0]}`", *r[1:])) + " |" for r in _rows(report, flops)]
    out += [""] + [f"- {line}" for line in summary_lines(report, flops)]
    out += [f"- warning: {w}" for w in report.warnings]
    return "\n".join(out)


def render_csv(report: Report, flops: bool = False) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["name", "op", "shape", "params", "trainable_params", "macs", "param_bytes",
                     "activation_bytes", "receptive_field", "training_only", "flops", "saved_bytes", "tied_to"])
    for s in report.layers:
        writer.writerow([s.name, s.op, "x".join(map(str, s.shape)), s.params, s.trainable_params,
                         s.macs, s.param_bytes, s.activation_bytes,
                         "x".join(map(str, s.receptive_field)), s.training_only, s.flops, s.saved_bytes,
                         s.tied_to or ""])
    return buf.getvalue()


def render_json(report: Report, flops: bool = False) -> str:
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
