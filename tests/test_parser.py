"""The parser: every construct into the expected IR, positions, keywords, precedence, syntax errors."""

from __future__ import annotations

import textwrap

import pytest

from sagalang import ir
from sagalang.errors import SagaSyntaxError
from sagalang.parser import parse, parse_expr
from sagalang.source import Span

L, N = ir.Literal, ir.Name


def P(base: str, *keys: object) -> ir.Path:
    """``base.k1.k2``: field keys given as str, index keys as IR nodes."""
    return ir.Path(N(base), tuple(L(k) if isinstance(k, str) else k for k in keys))  # type: ignore[misc]


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


FULL = dedent(
    """
    import "payments.saga"
    import 'lib/other.saga'

    # a comment
    saga bulk_order version "2" {
        description "Bulk order."
        input {
            lines: list[map]
            card: string secret
            email: string = "a@b.c"
            express: boolean secret = false
        }
        defaults { timeout 10s  retry attempts 3 backoff 200ms x2 max 5s jitter }
        timeout 30m
        compensation { order parallel  retry attempts 10 backoff 1s x1.5 max 1m  timeout 2h }
        on failure { siblings cancel  retry saga attempts 2 backoff 1s analyze ops.diagnose }

        readonly step quote { do pricing.quote(lines: input.lines) output schema "quote.json" }

        step reserve_lines for line in input.lines limit 4 {
            description "one per line"
            do   inventory.reserve(sku: line.sku, qty: line.qty)
            undo inventory.release(reservation: result.reservation_id)
            timeout 1500ms
        }

        parallel {
            pivot step pay after quote, reserve_lines { call payment(amount: quote.total) }
            retriable step notify when not input.quiet {
                use notify.Step()
                retry forever on mail.Busy, mail.Down except mail.Bad
            }
        }

        output { total: quote.total }
    }
    """
)

FULL_IR = ir.Module(
    imports=(ir.Import("payments.saga"), ir.Import("lib/other.saga")),
    sagas=(
        ir.Saga(
            name="bulk_order",
            version="2",
            description="Bulk order.",
            input=ir.InputFields(
                (
                    ir.Field("lines", ir.TypeRef("list", ir.TypeRef("map"))),
                    ir.Field("card", ir.TypeRef("string"), secret=True),
                    ir.Field("email", ir.TypeRef("string"), default=L("a@b.c")),
                    ir.Field("express", ir.TypeRef("boolean"), secret=True, default=L(False)),
                )
            ),
            output=(ir.OutputEntry("total", P("quote", "total")),),
            defaults=ir.Defaults(
                retry=ir.RetryPolicy(3, ir.Backoff(ir.Duration(200), 2.0, ir.Duration(5000)), jitter=True),
                timeout=ir.Duration(10_000),
            ),
            timeout=ir.Duration(1_800_000),
            compensation=ir.CompensationPolicy(
                "parallel",
                ir.RetryPolicy(10, ir.Backoff(ir.Duration(1000), 1.5, ir.Duration(60_000))),
                ir.Duration(7_200_000),
            ),
            on_failure=ir.FailurePolicy("cancel", ir.SagaRetry(2, ir.Backoff(ir.Duration(1000)), "ops.diagnose")),
            body=(
                ir.Step(
                    "quote",
                    kind="readonly",
                    do=ir.Invocation("pricing.quote", (ir.Arg("lines", P("input", "lines")),)),
                    output_schema=ir.InputSchema("quote.json"),
                ),
                ir.Step(
                    "reserve_lines",
                    description="one per line",
                    foreach=ir.ForEach("line", P("input", "lines"), 4),
                    do=ir.Invocation(
                        "inventory.reserve", (ir.Arg("sku", P("line", "sku")), ir.Arg("qty", P("line", "qty")))
                    ),
                    undo=ir.Invocation("inventory.release", (ir.Arg("reservation", P("result", "reservation_id")),)),
                    timeout=ir.Duration(1500),
                ),
                ir.Parallel(
                    (
                        ir.Step(
                            "pay",
                            kind="pivot",
                            after=(ir.StepRef("quote"), ir.StepRef("reserve_lines")),
                            call=ir.SagaCall("payment", (ir.Arg("amount", P("quote", "total")),)),
                        ),
                        ir.Step(
                            "notify",
                            kind="retriable",
                            when=ir.Unary(("not",), P("input", "quiet")),
                            use=ir.Invocation("notify.Step"),
                            retry=ir.RetryPolicy(None, on=("mail.Busy", "mail.Down"), except_=("mail.Bad",)),
                        ),
                    )
                ),
            ),
        ),
    ),
)


