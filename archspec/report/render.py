"""Render a `Report` as a text table, JSON, Markdown or CSV.

The table and Markdown show the declared columns (archspec/report/columns.py) over rows of
ops or folded blocks (archspec/report/rows.py), chosen by a `View`; JSON and CSV give every
figure of every op. On a terminal the table is drawn with rich's colours and alignment
(`colour=True`); otherwise it is plain text. Warnings are never part of the rendered text:
the command line prints them on stderr.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

from archspec.graph.analyze import LayerStats, Report
from archspec.report.columns import Column, Row, bytes_text, choose_columns, field_text
from archspec.report.rows import layer_rows


@dataclass
class View:
    """What the table shows: `rows` (default: one per op), `columns` (default: the default
    ones), whether to draw it in colour and to total FLOPs."""

    rows: list | None = None
    columns: list | None = None
    colour: bool = False
    flops: bool = False  # the FLOPs total among the summary lines (the column: `--flops`)


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


def _cells(report: Report, view: View | None) -> tuple[list[Column], list[Row], list[list[str]]]:
    view = view or View()
    columns = view.columns or choose_columns(None)
    rows = view.rows if view.rows is not None else layer_rows(report)
    return columns, rows, [[c.text(row, report) for c in columns] for row in rows]


def plain_table(headers: list, aligns: list, body: list) -> list[str]:
    """Columns padded to their widest cell, separated by two spaces, between rules."""
    widths = [max(len(str(r[i])) for r in [headers, *body]) for i in range(len(headers))]

    def line(cells):
        return "  ".join(str(c).rjust(w) if a == "right" else str(c).ljust(w)
                         for c, w, a in zip(cells, widths, aligns)).rstrip()

    rule = "-" * len(line(headers))
    return [rule, line(headers), rule, *(line(r) for r in body), rule]


def colour_table(title: str, headers: list, aligns: list, body: list, styles: list, after: list) -> str:
    """The same table drawn by rich with colours (ANSI escapes), for a terminal."""
    import io

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, title_justify="left", title_style="bold", header_style="bold cyan",
                  show_edge=False, pad_edge=False, box=None, padding=(0, 1))
    for header, align in zip(headers, aligns):
        table.add_column(header, justify=align, no_wrap=True)
    for cells, style in zip(body, styles):
        table.add_row(*(Text(str(c)) for c in cells), style=style)
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, color_system="standard", width=100_000,
                      highlight=False, soft_wrap=True)
    console.print(table)
    for line in after:
        console.print(Text(line))
    return "\n".join(line.rstrip() for line in buf.getvalue().rstrip("\n").splitlines())


def _style(row: Row) -> str:
    if row.training_only:
        return "dim"
    return "bold" if row.block else ""


def render_table(report: Report, view: View | None = None) -> str:
    columns, rows, body = _cells(report, view)
    headers, aligns = [c.header for c in columns], [c.align for c in columns]
    summary = summary_lines(report, view is not None and view.flops)
    if view is not None and view.colour:
        return colour_table(report.name, headers, aligns, body, [_style(r) for r in rows], summary)
    return "\n".join([report.name, *plain_table(headers, aligns, body), *summary])


def render_markdown(report: Report, view: View | None = None) -> str:
    columns, rows, body = _cells(report, view)
    out = [f"## {report.name}", "", "| " + " | ".join(c.header for c in columns) + " |",
           "|" + "|".join("--:" if c.align == "right" else "---" for c in columns) + "|"]
    for cells in body:
        cells = [f"`{cell}`" if c.key == "layer" else cell.replace("|", "\\|") for c, cell in zip(columns, cells)]
        out.append("| " + " | ".join(cells) + " |")
    out += [""] + [f"- {line}" for line in summary_lines(report, view is not None and view.flops)]
    return "\n".join(out)


def _csv_value(value) -> object:
    if isinstance(value, (list, tuple)):
        return "x".join(map(str, value))
    return value


def render_csv(report: Report, view: View | None = None) -> str:
    """Every field of every op (LayerStats, in its order; lists joined with 'x')."""
    import csv  # here: `report` in its other formats need not load it
    import io

    keys = [f.name for f in fields(LayerStats) if f.name != "inputs"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(keys)
    for s in report.layers:
        values = asdict(s)
        writer.writerow([_csv_value(values[k]) for k in keys])
    return buf.getvalue()


def render_json(report: Report, view: View | None = None) -> str:
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


__all__ = ["RENDERERS", "View", "bytes_text", "field_text", "plain_table", "colour_table", "render_csv",
           "render_json", "render_markdown", "render_sharing", "render_table", "summary_lines"]
