"""Property tests: hostile text never escapes as anything but a SagaError; fmt round-trips and is idempotent."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from strategies import exprs, identifiers, modules

from sagalang import ir
from sagalang.errors import SagaError
from sagalang.fmt import format_expr, format_module, format_source
from sagalang.parser import parse, parse_expr
from sagalang.project import load_project
from sagalang.validate import validate_project

ROOT = Path(__file__).resolve().parent.parent
# SAGALANG_FUZZ_SCALE=20 runs twenty times as many examples (a longer local fuzzing session).
SCALE = int(os.environ.get("SAGALANG_FUZZ_SCALE", "1"))
SETTINGS = settings(max_examples=200 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Whole generated modules are costly to draw; fewer of them, each exercising every clause kind.
MODULE_SETTINGS = settings(max_examples=80 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# A few specs of our own, so the mutation tests have material even before specs/ fills up.
OWN_SPECS = [
    """\
import "payments.saga"  # brings saga payment into scope

# bulk orders
saga bulk_order version "2" {
    description "Quote, reserve every line, pay; undo in reverse."
    input { lines: list[map], card: string secret, email: string = "a@b.c" }
    timeout 30m
    compensation { order parallel  retry attempts 10 backoff 1s x2 max 1m }
    on failure { siblings wait  retry saga attempts 2 analyze ops.diagnose }
    readonly step quote { do pricing.quote(lines: input.lines) }
    step reserve_lines for line in input.lines limit 4 {
        do   inventory.reserve(sku: line.sku, qty: line.qty * 2 + 1)
        undo inventory.release(reservation: result.reservation_id)   # this item's output
    }
    step pay after quote, reserve_lines when len(input.lines) > 0 and not input.free {
        call payment(amount: quote.total, card: input.card)
        timeout 1500ms
    }
    step receipt {
        do email.send(to: input.email, body: "Paid ${quote.total} for ${len(input.lines)} lines")
        retry forever backoff 1s x 1.5 max 1m jitter on mail.Busy except mail.Bad
    }
    output { total: quote.total, lines: [1, 2.5, null, true], meta: {"k y": -1, z: (1 + 2) + 3} }
}
""",
    """\