def test_every_construct_parses_into_the_expected_ir() -> None:
    assert parse(FULL) == FULL_IR


def test_input_schema_and_several_sagas_per_file() -> None:
    text = 'saga a { input schema "in.json" }\nsaga b version "0.1" { }\nsaga c {}'
    module = parse(text, "f.saga")
    assert module == ir.Module((), (ir.Saga("a", input=ir.InputSchema("in.json")), ir.Saga("b", "0.1"), ir.Saga("c")))
    assert module.file == "f.saga"
    assert [s.span.line for s in module.sagas] == [1, 2, 3]


def test_positions_of_nodes() -> None:
    module = parse(FULL)
    saga = module.sagas[0]
    assert module.imports[1].span == Span(2, 1, 2, 24)
    assert saga.span == Span(5, 6, 5, 16)  # the saga's name
    steps = {s.name: s for s in saga.steps()}
    assert (steps["quote"].span.line, steps["quote"].span.col) == (18, 19)
    assert (steps["pay"].span.line, steps["pay"].span.col) == (28, 20)
    assert [(r.span.line, r.span.col) for r in steps["pay"].after or ()] == [(28, 30), (28, 37)]
    assert (steps["notify"].when.span.line, steps["notify"].when.span.col) == (29, 36)  # type: ignore[union-attr]
    assert (steps["reserve_lines"].do.span.line, steps["reserve_lines"].do.span.col) == (22, 14)  # type: ignore[union-attr]
    fields = saga.input.fields  # type: ignore[union-attr]
    assert [(f.span.line, f.span.col) for f in fields] == [(8, 9), (9, 9), (10, 9), (11, 9)]
    assert saga.timeout is not None and (saga.timeout.span.line, saga.timeout.span.col) == (14, 13)


def test_expression_positions() -> None:
    e = parse_expr("a + b * -c")
    assert isinstance(e, ir.Arith)
    assert e.span == Span(1, 1, 1, 11)
    mul = e.operands[1]
    assert isinstance(mul, ir.Arith) and mul.span == Span(1, 5, 1, 11)
    assert isinstance(mul.operands[1], ir.Unary) and mul.operands[1].span == Span(1, 9, 1, 11)
    p = parse_expr("input.order.id")
    assert isinstance(p, ir.Path)
    assert [k.span.col for k in p.keys] == [7, 13]


def test_interpolation_with_nested_quotes_and_inner_positions() -> None:
    text = 'saga s {\n    step a { do h.x(v: "a${item[\'k\']}b ${len("x") }") }\n}'
    with pytest.raises(SagaSyntaxError):  # the inner string may not reuse the outer quote
        parse(text)
    text = "saga s {\n    step a { do h.x(v: \"a${item['}']}b ${ len('x') }\") }\n}"
    t = parse(text).sagas[0].steps()[0].do.args[0].value  # type: ignore[union-attr]
    assert t == ir.Template((L("a"), ir.Path(N("item"), (L("}"),)), L("b "), ir.FuncCall("len", (L("x"),))))
    assert isinstance(t, ir.Template)
    assert (t.span.line, t.span.col) == (2, 24)
    assert [(p.span.line, p.span.col) for p in t.parts] == [(2, 25), (2, 28), (2, 38), (2, 43)]
    nested = parse_expr("\"${f('x${y}')}\"")
    assert nested == ir.Template((ir.FuncCall("f", (ir.Template((L("x"), N("y"))),)),))


