"""Hypothesis strategies that build IR the parser can produce (valid-shaped, not necessarily valid sagas).

"Parser-shaped" means: number literals are never negative (``-1`` is a Unary),
a Unary's operators are all ``not`` or all ``-``, an Arith chain stays at one
precedence level, template text parts are non-empty and never adjacent, and
no string sits inside two levels of ``${...}`` (the grammar has only two
quote characters). Names include every keyword of the language, which are
contextual; only ``not true false null`` cannot name a value in an expression.
"""

from __future__ import annotations

import functools
import string

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from sagalang import ir
from sagalang.parser import _lark

__all__ = ["durations", "exprs", "identifiers", "modules", "sagas", "steps"]


@functools.cache
def _keywords() -> tuple[str, ...]:
    return tuple(
        sorted(t.pattern.value for t in _lark().terminals if t.pattern.type == "str" and t.pattern.value.isidentifier())
    )


_RESERVED_IN_EXPR = {"not", "true", "false", "null"}
_plain_ident = st.tuples(
    st.sampled_from(string.ascii_letters + "_"), st.text(string.ascii_letters + string.digits + "_", max_size=8)
).map("".join)


@functools.cache
def identifiers() -> SearchStrategy[str]:
    """Any identifier, keywords included (they are contextual)."""
    return st.one_of(_plain_ident, st.sampled_from(_keywords()), st.sampled_from(["x2", "ms", "s", "d", "_", "e5"]))


@functools.cache
def _value_names() -> SearchStrategy[str]:
    return identifiers().filter(lambda n: n not in _RESERVED_IN_EXPR)


@functools.cache
def _dotted() -> SearchStrategy[str]:
    return st.lists(identifiers(), min_size=1, max_size=3).map(".".join)


@functools.cache
def _text(q: int) -> SearchStrategy[str]:
    # Mostly readable text with the characters that need escaping; sometimes anything.
    tricky = st.text(alphabet=st.sampled_from([*"ab ${}'\"\\\n\t\r\0#é€\u2028", "😀"]), max_size=8)
    return st.one_of(tricky, st.text(max_size=6)) if q < 2 else st.nothing()


def _literals(q: int) -> SearchStrategy[ir.Expr]:
    options: list[SearchStrategy[ir.Scalar]] = [
        st.none(),
        st.booleans(),
        st.integers(min_value=0, max_value=10**20),
        st.floats(min_value=0, allow_nan=False, allow_infinity=False),
    ]
    if q < 2:
        options.append(_text(q))
    return st.one_of(*options).map(ir.Literal)


@functools.cache
def exprs(q: int = 0, depth: int = 3) -> SearchStrategy[ir.Expr]:
    """Expressions of every node kind; ``q`` is the ``${...}`` nesting level they will be printed at."""
    leaf: SearchStrategy[ir.Expr] = st.one_of(_literals(q), _value_names().map(ir.Name))
    if depth == 0:
        return leaf
    sub = exprs(q, depth - 1)
    small = st.lists(sub, min_size=0, max_size=3).map(tuple)
    key = st.one_of(
        _plain_ident.map(ir.Literal), identifiers().map(ir.Literal), sub
    )  # field keys print as .name, the rest as [expr]

    def arith(ops: SearchStrategy[str]) -> SearchStrategy[ir.Expr]:
        rest = st.lists(st.tuples(ops, sub), min_size=1, max_size=3)
        return st.tuples(sub, rest).map(
            lambda t: ir.Arith((t[0], *(o for _, o in t[1])), tuple(op for op, _ in t[1]))  # type: ignore[misc]
        )

    composite: list[SearchStrategy[ir.Expr]] = [
        st.builds(ir.Path, sub, st.lists(key, min_size=1, max_size=3).map(tuple)),
        st.builds(ir.FuncCall, _value_names(), small),
        st.tuples(st.sampled_from(["not", "-"]), st.integers(min_value=1, max_value=2), sub).map(
            lambda t: ir.Unary((t[0],) * t[1], t[2])  # type: ignore[arg-type]
        ),
        arith(st.sampled_from(["+", "-"])),
        arith(st.sampled_from(["*", "/", "%"])),
        st.builds(ir.Compare, sub, st.sampled_from(["==", "!=", "<", "<=", ">", ">="]), sub),
        st.builds(ir.BoolOp, st.sampled_from(["and", "or"]), st.lists(sub, min_size=2, max_size=4).map(tuple)),
        st.builds(ir.ListExpr, small),
        st.lists(st.tuples(identifiers() if q >= 2 else st.one_of(identifiers(), _text(q)), sub), max_size=3).map(
            lambda pairs: ir.MapExpr(tuple(k for k, _ in pairs), tuple(v for _, v in pairs))
        ),
    ]
    if q < 2:
        composite.append(_templates(q, depth))
    return st.one_of(leaf, *composite)


def _templates(q: int, depth: int) -> SearchStrategy[ir.Expr]:
    inner = exprs(q + 1, max(depth - 2, 0))
    text = _text(q).filter(bool).map(ir.Literal)

    @st.composite
    def build(draw: st.DrawFn) -> ir.Expr:
        parts: list[ir.Expr] = []
        if draw(st.booleans()):
            parts.append(draw(text))
        for _ in range(draw(st.integers(min_value=1, max_value=3))):
            parts.append(draw(inner))
            if draw(st.booleans()):
                parts.append(draw(text))
        return ir.Template(tuple(parts))

    return build()


