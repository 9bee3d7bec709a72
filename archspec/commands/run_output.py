"""What `archspec run` shows and writes: text with top-k classes, a JSON document, .npy/.npz.

A run is a dict: model, provider, input {name, shape, dtype, source}, outputs [(name, array)],
timing_ms {session, run}."""
from __future__ import annotations

import io
import json
import math
import zipfile
from pathlib import Path

import typer


def document(run: dict) -> dict:
    """The run as JSON-ready data: every output as nested lists with its name, shape, dtype."""
    outputs = [{"name": name, "shape": list(out.shape), "dtype": str(out.dtype), "data": _json_data(out)}
               for name, out in run["outputs"]]
    return {**run, "outputs": outputs}


def to_json(run: dict) -> str:
    return json.dumps(document(run), allow_nan=False)


def _json_data(array):
    """Nested lists; NaN and infinities (not JSON numbers) become the strings 'nan', 'inf', '-inf'."""
    import numpy as np

    values = array.tolist()
    if array.dtype.kind != "f" or bool(np.isfinite(array).all()):
        return values

    def clean(v):
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v if math.isfinite(v) else str(v)

    return clean(values)


def write(path: Path, run: dict) -> None:
    """Write the outputs atomically: .npy the first output, .npz all by name, .json the document."""
    import numpy as np

    from archspec.cli import EXIT_USAGE, fail
    from archspec.io import write_atomic

    suffix, outputs = path.suffix.lower(), run["outputs"]
    try:
        if suffix == ".json":
            data = (to_json(run) + "\n").encode()
        elif suffix == ".npy":
            buffer = io.BytesIO()
            np.save(buffer, outputs[0][1], allow_pickle=False)
            data = buffer.getvalue()
        else:
            data = _npz(outputs)
    except ValueError as exc:  # object (string) outputs cannot be stored without pickling
        fail(f"cannot write {path}: {exc} (use -o out.json)", EXIT_USAGE)
    write_atomic(path, data)
    shown = outputs[:1] if suffix == ".npy" else outputs
    note = f"; the first of {len(outputs)} outputs, use .npz for all" if len(shown) < len(outputs) else ""
    typer.echo(f"wrote {path} ({', '.join(name for name, _ in shown)}{note})", err=True)


def _npz(outputs) -> bytes:
    """An .npz archive keyed by output name (np.savez's keyword form would clash with an output
    called 'file' or 'allow_pickle')."""
    import numpy as np

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, out in outputs:
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(out), allow_pickle=False)
    return buffer.getvalue()


def print_text(run: dict, top_k: int) -> None:
    inp, ms = run["input"], run["timing_ms"]["run"]
    typer.echo(f"model: {run['model']}")
    typer.echo(f"provider: {run['provider']}")
    typer.echo(f"input '{inp['name']}': {inp['shape']} {inp['dtype']}, {inp['source']}")
    for name, out in run["outputs"]:
        stats = ""
        if out.size and out.dtype.kind in "biuf":
            stats = f" — min {out.min():.4g}, max {out.max():.4g}, mean {out.mean():.4g}"
        typer.echo(f"output '{name}': {list(out.shape)} {out.dtype} in {ms:.1f} ms{stats}")
        if out.size and out.dtype.kind in "if":
            _print_top_k(out, top_k)


def _print_top_k(out, k: int) -> None:
    import numpy as np

    if out.ndim < 2:
        return
    if out.ndim > 2:  # dense outputs (segmentation): the most frequent per-pixel class
        for i, labels in enumerate(out.argmax(1)):
            counts = np.bincount(labels.ravel(), minlength=out.shape[1])
            typer.echo(f"  sample {i}: per-position argmax over {out.shape[1]} channels, most frequent "
                       f"{int(counts.argmax())} ({counts.max() / labels.size:.0%} of positions)")
        return
    k = min(k, out.shape[1])
    for i, row in enumerate(out):
        top = np.argsort(-row, kind="stable")[:k]
        typer.echo(f"  sample {i} top-{k}: " + ", ".join(f"{int(c)} ({row[c]:.4g})" for c in top))
