"""One version of a document in, a `FileModel` out: `check_text` (the same core `archspec check`
runs), the position index, the layer entries with what they expanded to, variables and
templates. Runs in the analysis worker; never raises for problems with the spec.
"""
from __future__ import annotations

import os
import re
import time
from pathlib import Path

from archspec.check import check_text
from archspec.spec.compose import ALLOW_OUTSIDE_HOW
from archspec.errors import CODES, SpecError
from archspec.lsp.expansion import attach
from archspec.lsp.index import document_marks, layer_entries, span_of
from archspec.lsp.model import (FileModel, Packed, Place, Problem, Span, TemplateInfo, Variable,
                                split_lines)
from archspec.spec.load import load_text

_SUGGESTION = re.compile(r"did you mean '([^']+)'\?")
_SPEC_KEY = re.compile(r"^archspec\s*:", re.M)
_EXTENDS = re.compile(r"^extends\s*:\s*(\S.*?)\s*(#.*)?$")


def is_spec(text: str) -> bool:
    """Whether a YAML document is an archspec spec (every spec has a top-level `archspec:` key).
    Other YAML files an editor sends (CI workflows, configs) get no diagnostics."""
    return _SPEC_KEY.search(text) is not None


def analyze_text(uri: str, version, text: str, file: str, base_dir: str, *,
                 allow_outside: bool = False, overlay: dict | None = None) -> FileModel:
    """`overlay`: the texts of the editor's other open specs by resolved path; a base spec
    open in the editor is read from its buffer, saved or not."""
    started = time.perf_counter()
    model = FileModel(uri, version, file, split_lines(text))
    if not is_spec(text):
        return model
    overlay = overlay or {}
    result = check_text(text, file, base_dir=base_dir, allow_outside=allow_outside, overlay=overlay)
    for error in result.errors:  # the command line's flag is a setting of the server here
        if error.code == "AS308" and error.hint:
            error.hint = error.hint.replace(ALLOW_OUTSIDE_HOW, "set the server's initialization option "
                                            "'allowOutside' (or start it with --allow-outside)")
    spec = result.spec
    doc = spec.src.doc if spec is not None else _load(text, file)
    if doc is not None:
        model.loaded = True
        model.marks = document_marks(doc)
        model.extends_span = _extends_span(doc)
        model.extends = _extends_target(doc, file, base_dir)
    model.extends_span = model.extends_span or _extends_line(model.lines)
    model.problems = [_problem(e, "error", model, overlay) for e in result.errors]
    model.problems += [_problem(w, "warning", model, overlay) for w in result.warnings]
    if doc is not None:
        templates = set(spec.templates) if spec is not None else set()
        model.entries = layer_entries(doc, templates)
        built = result.graph or result.partial
        if built is not None and spec is not None:
            report = attach(model.entries, built, spec.src.doc)
            if result.graph is not None:
                model.summary = {"name": report.name, "ops": len(built.nodes), **report.totals,
                                 "output": report.output}
    if spec is not None:
        model.variables = _variables(spec)
        model.templates = _templates(spec, model)
        model.files = [os.path.abspath(f) for f in spec.files]
    # the files a save of which must re-check this one (also when a base failed to load)
    model.files += [place.file for p in model.problems for place, _ in p.related]
    if model.extends is not None:
        model.files.append(model.extends.file)
    model.files = sorted(set(model.files))
    model.marks, model.entries = Packed(model.marks), Packed(model.entries)
    model.elapsed = time.perf_counter() - started
    return model


def _load(text: str, file: str):
    """The document alone, for a spec that did not compose (a wrong top-level key, a base that
    fails): its positions still serve hovers and navigation."""
    try:
        return load_text(text, file)
    except SpecError:
        return None


