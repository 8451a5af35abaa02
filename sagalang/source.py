"""Source positions and snippet rendering shared by every stage."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["NO_SPAN", "Span", "snippet"]


@dataclass(frozen=True, slots=True)
class Span:
    """A 1-based line/column range in one source text (end column exclusive)."""

    line: int
    col: int
    end_line: int
    end_col: int

    def __str__(self) -> str:
        return f"{self.line}:{self.col}"


NO_SPAN = Span(0, 0, 0, 0)

_MAX_SNIPPET = 120


def snippet(text: str, span: Span) -> str:
    """The span's source line and a caret under it (long lines are cut around the column)."""
    if span.line < 1:
        return ""
    lines = text.split("\n", span.line)
    if span.line > len(lines):
        return ""
    line = lines[span.line - 1].rstrip("\r").expandtabs(1)
    col = max(span.col, 1)
    width = 1
    if span.end_line == span.line and span.end_col > span.col:
        width = span.end_col - span.col
    start = 0
    if len(line) > _MAX_SNIPPET:
        start = max(0, col - 1 - _MAX_SNIPPET // 2)
        line = ("…" if start else "") + line[start : start + _MAX_SNIPPET] + "…"
        col = col - start + (1 if start else 0)
    width = max(1, min(width, len(line) - col + 1))
    printable = "".join(ch if ch.isprintable() else "?" for ch in line)
    return f"  {printable}\n  {' ' * (col - 1)}{'^' * width}"
