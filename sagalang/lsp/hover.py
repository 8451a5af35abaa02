"""Hover: what a step is and what its failure undoes, a handler's signature, a code's meaning, a keyword."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from lsprotocol import types as lsp

from .. import ir
from ..diagnostics import CATALOGUE, Diagnostic
from ..errors import SagaError
from ..plan import SagaPlan
from ..plugins import Handler, Registry
from ..project import display_path
from .classes import CLASSES, step_class
from .index import Occurrence
from .keywords import keyword_doc
from .text import tokens
from .workspace import Analysis

__all__ = ["diagnostic_doc", "handler_doc", "handler_source", "hover", "step_doc"]


def _call(inv: ir.Invocation | ir.SagaCall, name: str) -> str:
    return f"`{name}(" + ", ".join(a.name for a in inv.args) + ")`"


def _failure(plan: SagaPlan, name: str) -> str:
    """What the failure for good of step ``name`` triggers, as ``sagalang plan`` words it."""
    f = plan.failure(name)
    if f.recovery == "forward":
        return "forward recovery: " + "; ".join(f.notes)
    if not f.compensation:
        return "nothing to undo"
    joiner = " + " if plan.compensation_order == "parallel" else " / "
    return "undo " + " → ".join(joiner.join(u.label() for u in group) for group in f.compensation)


def step_doc(analysis: Analysis, saga: ir.Saga, step: ir.Step) -> str:
    """A step's class, its action and undo, its retry policy and what its failure would undo."""
    plan = analysis.plan(saga)
    head = f"**step** `{step.name}`"
    lines: list[str] = []
    cls = step_class(analysis, saga, step.name)
    if cls is not None:
        head += f" · {cls}"
        lines.append(f"*{CLASSES[cls]}*")
    if step.description:
        lines.append(step.description)
    actions = []
    for word, inv in (("do", step.do), ("use", step.use), ("undo", step.undo)):
        if inv is not None:
            actions.append(f"{word} {_call(inv, inv.handler)}")
    if step.call is not None:
        actions.append(f"call {_call(step.call, step.call.saga)}")
    if actions:
        lines.append("  \n".join(actions))
    if plan is not None and any(s.name == step.name for s in plan.steps):
        retry = plan.step(step.name).retry
        if retry:
            lines.append(f"retry {retry}")
        lines.append(f"**If it fails for good:** {_failure(plan, step.name)}")
    return "\n\n".join([head, *lines])


def handler_source(h: Handler) -> tuple[Path, int] | None:
    """Where a handler's Python code is: its file and 1-based line."""
    target: Any = h.func if h.func is not None else type(h.step)
    try:
        target = inspect.unwrap(target)
        file = inspect.getsourcefile(target)
        _, line = inspect.getsourcelines(target)
    except (OSError, TypeError):
        return None
    return (Path(file).resolve(), max(line, 1)) if file else None


def _annotation(value: Any) -> str:
    return value if isinstance(value, str) else getattr(value, "__name__", str(value))


def _signature(h: Handler) -> str:
    """``[async] def NAME(params) -> result`` with annotations as written (no quotes)."""
    target: Any = h.func if h.func is not None else getattr(h.step, "execute", None)
    prefix = "async def" if h.info.is_async else "def"
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return f"{prefix} {h.info.name}(...)"
    params = []
    for p in sig.parameters.values():
        text = ("**" if p.kind is p.VAR_KEYWORD else "*" if p.kind is p.VAR_POSITIONAL else "") + p.name
        if p.annotation is not p.empty:
            text += f": {_annotation(p.annotation)}"
        if p.default is not p.empty:
            text += f" = {p.default!r}"
        params.append(text)
    result = f" -> {_annotation(sig.return_annotation)}" if sig.return_annotation is not sig.empty else ""
    return f"{prefix} {h.info.name}({', '.join(params)}){result}"


def handler_doc(registry: Registry | None, name: str) -> str | None:
    """A handler's signature, docstring and source file (None when it is not registered)."""
    if registry is None:
        return None
    try:
        h = registry.get(name)
    except SagaError as err:
        return f"`{name}`: {err}"
    if h is None:
        return None
    doc = inspect.getdoc(h.func if h.func is not None else type(h.step)) or ""
    parts = [f"```python\n{_signature(h)}\n```"]
    if h.info.kind == "step":
        parts.append("*a step object: it provides the step's action and its undo*")
    if doc:
        parts.append(doc)
    where = handler_source(h)
    parts.append(f"*from {display_path(where[0]) if where else h.info.source}*")
    return "\n\n".join(parts)


