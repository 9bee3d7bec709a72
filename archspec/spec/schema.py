"""The spec's top-level schema and the common envelope every layer may carry.

Layers themselves are validated by their op's or block's own schema (looked up by name, the
discriminator), so an error names one op's rules, not a pile of union members.
"""
from __future__ import annotations

from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

FORMAT_VERSION = 1
ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$|^[0-9]+$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class TemplateDef(Strict):
    """A user-defined block: named arguments and a body (one layer, or a list of layers)."""

    args: dict[str, Any] = Field(default_factory=dict)
    body: Union[list, dict, str]
    doc: str = ""


class SpecFile(Strict):
    archspec: Literal[1] = Field(description="format version")
    name: Optional[str] = None
    description: str = ""
    input: Optional[list[int]] = None
    vars: dict[str, Union[int, float, bool, str]] = Field(default_factory=dict)
    templates: dict[str, TemplateDef] = Field(default_factory=dict)
    layers: Optional[list] = None
    extends: Optional[str] = None
    override: dict[str, Any] = Field(default_factory=dict)

    @field_validator("input")
    @classmethod
    def _input(cls, value):
        if value is None:
            return value
        if not 1 <= len(value) <= 4 or any(type(v) is not int or v < 1 for v in value):
            raise ValueError("input is [C, H, W] (or [C, L], [C, D, H, W], [F]) of positive integers; "
                             f"the batch axis is implicit. Received: {value}")
        return value

    @field_validator("vars")
    @classmethod
    def _var_names(cls, value):
        for key in value:
            if not key.isidentifier():
                raise ValueError(f"variable names must be identifiers. Received: '{key}'")
        return value


ENVELOPE_KEYS = ("id", "from", "trainable", "expect", "training_only", "output", "repeat", "first", "doc")


class Envelope(Strict):
    """Keys any layer may carry, whatever its op."""

    id: Optional[str] = Field(None, pattern=ID_PATTERN)
    from_: Optional[Union[str, list[str]]] = Field(None, alias="from")
    trainable: Optional[bool] = None
    expect: Optional[list[int]] = None
    training_only: bool = False
    output: bool = False
    repeat: Optional[int] = Field(None, ge=1, le=100_000)
    first: Optional[dict] = None
    doc: str = ""

    @property
    def sources(self) -> Optional[list[str]]:
        if self.from_ is None:
            return None
        return [self.from_] if isinstance(self.from_, str) else list(self.from_)
