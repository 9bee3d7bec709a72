"""A tiny, safe arithmetic evaluator for `vars` and template arguments.

``$name`` reads a variable; ``${expr}`` evaluates integer/float arithmetic over variables:
``${width * 2}``, ``${out // 4}``, ``${max(8, c // 16)}``, ``${make_divisible(16 * width, 8)}``,
and comparisons for conditions (``${expand != 1}``, ``${stride == 1 and se}``). It parses
with `ast` and walks only whitelisted nodes — never `eval`.

Bounded by construction: an expression has at most MAX_EXPR_CHARS characters and
MAX_EXPR_NODES syntax nodes (checked before and right after parsing); arithmetic takes numbers
only (a string variable times 10^8 is an error, not 800 MB of text); every intermediate result
must be a finite real of magnitude at most MAX_MAGNITUDE; exponents are small.
"""
from __future__ import annotations

import ast
import math
import operator
import re

_BINARY = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}
_COMPARE = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
            ast.Gt: operator.gt, ast.GtE: operator.ge}
_ORDERING = (ast.Lt, ast.LtE, ast.Gt, ast.GtE)  # numbers only; == and != compare anything


def make_divisible(value, divisor, min_value=None) -> int:
    """`value` rounded to the nearest multiple of `divisor`, at least `min_value` (default:
    `divisor`), and never more than 10 % below `value` — the rule of torchvision's
    `_make_divisible` (MobileNet, MnasNet, EfficientNet channel counts) and timm's
    `make_divisible`: make_divisible(18, 8) = 24 (16 would lose 11 %), make_divisible(60, 8) = 64."""
    if type(divisor) is not int or divisor < 1:
        raise ValueError(f"the divisor must be a positive integer. Received: {divisor!r}")
    floor_value = divisor if min_value is None else min_value
    rounded = max(floor_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:  # do not round down by more than 10 %
        rounded += divisor
    return int(rounded)


_FUNCTIONS = {"min": min, "max": max, "int": int, "round": round,
              "floor": math.floor, "ceil": math.ceil, "abs": abs, "make_divisible": make_divisible}
_NAME = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)$")
_EXPR = re.compile(r"^\$\{(.*)\}$", re.S)
MAX_MAGNITUDE = 10**15  # below 2^53: every integer result is exact
MAX_EXPONENT = 64
MAX_EXPR_CHARS = 1000
MAX_EXPR_NODES = 400


class ExprError(Exception):
    """Why an expression cannot be evaluated. `code` is the error code (AS207 for an unknown
    variable, AS208 otherwise); `variable` names the unknown variable, if that is the cause."""

    def __init__(self, message: str, code: str = "AS208", variable: str | None = None):
        super().__init__(message)
        self.code = code
        self.variable = variable


def is_expression(value) -> bool:
    return isinstance(value, str) and value.startswith("$")


def evaluate(text: str, scope: dict):
    """Evaluate '$name' or '${expr}' against `scope`. Raises ExprError with a readable reason."""
    if m := _NAME.match(text):
        return _lookup(m.group(1), scope)
    if len(text) > MAX_EXPR_CHARS:
        raise ExprError(f"expression is too long ({len(text):,} characters, the limit is {MAX_EXPR_CHARS})")
    if m := _EXPR.match(text):
        tree = _parse(m.group(1).strip(), text)
        try:
            return _walk(tree.body, scope, text)
        except RecursionError:
            raise ExprError(f"expression is nested too deeply: '{_short(text)}'") from None
    raise ExprError(f"'{_short(text)}' is neither '$name' nor '${{expression}}'")


def _parse(source: str, text: str):
    try:
        tree = ast.parse(source, mode="eval")
    except (SyntaxError, ValueError):  # ValueError: NUL bytes
        raise ExprError(f"cannot parse expression '{_short(text)}'") from None
    except (RecursionError, MemoryError):
        raise ExprError(f"expression is nested too deeply: '{_short(text)}'") from None
    if sum(1 for _ in ast.walk(tree)) > MAX_EXPR_NODES:
        raise ExprError(f"expression is too complex (more than {MAX_EXPR_NODES} terms): '{_short(text)}'")
    return tree


