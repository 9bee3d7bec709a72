"""Latency of the language server: from a `didChange` to the diagnostics published for it.

    python benchmarks/lsp_latency.py [--spec specs/resnet152.yaml] [--edits 100] [--debounce-ms 0]
    python benchmarks/lsp_latency.py --flat 500     # a generated spec of 500 top-level layers

A real LSP client (pytest-lsp over stdio) starts `python -m archspec lsp`, opens the spec and
sends `--edits` small incremental edits, one at a time, the way an editor does while someone
types: each changes the number of classes (`$classes`, which every figure of the head depends
on), and each is sent only after the previous one's diagnostics arrived. The time of one edit is
from sending the didChange to the arrival of publishDiagnostics for that version (timed in the
client's notification handler). The debounce delay is set to 0 by default (`--debounce-ms`), so
the figure is the server's own work — parsing the message, checking the whole spec in the
worker process, building the diagnostics — not a wait that is there on purpose; with the
default debounce of 150 ms, add 150 ms. Prints the median and p90, and the worker's own
analysis time.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from lsprotocol import types  # noqa: E402

import lsp_session as lsp  # noqa: E402


async def measure(spec: Path, edits: int, debounce_ms: int) -> dict:
    client = await lsp.start({"debounceMs": debounce_ms})
    try:
        text = spec.read_text()
        uri = lsp.uri_of(spec.resolve())
        opened = await lsp.open_text(client, uri, text)
        assert not [d for d in opened if d.severity == types.DiagnosticSeverity.Error], opened
        where = lsp.position(text, "classes: 1000", offset=len("classes: "))
        digits = types.Range(start=where, end=types.Position(line=where.line, character=where.character + 4))
        times = []
        for version in range(2, edits + 2):
            value = str(1000 + version % 9)  # 1000..1008: always four digits, so the range stays put
            sent = time.perf_counter()
            client.text_document_did_change(types.DidChangeTextDocumentParams(
                types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                [types.TextDocumentContentChangePartial(range=digits, text=value)]))
            found = await lsp.diagnostics(client, uri, version)
            assert not [d for d in found if d.severity == types.DiagnosticSeverity.Error], found
            arrived = next(t for t, p in reversed(client.published) if p.uri == uri and p.version == version)
            times.append(arrived - sent)
        status = await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="archspec.status"))
        return {"times": times, "worker_median_s": status["analysis_median_s"]}
    finally:
        await client.shutdown_session()
        await client.stop()


def flat_spec(layers: int, directory: Path) -> Path:
    """A spec of `layers` top-level layers (conv, batchnorm, relu, ...): long files, in lines."""
    lines = ["archspec: 1", f"name: flat{layers}", "input: [3, 32, 32]", "vars: {classes: 1000}", "layers:"]
    body = ["  - conv: {{id: c{i}, out: 16, kernel: 3, padding: 1}}", "  - batchnorm: {{id: b{i}}}", "  - relu"]
    lines += [body[n % 3].format(i=n // 3) for n in range(layers - 3)]
    lines += ["  - global_avgpool", "  - flatten", "  - linear: {id: fc, out: $classes}"]
    path = directory / f"flat{layers}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", type=Path, default=ROOT / "specs" / "resnet152.yaml")
    parser.add_argument("--flat", type=int, help="measure a generated spec of this many layers instead")
    parser.add_argument("--edits", type=int, default=100)
    parser.add_argument("--debounce-ms", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        if args.flat:
            args.spec = flat_spec(args.flat, Path(scratch))
        result = asyncio.run(measure(args.spec, args.edits, args.debounce_ms))
    times = sorted(t * 1000 for t in result["times"])
    p90 = times[min(len(times) - 1, int(round(0.9 * (len(times) - 1))))]
    print(f"{args.spec.name}: {len(times)} edits, debounce {args.debounce_ms} ms")
    print(f"didChange -> publishDiagnostics: median {statistics.median(times):.1f} ms, p90 {p90:.1f} ms, "
          f"max {times[-1]:.1f} ms")
    print(f"worker analysis alone (check + model): median {result['worker_median_s'] * 1000:.1f} ms")


if __name__ == "__main__":
    main()
