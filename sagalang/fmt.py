"""The canonical formatter: one layout for every spec, comments kept.

``format_source(text)`` parses the text, prints its IR in the canonical layout
and re-attaches the comments the parser skipped; ``format_module(module)``
prints an IR Module built in code (no comments). Guarantees, tested with
hypothesis: ``fmt(fmt(x)) == fmt(x)``, ``parse(fmt(x)) == parse(x)``, and
every comment's text survives exactly once.

The layout:

- 4-space indentation, one clause per line, expressions on one line; a
  ``do``/``undo``/``use``/``call`` longer than 100 columns puts each argument
  on its own line (with a trailing comma), ``"`` strings (``'`` only inside a ``${...}``
  of a ``"`` string, where the grammar needs the other quote).
- Imports first, then the sagas, a blank line between sagas.
- ``saga NAME version "v" {`` then its clauses in this order: description,
  input, defaults, timeout, compensation, on failure, the steps and parallel
  blocks in source order, and output last (it maps step results, so it reads
  after the steps). A blank line separates saga items, except between two
  one-line clauses (description, ``input schema``, timeout).
- ``[pivot|readonly|retriable] step NAME [for V in E [limit N]] [after a, b] [when E] {``
  then description, do, call, use, undo, retry, timeout, output schema.
  Steps inside ``parallel { }`` are separated by blank lines.
- Inside blocks: defaults (timeout, retry), compensation (order, retry,
  timeout), on failure (siblings, retry saga). Input fields and output entries
  one per line, no commas, except before a name that is also a keyword
  (``secret``, ``and`` ...), where the comma keeps it a name.
- An empty block prints as ``{}``. Durations use the largest unit that
  divides them exactly (``1500ms``, ``1m``, ``0s``); multipliers print as ``x2``
  or ``x1.5``.
- Expressions get the fewest parentheses that re-parse to the same IR: the IR
  keeps ``(a + b) + c`` apart from ``a + b + c``, so a nested chain at the same
  precedence keeps its parentheses. A path whose keys are identifiers prints
  as ``a.b.c``; other keys as ``[expr]``.

Comments: a comment on a line of its own belongs to the next clause (printed
above it); one after code belongs to the clause that starts on that line
(printed at the end of its first line); one after a block's closing brace on
a later line stays after that brace; comments before a closing brace stay
inside the block, and comments at the end of the file stay there. A comment
in the middle of a clause that spans several lines moves above the clause.
Trailing comments on consecutive lines start in one column, two columns after
the longest code of the run (as gofmt aligns them); a lone one follows its
code after two spaces.

A clause given twice (which the IR keeps only once) is refused with E107
rather than silently dropped.
"""

from __future__ import annotations

import codecs
import difflib
import functools
import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from lark import Lark, Token
from lark.exceptions import UnexpectedInput

from . import ir
from .errors import SagaSyntaxError
from .parser import _parse_fragment, _SagaLexer, grammar_path, parse
from .precedence import ATOM, COMPARE, NOT, precedence
from .source import Span
from .transform import SagaTransformer

if TYPE_CHECKING:
    from .diagnostics import Diagnostic

__all__ = [
    "FileResult",
    "format_duration",
    "format_expr",
    "format_file",
    "format_module",
    "format_source",
    "write_file",
]