def _problem(item, severity: str, model: FileModel, overlay: dict) -> Problem:
    """An error or warning, placed in this document: in it, at its range; in a base spec, on the
    `extends:` line, pointing at the base's location."""
    loc, code = item.loc, item.code
    hint = getattr(item, "hint", None)
    severity = CODES.get(code, (severity,))[0]
    message = item.message
    if getattr(item, "node", None):  # a warning names the node it is about
        message = f"'{item.node}': {message}"
    found = _SUGGESTION.search(hint or "") or _SUGGESTION.search(message)
    problem = Problem(Span(0, 0, 0, len(model.lines[0]) if model.lines else 0), severity, code, message,
                      hint, suggestion=found.group(1) if found else None)
    if loc is None:
        return problem
    if loc.file == model.file:
        problem.span = span_of(loc, model.lines)
        return problem
    where = os.path.abspath(loc.file)
    lines = split_lines(overlay[where]) if where in overlay else _file_lines(where)
    place = Place(where, span_of(loc, lines), lines[loc.line - 1] if 0 < loc.line <= len(lines) else "")
    if model.extends_span is not None:
        problem.span = model.extends_span
    problem.message = f"{_relative(where, model.file)}:{loc.line}:{loc.col}: {message}"
    problem.related = [(place, message)]
    problem.suggestion = None  # the fix belongs in the other file
    return problem


def _extends_span(doc) -> Span | None:
    loc = doc.marks.get(("extends",))
    return span_of(loc, doc.lines) if loc is not None else None


def _extends_line(lines: list) -> Span | None:
    """The `extends:` value found in the text, for a file that does not parse."""
    for number, line in enumerate(lines):
        if (m := _EXTENDS.match(line)) is not None:
            return Span(number, m.start(1), number, m.end(1))
    return None


def _extends_target(doc, file: str, base_dir: str) -> Place | None:
    rel = doc.data.get("extends") if isinstance(doc.data, dict) else None
    if not isinstance(rel, str) or "\0" in rel:
        return None
    here = Path(file).parent if os.path.isabs(file) else Path(base_dir)
    try:
        target = (here / rel).resolve()
        if target.is_file():
            return Place(str(target), Span(0, 0, 0, 0))
    except (OSError, ValueError, RuntimeError):
        pass
    return None


def _variables(spec) -> dict:
    from archspec.graph.entries import evaluate_vars

    values, failed, _ = evaluate_vars(spec.vars)
    out = {}
    for name, (written, src) in spec.vars.items():
        out[name] = Variable(name, values.get(name, written), written, _place(src, key=True),
                             failed=name in failed)
    return out


def _templates(spec, model: FileModel) -> dict:
    out = {}
    for name, template in spec.templates.items():
        definition = template.definition
        info = TemplateInfo(name, dict(definition.args), definition.doc, _place(template.src, key=True),
                            single=not isinstance(definition.body, list),
                            arg_places={a: _place(template.src.child("args", a), key=True) for a in definition.args})
        out[name] = info
    for entry in model.entries:
        if entry.category == "template" and entry.kind in out:
            info = out[entry.kind]
            for stats in entry.instances:
                info.uses.append((stats.name, _arguments(info, entry.settings, model.variables)))
    return out


def _arguments(info: TemplateInfo, settings: dict, variables: dict) -> dict:
    """The argument values of one use (expressions evaluated against the spec's vars)."""
    from archspec.spec.expr import ExprError, evaluate, is_expression

    env = {name: v.value for name, v in variables.items() if not v.failed}
    args = {}
    for arg, default in info.args.items():
        value = settings.get(arg, default)
        if is_expression(value):
            try:
                value = evaluate(value, env)
            except ExprError:
                pass
        args[arg] = value
    return args


def _place(src, key: bool = False) -> Place:
    loc = src.key_loc if key else src.loc
    lines = src.doc.lines
    return Place(os.path.abspath(loc.file), span_of(loc, lines),
                 lines[loc.line - 1] if 0 < loc.line <= len(lines) else "")


def _file_lines(path: str) -> list:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read(4 * 2 ** 20).splitlines()
    except OSError:
        return []


def _relative(path: str, to_file: str) -> str:
    try:
        return os.path.relpath(path, os.path.dirname(os.path.abspath(to_file)))
    except ValueError:
        return path
