"""Document symbols for the outline: sagas, their input fields, steps, parallel blocks and output."""

from __future__ import annotations

from lsprotocol import types as lsp

from .. import ir
from ..source import Span
from .classes import step_class
from .workspace import Analysis

__all__ = ["document_symbols"]

_K = lsp.SymbolKind


def _start(analysis: Analysis, span: Span, words: tuple[str, ...]) -> int:
    """The offset where a declaration starts: the first of ``words`` before its name on the same line."""
    text = analysis.text.text
    name_at = analysis.text.span_offsets(span)[0]
    line_start = text.rfind("\n", 0, name_at) + 1
    best = name_at
    for word in words:
        found = text.rfind(word, line_start, name_at)
        if found != -1:
            best = min(best, found)
    return best


def _symbol(
    analysis: Analysis, name: str, kind: lsp.SymbolKind, span: Span, start: int, block: bool, detail: str | None = None
) -> lsp.DocumentSymbol:
    text = analysis.text
    name_start, name_end = text.span_offsets(span)
    end = analysis.braces.block_end(name_end) if block else name_end
    line_end = text.text.find("\n", name_end)
    if not block and line_end != -1:
        end = line_end
    return lsp.DocumentSymbol(
        name=name,
        kind=kind,
        range=text.offset_range(start, max(end, name_end)),
        selection_range=text.offset_range(name_start, name_end),
        detail=detail,
        children=[],
    )


def _step(analysis: Analysis, saga: ir.Saga, step: ir.Step) -> lsp.DocumentSymbol:
    detail = step_class(analysis, saga, step.name)
    action = step.do or step.use
    if action is not None:
        detail = f"{detail} · {action.handler}" if detail else action.handler
    elif step.call is not None:
        detail = f"{detail} · call {step.call.saga}" if detail else f"call {step.call.saga}"
    start = _start(analysis, step.span, ("pivot", "readonly", "retriable", "step"))
    return _symbol(analysis, step.name, _K.Function, step.span, start, True, detail)


def _saga(analysis: Analysis, saga: ir.Saga) -> lsp.DocumentSymbol:
    sym = _symbol(analysis, saga.name, _K.Class, saga.span, _start(analysis, saga.span, ("saga",)), True, saga.version)
    children: list[lsp.DocumentSymbol] = []
    if isinstance(saga.input, ir.InputFields):
        for f in saga.input.fields:
            children.append(_symbol(analysis, f.name, _K.Field, f.span, analysis.text.span_offsets(f.span)[0], False))
    for item in saga.body:
        if isinstance(item, ir.Parallel):
            start = analysis.text.span_offsets(item.span)[0]
            block = _symbol(analysis, "parallel", _K.Array, item.span, start, True)
            block.children = [_step(analysis, saga, s) for s in item.steps]
            children.append(block)
        else:
            children.append(_step(analysis, saga, item))
    for entry in saga.output or ():
        start = analysis.text.span_offsets(entry.span)[0]
        children.append(_symbol(analysis, f"output.{entry.name}", _K.Property, entry.span, start, False))
    sym.children = children
    return sym


def document_symbols(analysis: Analysis) -> list[lsp.DocumentSymbol]:
    """The outline of the document (empty while it does not parse)."""
    module = analysis.module
    if module is None:
        return []
    return [_saga(analysis, saga) for saga in module.sagas]
