"""The safe expression evaluator: plain data in, plain data out.

No ``eval``, no attribute access on Python objects, no text splicing: an
expression can only read the mappings and lists it is given and call the
pure functions in :data:`FUNCTIONS`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from . import ir
from .errors import SagaError
from .source import NO_SPAN, Span

__all__ = ["FUNCTIONS", "ExprError", "Function", "evaluate", "is_constant", "references", "to_text"]


class ExprError(SagaError):
    """An expression could not be evaluated (missing key, wrong type ...)."""

    def __init__(self, message: str, span: Span = NO_SPAN) -> None:
        super().__init__(message)
        self.span = span


class _Missing:
    """Marker for a lookup that found nothing (distinct from null)."""


MISSING = _Missing()


def _type_name(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int | float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list | tuple):
        return "list"
    if isinstance(v, Mapping):
        return "map"
    return type(v).__name__


def to_text(v: Any) -> str:
    """How a value is written into an interpolated string."""
    if isinstance(v, str):
        return v
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    if isinstance(v, int | float):
        return repr(v)
    return json.dumps(v, sort_keys=True, separators=(",", ":"), default=str)


def _num(v: Any, fn: str) -> float | int:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ExprError(f"{fn}() needs a number, got {_type_name(v)}")
    return v


def _len(v: Any) -> int:
    if isinstance(v, str | list | tuple | Mapping):
        return len(v)
    raise ExprError(f"len() needs a string, list or map, got {_type_name(v)}")


def _default(v: Any, fallback: Any) -> Any:
    return fallback if v is None else v


def _coalesce(*vs: Any) -> Any:
    return next((v for v in vs if v is not None), None)


def _contains(container: Any, item: Any) -> bool:
    if isinstance(container, str):
        if not isinstance(item, str):
            raise ExprError("contains() on a string needs a string to look for")
        return item in container
    if isinstance(container, list | tuple):
        return item in container
    if isinstance(container, Mapping):
        return item in container
    raise ExprError(f"contains() needs a string, list or map, got {_type_name(container)}")


def _str(v: Any) -> str:
    return to_text(v)


def _int(v: Any) -> int:
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ExprError("int() of a non-finite number")
        return int(v)
    if isinstance(v, str):
        try:
            return int(v.strip())
        except ValueError:
            raise ExprError(f"int() cannot read {v!r}") from None
    raise ExprError(f"int() needs a number or string, got {_type_name(v)}")


def _float(v: Any) -> float:
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v.strip())
        except ValueError:
            raise ExprError(f"float() cannot read {v!r}") from None
    raise ExprError(f"float() needs a number or string, got {_type_name(v)}")


def _text_fn(name: str, f: Callable[[str], Any]) -> Callable[[Any], Any]:
    def run(v: Any) -> Any:
        if not isinstance(v, str):
            raise ExprError(f"{name}() needs a string, got {_type_name(v)}")
        return f(v)

    return run


def _list_fn(name: str, f: Callable[[list[Any]], Any]) -> Callable[[Any], Any]:
    def run(v: Any) -> Any:
        if not isinstance(v, list | tuple):
            raise ExprError(f"{name}() needs a list, got {_type_name(v)}")
        try:
            return f(list(v))
        except TypeError:
            raise ExprError(f"{name}() needs a list of comparable values") from None

    return run


def _map_fn(name: str, f: Callable[[Mapping[str, Any]], Any]) -> Callable[[Any], Any]:
    def run(v: Any) -> Any:
        if not isinstance(v, Mapping):
            raise ExprError(f"{name}() needs a map, got {_type_name(v)}")
        return f(v)

    return run


def _join(items: Any, sep: Any = "") -> str:
    if not isinstance(items, list | tuple) or not isinstance(sep, str):
        raise ExprError("join() needs a list and a string separator")
    return sep.join(to_text(i) for i in items)


def _split(text: Any, sep: Any) -> list[str]:
    if not isinstance(text, str) or not isinstance(sep, str) or not sep:
        raise ExprError("split() needs a string and a non-empty string separator")
    return text.split(sep)


def _round(v: Any, digits: Any = 0) -> float | int:
    n = _num(v, "round")
    if isinstance(digits, bool) or not isinstance(digits, int):
        raise ExprError("round() needs whole digits")
    return round(n, digits) if digits else round(n)


def _minmax(name: str, f: Callable[..., Any]) -> Callable[..., Any]:
    def run(*vs: Any) -> Any:
        items = list(vs[0]) if len(vs) == 1 and isinstance(vs[0], list | tuple) else list(vs)
        if not items:
            raise ExprError(f"{name}() of nothing")
        try:
            return f(items)
        except TypeError:
            raise ExprError(f"{name}() needs comparable values") from None

    return run


def _sum(v: Any) -> float | int:
    if not isinstance(v, list | tuple):
        raise ExprError(f"sum() needs a list, got {_type_name(v)}")
    return sum(_num(x, "sum") for x in v)


@dataclass(frozen=True, slots=True)
class Function:
    """A pure function callable from expressions, with its arity."""

    name: str
    min_args: int
    max_args: int | None
    impl: Callable[..., Any]
    doc: str


FUNCTIONS: dict[str, Function] = {
    f.name: f
    for f in [
        Function("len", 1, 1, _len, "length of a string, list or map"),
        Function("default", 2, 2, _default, "the first argument, or the second when the first is null"),
        Function("coalesce", 1, None, _coalesce, "the first argument that is not null"),
        Function("contains", 2, 2, _contains, "whether a string, list or map contains a value"),
        Function("str", 1, 1, _str, "a value as text"),
        Function("int", 1, 1, _int, "a number or numeric text as an integer"),
        Function("float", 1, 1, _float, "a number or numeric text as a float"),
        Function("lower", 1, 1, _text_fn("lower", str.lower), "text in lower case"),
        Function("upper", 1, 1, _text_fn("upper", str.upper), "text in upper case"),
        Function("trim", 1, 1, _text_fn("trim", str.strip), "text without surrounding blanks"),
        Function("join", 1, 2, _join, "list items joined into text with a separator"),
        Function("split", 2, 2, _split, "text split at a separator"),
        Function("keys", 1, 1, _map_fn("keys", lambda m: sorted(m)), "the sorted keys of a map"),
        Function(
            "values", 1, 1, _map_fn("values", lambda m: [m[k] for k in sorted(m)]), "a map's values, by sorted key"
        ),
        Function("min", 1, None, _minmax("min", min), "the smallest of a list or of the arguments"),
        Function("max", 1, None, _minmax("max", max), "the largest of a list or of the arguments"),
        Function("sum", 1, 1, _sum, "the sum of a list of numbers"),
        Function("abs", 1, 1, lambda v: abs(_num(v, "abs")), "absolute value"),
        Function("round", 1, 2, _round, "a number rounded to some digits (default 0)"),
        Function("sorted", 1, 1, _list_fn("sorted", sorted), "a list in ascending order"),
        Function(
            "unique",
            1,
            1,
            _list_fn("unique", lambda xs: [x for i, x in enumerate(xs) if x not in xs[:i]]),
            "a list without repeated items",
        ),
        Function(
            "range",
            1,
            2,
            lambda a, b=None: list(range(_int(a))) if b is None else list(range(_int(a), _int(b))),
            "the integers from 0 (or a) up to n (exclusive)",
        ),
    ]
}

Env = Mapping[str, Any]


def _key(container: Any, key: Any, span: Span) -> Any:
    if isinstance(container, Mapping):
        if not isinstance(key, str):
            raise ExprError(f"map keys are strings, got {_type_name(key)}", span)
        if key not in container:
            raise ExprError(f"no field {key!r}", span)
        return container[key]
    if isinstance(container, list | tuple):
        if isinstance(key, bool) or not isinstance(key, int):
            raise ExprError(f"list index must be an integer, got {_type_name(key)}", span)
        if not -len(container) <= key < len(container):
            raise ExprError(f"index {key} out of range for a list of {len(container)}", span)
        return container[key]
    if container is None:
        raise ExprError(f"cannot read {to_text(key)!r} of null (use default(...))", span)
    if isinstance(container, str):
        if isinstance(key, bool) or not isinstance(key, int):
            raise ExprError("text index must be an integer", span)
        if not -len(container) <= key < len(container):
            raise ExprError(f"index {key} out of range for text of length {len(container)}", span)
        return container[key]
    raise ExprError(f"cannot index a {_type_name(container)}", span)


def _arith(op: str, a: Any, b: Any, span: Span) -> Any:
    if op == "+":
        if isinstance(a, str) and isinstance(b, str):
            return a + b
        if isinstance(a, list) and isinstance(b, list):
            return a + b
    for v in (a, b):
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ExprError(f"'{op}' needs numbers, got {_type_name(a)} and {_type_name(b)}", span)
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if b == 0:
        raise ExprError("division by zero", span)
    if op == "/":
        return a / b
    return a % b


def _compare(op: str, a: Any, b: Any, span: Span) -> bool:
    if op == "==":
        return bool(a == b) and (isinstance(a, bool) == isinstance(b, bool))
    if op == "!=":
        return not _compare("==", a, b, span)
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (a, b))
    if not numeric and not (isinstance(a, str) and isinstance(b, str)):
        raise ExprError(f"'{op}' compares two numbers or two strings, got {_type_name(a)} and {_type_name(b)}", span)
    if op == "<":
        return bool(a < b)
    if op == "<=":
        return bool(a <= b)
    if op == ">":
        return bool(a > b)
    return bool(a >= b)


def truthy(v: Any) -> bool:
    """Truth of a value in ``when`` and ``and``/``or``: null, false, 0, "" and empties are false."""
    if v is None or v is False:
        return False
    if isinstance(v, int | float) and not isinstance(v, bool):
        return v != 0
    if isinstance(v, str | list | tuple | Mapping):
        return len(v) > 0
    return True


def evaluate(e: ir.Expr, env: Env) -> Any:
    """Evaluate ``e`` over ``env`` (names to plain JSON-like data)."""
    if isinstance(e, ir.Literal):
        return e.value
    if isinstance(e, ir.Name):
        if e.id not in env:
            raise ExprError(f"unknown name {e.id!r}", e.span)
        return env[e.id]
    if isinstance(e, ir.Path):
        value = evaluate(e.base, env)
        for key in e.keys:
            value = _key(value, evaluate(key, env), key.span)
        return value
    if isinstance(e, ir.Template):
        return "".join(to_text(evaluate(p, env)) for p in e.parts)
    if isinstance(e, ir.BoolOp):
        if e.op == "and":
            result: Any = True
            for v in e.values:
                result = evaluate(v, env)
                if not truthy(result):
                    return False
            return True
        return any(truthy(evaluate(v, env)) for v in e.values)
    if isinstance(e, ir.Compare):
        return _compare(e.op, evaluate(e.left, env), evaluate(e.right, env), e.span)
    if isinstance(e, ir.Arith):
        acc = evaluate(e.operands[0], env)
        for op, operand in zip(e.ops, e.operands[1:], strict=True):
            acc = _arith(op, acc, evaluate(operand, env), e.span)
        return acc
    if isinstance(e, ir.Unary):
        value = evaluate(e.operand, env)
        for uop in reversed(e.ops):
            if uop == "not":
                value = not truthy(value)
            else:
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise ExprError(f"'-' needs a number, got {_type_name(value)}", e.span)
                value = -value
        return value
    if isinstance(e, ir.ListExpr):
        return [evaluate(i, env) for i in e.items]
    if isinstance(e, ir.MapExpr):
        return {k: evaluate(v, env) for k, v in zip(e.keys, e.values, strict=True)}
    if isinstance(e, ir.FuncCall):
        fn = FUNCTIONS.get(e.func)
        if fn is None:
            raise ExprError(f"unknown function {e.func!r}", e.span)
        if e.func == "default":
            # default() reads a missing field as null so optional outputs can be used safely.
            try:
                first = evaluate(e.args[0], env)
            except ExprError:
                first = None
            return _default(first, evaluate(e.args[1], env))
        if e.func == "coalesce":
            # Like default(): every argument but the last may read a skipped step; first non-null wins.
            for arg in e.args[:-1]:
                try:
                    value = evaluate(arg, env)
                except ExprError:
                    continue
                if value is not None:
                    return value
            return evaluate(e.args[-1], env) if e.args else None
        args = [evaluate(a, env) for a in e.args]
        try:
            return fn.impl(*args)
        except ExprError as err:
            raise ExprError(str(err), e.span) from None
    raise ExprError(f"cannot evaluate {type(e).__name__}")


def references(e: ir.Expr) -> list[tuple[str, str | None, ir.Expr, bool]]:
    """Names an expression reads: ``(root, first field or None, node, inside default())``."""
    out: list[tuple[str, str | None, ir.Expr, bool]] = []
    stack: list[tuple[ir.Expr, bool]] = [(e, False)]
    while stack:
        node, guarded = stack.pop()
        if isinstance(node, ir.Name):
            out.append((node.id, None, node, guarded))
        elif isinstance(node, ir.Path):
            if isinstance(node.base, ir.Name):
                first = node.keys[0]
                field = first.value if isinstance(first, ir.Literal) and isinstance(first.value, str) else None
                out.append((node.base.id, field, node, guarded))
            else:
                stack.append((node.base, guarded))
            stack.extend((k, guarded) for k in node.keys if not isinstance(k, ir.Literal))
        elif isinstance(node, ir.FuncCall):
            if node.func in ("default", "coalesce"):
                stack.extend((a, True) for a in node.args)
            else:
                stack.extend((a, guarded) for a in node.args)
        elif isinstance(node, ir.Template):
            stack.extend((p, guarded) for p in node.parts)
        elif isinstance(node, ir.BoolOp):
            stack.extend((v, guarded) for v in node.values)
        elif isinstance(node, ir.Arith):
            stack.extend((v, guarded) for v in node.operands)
        elif isinstance(node, ir.Compare):
            stack.extend([(node.left, guarded), (node.right, guarded)])
        elif isinstance(node, ir.Unary):
            stack.append((node.operand, guarded))
        elif isinstance(node, ir.ListExpr):
            stack.extend((i, guarded) for i in node.items)
        elif isinstance(node, ir.MapExpr):
            stack.extend((v, guarded) for v in node.values)
    return out


def is_constant(e: ir.Expr) -> bool:
    """True when ``e`` reads no names (literals, lists/maps of them, arithmetic on them)."""
    return not references(e)
