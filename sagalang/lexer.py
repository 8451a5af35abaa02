"""A Pygments lexer for ``.saga`` files.

Registered through the ``pygments.lexers`` entry point, so ``pygmentize -l saga``,
MkDocs (pymdownx.highlight) and Sphinx highlight ```` ```saga ```` blocks with it.
The language's keywords are contextual (``input.order`` is a reference, not the
``order`` keyword), so names after a ``.`` and names in declaring positions
(``step NAME``, ``saga NAME``, ``NAME:``) are matched before keywords.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pygments.lexer import RegexLexer, default, include, words
from pygments.lexer import bygroups as _bygroups
from pygments.token import (
    Comment,
    Keyword,
    Name,
    Number,
    Operator,
    Punctuation,
    String,
    Whitespace,
)

__all__ = ["BUILTIN_FUNCTIONS", "KEYWORDS", "TYPES", "SagaLexer"]

_ID = r"[A-Za-z_][A-Za-z0-9_]*"
_DOTTED = rf"{_ID}(?:\.{_ID})*"
_SEP = r"(?![A-Za-z0-9_])"  # end of a word (\b would accept "10s" inside "10sx")

KEYWORDS = (
    "after",
    "analyze",
    "attempts",
    "backoff",
    "call",
    "cancel",
    "compensation",
    "defaults",
    "description",
    "do",
    "except",
    "failure",
    "for",
    "forever",
    "import",
    "in",
    "input",
    "jitter",
    "limit",
    "max",
    "on",
    "order",
    "output",
    "parallel",
    "pivot",
    "readonly",
    "retriable",
    "retry",
    "reverse",
    "saga",
    "schema",
    "secret",
    "siblings",
    "step",
    "timeout",
    "undo",
    "use",
    "version",
    "wait",
    "when",
)
# The pure functions of sagalang.expr.FUNCTIONS (a test keeps the two in step).
BUILTIN_FUNCTIONS = (
    "abs",
    "coalesce",
    "contains",
    "default",
    "float",
    "int",
    "join",
    "keys",
    "len",
    "lower",
    "max",
    "min",
    "range",
    "round",
    "sorted",
    "split",
    "str",
    "sum",
    "trim",
    "unique",
    "upper",
    "values",
)
# Input field types (sagalang.validate.INPUT_TYPES).
TYPES = ("any", "boolean", "integer", "list", "number", "object", "string")
# Names an expression starts from: the saga's input, the fan-out item, this step's result.
_ROOTS = ("input", "item", "result")


def bygroups(*tokens: Any) -> Any:
    """Pygments' ``bygroups`` (its stub is untyped): one token per regex group."""
    return _bygroups(*tokens)  # type: ignore[no-untyped-call]


def _string_state(quote: str, token: object) -> list[object]:
    """Rules for one quoted string: escapes, ``${expr}`` interpolation, text."""
    return [
        (r"\\u[0-9A-Fa-f]{4}", String.Escape),
        (r"\\.", String.Escape),
        (r"\$\{", String.Interpol, "interp"),
        (quote, token, "#pop"),
        (rf"[^{quote}\\$\n]+", token),
        (r"\$", token),
    ]


