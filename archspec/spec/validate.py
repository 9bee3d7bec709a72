"""pydantic validation with errors translated to located, one-line compiler messages."""
from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError

from archspec.errors import SpecError, did_you_mean, raise_all
from archspec.names import InvalidName
from archspec.spec.load import Src

M = TypeVar("M", bound=BaseModel)


def validate(model: type[M], data, src: Src, what: str) -> M:
    """Validate `data` (found at `src`) against `model`, or raise located errors: one
    SpecError, or SpecErrors when several settings are wrong.

    `what` names the thing for the message, e.g. "layers[3] 'c3' (conv)".
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise src.error(f"{what}: expected a mapping of settings. Received: {_show(data)}", code="AS205")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = _translate(exc, model, data, src, what)
    raise_all(errors)  # outside the except: no chained pydantic traceback
    raise AssertionError("unreachable: pydantic raised without errors")


def _translate(exc: ValidationError, model, data: dict, src: Src, what: str) -> list[SpecError]:
    errors = exc.errors(include_url=False)
    # A misspelt key shows up as 'unknown key' plus 'missing key': the unknown one is the cause,
    # so 'missing' errors are reported only when no key is unknown.
    if any(e["type"] == "extra_forbidden" for e in errors):
        errors = [e for e in errors if e["type"] != "missing"]
    out, seen = [], set()
    for err in errors:
        error = _one(err, model, data, src, what)
        key = (error.loc, error.message)
        if key not in seen:  # union members can repeat one problem at one place
            seen.add(key)
            out.append(error)
    return out


def _one(err: dict, model, data: dict, src: Src, what: str) -> SpecError:
    loc = tuple(err["loc"])
    kind = err["type"]
    # pydantic appends union-member tags such as 'int' or 'tuple[int,int]' to the loc; keep
    # only the part of the path that exists in the user's data.
    path = _existing_path(data, loc)
    field = ".".join(str(p) for p in path) or "(settings)"
    if kind == "extra_forbidden":
        key = path[-1] if path else loc[-1]
        choices = _field_names(model) if len(path) == 1 else ()
        hint = did_you_mean(key, choices)
        known = ", ".join(sorted(choices))
        return src.child(*path).error(f"{what}: unknown key '{key}'" + (f" (known: {known})" if known else ""),
                                      hint=hint, key=True, code="AS201")
    if kind == "missing":
        return src.error(f"{what}: missing required key '{loc[0]}'", code="AS202")
    if kind == "value_error":
        cause = err.get("ctx", {}).get("error")
        message = str(cause if cause is not None else err["msg"])
        code = "AS206" if isinstance(cause, InvalidName) else "AS203"
        if path:
            return src.child(*path).error(f"{what}: {field}: {message}", code=code)
        return src.error(f"{what}: {message}", code=code)
    received = _show(err.get("input"))
    return src.child(*path).error(f"{what}: {field}: {_clean(err['msg'])}. Received: {field}={received}",
                                  code="AS203")


def _existing_path(data, loc: tuple) -> tuple:
    path, node = [], data
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and not path and part not in node:
            path.append(part)  # a missing or extra top-level key
            break
        else:
            break
        path.append(part)
    return tuple(path)


def _field_names(model) -> list[str]:
    names = []
    for name, info in model.model_fields.items():
        names.append(info.alias or name)
    return names


def _clean(msg: str) -> str:
    return msg[0].upper() + msg[1:] if msg else msg


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
