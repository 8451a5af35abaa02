"""Text to IR: the cached Lark LALR parser and the one choke point for syntax errors.

The lexer is ours (driven by the grammar's own terminal definitions) so that
it can be contextual about keywords, bound nesting depth, check string
escapes and report positions of fragments inside interpolated strings. Every
Lark exception becomes a :class:`SagaSyntaxError` with a code and position.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lark import Lark, Token
from lark.common import LexerConf
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.lexer import Lexer, LexerState, PatternStr

from . import ir
from .errors import SagaSyntaxError
from .source import Span
from .transform import SagaTransformer, template_end

__all__ = ["MAX_NESTING", "MAX_SOURCE_BYTES", "describe_terminal", "grammar_path", "parse", "parse_expr"]

MAX_NESTING = 100
MAX_SOURCE_BYTES = 8 * 1024 * 1024

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NAME_OR_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_ESCAPE_OK = re.compile(r"\\(?:[ntr\\\"'$0]|u[0-9a-fA-F]{4})")
_OPEN = {"LPAR": "RPAR", "LSQB": "RSQB", "LBRACE": "RBRACE"}
_CLOSE = {"RPAR", "RSQB", "RBRACE"}


def grammar_path() -> Path:
    """Where the grammar file lives: inside the package when installed, else the repo's ``grammar/``."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "grammar" / "saga.lark", here.parent / "grammar" / "saga.lark"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("grammar/saga.lark not found next to the sagalang package")


class _Fragment(str):
    """Source text of an interpolated ``${...}`` with its position in the file."""

    line: int
    col: int


class _SagaLexer(Lexer):
    """One master regex built from the grammar's terminals; keywords resolved by parser state."""

    __future_interface__ = 2

    def __init__(self, conf: LexerConf) -> None:
        self.keywords: dict[str, str] = {}
        words = []
        strings = []
        numbers = []
        skip = []
        for term in conf.terminals:
            pat = term.pattern
            if term.name in conf.ignore:
                skip.append(pat.to_regexp())
            elif isinstance(pat, PatternStr):
                if _IDENT.fullmatch(pat.value):
                    self.keywords[pat.value] = term.name
                else:
                    strings.append(term)
            elif any(re.match(pat.to_regexp(), probe) for probe in ("a_b", "x2", "a.b")):
                words.append(term)
            else:
                numbers.append(term)
        words.sort(key=lambda t: -t.priority)
        numbers.sort(key=lambda t: -t.priority)
        strings.sort(key=lambda t: -len(t.pattern.value))
        # One match per token: skipped text (blanks, comments) first, then the
        # token; name-like terminals are tried before punctuation and numbers
        # because they are the most common, and by priority within each kind.
        ordered = words + strings + numbers
        self.skip = re.compile("(?:" + "|".join(skip) + ")*")
        # The skipped run is atomic: without it, at the end of the text the regex
        # would backtrack into a trailing comment and find a token inside it.
        self.master = re.compile(
            "(?>(?:"
            + "|".join(skip)
            + ")*)"
            + "(?:"
            + "|".join(f"(?P<{t.name}>{t.pattern.to_regexp()})" for t in ordered)
            + ")"
        )

    def lex(self, lexer_state: LexerState, parser_state: Any) -> Iterator[Token]:
        text: str = lexer_state.text.text
        line = getattr(text, "line", 1)
        line_start = -getattr(text, "col", 1) + 1
        pos = 0
        end = len(text)
        depth = 0
        match = self.master.match
        keywords = self.keywords
        states = parser_state.parse_conf.states
        while pos < end:
            m = match(text, pos)
            kind = m.lastgroup if m is not None else None
            if m is None or kind is None:
                # Only blanks and comments were left, or a character no terminal starts with.
                skipped = self.skip.match(text, pos).end()  # type: ignore[union-attr]
                nl = text.count("\n", pos, skipped)
                if nl:
                    line += nl
                    line_start = text.rfind("\n", pos, skipped) + 1
                if skipped >= end:
                    return
                raise _unexpected_char(text, skipped, line, skipped - line_start + 1)
            start = m.start(kind)
            nl = text.count("\n", pos, start)
            if nl:
                line += nl
                line_start = text.rfind("\n", pos, start) + 1
            value = m.group(kind)
            col = start - line_start + 1
            accepted = states[parser_state.position]
            if kind == "NAME":
                keyword = keywords.get(value)
                if keyword is not None and (keyword in accepted or "NAME" not in accepted):
                    kind = keyword
            elif kind == "DOTTED" and kind not in accepted:
                # After a "." only a NAME may follow (`f(x).a.b`, `[].a.b`): take the first part alone.
                value = _IDENT.match(text, start).group()  # type: ignore[union-attr]
                kind = "NAME"
                keyword = keywords.get(value)
                if keyword is not None and (keyword in accepted or "NAME" not in accepted):
                    kind = keyword
            elif kind == "MULT" and kind not in accepted:
                value = _NAME_OR_DOTTED.match(text, start).group()  # type: ignore[union-attr]
                kind = "DOTTED" if "." in value else "NAME"
            elif kind == "STRING":
                _check_string(value, line, col)
            elif kind in _OPEN:
                depth += 1
                if depth > MAX_NESTING:
                    raise SagaSyntaxError(
                        f"nesting deeper than {MAX_NESTING} levels",
                        Span(line, col, line, col + 1),
                        code="E014",
                        hint="split the expression or the structure into smaller parts",
                    )
            elif kind in _CLOSE:
                depth -= 1
            pos = start + len(value)
            yield _token(kind, value, start, line, col, pos)


