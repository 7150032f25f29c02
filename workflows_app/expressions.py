"""Safe condition expressions over an execution's context: an `ast` whitelist, never `eval`.

Allowed: literals, names, dotted/indexed access into dicts and lists, comparisons, `and`/`or`/
`not`, arithmetic, `in`, and `x if c else y`. Refused: calls, dunder or private names,
lambdas, comprehensions, and anything over MAX_LENGTH characters or MAX_NODES nodes. A name
or key that is missing evaluates to None, so `category == 'urgent'` is simply false when no
step produced a category.
"""
from __future__ import annotations

import ast
import operator
from functools import lru_cache
from typing import Any

MAX_LENGTH = 500
MAX_NODES = 200
MAX_REPEAT = 10_000



def _safe_mul(a: Any, b: Any) -> Any:
    # "x" * 10**9 would exhaust memory: bound sequence repetition.
    if isinstance(a, str | list | tuple) or isinstance(b, str | list | tuple):
        count = b if isinstance(a, str | list | tuple) else a
        if isinstance(count, int) and count > MAX_REPEAT:
            raise ExpressionError(f"repetition over {MAX_REPEAT}")
    return operator.mul(a, b)


_BINOPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: _safe_mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_CMPOPS = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
}
_UNARY = {ast.Not: operator.not_, ast.USub: operator.neg, ast.UAdd: operator.pos}
_ALLOWED = (
    ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.BinOp, ast.Compare, ast.IfExp,
    ast.Name, ast.Load, ast.Constant, ast.Attribute, ast.Subscript, ast.List, ast.Tuple,
    *_BINOPS, *_CMPOPS, *_UNARY,
)
_SAFE_NAMES = {"true": True, "false": False, "null": None, "True": True, "False": False, "None": None}


class ExpressionError(ValueError):
    pass


@lru_cache(maxsize=1024)
def compile_expression(source: str) -> ast.Expression:
    """Parse and check an expression; raises ExpressionError saying what is refused."""
    if not isinstance(source, str):
        raise ExpressionError("expression must be a string")
    if len(source) > MAX_LENGTH:
        raise ExpressionError(f"expression longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"syntax error: {exc.msg}") from None
    nodes = list(ast.walk(tree))
    if len(nodes) > MAX_NODES:
        raise ExpressionError(f"expression has more than {MAX_NODES} parts")
    for node in nodes:
        if not isinstance(node, _ALLOWED):
            raise ExpressionError(f"{type(node).__name__} is not allowed in an expression")
        name = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else None
        if name is not None and name.startswith("_"):
            raise ExpressionError(f"access to '{name}' is not allowed")
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("__"):
            raise ExpressionError("dunder keys are not allowed")
    return tree


def _lookup(container: Any, key: Any) -> Any:
    if isinstance(container, dict):
        return container.get(key)
    if isinstance(container, list | tuple) and isinstance(key, int) and -len(container) <= key < len(container):
        return container[key]
    return None


def _eval(node: ast.AST, names: dict) -> Any:
    match node:
        case ast.Expression(body=body):
            return _eval(body, names)
        case ast.Constant(value=value):
            return value
        case ast.Name(id=name):
            return names[name] if name in names else _SAFE_NAMES.get(name)
        case ast.Attribute(value=value, attr=attr):
            return _lookup(_eval(value, names), attr)
        case ast.Subscript(value=value, slice=index):
            return _lookup(_eval(value, names), _eval(index, names))
        case ast.List(elts=elts) | ast.Tuple(elts=elts):
            return [_eval(e, names) for e in elts]
        case ast.BoolOp(op=ast.And(), values=values):
            result = True
            for v in values:
                result = _eval(v, names)
                if not result:
                    return result
            return result
        case ast.BoolOp(op=ast.Or(), values=values):
            result = False
            for v in values:
                result = _eval(v, names)
                if result:
                    return result
            return result
        case ast.UnaryOp(op=op, operand=operand):
            return _UNARY[type(op)](_eval(operand, names))
        case ast.BinOp(op=op, left=left, right=right):
            return _BINOPS[type(op)](_eval(left, names), _eval(right, names))
        case ast.IfExp(test=test, body=body, orelse=orelse):
            return _eval(body, names) if _eval(test, names) else _eval(orelse, names)
        case ast.Compare(left=left, ops=ops, comparators=comparators):
            current = _eval(left, names)
            for op, comp in zip(ops, comparators, strict=True):
                right = _eval(comp, names)
                try:
                    ok = _CMPOPS[type(op)](current, right)
                except TypeError:  # None < 0.7, 'a' in None: a missing value never matches
                    return False
                if not ok:
                    return False
                current = right
            return True
    raise ExpressionError(f"{type(node).__name__} is not allowed")  # pragma: no cover - checked at compile


def evaluate(source: str, names: dict) -> Any:
    try:
        return _eval(compile_expression(source), names)
    except ExpressionError:
        raise
    except (TypeError, ZeroDivisionError, ValueError, OverflowError) as exc:
        raise ExpressionError(f"cannot evaluate {source!r}: {exc}") from None


def validate(source: str) -> None:
    compile_expression(source)