def test_escapes_in_strings() -> None:
    assert parse_expr(r'"a\nb\t\"\\\u00e9\$"') == L('a\nb\t"\\é$')
    assert parse_expr(r"'it\'s'") == L("it's")
    # an escaped ${ is a plain string, however it is spelled
    assert parse_expr(r'"\${x}"') == L("${x}") == parse_expr(r'"\u0024{x}"')
    # a backslash, then an interpolation; and a backslash, then an escaped ${
    assert parse_expr(r'"\\${x}"') == ir.Template((L("\\"), N("x")))
    assert parse_expr(r'"\\\${x"') == L("\\${x")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a or b and c", ir.BoolOp("or", (N("a"), ir.BoolOp("and", (N("b"), N("c")))))),
        ("a and b or c", ir.BoolOp("or", (ir.BoolOp("and", (N("a"), N("b"))), N("c")))),
        ("a or b or c", ir.BoolOp("or", (N("a"), N("b"), N("c")))),
        ("not a and b", ir.BoolOp("and", (ir.Unary(("not",), N("a")), N("b")))),
        ("not a == b", ir.Unary(("not",), ir.Compare(N("a"), "==", N("b")))),
        ("a == b + 1", ir.Compare(N("a"), "==", ir.Arith((N("b"), L(1)), ("+",)))),
        ("a + b * c", ir.Arith((N("a"), ir.Arith((N("b"), N("c")), ("*",))), ("+",))),
        ("a * b + c", ir.Arith((ir.Arith((N("a"), N("b")), ("*",)), N("c")), ("+",))),
        ("a - b + c", ir.Arith((N("a"), N("b"), N("c")), ("-", "+"))),
        ("(a + b) + c", ir.Arith((ir.Arith((N("a"), N("b")), ("+",)), N("c")), ("+",))),
        ("a % b / c", ir.Arith((N("a"), N("b"), N("c")), ("%", "/"))),
        ("-a * b", ir.Arith((ir.Unary(("-",), N("a")), N("b")), ("*",))),
        ("- -a", ir.Unary(("-", "-"), N("a"))),
        ("not not a", ir.Unary(("not", "not"), N("a"))),
        ("-x.y", ir.Unary(("-",), P("x", "y"))),
        ("a <= b and c != d", ir.BoolOp("and", (ir.Compare(N("a"), "<=", N("b")), ir.Compare(N("c"), "!=", N("d"))))),
        ("f(x)[0].y", ir.Path(ir.FuncCall("f", (N("x"),)), (L(0), L("y")))),
        ("f(x).y.z", ir.Path(ir.FuncCall("f", (N("x"),)), (L("y"), L("z")))),
        ("[].a.b", ir.Path(ir.ListExpr(()), (L("a"), L("b")))),
        ("(a.b).c", ir.Path(P("a", "b"), (L("c"),))),
        ("a[b.c]['d']", ir.Path(N("a"), (P("b", "c"), L("d")))),
        (
            "{a: 1, 'b c': [true, null, 1.5],}",
            ir.MapExpr(("a", "b c"), (L(1), ir.ListExpr((L(True), L(None), L(1.5))))),
        ),
        ("default(x, 0)", ir.FuncCall("default", (N("x"), L(0)))),
        ("1e3", L(1000.0)),
    ],
)
def test_operator_precedence_and_expression_shapes(text: str, expected: ir.Expr) -> None:
    assert parse_expr(text) == expected


def test_contextual_keywords_stay_names() -> None:
    text = dedent(
        """
        saga order {
            input { order: string, limit: integer, step: string }
            step limit for input in input.order limit 2 {
                do do.undo(order: input.order, step: limit.step, retry: result.limit)
            }
            step after after limit when input.limit > 0 and not input.order { do a.b() }
            output { order: input.order }
        }
        """
    )
    saga = parse(text).sagas[0]
    assert saga.name == "order"
    assert [f.name for f in saga.input.fields] == ["order", "limit", "step"]  # type: ignore[union-attr]
    first, second = saga.steps()
    assert first.name == "limit"
    assert first.foreach == ir.ForEach("input", P("input", "order"), 2)
    assert first.do == ir.Invocation(
        "do.undo",
        (
            ir.Arg("order", P("input", "order")),
            ir.Arg("step", P("limit", "step")),
            ir.Arg("retry", P("result", "limit")),
        ),
    )
    assert second.name == "after" and second.after == (ir.StepRef("limit"),)
    assert saga.output == (ir.OutputEntry("order", P("input", "order")),)


@pytest.mark.parametrize(
    ("written", "multiplier"),
    [("x2", 2.0), ("x 2", 2.0), ("x\t1.5", 1.5), ("x1.25", 1.25), ("", None)],
)
def test_backoff_multipliers(written: str, multiplier: float | None) -> None:
    saga = parse(f"saga s {{ defaults {{ retry attempts 2 backoff 1s {written} max 10s }} }}").sagas[0]
    assert saga.defaults is not None and saga.defaults.retry is not None
    assert saga.defaults.retry.backoff == ir.Backoff(ir.Duration(1000), multiplier, ir.Duration(10_000))


