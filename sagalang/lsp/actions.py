"""Quick fixes for the validator's hints: apply a "did you mean", wrap a read in default(...), mark the pivot."""

from __future__ import annotations

import re

from lsprotocol import types as lsp

from ..diagnostics import Diagnostic
from .text import Text
from .workspace import Analysis

__all__ = ["code_actions", "to_lsp"]

_SUGGESTION = re.compile(r"did you mean '([^']+)'\?")
_QUOTED = re.compile(r"'([^']+)'")
_WORD_CHAR = re.compile(r"[A-Za-z0-9_]")
_SEVERITY = {
    "error": lsp.DiagnosticSeverity.Error,
    "warning": lsp.DiagnosticSeverity.Warning,
    "info": lsp.DiagnosticSeverity.Information,
}


def to_lsp(text: Text, d: Diagnostic) -> lsp.Diagnostic:
    """A sagalang diagnostic as the protocol shows it, positioned in its file's ``text`` (the hint follows)."""
    message = d.message + (f"\nhint: {d.hint}" if d.hint else "")
    return lsp.Diagnostic(
        range=text.range(d.span),
        message=message,
        severity=_SEVERITY[d.severity],
        code=d.code,
        source="sagalang",
    )


def _replacement(analysis: Analysis, d: Diagnostic) -> tuple[int, int, str] | None:
    """``(start, end, new_text)`` applying the diagnostic's "did you mean" to the name it points at."""
    m = _SUGGESTION.search(d.hint or "")
    if m is None or d.span.line < 1:
        return None
    suggestion = m.group(1)
    start, end = analysis.text.span_offsets(d.span)
    written = analysis.text.text[start:end]
    # The misspelt name is the one the message quotes that the span starts with (a whole word).
    for quoted in _QUOTED.findall(d.message):
        if quoted != suggestion and written.startswith(quoted):
            after = written[len(quoted) : len(quoted) + 1]
            if not after or not _WORD_CHAR.match(after):
                return start, start + len(quoted), suggestion
    return None


def _did_you_mean(analysis: Analysis, d: Diagnostic) -> lsp.CodeAction | None:
    found = _replacement(analysis, d)
    if found is None:
        return None
    start, end, new = found
    edit = lsp.TextEdit(analysis.text.offset_range(start, end), new)
    return _action(analysis, f"Change to '{new}'", d, [edit], preferred=True)


def _wrap_default(analysis: Analysis, d: Diagnostic) -> lsp.CodeAction | None:
    if d.code != "E304" or d.span.line < 1:
        return None
    start, end = analysis.text.span_offsets(d.span)
    text = analysis.text.text
    # A path's span ends with its last key, so an index key's closing brackets follow it.
    while text[start:end].count("[") > text[start:end].count("]") and text[end : end + 1] == "]":
        end += 1
    read = text[start:end]
    edit = lsp.TextEdit(analysis.text.offset_range(start, end), f"default({read}, null)")
    return _action(analysis, f"Wrap in default({read}, null)", d, [edit], preferred=True)


def _mark_pivot(analysis: Analysis, d: Diagnostic) -> lsp.CodeAction | None:
    if d.code != "I609" or "acts as the pivot" not in d.message or d.span.line < 1:
        return None
    text = analysis.text.text
    name_at = analysis.text.span_offsets(d.span)[0]
    keyword = text.rfind("step", text.rfind("\n", 0, name_at) + 1, name_at)
    if keyword == -1:
        return None
    edit = lsp.TextEdit(analysis.text.offset_range(keyword, keyword), "pivot ")
    return _action(analysis, "Mark the step 'pivot'", d, [edit], preferred=False)


def _action(
    analysis: Analysis, title: str, d: Diagnostic, edits: list[lsp.TextEdit], preferred: bool
) -> lsp.CodeAction:
    return lsp.CodeAction(
        title=title,
        kind=lsp.CodeActionKind.QuickFix,
        diagnostics=[to_lsp(analysis.text, d)],
        edit=lsp.WorkspaceEdit(changes={analysis.uri: edits}),
        is_preferred=preferred,
    )


def _overlaps(analysis: Analysis, d: Diagnostic, rng: lsp.Range) -> bool:
    r = analysis.text.range(d.span)
    return (r.start.line, r.start.character) <= (rng.end.line, rng.end.character) and (
        rng.start.line,
        rng.start.character,
    ) <= (r.end.line, r.end.character)


def code_actions(analysis: Analysis, rng: lsp.Range) -> list[lsp.CodeAction]:
    """The quick fixes for the document's diagnostics that touch ``rng``."""
    out: list[lsp.CodeAction] = []
    for d in analysis.own():
        if not _overlaps(analysis, d, rng):
            continue
        for make in (_did_you_mean, _wrap_default, _mark_pivot):
            action = make(analysis, d)
            if action is not None:
                out.append(action)
    return out
