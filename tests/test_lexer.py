"""The Pygments lexer for .saga: every spec in the repository lexes cleanly, tokens are classified."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name, get_lexer_for_filename
from pygments.token import Error, Keyword, Name, Number, Operator, String, Token, _TokenType

from sagalang.expr import FUNCTIONS
from sagalang.lexer import BUILTIN_FUNCTIONS, TYPES, SagaLexer
from sagalang.validate import INPUT_TYPES

ROOT = Path(__file__).resolve().parent.parent
SAGA_FILES = sorted(p for folder in ("specs", "docs", "tests") for p in (ROOT / folder).rglob("*.saga"))


def tokens(text: str) -> list[tuple[_TokenType, str]]:
    """Non-blank tokens of ``text``."""
    return [(t, v) for t, v in SagaLexer().get_tokens(text) if v.strip()]


def kind_of(text: str, value: str) -> _TokenType:
    """The token type of the first token spelled ``value``."""
    for t, v in tokens(text):
        if v == value:
            return t
    raise AssertionError(f"{value!r} not lexed as one token in {text!r}")


def test_there_are_specs_to_lex() -> None:
    assert len(SAGA_FILES) >= 4
    assert any(p.parts[-3:-1] == ("docs", "tutorial") for p in SAGA_FILES)


@pytest.mark.parametrize("path", SAGA_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_repository_spec_lexes_without_errors(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    toks = list(SagaLexer().get_tokens(text))
    errors = [v for t, v in toks if t in Error]
    assert errors == []
    # Lossless: the tokens spell the file back (Pygments only adds a final newline).
    assert "".join(v for _, v in toks).rstrip("\n") == text.rstrip("\n")


def saga_blocks() -> list[tuple[str, str]]:
    """(page, code) of every ```saga block written inline in docs/**/*.md (includes are files, lexed above)."""
    fence = re.compile(r"^```saga[^\n]*\n(.*?)^```", re.S | re.M)
    out = []
    for page in sorted((ROOT / "docs").rglob("*.md")):
        for i, body in enumerate(fence.findall(page.read_text(encoding="utf-8"))):
            if not body.lstrip().startswith("--8<--"):
                out.append((f"{page.relative_to(ROOT)}#{i}", body))
    return out


def test_every_saga_block_in_the_docs_lexes_without_errors() -> None:
    for where, body in saga_blocks():
        errors = [v for t, v in SagaLexer().get_tokens(body) if t in Error]
        assert errors == [], where


def test_registered_through_the_entry_point() -> None:
    assert isinstance(get_lexer_by_name("saga"), SagaLexer)
    assert isinstance(get_lexer_by_name("sagalang"), SagaLexer)
    assert isinstance(get_lexer_for_filename("order.saga"), SagaLexer)


def test_builtin_lists_match_the_language() -> None:
    assert set(BUILTIN_FUNCTIONS) == set(FUNCTIONS)
    assert set(TYPES) == set(INPUT_TYPES)


def test_declarations_and_handlers() -> None:
    src = 'saga order version "1" {\n  pivot step ship after a, b { do shipping.dispatch(order: input.id) }\n}'
    assert kind_of(src, "saga") == Keyword.Declaration
    assert kind_of(src, "order") == Name.Class
    assert kind_of(src, "pivot") == Keyword
    assert kind_of(src, "ship") == Name.Label
    assert kind_of(src, "a") == Name.Label
    assert kind_of(src, "b") == Name.Label
    assert kind_of(src, "shipping.dispatch") == Name.Function
    assert kind_of(src, "input") == Name.Builtin.Pseudo
    assert kind_of(src, "id") == Name.Attribute


def test_contextual_keywords_stay_names() -> None:
    # `order` and `limit` are keywords only where the grammar expects them.
    src = "step limit { do x.y(a: input.order, b: limit.timeout) }"
    assert kind_of(src, "limit") == Name.Label
    toks = tokens(src)
    assert (Name.Attribute, "order") in toks
    assert (Name.Attribute, "timeout") in toks
    assert (Name, "limit") in toks


def test_strings_with_interpolation_and_escapes() -> None:
    src = r'do a.b(text: "Paid \$${quote.total} to ${upper(input.name)} \u2192 ok")'
    toks = tokens(src)
    assert (String.Escape, r"\$") in toks
    assert (String.Escape, r"\u2192") in toks
    assert [v for t, v in toks if t == String.Interpol] == ["${", "}", "${", "}"]
    assert (Name, "quote") in toks
    assert (Name.Builtin, "upper") in toks
    assert kind_of("x: 'single ${a}'", "${") == String.Interpol


def test_numbers_durations_and_backoff() -> None:
    src = "retry attempts 3 backoff 200ms x2.5 max 1m jitter on p.Timeout, p.Busy except p.Fatal\ntimeout 1.5s"
    toks = tokens(src)
    assert (Number.Integer, "3") in toks
    assert (Number, "200ms") in toks
    assert (Operator, "x") in toks
    assert (Number, "2.5") in toks
    assert (Number, "1m") in toks
    assert (Number, "1.5s") in toks
    assert [v for t, v in toks if t == Name.Exception] == ["p.Timeout", "p.Busy", "p.Fatal"]
    assert kind_of("a: 1.5e3", "1.5e3") == Number.Float


def test_expressions_operators_and_comments() -> None:
    src = "step s when not input.x and len(input.l) >= 2 or input.y % 3 != 0 { } # note"
    toks = tokens(src)
    assert (Operator.Word, "not") in toks
    assert (Operator.Word, "and") in toks
    assert (Operator, ">=") in toks
    assert (Operator, "%") in toks
    assert (Operator, "!=") in toks
    assert (Token.Comment.Single, "# note") in toks


def test_unknown_characters_are_errors() -> None:
    assert Error in [t for t, _ in tokens("saga a { @ }")]


def test_html_output_uses_the_lexer() -> None:
    html = highlight("saga hello { step a { do x.y() } }", get_lexer_by_name("saga"), HtmlFormatter())
    assert '<span class="kd">saga</span>' in html
    assert '<span class="nf">x.y</span>' in html
