"""How tightly the expression operators bind: one table for the parser and the printers.

Higher binds tighter. ``not`` binds looser than a comparison (``not a == b`` is
``not (a == b)``), a prefix ``-`` tighter than every binary operator.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from . import ir

__all__ = ["ATOM", "BINARY", "COMPARE", "NEG", "NOT", "precedence"]

BINARY: Mapping[str, int] = MappingProxyType(
    {
        "or": 1,
        "and": 2,
        "==": 4,
        "!=": 4,
        "<": 4,
        "<=": 4,
        ">": 4,
        ">=": 4,
        "+": 5,
        "-": 5,
        "*": 6,
        "/": 6,
        "%": 6,
    }
)
NOT = 3  # ``not x``; its operand is read at NOT + 1, so it takes in a whole comparison
COMPARE = 4  # comparisons do not chain
NEG = 7  # ``-x``; its operand is an atom
ATOM = 8  # names, literals, paths, calls, lists, maps, templates, anything in parentheses


def precedence(e: ir.Expr) -> int:
    """How tightly ``e`` binds when printed without parentheses."""
    t = type(e)
    if t is ir.BoolOp:
        return BINARY[e.op]  # type: ignore[union-attr]
    if t is ir.Unary:
        return NOT if e.ops[0] == "not" else NEG  # type: ignore[union-attr]
    if t is ir.Compare:
        return COMPARE
    if t is ir.Arith:
        return BINARY[e.ops[0]]  # type: ignore[union-attr]
    return ATOM
