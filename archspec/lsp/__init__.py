"""`archspec lsp`: a language server for spec files, on the same static core as `check`.

The server (`server.py`, pygls over stdio) keeps the open documents; a separate worker
process (`worker.py`) checks each version of a document and sends back a `FileModel`
(`model.py`): plain data — diagnostics, every layer entry with its range and the shapes,
parameters and MACs it expands to, variables, templates and ids. Hover, inlay hints,
completion, navigation and code actions (one module each) answer from that model and the
current text. Running the analysis in its own process means a stale analysis can be
cancelled for real, a runaway one stopped by a time guard, and a crash in it never takes the
server down. Neither process imports torch or onnx.
"""