def _token(kind: str, value: str, start: int, line: int, col: int, end: int) -> Token:
    """A Lark Token built without Token.__new__'s argument juggling (hot path)."""
    tok = str.__new__(Token, value)
    tok.type = kind
    tok.value = value
    tok.start_pos = start
    tok.line = tok.end_line = line
    tok.column = col
    tok.end_column = col + end - start
    tok.end_pos = end
    return tok


def _unexpected_char(text: str, pos: int, line: int, col: int) -> SagaSyntaxError:
    ch = text[pos]
    if ch in "\"'":
        return SagaSyntaxError(
            "unterminated string",
            Span(line, col, line, col + 1),
            code="E012",
            hint=f"close the string with {ch} before the end of the line; use \\n for a line break",
        )
    shown = repr(ch) if ch.isprintable() else f"U+{ord(ch):04X}"
    return SagaSyntaxError(f"unexpected character {shown}", Span(line, col, line, col + 1), code="E011")


def _check_string(raw: str, line: int, col: int) -> None:
    """Reject unknown escapes and unclosed ``${`` in a string token."""
    i = raw.find("\\")
    while i != -1:
        if not _ESCAPE_OK.match(raw, i):
            c = col + i
            raise SagaSyntaxError(
                f"invalid escape {raw[i : i + 2]!r} in string",
                Span(line, c, line, c + 2),
                code="E015",
                hint="valid escapes: \\n \\t \\r \\\\ \\\" \\' \\$ \\0 \\uXXXX",
            )
        i = raw.find("\\", i + 2)
    if "${" not in raw:
        return
    # Walk escapes pairwise so that ``\\${`` (a backslash, then an interpolation) and
    # ``\\\${`` (a backslash, then a literal ``${``) are told apart, as split_template does.
    i, n = 1, len(raw) - 1
    while i < n:
        ch = raw[i]
        if ch == "\\":
            i += 2
            continue
        if ch != "$" or raw[i + 1] != "{":
            i += 1
            continue
        close = template_end(raw, i + 2, raw[0])
        if close == -1:
            c = col + i
            raise SagaSyntaxError(
                "unclosed '${' in string",
                Span(line, c, line, c + 2),
                code="E016",
                hint="close the interpolation with '}', or write \\${ for a literal '${'",
            )
        if not raw[i + 2 : close].strip():
            c = col + i
            raise SagaSyntaxError("empty '${}' in string", Span(line, c, line, c + 3), code="E016")
        i = close + 1


_TERMINAL_WORDS = {
    "NAME": "a name",
    "DOTTED": "a dotted name",
    "STRING": "a string",
    "INT": "an integer",
    "FLOAT": "a number",
    "DURATION": "a duration such as 10s",
    "MULT": "a multiplier such as x2",
    "$END": "the end of the file",
}


def describe_terminal(name: str, keywords: dict[str, str] | None = None) -> str:
    """A human word for a terminal name: ``'{'``, ``'step'``, ``a name`` ..."""
    if name in _TERMINAL_WORDS:
        return _TERMINAL_WORDS[name]
    lark = _lark()
    term = lark.get_terminal(name) if name in _terminal_names() else None
    if term is not None and isinstance(term.pattern, PatternStr):
        return repr(term.pattern.value)
    return name.lower()


@functools.cache
def _terminal_names() -> frozenset[str]:
    return frozenset(t.name for t in _lark().terminals)