def durations() -> SearchStrategy[ir.Duration]:
    """Durations in whole milliseconds, some in round units."""
    round_units = st.tuples(
        st.sampled_from([1, 1000, 1500, 60_000, 3_600_000, 86_400_000]), st.integers(min_value=0, max_value=1000)
    )
    return st.one_of(st.integers(min_value=0, max_value=10**10), round_units.map(lambda t: t[0] * t[1])).map(
        ir.Duration
    )


def _backoffs() -> SearchStrategy[ir.Backoff]:
    mult = st.one_of(
        st.none(), st.sampled_from([2.0, 1.5, 1.0, 0.5]), st.floats(min_value=0, allow_nan=False, allow_infinity=False)
    )
    return st.builds(ir.Backoff, durations(), mult, st.one_of(st.none(), durations()))


def _retries() -> SearchStrategy[ir.RetryPolicy]:
    names = st.lists(_dotted(), max_size=3).map(tuple)
    return st.builds(
        ir.RetryPolicy,
        st.one_of(st.none(), st.integers(min_value=0, max_value=1000)),
        st.one_of(st.none(), _backoffs()),
        st.booleans(),
        names,
        names,
    )


def _opt(s: SearchStrategy[object]) -> SearchStrategy[object]:
    return st.one_of(st.none(), s)


# Declarations use shallower expressions than the expression tests: generation time grows fast with depth.
_DECL_DEPTH = 2


def _args() -> SearchStrategy[tuple[ir.Arg, ...]]:
    return st.lists(st.builds(ir.Arg, identifiers(), exprs(0, _DECL_DEPTH)), max_size=2).map(tuple)


def _types(depth: int = 2) -> SearchStrategy[ir.TypeRef]:
    arg = st.none() if depth == 0 else _opt(_types(depth - 1))
    return st.builds(ir.TypeRef, identifiers(), arg)


def steps() -> SearchStrategy[ir.Step]:
    """Steps with every clause kind (each present or not)."""
    invocation = st.builds(ir.Invocation, _dotted(), _args())
    return st.builds(
        ir.Step,
        name=identifiers(),
        kind=st.sampled_from(["step", "pivot", "readonly", "retriable"]),
        do=_opt(invocation),
        undo=_opt(invocation),
        call=_opt(st.builds(ir.SagaCall, identifiers(), _args())),
        use=_opt(invocation),
        foreach=_opt(
            st.builds(ir.ForEach, identifiers(), exprs(0, _DECL_DEPTH), _opt(st.integers(min_value=0, max_value=10**6)))
        ),
        after=_opt(st.lists(st.builds(ir.StepRef, identifiers()), min_size=1, max_size=3).map(tuple)),
        when=_opt(exprs(0, _DECL_DEPTH)),
        retry=_opt(_retries()),
        timeout=_opt(durations()),
        output_schema=_opt(st.builds(ir.InputSchema, _text(0))),
        description=_opt(_text(0)),
    )


def sagas() -> SearchStrategy[ir.Saga]:
    """Sagas with every saga-level clause and a body of steps and parallel blocks."""
    fields = st.lists(
        st.builds(ir.Field, identifiers(), _types(), st.booleans(), _opt(exprs(0, _DECL_DEPTH))), max_size=3
    ).map(tuple)
    body = st.lists(st.one_of(steps(), st.builds(ir.Parallel, st.lists(steps(), max_size=2).map(tuple))), max_size=3)
    return st.builds(
        ir.Saga,
        name=identifiers(),
        version=_opt(_text(0)),
        description=_opt(_text(0)),
        input=st.one_of(st.none(), st.builds(ir.InputFields, fields), st.builds(ir.InputSchema, _text(0))),
        output=_opt(st.lists(st.builds(ir.OutputEntry, identifiers(), exprs(0, _DECL_DEPTH)), max_size=3).map(tuple)),
        defaults=_opt(st.builds(ir.Defaults, _opt(_retries()), _opt(durations()))),
        timeout=_opt(durations()),
        compensation=_opt(
            st.builds(
                ir.CompensationPolicy,
                _opt(st.sampled_from(["reverse", "parallel"])),
                _opt(_retries()),
                _opt(durations()),
            )
        ),
        on_failure=_opt(
            st.builds(
                ir.FailurePolicy,
                _opt(st.sampled_from(["wait", "cancel"])),
                _opt(
                    st.builds(ir.SagaRetry, st.integers(min_value=0, max_value=100), _opt(_backoffs()), _opt(_dotted()))
                ),
            )
        ),
        body=body.map(tuple),
    )


def modules() -> SearchStrategy[ir.Module]:
    """Whole files: imports and sagas."""
    return st.builds(
        ir.Module,
        st.lists(st.builds(ir.Import, _text(0)), max_size=2).map(tuple),
        st.lists(sagas(), max_size=2).map(tuple),
    )
