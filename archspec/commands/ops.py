"""`archspec ops [NAME]`: the ops and blocks of the spec format, or one of them described —
settings, shape rule, example — from the registries, by the same code that writes
docs/reference.md (archspec/report/reference.py). `-f json` gives the documents of
docs/json.md ("ops")."""
from __future__ import annotations

import json
import shutil
import textwrap
from typing import Optional

import typer

FORMATS = ("text", "json")


def register(app: typer.Typer) -> None:
    app.command("ops")(ops)


def _complete_name(incomplete: str) -> list[str]:
    """Shell completion of NAME: the ops and blocks starting with what is typed."""
    from archspec.blocks import BLOCKS
    from archspec.ops import OPS

    return sorted(n for n in [*OPS, *BLOCKS] if n.startswith(incomplete))


def ops(name: Optional[str] = typer.Argument(None, metavar="NAME", autocompletion=_complete_name,
                                             help="An op or block to describe."),
        format: str = typer.Option("text", "--format", "-f", metavar="text|json", help="text or json.")):
    """List the ops and blocks, or describe one.

    Without NAME: every primitive op and built-in block with its summary. With NAME: its
    settings (key, type, default, meaning), shape rule, costs and YAML examples, as in
    docs/reference.md. An unknown NAME is a usage error (exit 2)."""
    from archspec.cli import EXIT_USAGE, fail

    if format not in FORMATS:
        fail(f"--format must be text or json. Received: '{format}'", EXIT_USAGE)
    if name is None:
        listing = catalogue()
        typer.echo(json.dumps(listing, indent=2, ensure_ascii=False) if format == "json" else _list_text(listing))
        return
    doc = describe(name)
    if doc is None:
        fail(f"unknown op or block '{name}'; {_did_you_mean(name) or '`archspec ops` lists them'}", EXIT_USAGE)
    typer.echo(json.dumps(doc, indent=2, ensure_ascii=False) if format == "json" else _describe_text(doc))


def catalogue() -> dict:
    """{"ops": [{name, kind, family, summary}], "blocks": [{name, kind, summary}]}, by name."""
    from archspec.blocks import BLOCKS
    from archspec.ops import OPS
    from archspec.report.reference import block_doc, op_doc

    fields = ("name", "kind", "family", "summary")
    return {"ops": [{k: v for k, v in op_doc(OPS[n]).items() if k in fields} for n in sorted(OPS)],
            "blocks": [{k: v for k, v in block_doc(BLOCKS[n]).items() if k in fields} for n in sorted(BLOCKS)]}


def describe(name: str) -> dict | None:
    """The op's or block's document (reference.op_doc / block_doc), or None for no such name."""
    from archspec.blocks import BLOCKS
    from archspec.ops import OPS
    from archspec.report.reference import block_doc, op_doc

    if name in OPS:
        return op_doc(OPS[name])
    if name in BLOCKS:
        return block_doc(BLOCKS[name])
    return None


def _did_you_mean(name: str) -> str:
    from difflib import get_close_matches

    from archspec.blocks import BLOCKS
    from archspec.ops import OPS

    close = get_close_matches(name, [*OPS, *BLOCKS], n=3, cutoff=0.6)
    return f"did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def _width() -> int:
    return max(min(shutil.get_terminal_size((80, 24)).columns, 100) - 2, 40)


def _list_text(listing: dict) -> str:
    name_w = max(len(entry["name"]) for group in listing.values() for entry in group)
    lines = []
    for group in ("ops", "blocks"):
        lines.append(f"{group}:")
        for entry in listing[group]:
            head = f"  {entry['name'].ljust(name_w)}  "
            lines += textwrap.wrap(entry["summary"], _width(), initial_indent=head,
                                   subsequent_indent=" " * len(head))
    return "\n".join(lines)


def _describe_text(doc: dict) -> str:
    width = _width()

    def para(text: str, indent: str = "", hanging: str = "") -> list[str]:
        return textwrap.wrap(text, width, initial_indent=indent, subsequent_indent=hanging or indent) or [indent]

    kind = f"op, {doc['family'].lower()}" if doc["kind"] == "op" else "block"
    lines = [f"{doc['name']} ({kind})", *para(doc["summary"], "  "), ""]
    facts = [("input", doc["input"]), ("output", doc["output"])]
    if doc["kind"] == "op":
        low, high = doc["inputs"]["min"], doc["inputs"]["max"]
        if (low, high) != (1, 1):
            facts.append(("inputs", f"{low} to {high}" if high != low else str(low)))
        facts += [("FLOPs", doc["flops"]), ("saved for backward", doc["saved_for_backward"]), ("ONNX", doc["onnx"])]
    for label, value in facts:
        if value:
            lines += para(f"{(label + ':').ljust(7)} {value}", hanging=" " * 8)
    for note in doc.get("notes", []):
        lines += ["", *para(note)]
    lines += ["", "settings (key, default, type — meaning):" if doc["settings"] else "settings: none"]
    lines += _settings_table(doc["settings"], width)
    for example in doc["examples"]:
        lines += ["", "example:", *textwrap.indent(example, "  ").splitlines()]
    if doc["kind"] == "block":
        lines += ["", f"more: docs/reference.md#block-{doc['name']} (or -f json, 'description')"]
    return "\n".join(lines)


def _settings_table(rows: list, width: int) -> list[str]:
    from archspec.report.reference import default_text

    if not rows:
        return []
    key_w = max(len(r["key"]) for r in rows)
    default_w = max(len(default_text(r)) for r in rows)
    lines = []
    for row in rows:
        head = f"  {row['key'].ljust(key_w)}  {default_text(row).ljust(default_w)}  "
        body = row["type"] + (f" — {row['description']}" if row["description"] else "")
        lines += textwrap.wrap(body, max(width, len(head) + 20), initial_indent=head,
                               subsequent_indent=" " * len(head), break_on_hyphens=False) or [head]
    return lines