class SagaLexer(RegexLexer):
    """Lexer for sagalang ``.saga`` specifications."""

    name = "Saga"
    aliases: ClassVar[list[str]] = ["saga", "sagalang"]
    filenames: ClassVar[list[str]] = ["*.saga"]
    mimetypes: ClassVar[list[str]] = ["text/x-saga"]
    version_added = ""

    tokens: ClassVar[dict[str, list[object]]] = {
        "root": [
            include("whitespace"),
            # Declarations: the name after the keyword is a definition, whatever it spells.
            (rf"(saga)(\s+)(?!attempts{_SEP})({_ID})", bygroups(Keyword.Declaration, Whitespace, Name.Class)),
            (rf"(step)(\s+)({_ID})", bygroups(Keyword.Declaration, Whitespace, Name.Label)),
            (
                rf"(for)(\s+)({_ID})(\s+)(in){_SEP}",
                bygroups(Keyword, Whitespace, Name.Variable, Whitespace, Keyword),
            ),
            (rf"(import){_SEP}", Keyword.Namespace),
            # Calls: the handler (or sub-saga) being invoked.
            (rf"(do|undo|use|analyze)(\s+)({_DOTTED})", bygroups(Keyword, Whitespace, Name.Function)),
            (rf"(call)(\s+)({_ID})", bygroups(Keyword, Whitespace, Name.Function)),
            (rf"(on)(\s+)(failure){_SEP}", bygroups(Keyword, Whitespace, Keyword)),
            (rf"(on|except)(\s+)(?={_ID})", bygroups(Keyword, Whitespace), "errors"),
            (rf"(after)(\s+)(?={_ID})", bygroups(Keyword, Whitespace), "labels"),
            # A duration may be followed by a backoff multiplier (``200ms x2``).
            (rf"[0-9]+(?:\.[0-9]+)?(?:ms|s|m|h|d){_SEP}", Number, "duration-tail"),
            (rf"({_ID})(\s*)(:)", bygroups(Name.Attribute, Whitespace, Punctuation)),
            (r"(\"[^\"\n]*\"|'[^'\n]*')(\s*)(:)", bygroups(String, Whitespace, Punctuation)),
            (rf"(input|output)(\s+)(schema){_SEP}", bygroups(Keyword, Whitespace, Keyword)),
            include("expr"),
            (words(TYPES, suffix=_SEP), Keyword.Type),
            (words(KEYWORDS, suffix=_SEP), Keyword),
            (r"[{}]", Punctuation),
            (_ID, Name),
        ],
        "whitespace": [
            (r"\s+", Whitespace),
            (r"#[^\n]*", Comment.Single),
        ],
        "expr": [
            include("whitespace"),
            (r'"', String.Double, "dqs"),
            (r"'", String.Single, "sqs"),
            (rf"[0-9]+\.[0-9]+(?:[eE][+-]?[0-9]+)?{_SEP}", Number.Float),
            (rf"[0-9]+[eE][+-]?[0-9]+{_SEP}", Number.Float),
            (rf"[0-9]+{_SEP}", Number.Integer),
            (words(("true", "false", "null"), suffix=_SEP), Keyword.Constant),
            (words(("and", "or", "not"), suffix=_SEP), Operator.Word),
            # A path: its root, then fields (a field may spell a keyword: ``input.order``).
            (rf"(?:{'|'.join(_ROOTS)}){_SEP}(?=\s*[.\[])", Name.Builtin.Pseudo),
            (rf"{_ID}(?=\s*\.\s*{_ID})", Name),
            (rf"(\.)(\s*)({_ID})", bygroups(Punctuation, Whitespace, Name.Attribute)),
            (rf"(?:{'|'.join(BUILTIN_FUNCTIONS)})(?=\s*\()", Name.Builtin),
            (r"==|!=|<=|>=|<|>|\+|-|\*|/|%|=", Operator),
            (r"[()\[\],.:]", Punctuation),
        ],
        "interp": [
            (r"\}", String.Interpol, "#pop"),
            (r"\{", Punctuation, "braced"),
            include("expr"),
            (words(KEYWORDS, suffix=_SEP), Name),
            (_ID, Name),
        ],
        "braced": [
            (r"\}", Punctuation, "#pop"),
            (r"\{", Punctuation, "#push"),
            (rf"({_ID})(\s*)(:)", bygroups(Name.Attribute, Whitespace, Punctuation)),
            include("expr"),
            (_ID, Name),
        ],
        "dqs": _string_state('"', String.Double),
        "sqs": _string_state("'", String.Single),
        "duration-tail": [
            (
                r"([ \t]*)(x)([ \t]*)([0-9]+(?:\.[0-9]+)?)(?![A-Za-z0-9_.])",
                bygroups(Whitespace, Operator, Whitespace, Number),
                "#pop",
            ),
            default("#pop"),
        ],
        "errors": [
            (rf"({_DOTTED})(\s*)(,)(\s*)", bygroups(Name.Exception, Whitespace, Punctuation, Whitespace)),
            (_DOTTED, Name.Exception, "#pop"),
        ],
        "labels": [
            (rf"({_ID})(\s*)(,)(\s*)", bygroups(Name.Label, Whitespace, Punctuation, Whitespace)),
            (_ID, Name.Label, "#pop"),
        ],
    }
