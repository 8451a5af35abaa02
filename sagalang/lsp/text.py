"""Positions and a forgiving scan of a spec's text: what the editor's cursor stands in.

sagalang's spans are 1-based lines and 1-based columns counted in characters;
the protocol counts 0-based lines and columns in UTF-16 code units (or the
encoding the client and server agreed on). :class:`Text` converts between the
two. The scanner reads text that may not parse (the user is typing): it skips
strings and comments, tracks the blocks the cursor is inside and never raises.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field

from lsprotocol import types as lsp

from ..source import Span

__all__ = ["Braces", "Frame", "Text", "Token", "frames_at", "tokens"]


def _units(s: str, encoding: str) -> int:
    if encoding == "utf-32":
        return len(s)
    if encoding == "utf-8":
        return len(s.encode("utf-8"))
    return len(s) + sum(1 for ch in s if ord(ch) > 0xFFFF)


@dataclass
class Text:
    """One document's text with position conversions in the negotiated encoding."""

    text: str
    encoding: str = "utf-16"
    lines: list[str] = field(init=False)
    starts: list[int] = field(init=False)

    def __post_init__(self) -> None:
        self.lines = self.text.split("\n")
        self.starts = [0]
        for line in self.lines[:-1]:
            self.starts.append(self.starts[-1] + len(line) + 1)

    def position(self, line: int, col: int) -> lsp.Position:
        """The protocol position of 0-based ``line`` and character index ``col``."""
        if line >= len(self.lines):
            return lsp.Position(len(self.lines) - 1, _units(self.lines[-1], self.encoding))
        if line < 0:
            return lsp.Position(0, 0)
        text = self.lines[line]
        return lsp.Position(line, _units(text[: max(col, 0)], self.encoding))

    def range(self, span: Span) -> lsp.Range:
        """The protocol range of a sagalang span (a span without a position: the file's start)."""
        if span.line < 1:
            return lsp.Range(lsp.Position(0, 0), lsp.Position(0, 0))
        start = self.position(span.line - 1, span.col - 1)
        end_line = span.end_line if span.end_line >= span.line else span.line
        end_col = span.end_col if span.end_line >= span.line and span.end_col > 0 else span.col
        if end_line == span.line and end_col <= span.col:
            end_col = span.col + 1
        return lsp.Range(start, self.position(end_line - 1, end_col - 1))

    def offset_range(self, start: int, end: int) -> lsp.Range:
        """The protocol range of the characters ``start``..``end`` of the text."""
        return lsp.Range(self.position(*self.line_col(start)), self.position(*self.line_col(end)))

    def line_col(self, offset: int) -> tuple[int, int]:
        """0-based line and character index of a text offset."""
        lo, hi = 0, len(self.starts) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.starts[mid] <= offset:
                lo = mid
            else:
                hi = mid - 1
        return lo, offset - self.starts[lo]

    def offset(self, pos: lsp.Position) -> int:
        """The text offset of a protocol position (clamped to the text)."""
        if pos.line >= len(self.lines):
            return len(self.text)
        line = self.lines[pos.line]
        units = 0
        for i, ch in enumerate(line):
            if units >= pos.character:
                return self.starts[pos.line] + i
            units += _units(ch, self.encoding)
        return self.starts[pos.line] + len(line)

    def span_offsets(self, span: Span) -> tuple[int, int]:
        """Text offsets of a span's start and end."""
        start = self.starts[span.line - 1] + span.col - 1
        end = self.starts[span.end_line - 1] + span.end_col - 1 if span.end_line >= 1 else start
        return start, max(end, start)

    def whole(self) -> lsp.Range:
        """The range of the whole text."""
        return self.offset_range(0, len(self.text))


# ---- a forgiving scanner ----------------------------------------------------------------

_TOKEN = re.compile(
    r"""(?P<ws>\s+)
    |(?P<comment>\#[^\n]*)
    |(?P<string>"(?:\\.|[^"\\\n])*"?|'(?:\\.|[^'\\\n])*'?)
    |(?P<word>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*\.?)
    |(?P<number>[0-9]+(?:\.[0-9]+)?[A-Za-z]*)
    |(?P<punct>.)""",
    re.X,
)


@dataclass(frozen=True, slots=True)
class Token:
    """One token of the forgiving scan: its kind, text and offsets."""

    kind: str  # word, number, string, punct
    text: str
    start: int
    end: int


def tokens(text: str, end: int | None = None) -> list[Token]:
    """The tokens of ``text`` up to offset ``end`` (blanks and comments dropped)."""
    out: list[Token] = []
    limit = len(text) if end is None else end
    for m in _TOKEN.finditer(text, 0, limit):
        kind = m.lastgroup
        if kind is not None and kind not in ("ws", "comment"):
            out.append(Token(kind, m.group(), m.start(), m.end()))
    return out


_BLOCKS = ("step", "parallel", "defaults", "compensation", "failure", "input", "output", "saga")
_MAP_BEFORE = {":", "=", ",", "(", "[", "{"}


@dataclass
class Frame:
    """A block the cursor is inside: its kind (saga, step, parallel, ... or map) and its name."""

    kind: str
    name: str | None
    start: int  # offset of the header's first token
    open: int  # offset of the "{"


def _frame_of(toks: list[Token], i: int) -> Frame:
    """The block opened by the ``{`` at ``toks[i]``, from the words of its header."""
    prev = toks[i - 1] if i else None
    if prev is not None and prev.text in _MAP_BEFORE:
        return Frame("map", None, toks[i].start, toks[i].start)
    j = i - 1
    while j >= 0 and toks[j].text not in ("{", "}"):
        word = toks[j].text
        if toks[j].kind == "word" and word in _BLOCKS:
            name = toks[j + 1].text if word in ("step", "saga") and j + 1 < i else None
            start = j
            if word == "step" and j > 0 and toks[j - 1].text in ("pivot", "readonly", "retriable"):
                start = j - 1
            if word == "failure" and j > 0 and toks[j - 1].text == "on":
                start = j - 1
            return Frame(word, name, toks[start].start, toks[i].start)
        j -= 1
    return Frame("map", None, toks[i].start, toks[i].start)


def frames_at(text: str, offset: int) -> tuple[list[Frame], list[Token]]:
    """The blocks open at ``offset`` (outermost first) and the tokens before it."""
    toks = tokens(text, offset)
    stack: list[Frame] = []
    for i, tok in enumerate(toks):
        if tok.text == "{" and tok.kind == "punct":
            stack.append(_frame_of(toks, i))
        elif tok.text == "}" and tok.kind == "punct" and stack:
            stack.pop()
    return stack, toks


class Braces:
    """Every ``{`` of a text paired with its ``}`` (one scan), to find where a block ends."""

    def __init__(self, text: str) -> None:
        self.size = len(text)
        self.opens: list[int] = []
        self.close: dict[int, int] = {}
        stack: list[int] = []
        for tok in tokens(text):
            if tok.kind != "punct":
                continue
            if tok.text == "{":
                self.opens.append(tok.start)
                stack.append(tok.start)
            elif tok.text == "}" and stack:
                self.close[stack.pop()] = tok.end

    def block_end(self, offset: int) -> int:
        """The offset just past the ``}`` closing the first ``{`` at or after ``offset`` (or the text's end)."""
        i = bisect.bisect_left(self.opens, offset)
        if i == len(self.opens):
            return self.size
        return self.close.get(self.opens[i], self.size)