def test_x2_is_a_name_where_no_multiplier_is_expected() -> None:
    assert parse_expr("x2 + x1.y") == ir.Arith((N("x2"), P("x1", "y")), ("+",))


@pytest.mark.parametrize(
    ("written", "ms"),
    [
        ("250ms", 250),
        ("10s", 10_000),
        ("1.5s", 1500),
        ("5m", 300_000),
        ("2h", 7_200_000),
        ("1d", 86_400_000),
        ("0s", 0),
    ],
)
def test_duration_units(written: str, ms: int) -> None:
    assert parse(f"saga s {{ timeout {written} }}").sagas[0].timeout == ir.Duration(ms)


def test_trailing_commas() -> None:
    text = "saga s { input { a: string, b: integer, } step x { do h.y(a: [1, 2,], b: {k: 1,},) } output { r: 1, } }"
    saga = parse(text).sagas[0]
    assert [f.name for f in saga.input.fields] == ["a", "b"]  # type: ignore[union-attr]
    assert saga.steps()[0].do == ir.Invocation(
        "h.y", (ir.Arg("a", ir.ListExpr((L(1), L(2)))), ir.Arg("b", ir.MapExpr(("k",), (L(1),))))
    )
    assert saga.output == (ir.OutputEntry("r", L(1)),)


def test_duplicate_clauses_keep_the_first_and_record_the_rest() -> None:
    saga = parse("saga s {\n  timeout 1s\n  timeout 2s\n  step a { do h.a() do h.b() }\n}").sagas[0]
    assert saga.timeout == ir.Duration(1000)
    assert [(d.clause, d.span.line) for d in saga.duplicates] == [("saga_timeout", 3)]
    assert saga.steps()[0].do == ir.Invocation("h.a")
    assert [d.clause for d in saga.steps()[0].duplicates] == ["do"]


def test_comments_anywhere_including_the_end_of_the_file() -> None:
    base = parse("saga s { step a { do h.x(v: 1) } }")
    assert parse("# c\nsaga s { # c\n step a # c\n { do h.x( # c\n v: 1) } } # c at the end") == base
    assert parse("saga s { step a { do h.x(v: 1) } }\n# end") == base
    assert parse("saga s { step a { do h.x(v: 1) } } # \"quote' in comment") == base
    assert parse("# only a comment") == ir.Module()


@pytest.mark.parametrize(
    ("text", "code", "line", "col"),
    [
        ("saga s {\n  step a { do h.x( }\n}", "E010", 2, 20),
        ("saga s {\n  step a { do h.x() }\n", "E013", 2, 21),
        ("saga s {\n  step a { do h.x(v: @) }\n}", "E011", 2, 22),
        ('saga s {\n  description "open\n}', "E012", 2, 15),
        ('saga s {\n  description "bad \\q"\n}', "E015", 2, 20),
        ('saga s {\n  description "a ${x"\n}', "E016", 2, 18),
        ('saga s {\n  description "a ${ }"\n}', "E016", 2, 18),
        ("saga s {\n  step a when a < b < c { }\n}", "E010", 2, 21),
        ("saga s {\n  step a when " + "(" * 101 + "x" + ")" * 101 + " { }\n}", "E014", 2, 114),
        ("saga s {\n  step a when " + "not -" * 101 + "x { }\n}", "E014", 2, 265),
        ("saga s {\n  step a { do h.x(v: " + "9" * 5000 + ") }\n}", "E010", 2, 22),
        ("saga s {\n  timeout " + "9" * 400 + "d\n}", "E010", 2, 11),
        ("step a {}", "E010", 1, 1),
        ('{"saga": 1}', "E010", 1, 1),
    ],
)
def test_syntax_errors_have_codes_and_positions(text: str, code: str, line: int, col: int) -> None:
    with pytest.raises(SagaSyntaxError) as info:
        parse(text, "bad.saga")
    err = info.value
    assert (err.code, err.span.line, err.span.col) == (code, line, col), err
    assert str(err).startswith(f"bad.saga:{line}:{col}: ")


def test_unexpected_token_hint_lists_expected_tokens() -> None:
    with pytest.raises(SagaSyntaxError) as info:
        parse("saga s { step a { do } }")
    assert info.value.hint is not None and "a name" in info.value.hint
