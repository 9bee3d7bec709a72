"""Blocks are macros: each expands into primitive ops and merges through the `Builder`.

A block declares its settings schema and which of its keys hold nested layers (those are
built later, in the block's own scope, rather than evaluated up front).
"""
from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict


class BlockParams(BaseModel):
    # built on first use: `check` of a spec pays only for the blocks it uses
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True, defer_build=True)


class Block:
    """Base class of a built-in block. `expand` returns the name of the block's output node."""

    name: ClassVar[str]
    Params: ClassVar[type[BlockParams]]
    nested: ClassVar[tuple[str, ...]] = ()  # keys whose values are layers, built lazily

    def expand(self, builder, p, scope, src) -> str:
        raise NotImplementedError


class BlockRegistry(dict):
    def register(self, cls):
        if cls.name in self:
            raise ValueError(f"block '{cls.name}' is already registered")
        self[cls.name] = cls()
        return cls


BLOCKS = BlockRegistry()
register_block = BLOCKS.register
