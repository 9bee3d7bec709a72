"""From files to a `Spec`: loading, top-level validation, `extends` and `override`.

A spec may `extends: base.yaml` (resolved relative to the spec) and replace layers by id.
The base must lie inside the spec's directory tree or, when the spec sits in a project (the
nearest enclosing directory with a `pyproject.toml` or `.git`, never the home directory or
the filesystem root), be a `.yaml`/`.yml` file inside that project — so
`examples/x.yaml` may extend `../specs/resnet18.yaml`, but no spec can make archspec read a
file outside its project unless the caller allows it (`--allow-outside`)::

    extends: resnet18.yaml
    override:
      fc: {linear: {id: fc, out: 10}}

The command line may then override variables (`--set width=1.1`, `var_overrides` here): a
value replaces the spec's own before anything is evaluated, so everything computed from the
variable (channel counts, depths, the input size) follows.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from archspec.errors import SpecError, SpecErrors, did_you_mean
from archspec.names import MAX_NAME, name_problem
from archspec.spec.expr import ExprError, evaluate, is_expression
from archspec.spec.load import Doc, Src, load_file, load_text
from archspec.spec.schema import SpecFile, TemplateDef
from archspec.spec.validate import validate

MAX_EXTENDS_DEPTH = 16


@dataclass(frozen=True)
class Placed:
    """A layer entry that came from somewhere else (an override): carries its own source."""

    raw: object
    src: Src


@dataclass
class Template:
    name: str
    definition: TemplateDef
    src: Src  # the template's definition


@dataclass
class Spec:
    """A validated spec, ready to build: everything the graph builder needs, with sources."""

    name: str  # the spec's `name`
    input: tuple  # input shape without the batch axis, after `input_override` and `--set`
    vars: dict  # name -> (value, Src)
    templates: dict  # name -> Template
    layers: list  # the `layers` entries as written (expanded by `archspec.expand`)
    layers_src: Src  # where `layers` is in the file
    src: Src  # the root of the (most derived) document
    description: str = ""  # the spec's `description`
    files: list = field(default_factory=list)  # the spec file and every file it `extends`
    set_vars: dict = field(default_factory=dict)  # name -> value text, for variables set by --set


class VarOverrideError(SpecError):
    """A `--set` option is wrong in itself (no such variable, not one value): a usage error,
    reported at the spec's `vars` with the option's text."""

    def __init__(self, message: str, loc=None, hint: str | None = None):
        super().__init__(message, loc, hint, code="AS210")


# how to let `extends` leave the project, as the AS308 hint says it (the language server says
# it its own way)
ALLOW_OUTSIDE_HOW = "pass --allow-outside (allow_outside=True from Python)"

def load_spec(path, *, allow_outside: bool = False, input_override: tuple | None = None,
              var_overrides: dict | None = None) -> Spec:
    """Load, validate and resolve a spec file (`archspec.load`); the static path, no torch.

    `input_override` replaces the input shape, without the batch axis, like `--input`:
    `(3, 240, 240)`. `var_overrides` maps variable names to value text, like `--set`:
    `{"width": "1.1"}` for `--set width=1.1`; each value is read as one YAML scalar, and a
    name the spec does not declare is an error (AS210). `allow_outside=True` lets `extends`
    leave the spec's project (the nearest directory above it with pyproject.toml or .git; the
    spec's own directory outside any project), like `--allow-outside`. Raises a located
    `SpecError` for an invalid file."""
    doc = load_file(path)
    spec = _compose(doc, spec_root(Path(path).resolve().parent), allow_outside, input_override, depth=0)
    return _finish(spec, var_overrides)


def load_spec_text(text: str, file: str = "<spec>", base_dir=".", **kwargs) -> Spec:
    """Load a spec from YAML text (`archspec.loads`): `file` is the name errors give,
    `base_dir` the directory a relative `extends` starts from. Keyword arguments as for
    `load_spec`: `allow_outside`, `input_override`, `var_overrides`; and `overlay`, a dict from
    resolved absolute paths to text (an editor's unsaved buffers): a base spec at one of those
    paths is read from its text instead of the disk. The rules `extends` obeys are unchanged,
    the file must still exist there; only its content comes from the overlay."""
    doc = load_text(text, file)
    spec = _compose(doc, spec_root(Path(base_dir).resolve()), kwargs.get("allow_outside", False),
                    kwargs.get("input_override"), depth=0, overlay=kwargs.get("overlay") or {})
    return _finish(spec, kwargs.get("var_overrides"))


def _finish(spec: Spec, var_overrides: dict | None) -> Spec:
    """Apply `--set` overrides, then evaluate the input shape (it may use variables)."""
    for name, text in (var_overrides or {}).items():
        spec.vars[name] = (parse_override(name, text, spec), spec.vars[name][1])
        spec.set_vars[name] = text
    if any(is_expression(v) for v in spec.input):
        spec.input = _evaluate_input(spec)
    return spec


def parse_override(name: str, text: str, spec: Spec):
    """The value of `--set name=text`: one YAML scalar, read like a value in the file."""
    where = spec.src.child("vars").key_loc
    option = f"--set {name}={_short_text(text)}"
    if name not in spec.vars:
        known = ", ".join(sorted(spec.vars)) or "none"
        raise VarOverrideError(f"{option}: the spec has no variable '{name}' (its variables: {known})",
                               where, hint=did_you_mean(name, spec.vars))
    if "\n" in text or "\r" in text:
        raise VarOverrideError(f"{option}: the value must be on one line", where)
    try:
        data = load_text(f"value: {text}", option).data
    except SpecError as exc:
        raise VarOverrideError(f"{option}: {exc.message}", where) from None
    value = data.get("value") if isinstance(data, dict) and list(data) == ["value"] else None
    if type(value) not in (int, float, bool, str):
        raise VarOverrideError(f"{option}: a variable holds one number, true/false or string "
                               f"(or a $name / ${{expression}}). Received: {type(value).__name__}", where)
    return value


def evaluate_vars(vars_: dict, set_vars: dict | None = None) -> tuple[dict, set, list]:
    """(values, names of variables that failed, their errors). A variable that fails is left
    out, and expressions that use it are skipped rather than reported again. Variables may use
    the ones above them."""
    env: dict = {}
    failed: set = set()
    errors: list[SpecError] = []
    for name, (value, src) in vars_.items():
        if is_expression(value):
            try:
                value = evaluate(value, env)
            except ExprError as exc:
                if exc.variable not in failed:
                    label = f"vars.{name}" + (" (set by --set)" if name in (set_vars or {}) else "")
                    errors.append(src.error(f"{label}: {exc}", code=exc.code))
                failed.add(name)
                continue
        env[name] = value
    return env, failed, errors


def _evaluate_input(spec: Spec) -> tuple:
    """`input: [3, $resolution, $resolution]`: evaluated once the variables are known."""
    env, failed, errors = evaluate_vars(spec.vars, spec.set_vars)
    where = spec.src.child("input")
    shape = []
    for i, item in enumerate(spec.input):
        if is_expression(item):
            try:
                item = evaluate(item, env)
            except ExprError as exc:
                if exc.variable in failed:
                    raise SpecErrors(errors) from None
                raise where.child(i).error(f"input[{i}]: {exc}", code=exc.code) from None
        if type(item) is not int or item < 1:
            raise where.child(i).error(f"input[{i}] must be a positive integer. Received: {item!r}",
                                       code="AS203")
        shape.append(item)
    return tuple(shape)


def _short_text(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "..."


def _compose(doc: Doc, root: "Root", allow_outside: bool, input_override, depth: int,
             seen: tuple = (), overlay: dict | None = None) -> Spec:
    src = doc.src()
    header = validate(SpecFile, doc.data, src, "spec")
    base = None
    if header.extends is not None:
        base = _load_base(header.extends, doc, root, allow_outside, depth, seen, overlay or {})
    elif header.layers is None:
        raise src.error("spec: missing required key 'layers' (or 'extends' to inherit them)", code="AS202")
    if base is None and header.input is None and input_override is None:
        raise src.error("spec: missing required key 'input' ([C, H, W]; batch is implicit)", code="AS202")

    vars_ = dict(base.vars) if base else {}
    vars_.update({k: (v, src.child("vars", k)) for k, v in header.vars.items()})
    templates = dict(base.templates) if base else {}
    templates.update({k: Template(k, t, src.child("templates", k)) for k, t in header.templates.items()})
    if header.layers is not None:
        layers, layers_src = header.layers, src.child("layers")
    else:
        layers, layers_src = base.layers, base.layers_src
    if header.override:
        if base is None:
            raise src.child("override").error("spec: 'override' needs 'extends' (there is nothing to override)",
                                              key=True, code="AS307")
        layers = _apply_overrides(layers, layers_src, header.override, src.child("override"))
    if input_override is not None:
        shape = tuple(input_override)
    elif header.input is not None:
        shape = tuple(header.input)
    else:
        shape = base.input
    name = header.name or (base.name if base else default_name(doc.file))
    files = (base.files if base else []) + [doc.file]
    return Spec(name, shape, vars_, templates, layers, layers_src, src, header.description, files)


def _load_base(rel: str, doc: Doc, root: "Root", allow_outside: bool, depth: int, seen: tuple,
               overlay: dict) -> Spec:
    where = doc.src(("extends",))
    if depth >= MAX_EXTENDS_DEPTH:
        raise where.error(f"'extends' chain is deeper than {MAX_EXTENDS_DEPTH} files", code="AS308")
    try:
        here = Path(doc.file).resolve().parent if os.path.exists(doc.file) else root.base
        target = (here / rel).resolve()
        target.is_file()  # raises for names the OS refuses (NUL bytes, over-long components)
    except (OSError, ValueError, RuntimeError) as exc:  # RuntimeError: a symlink loop
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise where.error(f"'extends: {_short(rel)}' cannot be followed: {reason}", code="AS308") from None
    if not allow_outside and not _may_extend(target, root):
        raise where.error(f"'extends: {rel}' leaves the spec's directory tree ({root.path}"
                          f"{', its project' if root.project else ''})",
                          hint="move the base spec inside that tree (a .yaml file), or, for a spec you "
                               f"trust, {ALLOW_OUTSIDE_HOW}",
                          code="AS308")
    if target in seen:
        raise where.error(f"'extends' forms a cycle: {' -> '.join(p.name for p in seen + (target,))}",
                          code="AS308")
    if not target.is_file():
        raise where.error(f"'extends: {rel}': no such file ({target})", code="AS308")
    text = overlay.get(str(target))  # an open editor buffer stands in for the file's bytes
    display = _display(target)
    base_doc = load_file(target, display=display) if text is None else load_text(text, display)
    return _compose(base_doc, root, allow_outside, None, depth + 1, seen + (target,), overlay)


PROJECT_MARKERS = ("pyproject.toml", ".git")


@dataclass(frozen=True)
class Root:
    """Where `extends` may read from: `path`, a spec's own directory or its project."""

    path: Path
    base: Path  # the top spec's directory: where relative paths of in-memory specs start
    project: bool = False


def spec_root(directory: Path) -> Root:
    """The tree a spec in `directory` may extend from: its project — the nearest enclosing
    directory holding a project marker — or, outside any project, the directory itself. The
    home directory and the filesystem root never count as a project (a dotfiles repository
    must not open up a whole home directory)."""
    directory = directory.resolve()
    try:
        home = Path.home().resolve()
    except (RuntimeError, KeyError):
        home = None
    for candidate in (directory, *directory.parents):
        if candidate == home or candidate == Path(candidate.anchor):
            break
        if any((candidate / marker).exists() for marker in PROJECT_MARKERS):
            return Root(candidate, directory, project=True)
    return Root(directory, directory)


def _may_extend(target: Path, root: Root) -> bool:
    if target.is_relative_to(root.base):
        return True
    return root.project and target.is_relative_to(root.path) and target.suffix.lower() in (".yaml", ".yml")


def default_name(file: str) -> str:
    """A spec without `name` is named after its file, made a valid name."""
    stem = re.sub(r"[^A-Za-z0-9_]+", "_", Path(file).stem).strip("_")[:MAX_NAME] or "spec"
    return stem if name_problem(stem) is None else f"spec_{stem}"[:MAX_NAME]


def _short(text: str) -> str:
    text = repr(text)
    return text if len(text) <= 80 else text[:77] + "..."


def _display(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


def _apply_overrides(layers: list, layers_src: Src, overrides: dict, src: Src) -> list:
    layers = _copy_tree(layers)
    for target, replacement in overrides.items():
        where = src.child(target)
        container, index = _find_layer(layers, target.split("."))
        if container is None:
            raise where.error(f"override: no layer with id '{target}' in the base spec", key=True, code="AS307")
        old = container[index]
        if isinstance(old, Placed):
            old = old.raw
        container[index] = Placed(_keep_id(replacement, old), where)
    return layers


def _keep_id(new, old):
    """An override keeps the replaced layer's id unless it gives its own."""
    if isinstance(new, dict) and len(new) == 1:
        (kind, body), = new.items()
        old_id = _layer_id(old)
        body = dict(body or {})
        if old_id is not None and "id" not in body:
            body["id"] = old_id
        return {kind: body}
    return new


def _layer_id(entry):
    if isinstance(entry, Placed):
        entry = entry.raw
    if isinstance(entry, dict) and len(entry) == 1:
        body = next(iter(entry.values()))
        if isinstance(body, dict):
            return body.get("id")
    return None


def _find_layer(layers: list, parts: list):
    for i, entry in enumerate(layers):
        ident = _layer_id(entry)
        if ident == parts[0] or (ident is None and parts[0] == str(i)):
            if len(parts) == 1:
                return layers, i
            raw = entry.raw if isinstance(entry, Placed) else entry
            body = next(iter(raw.values())) if isinstance(raw, dict) else None
            for key in ("layers", "body"):
                nested = body.get(key) if isinstance(body, dict) else None
                if isinstance(nested, list):
                    found = _find_layer(nested, parts[1:])
                    if found[0] is not None:
                        return found
    return None, None


def _copy_tree(value):
    if isinstance(value, dict):
        return {k: _copy_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy_tree(v) for v in value]
    return value


__all__ = ["Spec", "Template", "Placed", "load_spec", "load_spec_text", "SpecError", "VarOverrideError",
           "evaluate_vars"]
