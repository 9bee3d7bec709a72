"""A tiny, safe arithmetic evaluator for `vars` and template arguments.

``$name`` reads a variable; ``${expr}`` evaluates integer/float arithmetic over variables:
``${width * 2}``, ``${out // 4}``, ``${max(8, c // 16)}``. It parses with `ast` and walks
only whitelisted nodes — never `eval`.
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
_FUNCTIONS = {"min": min, "max": max, "int": int, "round": round,
              "floor": math.floor, "ceil": math.ceil, "abs": abs}
_NAME = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)$")
_EXPR = re.compile(r"^\$\{(.*)\}$", re.S)
MAX_MAGNITUDE = 10**15


class ExprError(Exception):
    pass


def is_expression(value) -> bool:
    return isinstance(value, str) and value.startswith("$")


def evaluate(text: str, scope: dict):
    """Evaluate '$name' or '${expr}' against `scope`. Raises ExprError with a readable reason."""
    if m := _NAME.match(text):
        return _lookup(m.group(1), scope)
    if m := _EXPR.match(text):
        try:
            tree = ast.parse(m.group(1).strip(), mode="eval")
        except SyntaxError:
            raise ExprError(f"cannot parse expression '{text}'") from None
        return _walk(tree.body, scope, text)
    raise ExprError(f"'{text}' is neither '$name' nor '${{expression}}'")


def _lookup(name: str, scope: dict):
    if name not in scope:
        from archspec.errors import did_you_mean

        hint = did_you_mean(name, scope)
        known = ", ".join(sorted(scope)) or "none"
        raise ExprError(f"unknown variable '{name}' (known: {known})" + (f"; {hint}" if hint else ""))
    return scope[name]


def _walk(node, scope, text):
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.Name):
        return _lookup(node.id, scope)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _walk(node.left, scope, text), _walk(node.right, scope, text)
        if isinstance(node.op, ast.Pow) and abs(right) > 64:
            raise ExprError(f"exponent too large in '{text}'")
        try:
            value = _BINARY[type(node.op)](left, right)
        except ZeroDivisionError:
            raise ExprError(f"division by zero in '{text}'") from None
        return _bounded(value, text)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_walk(node.operand, scope, text))
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id in _FUNCTIONS and not node.keywords):
        args = [_walk(a, scope, text) for a in node.args]
        try:
            return _bounded(_FUNCTIONS[node.func.id](*args), text)
        except (TypeError, ValueError) as exc:
            raise ExprError(f"{node.func.id}() failed in '{text}': {exc}") from None
    raise ExprError(f"unsupported syntax in '{text}': only numbers, variables, + - * / // % ** "
                    f"and {', '.join(sorted(_FUNCTIONS))}() are allowed")


def _bounded(value, text):
    if isinstance(value, (int, float)) and abs(value) > MAX_MAGNITUDE:
        raise ExprError(f"value of '{text}' is too large")
    return value
