"""Build the IR from Lark's reductions. Constructive only: no checks live here.

The callbacks run inline while the LALR parser reduces (no parse tree is
built), so each one receives the already-built children of its rule.
Positions come from the tokens: a node's span starts at its first token.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from lark import Token, Transformer

from . import ir, precedence
from .errors import SagaSyntaxError
from .source import NO_SPAN, Span

__all__ = ["DURATION_UNITS", "SagaTransformer", "decode_string", "split_template", "tok_span"]

DURATION_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_INF = float("inf")
_MAX_DIGITS = 4000
# Alternating prefix operators (``not -not -x``) recurse in _Precedence; bound them like brackets.
_MAX_PREFIX_NESTING = 100

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "$": "$", "0": "\0"}


def tok_span(tok: Token) -> Span:
    """The span of one token."""
    return Span(tok.line or 0, tok.column or 0, tok.end_line or 0, tok.end_column or 0)


def _join(a: Span, b: Span) -> Span:
    return Span(a.line, a.col, b.end_line, b.end_col)


def decode_string(raw: str) -> str:
    """The value of a string token (quotes stripped, escapes applied).

    The lexer has already rejected malformed escapes.
    """
    body = raw[1:-1]
    if "\\" not in body:
        return body
    out: list[str] = []
    i = 0
    n = len(body)
    while i < n:
        ch = body[i]
        if ch == "\\" and i + 1 < n:
            nxt = body[i + 1]
            if nxt == "u":
                out.append(chr(int(body[i + 2 : i + 6], 16)))
                i += 6
                continue
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def split_template(raw: str) -> list[tuple[str, int]] | None:
    """Split a string token's body into ``('t', text)``/``('e', source)`` parts.

    Returns ``None`` when the string has no ``${...}``. Each part carries the
    offset of its first character inside ``raw``. The lexer guarantees that
    every ``${`` is closed.
    """
    if "${" not in raw:
        return None
    quote = raw[0]
    parts: list[tuple[str, int]] = []
    i, n = 1, len(raw) - 1
    start = 1
    while i < n:
        ch = raw[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "$" and raw[i + 1 : i + 2] == "{":
            parts.append(("t" + raw[start:i], start))
            end = template_end(raw, i + 2, quote)
            parts.append(("e" + raw[i + 2 : end], i + 2))
            i = end + 1
            start = i
            continue
        i += 1
    parts.append(("t" + raw[start:n], start))
    return parts


def template_end(raw: str, i: int, quote: str) -> int:
    """Index of the ``}`` closing a ``${`` whose body starts at ``i`` (or -1)."""
    depth = 0
    inner: str | None = None
    n = len(raw) - 1
    while i < n:
        ch = raw[i]
        if inner is not None:
            if ch == "\\":
                i += 2
                continue
            if ch == inner:
                inner = None
        elif ch in "'\"" and ch != quote:
            inner = ch
        elif ch == "{":
            depth += 1
        elif ch == "}":
            if depth == 0:
                return i
            depth -= 1
        i += 1
    return -1


@dataclass(slots=True)
class _Clause:
    kind: str
    value: Any
    span: Span
    dups: tuple[ir.Duplicate, ...] = ()


def _collect(items: Sequence[Any], kinds: dict[str, str]) -> tuple[dict[str, Any], list[ir.Duplicate]]:
    """First occurrence of each clause kind wins; the rest become Duplicates."""
    found: dict[str, Any] = {}
    dups: list[ir.Duplicate] = []
    for item in items:
        if isinstance(item, _Clause):
            key = kinds.get(item.kind, item.kind)
            value, span, inner = item.value, item.span, item.dups
            dups.extend(inner)
        elif isinstance(item, ir.RetryPolicy):
            key, value, span = "retry", item, item.span
        else:
            continue
        if key in found:
            dups.append(ir.Duplicate(key, span))
        else:
            found[key] = value
    return found, dups


def _durations(tok: Token) -> ir.Duration:
    text = str(tok)
    num = text.rstrip("msdh")
    unit = text[len(num) :]
    ms = float(num) * DURATION_UNITS[unit]
    if ms == _INF:
        raise SagaSyntaxError("duration too large", tok_span(tok), code="E010")
    return ir.Duration(round(ms), tok_span(tok))


def _int(tok: Token) -> int:
    """An INT token's value; Python refuses to convert more than 4300 digits, so say so first."""
    if len(tok) > _MAX_DIGITS:
        raise SagaSyntaxError(f"number too long ({len(tok)} digits)", tok_span(tok), code="E010")
    return int(tok)


def _span_of(node: Any) -> Span:
    if isinstance(node, Token):
        return tok_span(node)
    span: Span = getattr(node, "span", NO_SPAN)
    return span


class _Precedence:
    """Precedence climbing over the flat operand/operator run of an ``expr``."""

    def __init__(self, items: list[Any]) -> None:
        self.items = items
        self.pos = 0
        self.depth = 0

    def _prefix(self) -> ir.Expr:
        items = self.items
        tok = items[self.pos]
        if isinstance(tok, Token) and tok.type in ("NOT", "MINUS"):
            ops: list[Any] = []
            while isinstance(items[self.pos], Token) and items[self.pos].type == tok.type:
                ops.append(str(items[self.pos]))
                self.pos += 1
            self.depth += 1
            if self.depth > _MAX_PREFIX_NESTING:
                raise SagaSyntaxError(
                    f"prefix operators nest deeper than {_MAX_PREFIX_NESTING} levels", tok_span(tok), code="E014"
                )
            operand = self.parse(precedence.NOT + 1 if tok.type == "NOT" else precedence.NEG)
            self.depth -= 1
            return ir.Unary(tuple(ops), operand, _join(tok_span(tok), _span_of(operand)))
        self.pos += 1
        return tok  # type: ignore[no-any-return]

    def parse(self, min_prec: int) -> ir.Expr:
        items = self.items
        left = self._prefix()
        while self.pos < len(items):
            op = str(items[self.pos])
            prec = precedence.BINARY[op]
            if prec < min_prec:
                break
            if prec == precedence.COMPARE:
                self.pos += 1
                right = self.parse(prec + 1)
                if self.pos < len(items) and precedence.BINARY.get(str(items[self.pos])) == precedence.COMPARE:
                    tok = items[self.pos]
                    raise SagaSyntaxError(
                        f"comparisons cannot be chained: unexpected {str(tok)!r}",
                        tok_span(tok),
                        code="E010",
                        hint="combine comparisons with 'and'",
                    )
                left = ir.Compare(left, op, right, _join(_span_of(left), _span_of(right)))  # type: ignore[arg-type]
                continue
            operands = [left]
            ops: list[Any] = []
            while self.pos < len(items) and precedence.BINARY.get(str(items[self.pos])) == prec:
                ops.append(str(items[self.pos]))
                self.pos += 1
                operands.append(self.parse(prec + 1))
            span = _join(_span_of(operands[0]), _span_of(operands[-1]))
            if prec <= precedence.BINARY["and"]:
                left = ir.BoolOp(ops[0], tuple(operands), span)
            else:
                left = ir.Arith(tuple(operands), tuple(ops), span)
        return left


class SagaTransformer(Transformer[Token, Any]):
    """Lark callbacks, one per grammar rule or alias, returning IR nodes."""

    def __init__(self, parse_fragment: Callable[[str, int, int], ir.Expr]) -> None:
        super().__init__(visit_tokens=False)
        self._parse_fragment = parse_fragment

    # ---- file -------------------------------------------------------------
    def start(self, items: list[Any]) -> ir.Module:
        imports = tuple(i for i in items if isinstance(i, ir.Import))
        sagas = tuple(i for i in items if isinstance(i, ir.Saga))
        return ir.Module(imports, sagas)

    def import_stmt(self, c: list[Token]) -> ir.Import:
        return ir.Import(decode_string(c[1]), _join(tok_span(c[0]), tok_span(c[1])))

    def saga(self, c: list[Any]) -> ir.Saga:
        name: Token = c[0]
        found, dups = _collect(c[1:], {})
        body = tuple(i for i in c[1:] if isinstance(i, ir.Step | ir.Parallel))
        return ir.Saga(
            name=str(name),
            version=found.get("version"),
            description=found.get("description"),
            input=found.get("input"),
            output=found.get("output"),
            defaults=found.get("defaults"),
            timeout=found.get("saga_timeout"),
            compensation=found.get("compensation"),
            on_failure=found.get("on_failure"),
            body=body,
            span=tok_span(name),
            duplicates=tuple(dups),
        )

    def version(self, c: list[Token]) -> _Clause:
        return _Clause("version", decode_string(c[0]), tok_span(c[0]))

    def description(self, c: list[Token]) -> _Clause:
        return _Clause("description", decode_string(c[1]), tok_span(c[0]))

    # ---- input / output ---------------------------------------------------
    def input_fields(self, c: list[Any]) -> _Clause:
        span = tok_span(c[0])
        return _Clause("input", ir.InputFields(tuple(c[1:]), span), span)

    def input_schema(self, c: list[Token]) -> _Clause:
        span = tok_span(c[0])
        return _Clause("input", ir.InputSchema(decode_string(c[1]), tok_span(c[1])), span)

    def field(self, c: list[Any]) -> ir.Field:
        name: Token = c[0]
        secret = any(x == "secret" for x in c[2:] if isinstance(x, str) and not isinstance(x, Token))
        default = next((x.value for x in c[2:] if isinstance(x, _Clause)), None)
        return ir.Field(str(name), c[1], secret, default, tok_span(name))

    def secret(self, c: list[Any]) -> str:
        return "secret"

    def default(self, c: list[Any]) -> _Clause:
        return _Clause("default", c[0], _span_of(c[0]))

    def type_ref(self, c: list[Any]) -> ir.TypeRef:
        return ir.TypeRef(str(c[0]), c[1] if len(c) > 1 else None, tok_span(c[0]))

    def output_map(self, c: list[Any]) -> _Clause:
        span = tok_span(c[0])
        return _Clause("output", tuple(c[1:]), span)

    def out_entry(self, c: list[Any]) -> ir.OutputEntry:
        return ir.OutputEntry(str(c[0]), c[1], tok_span(c[0]))

    # ---- policies ---------------------------------------------------------
    def defaults(self, c: list[Any]) -> _Clause:
        span = tok_span(c[0])
        found, dups = _collect(c[1:], {})
        return _Clause("defaults", ir.Defaults(found.get("retry"), found.get("timeout"), span), span, tuple(dups))

    def timeout(self, c: list[Token]) -> _Clause:
        d = _durations(c[0])
        return _Clause("timeout", d, d.span)

    def saga_timeout(self, c: list[Token]) -> _Clause:
        d = _durations(c[0])
        return _Clause("saga_timeout", d, d.span)

    def retry(self, c: list[Any]) -> ir.RetryPolicy:
        attempts = c[1]
        backoff = next((x for x in c[2:] if isinstance(x, ir.Backoff)), None)
        jitter = any(isinstance(x, _Clause) and x.kind == "jitter" for x in c[2:])
        on: tuple[str, ...] = ()
        except_: tuple[str, ...] = ()
        for x in c[2:]:
            if isinstance(x, _Clause) and x.kind == "on":
                on = x.value
            elif isinstance(x, _Clause) and x.kind == "except":
                except_ = x.value
        return ir.RetryPolicy(attempts, backoff, jitter, on, except_, tok_span(c[0]))

    def attempts(self, c: list[Token]) -> int:
        return _int(c[0])

    def forever(self, c: list[Any]) -> None:
        return None

    def backoff(self, c: list[Any]) -> ir.Backoff:
        initial = _durations(c[0])
        mult: float | None = None
        cap: ir.Duration | None = None
        for x in c[1:]:
            if isinstance(x, Token) and x.type == "MULT":
                mult = float(str(x)[1:].strip())
            elif isinstance(x, ir.Duration):
                cap = x
        return ir.Backoff(initial, mult, cap, initial.span)

    def backoff_max(self, c: list[Token]) -> ir.Duration:
        return _durations(c[0])

    def jitter(self, c: list[Any]) -> _Clause:
        return _Clause("jitter", True, NO_SPAN)

    def retry_on(self, c: list[Any]) -> _Clause:
        return _Clause("on", c[0], NO_SPAN)

    def retry_except(self, c: list[Any]) -> _Clause:
        return _Clause("except", c[0], NO_SPAN)

    def name_list(self, c: list[Token]) -> tuple[str, ...]:
        return tuple(str(x) for x in c)

    def compensation(self, c: list[Any]) -> _Clause:
        span = tok_span(c[0])
        found, dups = _collect(c[1:], {})
        policy = ir.CompensationPolicy(found.get("order"), found.get("retry"), found.get("timeout"), span)
        return _Clause("compensation", policy, span, tuple(dups))

    def order_reverse(self, c: list[Any]) -> _Clause:
        return _Clause("order", "reverse", NO_SPAN)

    def order_parallel(self, c: list[Any]) -> _Clause:
        return _Clause("order", "parallel", NO_SPAN)

    def on_failure(self, c: list[Any]) -> _Clause:
        span = tok_span(c[0])
        found, dups = _collect(c[1:], {})
        policy = ir.FailurePolicy(found.get("siblings"), found.get("saga_retry"), span)
        return _Clause("on_failure", policy, span, tuple(dups))

    def saga_retry(self, c: list[Any]) -> _Clause:
        span = tok_span(c[0])
        backoff = next((x for x in c[2:] if isinstance(x, ir.Backoff)), None)
        analyzer = next((x.value for x in c[2:] if isinstance(x, _Clause)), None)
        return _Clause("saga_retry", ir.SagaRetry(_int(c[1]), backoff, analyzer, span), span)

    def analyze(self, c: list[Any]) -> _Clause:
        return _Clause("analyze", str(c[0]), NO_SPAN)

    def siblings_wait(self, c: list[Token]) -> _Clause:
        return _Clause("siblings", "wait", tok_span(c[0]))

    def siblings_cancel(self, c: list[Token]) -> _Clause:
        return _Clause("siblings", "cancel", tok_span(c[0]))

    # ---- steps ------------------------------------------------------------
    def parallel(self, c: list[Any]) -> ir.Parallel:
        return ir.Parallel(tuple(c[1:]), tok_span(c[0]))

    def step(self, c: list[Any]) -> ir.Step:
        kind = "step"
        if isinstance(c[0], _Clause):
            kind = c[0].value
            c = c[1:]
        name: Token = c[0]
        found, dups = _collect(c[1:], {})
        return ir.Step(
            name=str(name),
            kind=kind,  # type: ignore[arg-type]
            do=found.get("do"),
            undo=found.get("undo"),
            call=found.get("call"),
            use=found.get("use"),
            foreach=found.get("for"),
            after=found.get("after"),
            when=found.get("when"),
            retry=found.get("retry"),
            timeout=found.get("timeout"),
            output_schema=found.get("output_schema"),
            description=found.get("description"),
            span=tok_span(name),
            duplicates=tuple(dups),
        )

    def pivot(self, c: list[Any]) -> _Clause:
        return _Clause("kind", "pivot", NO_SPAN)

    def readonly(self, c: list[Any]) -> _Clause:
        return _Clause("kind", "readonly", NO_SPAN)

    def retriable(self, c: list[Any]) -> _Clause:
        return _Clause("kind", "retriable", NO_SPAN)

    def for_clause(self, c: list[Any]) -> _Clause:
        var: Token = c[0]
        limit = c[2] if len(c) > 2 else None
        span = tok_span(var)
        return _Clause("for", ir.ForEach(str(var), c[1], limit, span), span)

    def limit(self, c: list[Token]) -> int:
        return _int(c[0])

    def after_clause(self, c: list[Token]) -> _Clause:
        refs = tuple(ir.StepRef(str(t), tok_span(t)) for t in c)
        return _Clause("after", refs, refs[0].span)

    def when_clause(self, c: list[Any]) -> _Clause:
        return _Clause("when", c[0], _span_of(c[0]))

    def do_clause(self, c: list[Any]) -> _Clause:
        return _Clause("do", c[1], tok_span(c[0]))

    def undo_clause(self, c: list[Any]) -> _Clause:
        return _Clause("undo", c[1], tok_span(c[0]))

    def use_clause(self, c: list[Any]) -> _Clause:
        return _Clause("use", c[1], tok_span(c[0]))

    def call_clause(self, c: list[Any]) -> _Clause:
        name: Token = c[1]
        args = c[2] if len(c) > 2 else ()
        return _Clause("call", ir.SagaCall(str(name), args, tok_span(name)), tok_span(c[0]))

    def invocation(self, c: list[Any]) -> ir.Invocation:
        name: Token = c[0]
        args = c[1] if len(c) > 1 else ()
        return ir.Invocation(str(name), args, tok_span(name))

    def arglist(self, c: list[ir.Arg]) -> tuple[ir.Arg, ...]:
        return tuple(c)

    def arg(self, c: list[Any]) -> ir.Arg:
        return ir.Arg(str(c[0]), c[1], tok_span(c[0]))

    def output_schema(self, c: list[Token]) -> _Clause:
        return _Clause("output_schema", ir.InputSchema(decode_string(c[1]), tok_span(c[1])), tok_span(c[0]))

    def dotted_name(self, c: list[Token]) -> Token:
        return c[0]

    # ---- expressions ------------------------------------------------------
    def expr(self, c: list[Any]) -> ir.Expr:
        if len(c) == 1:
            return c[0]  # type: ignore[no-any-return]
        return _Precedence(c).parse(0)

    def path(self, c: list[Any]) -> ir.Path:
        return ir.Path(c[0], tuple(c[1:]), _join(_span_of(c[0]), _span_of(c[-1])))

    def dotted_path(self, c: list[Any]) -> ir.Path:
        tok: Token = c[0]
        names = str(tok).split(".")
        line = tok.line or 0
        col = tok.column or 0
        base = ir.Name(names[0], Span(line, col, line, col + len(names[0])))
        keys: list[ir.Expr] = []
        pos = col + len(names[0]) + 1
        for part in names[1:]:
            keys.append(ir.Literal(part, Span(line, pos, line, pos + len(part))))
            pos += len(part) + 1
        keys.extend(c[1:])
        return ir.Path(base, tuple(keys), _join(base.span, _span_of(keys[-1])))

    def field_key(self, c: list[Token]) -> ir.Literal:
        return ir.Literal(str(c[0]), tok_span(c[0]))

    def index_key(self, c: list[ir.Expr]) -> ir.Expr:
        return c[0]

    def name(self, c: list[Token]) -> ir.Name:
        return ir.Name(str(c[0]), tok_span(c[0]))

    def func_call(self, c: list[Any]) -> ir.FuncCall:
        args = c[1] if len(c) > 1 else ()
        return ir.FuncCall(str(c[0]), tuple(args), tok_span(c[0]))

    def exprlist(self, c: list[ir.Expr]) -> tuple[ir.Expr, ...]:
        return tuple(c)

    def string(self, c: list[Token]) -> ir.Expr:
        tok = c[0]
        raw = str(tok)
        span = tok_span(tok)
        parts = split_template(raw)
        if parts is None or len(parts) == 1:
            # No interpolation (at most an escaped ``\${``): a plain string, however it is spelled.
            return ir.Literal(decode_string(raw), span)
        line = tok.line or 0
        col = tok.column or 0
        out: list[ir.Expr] = []
        for part, offset in parts:
            if part[0] == "t":
                if part[1:]:
                    text = decode_string('"' + part[1:] + '"')
                    out.append(ir.Literal(text, Span(line, col + offset, line, col + offset + len(part) - 1)))
            else:
                out.append(self._parse_fragment(part[1:], line, col + offset))
        return ir.Template(tuple(out), span)

    def int_(self, c: list[Token]) -> ir.Literal:
        return ir.Literal(_int(c[0]), tok_span(c[0]))

    def float_(self, c: list[Token]) -> ir.Literal:
        return ir.Literal(float(c[0]), tok_span(c[0]))

    def true(self, c: list[Token]) -> ir.Literal:
        return ir.Literal(True, tok_span(c[0]))

    def false(self, c: list[Token]) -> ir.Literal:
        return ir.Literal(False, tok_span(c[0]))

    def null(self, c: list[Token]) -> ir.Literal:
        return ir.Literal(None, tok_span(c[0]))

    def list_(self, c: list[Any]) -> ir.ListExpr:
        items = c[1] if len(c) > 1 else ()
        return ir.ListExpr(tuple(items), tok_span(c[0]))

    def map_(self, c: list[Any]) -> ir.MapExpr:
        pairs = c[1] if len(c) > 1 else ()
        return ir.MapExpr(tuple(k for k, _ in pairs), tuple(v for _, v in pairs), tok_span(c[0]))

    def pairlist(self, c: list[tuple[str, ir.Expr]]) -> tuple[tuple[str, ir.Expr], ...]:
        return tuple(c)

    def pair(self, c: list[Any]) -> tuple[str, ir.Expr]:
        key: Token = c[0]
        return (decode_string(key) if key.type == "STRING" else str(key), c[1])
