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
import re
from functools import lru_cache
from typing import Any

MAX_LENGTH = 500
MAX_NODES = 200
# Every value the evaluator produces is bounded BEFORE it is computed (a condition or transform
# must never build a 100 MB string): strings/bytes in characters, lists in items (recursively),
# integers in bits, %-format fields in width and precision.
MAX_VALUE_SIZE = 100_000
MAX_INT_BITS = 4_096
MAX_FORMAT_WIDTH = 100
MAX_REPEAT = MAX_VALUE_SIZE  # kept for callers of the old name

_SEQUENCE = (str, bytes, list, tuple)
# printf-style conversions: %[(key)][flags][width][.precision][length]type
_FORMAT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d*))?[hlL]?(.)", re.S)


def size_of(value: Any, limit: int = MAX_VALUE_SIZE) -> int:
    """A value's size in the units above; stops counting once over `limit` (cheap on huge values)."""
    total, stack = 0, [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, str | bytes):
            total += len(item)
        elif isinstance(item, list | tuple):
            total += 1 + len(item)
            if total <= limit:
                stack.extend(item)
        elif isinstance(item, dict):
            total += 1 + len(item)
            if total <= limit:
                stack.extend(item.keys())
                stack.extend(item.values())
        elif isinstance(item, int) and not isinstance(item, bool):
            total += 1 + item.bit_length() // 64
        else:
            total += 1
    return total


def _too_big(what: str) -> ExpressionError:
    return ExpressionError(f"{what} would exceed the expression size limit ({MAX_VALUE_SIZE} characters/items, "
                           f"{MAX_INT_BITS}-bit integers)")


def _int_bits(value: Any) -> int:
    return abs(int(value)).bit_length() if isinstance(value, int) else 0


def _safe_add(a: Any, b: Any) -> Any:
    if isinstance(a, _SEQUENCE) and isinstance(b, _SEQUENCE):
        if size_of(a) + size_of(b) > MAX_VALUE_SIZE:
            raise _too_big("concatenation")
    elif max(_int_bits(a), _int_bits(b)) + 1 > MAX_INT_BITS:
        raise _too_big("addition")
    return operator.add(a, b)


def _safe_sub(a: Any, b: Any) -> Any:
    if max(_int_bits(a), _int_bits(b)) + 1 > MAX_INT_BITS:
        raise _too_big("subtraction")
    return operator.sub(a, b)


def _safe_mul(a: Any, b: Any) -> Any:
    # Bound the RESULT of a repetition, not each factor: 'a' * 10000 * 10000 is refused at once.
    if isinstance(a, _SEQUENCE) or isinstance(b, _SEQUENCE):
        seq, count = (a, b) if isinstance(a, _SEQUENCE) else (b, a)
        if isinstance(count, int) and count > 0:
            unit = size_of(seq)
            if unit and count > MAX_VALUE_SIZE // unit:
                raise _too_big("repetition")
    elif _int_bits(a) + _int_bits(b) > MAX_INT_BITS:
        raise _too_big("multiplication")
    return operator.mul(a, b)


def _safe_mod(a: Any, b: Any) -> Any:
    if isinstance(a, str | bytes):
        text = a.decode("latin-1") if isinstance(a, bytes) else a
        specs = _FORMAT_SPEC.findall(text)
        for width, precision, _kind in specs:
            if "*" in (width, precision):
                raise ExpressionError("'*' widths are not allowed in a format")
            if int(width or 0) > MAX_FORMAT_WIDTH or int(precision or 0) > MAX_FORMAT_WIDTH:
                raise ExpressionError(f"format width or precision over {MAX_FORMAT_WIDTH}")
        # Each conversion adds at most its width or its argument's size.
        args = b if isinstance(b, tuple | list) else [b]
        bound = size_of(a) + len(specs) * MAX_FORMAT_WIDTH + sum(size_of(x) for x in args)
        if bound > MAX_VALUE_SIZE:
            raise _too_big("formatting")
        if isinstance(b, list):
            b = tuple(b)  # lists are this language's tuples
    return operator.mod(a, b)


_BINOPS = {
    ast.Add: _safe_add,
    ast.Sub: _safe_sub,
    ast.Mult: _safe_mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: _safe_mod,
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
    except (MemoryError, RecursionError):
        raise ExpressionError("expression is nested too deeply") from None
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
        if isinstance(node, ast.Constant) and not isinstance(node.value, str | int | float | type(None)):
            # complex (1j), bytes (b''), Ellipsis: not JSON, so never a step's output or a condition's value
            raise ExpressionError(f"{type(node.value).__name__} literals are not allowed in an expression")
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
            items = [_eval(e, names) for e in elts]
            if size_of(items) > MAX_VALUE_SIZE:  # [big, big, big] copies context values
                raise _too_big("list")
            return items
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
    except (TypeError, ZeroDivisionError, ValueError, OverflowError, KeyError, IndexError) as exc:
        raise ExpressionError(f"cannot evaluate {source!r}: {exc}") from None
    except (MemoryError, RecursionError):
        raise ExpressionError(f"cannot evaluate {source!r}: too large") from None


def validate(source: str) -> None:
    compile_expression(source)
