"""The spec's top-level schema and the common envelope every layer may carry.

Layers themselves are validated by their op's or block's own schema (looked up by name, the
discriminator), so an error names one op's rules, not a pile of union members.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, field_validator

from archspec.names import MAX_NAME, NAME_PATTERN, InvalidName, check_name

FORMAT_VERSION = 1
ID_PATTERN = NAME_PATTERN  # kept for the JSON Schema: the full rule is archspec.names.check_name
# The pattern is for editors (JSON Schema); check_name applies the whole rule (keywords,
# reserved attribute names, length) with a message that says which part was broken.
Name = Annotated[str, Field(json_schema_extra={"pattern": NAME_PATTERN, "maxLength": MAX_NAME}),
                 AfterValidator(check_name)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, defer_build=True)


class TemplateDef(Strict):
    """A user-defined block: named arguments and a body (one layer, or a list of layers)."""

    args: dict[str, Any] = Field(default_factory=dict)
    body: Union[list, dict, str]
    doc: str = ""


class SpecFile(Strict):
    archspec: Literal[1] = Field(description="format version")
    name: Optional[Name] = None
    description: str = ""
    input: Optional[list[Union[int, str]]] = None
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
        if not 1 <= len(value) <= 4 or any(not _size(v) for v in value):
            raise ValueError("input is [C, H, W] (or [C, L], [C, D, H, W], [F]) of positive integers "
                             f"(or `$variables`); the batch axis is implicit. Received: {value}")
        return value

    @field_validator("vars")
    @classmethod
    def _var_names(cls, value):
        for key in value:
            if not key.isidentifier():
                raise InvalidName(f"variable names must be identifiers. Received: {key!r}")
        return value

    @field_validator("templates")
    @classmethod
    def _template_names(cls, value):
        for key in value:
            check_name(key)
        return value


def _size(value) -> bool:
    """An input size: a positive integer, or a `$name` / `${expr}` evaluated with the vars."""
    return (type(value) is int and value >= 1) or (isinstance(value, str) and value.startswith("$"))


ENVELOPE_KEYS = ("id", "from", "trainable", "expect", "training_only", "output", "repeat", "first", "copy_id",
                 "if", "doc", "tie")
COPY_INDEX = "{index}"  # where a copy's number goes in `copy_id`


def check_copy_id(pattern: str) -> str:
    """`copy_id` names each copy of a repeat: a name with `{index}` in it (`block1-{index}`)."""
    if pattern.count(COPY_INDEX) != 1:
        raise ValueError(f"copy_id must contain '{COPY_INDEX}' once, where each copy's number goes "
                         f"(e.g. 'block1-{{index}}'). Received: {pattern!r}")
    check_name(pattern.replace(COPY_INDEX, "0"))
    return pattern


TieTarget = Union[str, Annotated[int, Field(ge=0, strict=True)]]


class Tie(Strict):
    """`tie: {to: enc, transpose: true}`: use layer `to`'s weight transposed: a conv_transpose
    with a conv's weight (or the reverse), a linear with a linear's weight as W.t(); the layer
    keeps its own bias. `transpose: false` is the same as `tie: enc`."""

    to: TieTarget
    transpose: StrictBool = False

    @field_validator("to")
    @classmethod
    def _to_text(cls, value):
        return str(value) if isinstance(value, int) else value


class Envelope(Strict):
    """Keys any layer may carry, whatever its op."""

    id: Optional[Name] = None
    from_: Optional[Union[str, list[str]]] = Field(None, alias="from")
    trainable: Optional[bool] = None
    expect: Optional[list[int]] = None
    training_only: bool = False
    output: bool = False
    repeat: Optional[int] = Field(None, ge=1, le=100_000)
    first: Optional[dict] = None
    copy_id: Annotated[Optional[str], AfterValidator(lambda v: v if v is None else check_copy_id(v))] = None
    if_: Optional[StrictBool] = Field(None, alias="if")
    doc: str = ""
    # An earlier layer whose parameters this one uses (graph/tie.py); a repeat's copies are
    # named by index, so `tie: 0` (a YAML number) names copy 0. A mapping (`Tie`) can ask for
    # the layer's weight transposed.
    tie: Optional[Union[TieTarget, Tie]] = None

    @field_validator("tie", mode="before")
    @classmethod
    def _tie_mapping(cls, value):
        """One plain message for a wrong mapping (pydantic would list every union member's)."""
        if not isinstance(value, dict):
            return value
        unknown = sorted(str(k) for k in value if k not in Tie.model_fields)
        if unknown:
            raise ValueError(f"unknown key '{unknown[0]}' in the tie mapping (known: to, transpose)")
        to = value.get("to")
        if not (isinstance(to, str) or (type(to) is int and to >= 0)):
            raise ValueError("a tie mapping needs 'to', the earlier layer whose weight it uses "
                             f"(`tie: {{to: enc, transpose: true}}`). Received: to={to!r}")
        if type(value.get("transpose", False)) is not bool:
            raise ValueError(f"transpose must be true or false. Received: transpose={value['transpose']!r}")
        return value

    @field_validator("tie")
    @classmethod
    def _tie_text(cls, value):
        return str(value) if isinstance(value, int) else value

    @property
    def sources(self) -> Optional[list[str]]:
        if self.from_ is None:
            return None
        return [self.from_] if isinstance(self.from_, str) else list(self.from_)