saga tiny {
    input schema "in.json"
    defaults { timeout 10s  retry attempts 3 }
    parallel {
        step a { use steps.A() }
        pivot step b { do x.y(v: input.order['k'][0]) output schema "out.json" }
    }
    step limit { do t.u(a: 'it\\'s ${input.x}', b: "\\${literal}") }
}
# trailing comment
""",
]


def _corpus() -> list[str]:
    texts = list(OWN_SPECS)
    for path in sorted((ROOT / "specs").rglob("*.saga")):
        try:
            texts.append(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            continue
    return texts


CORPUS = _corpus()
_WORDS = [
    "saga",
    "step",
    "pivot",
    "parallel",
    "do",
    "undo",
    "call",
    "use",
    "input",
    "output",
    "retry",
    "attempts",
    "forever",
    "backoff",
    "max",
    "jitter",
    "on",
    "except",
    "timeout",
    "defaults",
    "compensation",
    "order",
    "failure",
    "when",
    "for",
    "in",
    "limit",
    "after",
    "not",
    "and",
    "or",
    "true",
    "false",
    "null",
    "schema",
    "secret",
    "version",
]
TOKENS = [
    *_WORDS,
    *"{}()[],:.=+-*/%<>#\"'\\\n",
    "==",
    "!=",
    "${",
    "${x}",
    "10s",
    "1500ms",
    "x2",
    "x 1.5",
    "1e999",
    "9" * 5000,
    "(" * 150,
    "not -" * 150,
    '"unterminated',
    '"\\0"',
    '"' + "a" * 300 + '"',
    'import "\\0"',
    'input schema "' + "b" * 300 + '"',
    "\0",
    "\ufeff",
    "é",
]


def _tokens() -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(TOKENS), max_size=30).map(" ".join)


def _exercise(text: str) -> None:
    """Parse, validate (through a file on disk) and format ``text``; only SagaError may escape."""
    try:
        parse(text)
    except SagaError:
        pass
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder, "spec.saga")
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
        project = load_project([path], root=folder)
        for d in validate_project(project):
            assert d.code and d.message
    try:
        out = format_source(text)
    except SagaError:
        return
    _check_formatted(text, out)


_COMMENT_SCAN = re.compile(r"\"(?:\\.|[^\"\\\n])*\"|'(?:\\.|[^'\\\n])*'|(#[^\n]*)")


def comments(text: str) -> list[str]:
    """Comment texts of a spec that parses (strings skipped)."""
    return [m.group(1).rstrip() for m in _COMMENT_SCAN.finditer(text) if m.group(1)]


def _check_formatted(text: str, out: str) -> None:
    assert format_source(out) == out
    assert parse(out) == parse(text)
    before, after = comments(text), comments(out)
    assert sorted(before) == sorted(after)


@SETTINGS
@given(st.one_of(st.text(max_size=200), _tokens(), st.binary(max_size=100).map(lambda b: b.decode("latin-1"))))
@example("")
@example("#")
@example("saga")
@example("saga a { step s when " + "not -" * 200 + "x {} }")
def test_random_text_raises_only_saga_errors(text: str) -> None:
    _exercise(text)


@st.composite
def mutated_specs(draw: st.DrawFn) -> str:
    """A spec with a few characters or tokens inserted, deleted or replaced."""
    text = draw(st.sampled_from(CORPUS))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        pos = draw(st.integers(min_value=0, max_value=len(text)))
        op = draw(st.sampled_from(["insert", "delete", "replace", "token"]))
        if op == "insert":
            text = text[:pos] + draw(st.text(max_size=3)) + text[pos:]
        elif op == "delete":
            text = text[:pos] + text[pos + draw(st.integers(min_value=1, max_value=8)) :]
        elif op == "replace":
            text = text[:pos] + draw(st.text(min_size=1, max_size=2)) + text[pos + 1 :]
        else:
            text = text[:pos] + " " + draw(st.sampled_from(TOKENS)) + " " + text[pos:]
    return text


@SETTINGS
@given(mutated_specs())
def test_mutated_specs_raise_only_saga_errors(text: str) -> None:
    _exercise(text)


@pytest.mark.parametrize("text", CORPUS, ids=range(len(CORPUS)))
def test_corpus_formats_and_round_trips(text: str) -> None:
    try:
        out = format_source(text)
    except SagaError:
        pytest.skip("this spec does not parse (it is one of the invalid examples)")
    _check_formatted(text, out)


@SETTINGS
@given(exprs(0, 4))
def test_generated_expressions_round_trip(expr: ir.Expr) -> None:
    assert parse_expr(format_expr(expr)) == expr


@MODULE_SETTINGS
@given(modules())
def test_generated_ir_round_trips_through_format_module(module: ir.Module) -> None:
    text = format_module(module)
    assert parse(text) == module
    assert format_source(text) == text


_GAP = re.compile(r"\"(?:\\.|[^\"\\\n])*\"|'(?:\\.|[^'\\\n])*'|#[^\n]*|(?P<gap>[ \n]+)")


@MODULE_SETTINGS
@given(st.one_of(modules().map(format_module), st.sampled_from(CORPUS)), st.data())
def test_fmt_is_idempotent_with_comments_anywhere(text: str, data: st.DataObject) -> None:
    # Comments go into whitespace between tokens (never inside strings or other comments);
    # blank lines and odd indentation are thrown in too.
    gaps = [m.start("gap") for m in _GAP.finditer(text) if m.group("gap")]
    assume(gaps)
    chosen = sorted(set(data.draw(st.lists(st.sampled_from(gaps), max_size=8))), reverse=True)
    markers = []
    for i, pos in enumerate(chosen):
        marker = f"# c{i} {data.draw(identifiers())}"
        markers.append(marker)
        layout = data.draw(st.sampled_from([" {} \n", "\n{}\n", "\n\n    {}\n\n", "\t{}\n  "]))
        text = text[:pos] + layout.format(marker) + text[pos:]
    try:
        original = parse(text)
        out = format_source(text)
    except SagaError:
        assume(False)  # a corpus spec that is invalid on purpose
        return
    assert format_source(out) == out
    assert parse(out) == original
    for marker in markers:
        assert out.count(marker) == 1, marker