def _parse_fragment(source: str, line: int, col: int) -> ir.Expr:
    frag = _Fragment(source)
    frag.line = line
    frag.col = col
    expr: ir.Expr = _lark().parse(frag, start="expr")  # type: ignore[assignment]
    return expr


def _cache_file(grammar: str) -> str | bool:
    """Where Lark keeps its analysed grammar between processes (False: no cache).

    The name carries a hash of the grammar, Lark's and Python's versions, so a
    changed grammar or upgrade never reads a stale table; Lark itself rebuilds
    from scratch when a cache file cannot be read.
    """
    import hashlib
    import os
    import sys

    import lark

    if os.environ.get("SAGALANG_NO_GRAMMAR_CACHE"):
        return False
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = Path(base) / "sagalang"
    key = hashlib.sha256(f"{grammar}\0{lark.__version__}\0{sys.version}".encode()).hexdigest()[:20]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    path = folder / f"grammar-{key}.lark"
    if not os.access(folder, os.W_OK) and not path.exists():
        return False
    return str(path)


@functools.cache
def _lark() -> Lark:
    """The compiled parser; the only module-level cache in sagalang."""
    grammar = grammar_path().read_text(encoding="utf-8")
    return Lark(
        grammar,
        parser="lalr",
        lexer=_SagaLexer,
        start=["start", "expr"],
        transformer=SagaTransformer(_parse_fragment),
        maybe_placeholders=False,
        cache=_cache_file(grammar),
    )


def _expected_words(expected: set[str] | frozenset[str]) -> list[str]:
    words = sorted({describe_terminal(e) for e in expected if e.isupper() or e == "$END"})
    # Keep messages short: names and punctuation first, at most eight.
    return words[:8] + (["..."] if len(words) > 8 else [])


def _translate(err: UnexpectedInput, file: str) -> SagaSyntaxError:
    if isinstance(err, UnexpectedToken):
        tok = err.token
        expected = _expected_words(err.expected)
        if tok.type == "$END":
            line = err.line if err.line and err.line > 0 else 1
            col = err.column if err.column and err.column > 0 else 1
            # Test the raw terminal names: the worded list is cut short and may omit the brackets.
            closing = bool({"RBRACE", "RPAR", "RSQB"} & set(err.expected))
            return SagaSyntaxError(
                "unexpected end of file" + (": a block or bracket is not closed" if closing else ""),
                Span(line, col, line, col + 1),
                code="E013" if closing else "E010",
                hint="expected " + " or ".join(expected) if expected else None,
                file=file,
            )
        shown = describe_terminal(tok.type)
        if tok.type in ("NAME", "DOTTED", "STRING", "INT", "FLOAT", "DURATION"):
            shown = f"{shown} {str(tok)!r}" if len(tok) <= 40 else shown
        hint = "expected " + ", ".join(expected) if expected else None
        line = tok.line or 1
        col = tok.column or 1
        return SagaSyntaxError(
            f"unexpected {shown}",
            Span(line, col, tok.end_line or line, tok.end_column or col + 1),
            code="E010",
            hint=hint,
            file=file,
        )
    if isinstance(err, UnexpectedCharacters):
        return SagaSyntaxError(
            f"unexpected character {err.char!r}",
            Span(err.line, err.column, err.line, err.column + 1),
            code="E011",
            file=file,
        )
    if isinstance(err, UnexpectedEOF):
        return SagaSyntaxError("unexpected end of file", Span(1, 1, 1, 2), code="E013", file=file)
    return SagaSyntaxError(str(err), Span(1, 1, 1, 2), file=file)


def parse(text: str, file: str = "<string>") -> ir.Module:
    """Parse one spec's text into a Module; raises SagaSyntaxError with a position."""
    try:
        module: ir.Module = _lark().parse(text, start="start")  # type: ignore[assignment]
    except SagaSyntaxError as err:
        err.file = file
        raise
    except UnexpectedInput as err:
        raise _translate(err, file) from None
    except RecursionError:
        raise SagaSyntaxError("nesting too deep to parse", Span(1, 1, 1, 2), code="E014", file=file) from None
    sagas = module.sagas
    return ir.Module(module.imports, sagas, file)


def parse_expr(text: str, file: str = "<string>") -> ir.Expr:
    """Parse a single expression (used by tests, the CLI's ``--set`` and tools)."""
    try:
        expr: ir.Expr = _lark().parse(text, start="expr")  # type: ignore[assignment]
        return expr
    except SagaSyntaxError as err:
        err.file = file
        raise
    except UnexpectedInput as err:
        raise _translate(err, file) from None