def _lookup(name: str, scope: dict):
    if name not in scope:
        from archspec.errors import did_you_mean

        hint = did_you_mean(name, scope)
        known = ", ".join(sorted(scope)) or "none"
        raise ExprError(f"unknown variable '{name}' (known: {known})" + (f"; {hint}" if hint else ""),
                        code="AS207", variable=name)
    return scope[name]


def _walk(node, scope, text):
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return _bounded(node.value, text)
    if isinstance(node, ast.Name):
        return _lookup(node.id, scope)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left = _number(_walk(node.left, scope, text), text)
        right = _number(_walk(node.right, scope, text), text)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise ExprError(f"exponent too large in '{_short(text)}'")
        try:
            value = _BINARY[type(node.op)](left, right)
        except ZeroDivisionError:
            raise ExprError(f"division by zero in '{_short(text)}'") from None
        except (OverflowError, ValueError):
            raise ExprError(f"value of '{_short(text)}' is out of range") from None
        return _bounded(value, text)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_number(_walk(node.operand, scope, text), text))
    if isinstance(node, (ast.Compare, ast.BoolOp)) or (isinstance(node, ast.UnaryOp)
                                                        and isinstance(node.op, ast.Not)):
        return _condition(node, scope, text)
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id in _FUNCTIONS and not node.keywords):
        args = [_number(_walk(a, scope, text), text) for a in node.args]
        try:
            return _bounded(_FUNCTIONS[node.func.id](*args), text)
        except (TypeError, ValueError, OverflowError) as exc:
            raise ExprError(f"{node.func.id}() failed in '{_short(text)}': {exc}") from None
    raise ExprError(f"unsupported syntax in '{_short(text)}': only numbers, variables, + - * / // % **, "
                    f"comparisons, and/or/not and {', '.join(sorted(_FUNCTIONS))}() are allowed")


def _condition(node, scope, text) -> bool:
    """A comparison (`a == b`, `1 <= s < 3`) or `and`/`or`/`not` of true/false values."""
    if isinstance(node, ast.UnaryOp):
        return not _truth(_walk(node.operand, scope, text), text)
    if isinstance(node, ast.BoolOp):
        values = (_truth(_walk(v, scope, text), text) for v in node.values)
        return all(values) if isinstance(node.op, ast.And) else any(values)
    left = _walk(node.left, scope, text)
    for op, right_node in zip(node.ops, node.comparators):
        if type(op) not in _COMPARE:
            raise ExprError(f"unsupported comparison in '{_short(text)}': use == != < <= > >=")
        right = _walk(right_node, scope, text)
        if isinstance(op, _ORDERING):
            left, right = _number(left, text), _number(right, text)
        if not _COMPARE[type(op)](left, right):
            return False
        left = right
    return True


def _truth(value, text) -> bool:
    """`and`, `or` and `not` take true/false only (not 0 or '', which would hide mistakes)."""
    if type(value) is not bool:
        raise ExprError(f"'and', 'or' and 'not' in '{_short(text)}' need true or false. Received: "
                        f"{_short(repr(value))} ({type(value).__name__})")
    return value


def _number(value, text):
    """Arithmetic takes numbers only (a bool or a string is not one)."""
    if type(value) not in (int, float):
        raise ExprError(f"arithmetic in '{_short(text)}' needs numbers. Received: {_short(repr(value))} "
                        f"({type(value).__name__})")
    return value


def _bounded(value, text):
    if type(value) not in (int, float):  # complex from (-8) ** 0.5, for one
        raise ExprError(f"value of '{_short(text)}' is not a real number")
    if isinstance(value, float) and not math.isfinite(value):
        raise ExprError(f"value of '{_short(text)}' is not finite")
    if abs(value) > MAX_MAGNITUDE:
        raise ExprError(f"value of '{_short(text)}' is too large (the limit is {MAX_MAGNITUDE:.0e})")
    return value


def _short(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "..."
