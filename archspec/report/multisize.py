"""`archspec report SPEC --input 224,320`: one network at several input sizes, side by side —
the output shape of chosen layers (stage outputs by default, archspec/graph/stages.py), then
parameters, MACs and activation memory per size. Parameters stay the same unless a layer's
weights depend on the input size (a linear layer after flatten); the table names those."""
from __future__ import annotations

import json

from archspec.graph.analyze import Report
from archspec.graph.ir import Graph
from archspec.report.columns import bytes_text, shape_text
from archspec.report.render import colour_table, plain_table

FORMATS = ("table", "json", "markdown", "csv")


def size_label(report: Report) -> str:
    return shape_text(report.input)


def resolve_layers(graph: Graph, names: list[str]) -> list[str]:
    """Node names for `--layers` entries: a node, or a block (its output node). Raises
    ValueError naming an unknown entry."""
    out = []
    for name in names:
        if name in graph.nodes:
            out.append(name)
            continue
        inside = [n for n in graph.inference_nodes() if name in n.blocks]
        if not inside:
            raise ValueError(f"no layer or block '{name}' in {graph.name}")
        out.append(inside[-1].name)
    return out


def size_dependent(reports: list[Report]) -> list[str]:
    """Layers whose parameter count differs between the sizes."""
    first = {s.name: s.params for s in reports[0].layers}
    return [name for name, params in first.items()
            if any({s.name: s.params for s in r.layers}.get(name) != params for r in reports[1:])]


def _body(reports: list[Report], names: list[str]) -> list[list[str]]:
    shapes = [{s.name: s.shape for s in r.layers} for r in reports]
    body = [[name, *(shape_text(by[name]) for by in shapes)] for name in names]
    body.append(["params", *(f"{r.totals['params']:,}" for r in reports)])
    body.append(["MACs", *(f"{r.totals['macs']:,}" for r in reports)])
    body.append(["activations", *(bytes_text(r.totals["activation_bytes"]) for r in reports)])
    return body


def notes(reports: list[Report]) -> list[str]:
    changed = size_dependent(reports)
    if not changed:
        return ["params are the same at every size"]
    return [f"params change with the input size at: {', '.join(changed)}"]


def render(reports: list[Report], names: list[str], format: str, colour: bool = False) -> str:
    if format == "json":
        return json.dumps([r.to_json() for r in reports], indent=2)
    headers = ["Layer", *(size_label(r) for r in reports)]
    body = _body(reports, names)
    if format == "csv":
        import csv
        import io

        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["layer", *(size_label(r) for r in reports)])
        writer.writerows(body)
        return buf.getvalue()
    if format == "markdown":
        lines = [f"## {reports[0].name} at {len(reports)} input sizes", "",
                 "| " + " | ".join(headers) + " |", "|---|" + "--:|" * len(reports)]
        lines += ["| " + " | ".join(row) + " |" for row in body]
        return "\n".join(lines + [""] + [f"- {n}" for n in notes(reports)])
    aligns = ["left"] + ["right"] * len(reports)
    title = f"{reports[0].name} at {len(reports)} input sizes"
    if colour:
        styles = [""] * len(names) + ["bold"] * 3
        return colour_table(title, headers, aligns, body, styles, notes(reports))
    return "\n".join([title, *plain_table(headers, aligns, body), *notes(reports)])
