"""Documentation of ops, blocks and their settings for hovers and completion items, taken from
the registries by the same code that writes docs/reference.md (`archspec.report.reference`),
so the editor and the reference never disagree."""
from __future__ import annotations

import inspect
import sys
from dataclasses import dataclass
from functools import lru_cache

from archspec.blocks import BLOCKS
from archspec.ops import OPS
from archspec.report import reference
from archspec.spec.jsonschema import ENVELOPE_DOCS, TOP_LEVEL_DOCS
from archspec.spec.schema import Envelope, SpecFile


@dataclass(frozen=True)
class Setting:
    key: str
    type: str
    default: str  # as docs/reference.md shows it: 'required', '`1`', '—'
    meaning: str = ""
    required: bool = False


def kind_of(name: str) -> str | None:
    return "op" if name in OPS else "block" if name in BLOCKS else None


def summary(name: str) -> str:
    if name in OPS:
        return type(OPS[name]).summary()
    if name in BLOCKS:
        return _block_doc(name).split("\n\n")[0].replace("\n", " ")
    return ""


@lru_cache(maxsize=None)
def markdown(name: str) -> str:
    """The reference section of an op or block: summary, shapes, notes, settings, example."""
    if name in OPS:
        lines = reference._op_section(OPS[name])
        return "\n".join(lines[2:]).strip().replace("#### ", "### ", 1)
    if name in BLOCKS:
        block = BLOCKS[name]
        table = reference._table(type(block).Params, {}, nested=block.nested, empty="No settings.")
        return f"### {name} (block)\n\n{_block_doc(name)}\n\n#### Settings\n\n" + "\n".join(table)
    return ""


@lru_cache(maxsize=None)
def settings(name: str) -> tuple[Setting, ...]:
    """The settings an op or block takes, in declaration order."""
    if name in OPS:
        return _settings(type(OPS[name]).Params, {})
    if name in BLOCKS:
        return _settings(type(BLOCKS[name]).Params, {}, nested=BLOCKS[name].nested)
    return ()


@lru_cache(maxsize=None)
def envelope_settings() -> tuple[Setting, ...]:
    """Keys any layer may carry (`id`, `from`, `repeat`, ...)."""
    return _settings(Envelope, ENVELOPE_DOCS)


@lru_cache(maxsize=None)
def top_level_settings() -> tuple[Setting, ...]:
    return _settings(SpecFile, TOP_LEVEL_DOCS, nested=("layers",))


def setting_markdown(setting: Setting, owner: str) -> str:
    text = f"`{setting.key}` of `{owner}`: {setting.type}; default {setting.default}"
    return text + (f"\n\n{setting.meaning}" if setting.meaning else "")


def _settings(model, meanings: dict, nested=()) -> tuple[Setting, ...]:
    return tuple(Setting(row["key"], row["type"], reference.default_text(row, "`"), row["description"],
                         row["required"])
                 for row in reference.settings(model, meanings, nested))


def _block_doc(name: str) -> str:
    cls = type(BLOCKS[name])
    doc = cls.__dict__.get("__doc__") or sys.modules[cls.__module__].__doc__ or ""
    return inspect.cleandoc(doc)