def diagnostic_doc(d: Diagnostic) -> str:
    """A diagnostic's catalogue entry: title, what it means, how to fix it."""
    rule = CATALOGUE.get(d.code)
    if rule is None:
        return f"**{d.code}** {d.message}"
    return f"**{d.code}** — {rule.title} ({rule.severity})\n\n{rule.explanation}\n\n*Fix:* {rule.fix}"


def _field_doc(saga: ir.Saga, name: str) -> str | None:
    if not isinstance(saga.input, ir.InputFields):
        return None
    for f in saga.input.fields:
        if f.name == name:
            from ..fmt import format_expr

            text = f"**input** `{f.name}`: `{_type(f.type)}`" + (" · secret" if f.secret else "")
            if f.default is not None:
                text += f" · default `{format_expr(f.default)}`"
            return text
    return None


def _type(t: ir.TypeRef) -> str:
    return t.name + (f"[{_type(t.arg)}]" if t.arg is not None else "")


def _saga_doc(analysis: Analysis, name: str) -> str | None:
    found = analysis.scope().get(name)
    if found is None:
        return None
    saga, sf = found
    text = f"**saga** `{saga.name}`" + (f" version {saga.version}" if saga.version else "")
    if saga.description:
        text += f"\n\n{saga.description}"
    if isinstance(saga.input, ir.InputFields) and saga.input.fields:
        text += "\n\ninput: " + ", ".join(f"`{f.name}: {_type(f.type)}`" for f in saga.input.fields)
    return text + f"\n\n*{sf.display}*"


def _occurrence_doc(analysis: Analysis, occ: Occurrence) -> str | None:
    saga = occ.saga
    if occ.kind in ("step", "step_ref") and saga is not None:
        step = next((s for s in saga.steps() if s.name == occ.name), None)
        return step_doc(analysis, saga, step) if step is not None else None
    if occ.kind == "handler":
        return handler_doc(analysis.registry, occ.name)
    if occ.kind in ("call", "saga"):
        return _saga_doc(analysis, occ.name)
    if occ.kind in ("field", "input_ref") and saga is not None:
        return _field_doc(saga, occ.name)
    if occ.kind == "import":
        target = (analysis.path.parent / occ.name).resolve()
        sf = analysis.project.files.get(target)
        if sf is not None and sf.module is not None:
            return f"**import** {sf.display}: sagas " + ", ".join(f"`{s.name}`" for s in sf.module.sagas)
    return None


def _keyword_at(analysis: Analysis, line: int, col: int) -> tuple[str, lsp.Range] | None:
    """The keyword under 0-based ``line``/``col`` (strings and comments are never keywords)."""
    text = analysis.text.lines[line] if line < len(analysis.text.lines) else ""
    for tok in tokens(text):
        if tok.start <= col <= tok.end and tok.kind == "word" and keyword_doc(tok.text) is not None:
            start = analysis.text.position(line, tok.start)
            return tok.text, lsp.Range(start, analysis.text.position(line, tok.end))
    return None


def _covers(d: Diagnostic, line: int, col: int) -> bool:
    s = d.span
    if s.line < 1:
        return line == 0
    end_line = max(s.end_line, s.line)
    end_col = s.end_col if s.end_line >= s.line and s.end_col > s.col else s.col + 1
    return (s.line, s.col) <= (line, col) <= (end_line, end_col)


def hover(analysis: Analysis, pos: lsp.Position) -> lsp.Hover | None:
    """The hover at a position: the name or keyword under it, and the diagnostics that cover it."""
    line, col = analysis.text.line_col(analysis.text.offset(pos))
    parts: list[str] = []
    where: lsp.Range | None = None
    occ = analysis.index.at(line + 1, col + 1) if analysis.index is not None else None
    if occ is not None:
        doc = _occurrence_doc(analysis, occ)
        if doc:
            parts.append(doc)
            where = analysis.text.range(occ.span)
    if not parts:
        found = _keyword_at(analysis, line, col)
        if found is not None:
            parts.append(keyword_doc(found[0]) or "")
            where = found[1]
    parts.extend(diagnostic_doc(d) for d in analysis.own() if _covers(d, line + 1, col + 1))
    if not parts:
        return None
    return lsp.Hover(lsp.MarkupContent(lsp.MarkupKind.Markdown, "\n\n---\n\n".join(parts)), where)