_INDENT = "    "
_WIDTH = 100  # a handler call longer than this (indentation included) gets one argument per line
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Characters a string body cannot hold as they are (or may not, for ${ and quotes).
_SPECIAL = re.compile(r"[\"'\\$]|[^\x20-\x7e]")
_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r", "\0": "\\0"}
_NOT_OPERAND = NOT + 1  # `not` parses its operand at this precedence and swallows operators >= it

# ---- token structure ---------------------------------------------------------
_OPEN = {"LPAR", "LSQB", "LBRACE"}
_OPERAND_END = {"NAME", "DOTTED", "INT", "FLOAT", "STRING", "TRUE", "FALSE", "NULL", "RPAR", "RSQB", "RBRACE"}
_STEP_KINDS = {"PIVOT", "READONLY", "RETRIABLE"}
_STEP_START = {"STEP", *_STEP_KINDS}
_SAGA_CLAUSES = {
    "DESCRIPTION",
    "INPUT",
    "OUTPUT",
    "DEFAULTS",
    "TIMEOUT",
    "COMPENSATION",
    "ON",
    "PARALLEL",
} | _STEP_START
_STEP_CLAUSES = {
    "DESCRIPTION": "description",
    "DO": "do",
    "UNDO": "undo",
    "CALL": "call",
    "USE": "use",
    "RETRY": "retry",
    "TIMEOUT": "timeout",
    "OUTPUT": "output_schema",
}
_DEFAULTS_CLAUSES = {"RETRY": "retry", "TIMEOUT": "timeout"}
_COMPENSATION_CLAUSES = {"ORDER": "order", "RETRY": "retry", "TIMEOUT": "timeout"}
_FAILURE_CLAUSES = {"SIBLINGS": "siblings", "RETRY": "retry"}


# ---- public API ----------------------------------------------------------------


def format_source(text: str, file: str = "<string>") -> str:
    """The canonical layout of a spec's text, comments kept; raises SagaSyntaxError on bad input."""
    module, tokens = _parse_recording(text, file)
    _refuse_duplicates(module, file)
    try:
        notes = _Layout(text, tokens).attach(module)
        return _Printer(notes).module(module)
    except RecursionError:
        raise SagaSyntaxError("nesting too deep to format", Span(1, 1, 1, 2), code="E014", file=file) from None


def format_module(module: ir.Module) -> str:
    """Print an IR Module (built by the parser or in code) in the canonical layout, without comments."""
    return _Printer(_Notes()).module(module)


def format_expr(expr: ir.Expr) -> str:
    """One expression as the formatter prints it (fewest parentheses that keep the IR)."""
    return _expr(expr, 0, 0)


def format_duration(ms: int) -> str:
    """A duration in the largest unit that divides it exactly: ``1500ms``, ``2s``, ``1m``."""
    if ms == 0:
        return "0s"
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


@dataclass
class FileResult:
    """One file run through the formatter: what it holds now, what it should hold, or why not."""

    path: Path
    display: str
    text: str | None = None
    original: bytes = b""
    formatted: bytes | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """Whether formatting changes the file's bytes."""
        return self.formatted is not None and self.formatted != self.original

    def diff(self) -> str:
        """A unified diff from the file's text to its canonical layout (empty when unchanged)."""
        if not self.changed or self.text is None or self.formatted is None:
            return ""
        new = self.formatted.decode("utf-8").removeprefix("\ufeff").replace("\r\n", "\n")
        old = self.text.replace("\r\n", "\n")
        lines = difflib.unified_diff(_lines(old), _lines(new), f"a/{self.display}", f"b/{self.display}")
        return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


def _lines(text: str) -> list[str]:
    """Lines with their newline; only \\n ends a line in a spec (str.splitlines knows more)."""
    parts = text.split("\n")
    return [line + "\n" for line in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def format_file(path: str | Path, display: str | None = None) -> FileResult:
    """Read and format one file without writing it; problems become diagnostics, never exceptions.

    The file's line endings (LF or CRLF) and byte-order mark are kept, and it
    ends with one newline.
    """
    from .diagnostics import diagnostic
    from .project import display_path, read_file

    p = Path(path)
    result = FileResult(p, display or display_path(p))
    sf, problems = read_file(p, result.display)
    result.text = sf.text
    if problems or sf.text is None:
        result.diagnostics = problems
        return result
    try:
        result.original = p.read_bytes()
        formatted = format_source(sf.text, result.display)
    except OSError as err:
        result.diagnostics = [diagnostic("E001", f"cannot read file: {err.strerror or err}", result.display)]
        return result
    except SagaSyntaxError as err:
        result.diagnostics = [diagnostic(err.code, err.message, result.display, err.span, err.hint)]
        return result
    first_nl = result.original.find(b"\n")
    if first_nl > 0 and result.original[first_nl - 1 : first_nl] == b"\r":
        formatted = formatted.replace("\n", "\r\n")
    bom = codecs.BOM_UTF8 if result.original.startswith(codecs.BOM_UTF8) else b""
    result.formatted = bom + formatted.encode("utf-8")
    return result


def write_file(result: FileResult) -> Diagnostic | None:
    """Replace the file with its formatted bytes atomically (temp file + rename); a diagnostic on failure."""
    from .diagnostics import diagnostic

    if result.formatted is None:
        return None
    path = result.path
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(result.formatted)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, mode)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as err:
        return diagnostic("E001", f"cannot write file: {err.strerror or err}", result.display)
    return None


# ---- parsing with a token record -------------------------------------------------


class _Source(str):
    """The text being parsed, carrying the list the recording lexer fills."""

    tokens: list[Token]


class _RecordingLexer(_SagaLexer):
    """The parser's own lexer (keywords resolved by parser state), keeping every token it yields."""

    def lex(self, lexer_state: Any, parser_state: Any) -> Iterator[Token]:
        sink: list[Token] = lexer_state.text.text.tokens
        for tok in super().lex(lexer_state, parser_state):
            sink.append(tok)
            yield tok


@functools.cache
def _fmt_lark() -> Lark:
    """The formatter's parser: the same grammar and transformer, with a recording lexer."""
    return Lark(
        grammar_path().read_text(encoding="utf-8"),
        parser="lalr",
        lexer=_RecordingLexer,
        start="start",
        transformer=SagaTransformer(_parse_fragment),
        maybe_placeholders=False,
        cache=False,
    )


def _parse_recording(text: str, file: str) -> tuple[ir.Module, list[Token]]:
    src = _Source(text)
    src.tokens = []
    try:
        module = cast(ir.Module, _fmt_lark().parse(src))
    except (SagaSyntaxError, UnexpectedInput, RecursionError):
        # The parser proper turns every failure into the one canonical SagaSyntaxError.
        parse(text, file)
        raise
    return ir.Module(module.imports, module.sagas, file), src.tokens


def _refuse_duplicates(module: ir.Module, file: str) -> None:
    """The IR keeps only the first of a repeated clause; formatting would delete the others."""
    for saga in module.sagas:
        for dup in [*saga.duplicates, *(d for step in saga.steps() for d in step.duplicates)]:
            word = dup.clause.removeprefix("saga_").replace("_", " ")
            raise SagaSyntaxError(
                f"'{word}' given twice; formatting would drop the second one",
                dup.span,
                code="E107",
                hint="remove one of the two clauses, then format",
                file=file,
            )


# ---- comment attachment ------------------------------------------------------------


@dataclass(slots=True)
class _Unit:
    """One printed clause or block, its token range and the comments that go with it."""

    first: int
    last: int
    close: int = -1
    leading: list[str] = field(default_factory=list)
    trailing: str | None = None
    close_trailing: str | None = None
    dangling: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Notes:
    """Comments by unit key (``id(node)`` or ``(id(owner), clause)``), and those at the end of the file."""

    units: dict[object, _Unit] = field(default_factory=dict)
    end: list[str] = field(default_factory=list)


class _Layout:
    """Finds every clause in the token stream, pairs it with its IR node, then places comments."""

    def __init__(self, text: str, tokens: list[Token]) -> None:
        self.text = text
        self.tokens = tokens
        self.types = [t.type for t in tokens]
        self.match = self._brackets()
        self.order: list[_Unit] = []
        self.notes = _Notes()

    def _brackets(self) -> list[int]:
        match = [-1] * len(self.types)
        stack: list[int] = []
        for i, ty in enumerate(self.types):
            if ty in _OPEN:
                stack.append(i)
            elif ty in ("RPAR", "RSQB", "RBRACE"):
                j = stack.pop()
                match[j] = i
                match[i] = j
        return match

    def _unit(self, key: object, first: int, last: int, close: int = -1) -> _Unit:
        unit = _Unit(first, last, close)
        self.notes.units[key] = unit
        self.order.append(unit)
        return unit

    def _starts(self, open_: int, close: int, kinds: set[str] | dict[str, str]) -> list[tuple[int, int]]:
        """(first, last) token of each clause directly inside the block ``open_``..``close``."""
        types = self.types
        return self._spans(open_, close, lambda j: types[j] in kinds, lambda j: types[j] in _STEP_KINDS)

    def _named(self, open_: int, close: int) -> list[tuple[int, int]]:
        """(first, last) token of each ``NAME: ...`` entry directly inside a block."""
        types = self.types
        return self._spans(open_, close, lambda j: types[j] == "NAME" and types[j + 1] == "COLON", lambda j: False)

    def _spans(
        self, open_: int, close: int, starts_here: Callable[[int], bool], two_tokens: Callable[[int], bool]
    ) -> list[tuple[int, int]]:
        """Split a block's top level into entries, each starting where ``starts_here`` holds.

        Nested brackets are skipped whole; ``two_tokens`` marks a start whose next
        token belongs to it too (``pivot step`` is one clause).
        """
        starts: list[int] = []
        j = open_ + 1
        while j < close:
            if self.types[j] in _OPEN:
                j = self.match[j] + 1
                continue
            if starts_here(j):
                starts.append(j)
                if two_tokens(j):
                    j += 1
            j += 1
        return [(s, (starts[i + 1] if i + 1 < len(starts) else close) - 1) for i, s in enumerate(starts)]

    def _step_block(self, start: int) -> int:
        """The ``{`` opening a step's body: the first one after an operand (a map's follows an operator)."""
        types = self.types
        j = start
        while True:
            ty = types[j]
            if ty == "LBRACE" and types[j - 1] in _OPERAND_END:
                return j
            j = self.match[j] + 1 if ty in _OPEN else j + 1

    # ---- walking the structure ----
    def attach(self, module: ir.Module) -> _Notes:
        """Pair clauses with IR nodes, then give each comment to its unit."""
        types = self.types
        imports = iter(module.imports)
        sagas = iter(module.sagas)
        i = 0
        n = len(types)
        while i < n:
            if types[i] == "IMPORT":
                self._unit(id(next(imports)), i, i + 1)
                i += 2
                continue
            open_ = types.index("LBRACE", i)
            close = self.match[open_]
            saga = next(sagas)
            self._unit(id(saga), i, close, close)
            self._saga(saga, open_, close)
            i = close + 1
        self._comments()
        return self.notes

    def _saga(self, saga: ir.Saga, open_: int, close: int) -> None:
        types = self.types
        body = iter(saga.body)
        owner = id(saga)
        for s, e in self._starts(open_, close, _SAGA_CLAUSES):
            ty = types[s]
            if ty == "DESCRIPTION":
                self._unit((owner, "description"), s, e)
            elif ty == "TIMEOUT":
                self._unit((owner, "timeout"), s, e)
            elif ty == "INPUT" and types[s + 1] != "LBRACE":
                self._unit((owner, "input"), s, e)
            elif ty in ("INPUT", "OUTPUT"):
                o = s + 1
                self._unit((owner, ty.lower()), s, e, self.match[o])
                nodes: tuple[Any, ...] = (
                    saga.input.fields if ty == "INPUT" and isinstance(saga.input, ir.InputFields) else saga.output or ()
                )
                for node, (fs, fe) in zip(nodes, self._named(o, self.match[o]), strict=True):
                    self._unit(id(node), fs, fe)
            elif ty == "DEFAULTS":
                self._policy(owner, "defaults", saga.defaults, s, e, s + 1, _DEFAULTS_CLAUSES)
            elif ty == "COMPENSATION":
                self._policy(owner, "compensation", saga.compensation, s, e, s + 1, _COMPENSATION_CLAUSES)
            elif ty == "ON":
                self._policy(owner, "on_failure", saga.on_failure, s, e, s + 2, _FAILURE_CLAUSES)
            elif ty == "PARALLEL":
                par = next(body)
                assert isinstance(par, ir.Parallel)
                o = s + 1
                c = self.match[o]
                self._unit(id(par), s, e, c)
                for step, (ss, se) in zip(par.steps, self._starts(o, c, _STEP_START), strict=True):
                    self._step(step, ss, se)
            else:
                node = next(body)
                assert isinstance(node, ir.Step)
                self._step(node, s, e)

    def _policy(self, owner: int, kind: str, node: object, s: int, e: int, o: int, kinds: dict[str, str]) -> None:
        c = self.match[o]
        self._unit((owner, kind), s, e, c)
        for cs, ce in self._starts(o, c, kinds):
            self._unit((id(node), kinds[self.types[cs]]), cs, ce)

    def _step(self, step: ir.Step, s: int, e: int) -> None:
        o = self._step_block(s)
        c = self.match[o]
        self._unit(id(step), s, e, c)
        for cs, ce in self._starts(o, c, _STEP_CLAUSES):
            self._unit((id(step), _STEP_CLAUSES[self.types[cs]]), cs, ce)

    # ---- comments ----
    def _comments(self) -> None:
        tokens = self.tokens
        text = self.text
        n = len(tokens)
        owner = [-1] * n
        starts = [-1] * n
        closes = [-1] * n
        units = self.order
        # Units were made outside-in, so inner units overwrite their parents' ranges.
        for idx, u in enumerate(units):
            owner[u.first : u.last + 1] = [idx] * (u.last + 1 - u.first)
            starts[u.first] = idx
            if u.close >= 0:
                closes[u.close] = idx
        for k in range(n + 1):
            a = (tokens[k - 1].end_pos or 0) if k else 0
            b = (tokens[k].start_pos or 0) if k < n else len(text)
            pos = text.find("#", a, b)
            while pos != -1:
                end = text.find("\n", pos, b)
                end = b if end == -1 else end
                comment = text[pos:end].rstrip()
                own_line = k == 0 or text.find("\n", a, pos) != -1
                if own_line:
                    if k == n:
                        self.notes.end.append(comment)
                    elif closes[k] >= 0:
                        units[closes[k]].dangling.append(comment)
                    else:
                        units[starts[k] if starts[k] >= 0 else owner[k]].leading.append(comment)
                else:
                    p = k - 1
                    u = units[owner[p]]
                    line = tokens[p].line or 0
                    start_line = tokens[u.first].line or 0
                    if u.close == p and line != start_line and u.close_trailing is None:
                        u.close_trailing = comment
                    elif line == start_line and u.trailing is None:
                        u.trailing = comment
                    else:
                        u.leading.append(comment)
                pos = text.find("#", end, b)


# ---- printing ------------------------------------------------------------------------


def _align_comments(lines: list[str], comments: dict[int, str]) -> list[str]:
    """Put each line's trailing comment after its code; consecutive commented lines share one column.

    As gofmt does: a run of lines that each end in a comment has its comments
    start two columns after the run's longest code, so hand-aligned comments
    keep their look; a line without one (or a blank line) ends the run.
    """
    out = list(lines)
    i = 0
    n = len(lines)
    while i < n:
        if i not in comments:
            i += 1
            continue
        j = i
        while j + 1 < n and j + 1 in comments:
            j += 1
        column = max(len(lines[k]) for k in range(i, j + 1)) + 2
        for k in range(i, j + 1):
            out[k] = lines[k].ljust(column) + comments[k]
        i = j + 1
    return out


@functools.cache
def _keywords() -> frozenset[str]:
    from .parser import _lark

    return frozenset(
        t.pattern.value for t in _lark().terminals if t.pattern.type == "str" and _IDENT.fullmatch(t.pattern.value)
    )


_Item = tuple[bool, Callable[[int], None]]  # (is a block, writer at an indentation depth)


class _Printer:
    """Writes the canonical layout line by line, with the comments of each unit."""

    def __init__(self, notes: _Notes) -> None:
        self.notes = notes
        self.out: list[str] = []
        # Trailing comments by output line, kept apart from the code so that runs of them can be aligned.
        self.comments: dict[int, str] = {}

    def _emit(self, code: str, comment: str | None) -> None:
        """One output line, with the trailing comment that goes at its end (if any)."""
        if comment is not None:
            self.comments[len(self.out)] = comment
        self.out.append(code)

    def module(self, module: ir.Module) -> str:
        """The whole file."""
        out = self.out
        for imp in module.imports:
            self._line(id(imp), 0, f"import {_string(imp.path, 0)}")
        for saga in module.sagas:
            if out:
                out.append("")
            self._saga(saga)
        if self.notes.end:
            if out:
                out.append("")
            out.extend(self.notes.end)
        return "\n".join(_align_comments(out, self.comments)) + "\n" if out else ""

    # ---- units ----
    def _line(self, key: object, depth: int, text: str | list[str]) -> None:
        """One clause (a line, or the lines of a wrapped call) with its comments."""
        unit = self.notes.units.get(key)
        pad = _INDENT * depth
        lines = [text] if isinstance(text, str) else text
        comment = None
        if unit is not None:
            self.out.extend(pad + c for c in unit.leading)
            comment = unit.trailing
        self._emit(pad + lines[0], comment)
        self.out.extend(pad + line for line in lines[1:])

    def _block(self, key: object, depth: int, header: str, items: list[_Item], spaced: bool = False) -> None:
        """``header {`` items ``}``; ``spaced`` puts blank lines around block items (saga and parallel bodies)."""
        unit = self.notes.units.get(key)
        pad = _INDENT * depth
        out = self.out
        leading: list[str] = unit.leading if unit else []
        dangling: list[str] = unit.dangling if unit else []
        trailing = unit.trailing if unit else None
        close_trailing = unit.close_trailing if unit else None
        out.extend(pad + c for c in leading)
        if not items and not dangling and (trailing is None or close_trailing is None):
            comment = trailing if trailing is not None else close_trailing
            self._emit(f"{pad}{header} {{}}", comment)
            return
        self._emit(f"{pad}{header} {{", trailing)
        previous: bool | None = None
        for is_block, write in items:
            if spaced and previous is not None and (is_block or previous):
                out.append("")
            write(depth + 1)
            previous = is_block
        if dangling:
            if spaced and items:
                out.append("")
            out.extend(pad + _INDENT + c for c in dangling)
        self._emit(f"{pad}}}", close_trailing)

    def _clause(self, key: object, text: str) -> _Item:
        return (False, lambda depth: self._line(key, depth, text))

    def _action(self, key: object, keyword: str, name: str, args: tuple[ir.Arg, ...]) -> _Item:
        """``do h.x(a: 1)``; a call longer than the line width gets one argument per line."""

        def write(depth: int) -> None:
            parts = [f"{a.name}: {_expr(a.value, 0, 0)}" for a in args]
            text = f"{keyword} {name}(" + ", ".join(parts) + ")"
            if args and len(_INDENT) * depth + len(text) > _WIDTH:
                self._line(key, depth, [f"{keyword} {name}(", *(f"{_INDENT}{p}," for p in parts), ")"])
            else:
                self._line(key, depth, text)

        return (False, write)

    # ---- saga ----
    def _saga(self, saga: ir.Saga) -> None:
        owner = id(saga)
        items: list[_Item] = []
        if saga.description is not None:
            items.append(self._clause((owner, "description"), f"description {_string(saga.description, 0)}"))
        if isinstance(saga.input, ir.InputSchema):
            items.append(self._clause((owner, "input"), f"input schema {_string(saga.input.path, 0)}"))
        elif isinstance(saga.input, ir.InputFields):
            items.append((True, functools.partial(self._fields, owner, saga.input.fields)))
        if saga.defaults is not None:
            d = saga.defaults
            sub = [self._clause((id(d), "timeout"), f"timeout {format_duration(d.timeout.ms)}")] if d.timeout else []
            if d.retry is not None:
                sub.append(self._clause((id(d), "retry"), _retry(d.retry)))
            items.append((True, functools.partial(self._block, (owner, "defaults"), header="defaults", items=sub)))
        if saga.timeout is not None:
            items.append(self._clause((owner, "timeout"), f"timeout {format_duration(saga.timeout.ms)}"))
        if saga.compensation is not None:
            c = saga.compensation
            sub = [self._clause((id(c), "order"), f"order {c.order}")] if c.order else []
            if c.retry is not None:
                sub.append(self._clause((id(c), "retry"), _retry(c.retry)))
            if c.timeout is not None:
                sub.append(self._clause((id(c), "timeout"), f"timeout {format_duration(c.timeout.ms)}"))
            items.append(
                (True, functools.partial(self._block, (owner, "compensation"), header="compensation", items=sub))
            )
        if saga.on_failure is not None:
            f = saga.on_failure
            sub = [self._clause((id(f), "siblings"), f"siblings {f.siblings}")] if f.siblings else []
            if f.retry is not None:
                sub.append(self._clause((id(f), "retry"), _saga_retry(f.retry)))
            items.append((True, functools.partial(self._block, (owner, "on_failure"), header="on failure", items=sub)))
        for node in saga.body:
            if isinstance(node, ir.Parallel):
                steps: list[_Item] = [(True, functools.partial(self._step, s)) for s in node.steps]
                items.append(
                    (True, functools.partial(self._block, id(node), header="parallel", items=steps, spaced=True))
                )
            else:
                items.append((True, functools.partial(self._step, node)))
        if saga.output is not None:
            entries = saga.output
            outs: list[_Item] = [
                self._clause(id(e), f"{e.name}: {_expr(e.value, 0, 0)}{_sep(entries, i)}")
                for i, e in enumerate(entries)
            ]
            items.append((True, functools.partial(self._block, (owner, "output"), header="output", items=outs)))
        header = f"saga {saga.name}" + (f" version {_string(saga.version, 0)}" if saga.version is not None else "")
        self._block(id(saga), 0, header, items, spaced=True)

    def _fields(self, owner: int, fields: tuple[ir.Field, ...], depth: int) -> None:
        items: list[_Item] = []
        for i, f in enumerate(fields):
            text = f"{f.name}: {_type(f.type)}" + (" secret" if f.secret else "")
            if f.default is not None:
                text += f" = {_expr(f.default, 0, 0)}"
            items.append(self._clause(id(f), text + _sep(fields, i)))
        self._block((owner, "input"), depth, "input", items)

    def _step(self, step: ir.Step, depth: int) -> None:
        header = ("" if step.kind == "step" else f"{step.kind} ") + f"step {step.name}"
        if step.foreach is not None:
            fe = step.foreach
            header += f" for {fe.var} in {_expr(fe.iterable, 0, 0)}" + (
                f" limit {fe.limit}" if fe.limit is not None else ""
            )
        if step.after is not None:
            header += " after " + ", ".join(r.name for r in step.after)
        if step.when is not None:
            header += f" when {_expr(step.when, 0, 0)}"
        key = id(step)
        items: list[_Item] = []
        if step.description is not None:
            items.append(self._clause((key, "description"), f"description {_string(step.description, 0)}"))
        if step.do is not None:
            items.append(self._action((key, "do"), "do", step.do.handler, step.do.args))
        if step.call is not None:
            items.append(self._action((key, "call"), "call", step.call.saga, step.call.args))
        if step.use is not None:
            items.append(self._action((key, "use"), "use", step.use.handler, step.use.args))
        if step.undo is not None:
            items.append(self._action((key, "undo"), "undo", step.undo.handler, step.undo.args))
        if step.retry is not None:
            items.append(self._clause((key, "retry"), _retry(step.retry)))
        if step.timeout is not None:
            items.append(self._clause((key, "timeout"), f"timeout {format_duration(step.timeout.ms)}"))
        if step.output_schema is not None:
            items.append(self._clause((key, "output_schema"), f"output schema {_string(step.output_schema.path, 0)}"))
        self._block(key, depth, header, items)


def _sep(entries: tuple[ir.Field, ...] | tuple[ir.OutputEntry, ...], i: int) -> str:
    """A comma only where the next name would otherwise be read as a keyword."""
    return "," if i + 1 < len(entries) and entries[i + 1].name in _keywords() else ""


def _type(t: ir.TypeRef) -> str:
    return t.name + (f"[{_type(t.arg)}]" if t.arg is not None else "")


def _backoff(b: ir.Backoff) -> str:
    text = f"backoff {format_duration(b.initial.ms)}"
    if b.multiplier is not None:
        text += f" x{_plain_number(b.multiplier)}"
    if b.max is not None:
        text += f" max {format_duration(b.max.ms)}"
    return text


def _retry(r: ir.RetryPolicy) -> str:
    text = "retry " + ("forever" if r.attempts is None else f"attempts {r.attempts}")
    if r.backoff is not None:
        text += " " + _backoff(r.backoff)
    if r.jitter:
        text += " jitter"
    if r.on:
        text += " on " + ", ".join(r.on)
    if r.except_:
        text += " except " + ", ".join(r.except_)
    return text


def _saga_retry(r: ir.SagaRetry) -> str:
    text = f"retry saga attempts {r.attempts}"
    if r.backoff is not None:
        text += " " + _backoff(r.backoff)
    if r.analyzer is not None:
        text += f" analyze {r.analyzer}"
    return text


def _plain_number(value: float) -> str:
    """A float without an exponent (the multiplier token has none): ``2``, ``1.5``, ``0.00001``."""
    if value == float("inf"):
        return "1" + "0" * 309  # any larger-than-double literal reads back as infinity
    text = format(Decimal(repr(value)), "f")
    return text[:-2] if text.endswith(".0") else text


# ---- expressions ---------------------------------------------------------------------


def _operand(e: ir.Expr, need: int, follow: int, q: int) -> str:
    """``e`` where the parser reads an operand of precedence ``need``, followed by an operator of ``follow``.

    A bare ``not`` takes everything that binds at least as tight as a comparison
    after it, so it needs parentheses exactly when such an operator follows.
    """
    paren = follow >= _NOT_OPERAND if type(e) is ir.Unary and e.ops[0] == "not" else precedence(e) < need
    return f"({_expr(e, 0, q)})" if paren else _expr(e, follow, q)


def _expr(e: ir.Expr, follow: int, q: int) -> str:
    """``e`` without outer parentheses; ``q`` counts the ``${...}`` levels we are inside."""
    t = type(e)
    if t is ir.Name:
        return e.id  # type: ignore[union-attr]
    if t is ir.Literal:
        return _literal(e.value, q)  # type: ignore[union-attr]
    if t is ir.Path:
        assert isinstance(e, ir.Path)
        base = e.base
        paren = type(base) is ir.Path or precedence(base) < ATOM
        # `null.a` would lex as one dotted name (a Name `null`), so such a literal base keeps parentheses.
        keyword_literal = type(base) is ir.Literal and (base.value is None or type(base.value) is bool)
        paren = paren or (keyword_literal and _dot_key(e.keys[0]))
        text = f"({_expr(base, 0, q)})" if paren else _expr(base, 0, q)
        for key in e.keys:
            if isinstance(key, ir.Literal) and _dot_key(key):
                text += f".{key.value}"
            else:
                text += f"[{_expr(key, 0, q)}]"
        return text
    if t is ir.FuncCall:
        assert isinstance(e, ir.FuncCall)
        return f"{e.func}(" + ", ".join(_expr(a, 0, q) for a in e.args) + ")"
    if t is ir.Arith or t is ir.BoolOp:
        assert isinstance(e, ir.Arith | ir.BoolOp)
        if isinstance(e, ir.Arith):
            ops: tuple[str, ...] = e.ops
            operands = e.operands
        else:
            operands = e.values
            ops = (e.op,) * (len(operands) - 1)
        p = precedence(e)
        last = len(operands) - 1
        parts = [_operand(o, p + 1, p if i < last else follow, q) for i, o in enumerate(operands)]
        return parts[0] + "".join(f" {op} {part}" for op, part in zip(ops, parts[1:]))
    if t is ir.Compare:
        assert isinstance(e, ir.Compare)
        c = COMPARE
        return f"{_operand(e.left, c + 1, c, q)} {e.op} {_operand(e.right, c + 1, follow, q)}"
    if t is ir.Unary:
        assert isinstance(e, ir.Unary)
        o = e.operand
        if type(o) is ir.Unary and o.ops[0] == e.ops[0]:
            inner = f"({_expr(o, 0, q)})"  # `not (not x)` is not `not not x` in the IR
        else:
            inner = _operand(o, _NOT_OPERAND if e.ops[0] == "not" else ATOM, follow, q)
        if e.ops[0] == "not":
            return "not " * len(e.ops) + inner
        return "-" * len(e.ops) + inner
    if t is ir.ListExpr:
        return "[" + ", ".join(_expr(i, 0, q) for i in e.items) + "]"  # type: ignore[union-attr]
    if t is ir.MapExpr:
        assert isinstance(e, ir.MapExpr)
        pairs = (f"{k if _IDENT.fullmatch(k) else _string(k, q)}: {_expr(v, 0, q)}" for k, v in zip(e.keys, e.values))
        return "{" + ", ".join(pairs) + "}"
    if t is ir.Template:
        assert isinstance(e, ir.Template)
        return _template(e, q)
    raise TypeError(f"not an expression node: {e!r}")


def _dot_key(key: ir.Expr) -> bool:
    """Whether a path key prints as ``.name`` (an identifier string) rather than ``[expr]``."""
    return type(key) is ir.Literal and type(key.value) is str and _IDENT.fullmatch(key.value) is not None


def _template(e: ir.Template, q: int) -> str:
    quote = _quote(q)
    pieces: list[str] = []
    text_before = False
    several = len(e.parts) > 1
    for part in e.parts:
        # Text parts are non-empty and never adjacent, and a template has an
        # expression, so a string literal prints as text only where that holds.
        if several and not text_before and type(part) is ir.Literal and type(part.value) is str and part.value:
            pieces.append(_escape(part.value, q))
            text_before = True
        else:
            pieces.append("${" + _expr(part, 0, q + 1) + "}")
            text_before = False
    return quote + "".join(pieces) + quote


def _literal(value: ir.Scalar, q: int) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return _string(value, q)
    if isinstance(value, float):
        if value != value:
            raise ValueError("NaN has no literal in the language")
        if value in (float("inf"), float("-inf")):
            return ("-" if value < 0 else "") + "1e999"  # reads back as infinity
        return repr(value)
    return str(value)


def _quote(q: int) -> str:
    if q >= 2:
        raise ValueError("a string inside ${...} inside ${...} cannot be written: both quote characters are taken")
    return '"' if q == 0 else "'"


def _string(value: str, q: int) -> str:
    quote = _quote(q)
    return quote + _escape(value, q) + quote


def _escape(value: str, q: int) -> str:
    """A string body for quote level ``q``: inside ``${...}`` both quote characters are escaped."""
    if not _SPECIAL.search(value):
        return value
    out: list[str] = []
    n = len(value)
    for i, ch in enumerate(value):
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ch == '"' or (ch == "'" and q):
            out.append("\\" + ch)
        elif ch == "$" and i + 1 < n and value[i + 1] == "{":
            out.append("\\$")
        elif not ch.isprintable() and ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)
