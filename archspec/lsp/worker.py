"""The analysis worker: a child process of the language server that checks documents.

    python -m archspec.lsp.worker

reads requests from stdin and writes answers to stdout, each a length-prefixed pickle (the two
processes are the same program; nothing else talks to this pipe). A request is a dict with
`uri`, `version`, `text`, `file`, `base_dir`, `allow_outside` and `overlay` (the texts of
the editor's other open specs that this one may extend, by resolved path); the answer is the `FileModel`
(`{"modules": True}` asks for the imported top-level modules instead). An exception inside
the analysis — a bug in archspec — becomes an AS900 diagnostic on the document instead of an
answer that never comes. The server kills this process to cancel a stale or runaway analysis
and starts another.
"""
from __future__ import annotations

import os
import pickle
import struct
import sys
import traceback

HEADER = struct.Struct(">Q")


def write_frame(stream, obj) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(HEADER.pack(len(data)) + data)
    stream.flush()


def read_frame(stream):
    head = stream.read(HEADER.size)
    if len(head) < HEADER.size:
        return None
    (size,) = HEADER.unpack(head)
    return pickle.loads(stream.read(size))


def answer(request: dict):
    from archspec.lsp.analysis import analyze_text
    from archspec.lsp.model import FileModel, Problem, Span, split_lines

    if request.get("modules"):  # what this process has imported (the server's status command)
        return sorted({name.partition(".")[0] for name in sys.modules})
    try:
        return analyze_text(request["uri"], request["version"], request["text"], request["file"],
                            request["base_dir"], allow_outside=request.get("allow_outside", False),
                            overlay=request.get("overlay"))
    except Exception as exc:  # a bug: report it on the document, keep serving
        text = request.get("text")
        lines = split_lines(text) if isinstance(text, str) else []
        model = FileModel(request["uri"], request["version"], request["file"], lines)
        where = traceback.extract_tb(exc.__traceback__)[-1]
        model.problems = [Problem(
            Span(0, 0, 0, len(lines[0]) if lines else 0), "error", "AS900",
            f"internal error in archspec while checking this file: {type(exc).__name__}: {exc} "
            f"(at {os.path.basename(where.filename)}:{where.lineno})",
            hint="a bug: please report it with the spec")]
        return model


def main() -> None:
    # Answers go to the real stdout; anything printed by mistake goes to stderr, not the pipe.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    sys.stdout = sys.stderr
    stdin = sys.stdin.buffer
    import archspec.lsp.analysis  # noqa: F401  (warm up before the first request)

    write_frame(out, {"ready": os.getpid()})
    while (request := read_frame(stdin)) is not None:
        write_frame(out, answer(request))


if __name__ == "__main__":
    main()
