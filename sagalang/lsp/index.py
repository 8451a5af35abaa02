"""Every name a parsed spec defines or uses, with its span: what the cursor points at.

The index is built from the IR alone (spans come from the parser), once per
analysis. It answers "what is at this position" for hover, go to definition,
references, rename and document symbols.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from .. import ir
from ..expr import references
from ..source import Span

__all__ = ["Index", "Occurrence", "step_expressions"]

Kind = Literal["saga", "step", "step_ref", "field", "input_ref", "handler", "call", "import", "output"]
Clause = Literal["for", "when", "do", "undo", "output", "default", "header"]


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One name at one place: what it is, the saga and step it belongs to, and where it stands."""

    kind: Kind
    name: str
    span: Span
    saga: ir.Saga | None = None
    step: ir.Step | None = None
    clause: Clause | None = None

    def contains(self, line: int, col: int) -> bool:
        """Whether 1-based ``line``/``col`` falls on this name (its end column included, as editors expect)."""
        s = self.span
        if s.line < 1 or not (s.line <= line <= s.end_line):
            return False
        if line == s.line and col < s.col:
            return False
        return not (line == s.end_line and col > s.end_col)


def step_expressions(step: ir.Step) -> Iterator[tuple[Clause, ir.Expr]]:
    """Every expression of a step with the clause it stands in (arguments of do/use/call count as do)."""
    if step.foreach is not None:
        yield "for", step.foreach.iterable
    if step.when is not None:
        yield "when", step.when
    for action in (step.do, step.use, step.call):
        for arg in action.args if action is not None else ():
            yield "do", arg.value
    for arg in step.undo.args if step.undo is not None else ():
        yield "undo", arg.value


def _name_span(node: ir.Expr) -> Span:
    """The span of the root name of a reference (the whole node for a bare name)."""
    if isinstance(node, ir.Path):
        return node.base.span
    return node.span


class Index:
    """Occurrences of one module, in source order."""

    def __init__(self, module: ir.Module) -> None:
        self.module = module
        self.items: list[Occurrence] = []
        for imp in module.imports:
            self.items.append(Occurrence("import", imp.path, imp.span))
        for saga in module.sagas:
            self._saga(saga)

    def _saga(self, saga: ir.Saga) -> None:
        add = self.items.append
        add(Occurrence("saga", saga.name, saga.span, saga))
        steps = {s.name for s in saga.steps()}
        if isinstance(saga.input, ir.InputFields):
            for f in saga.input.fields:
                add(Occurrence("field", f.name, f.span, saga))
                if f.default is not None:
                    self._expr(saga, None, "default", f.default, steps)
        for step in saga.steps():
            add(Occurrence("step", step.name, step.span, saga, step))
            for ref in step.after or ():
                add(Occurrence("step_ref", ref.name, ref.span, saga, step, "header"))
            for action in (step.do, step.undo, step.use):
                if action is not None:
                    add(Occurrence("handler", action.handler, action.span, saga, step))
            if step.call is not None:
                add(Occurrence("call", step.call.saga, step.call.span, saga, step))
            for clause, expr in step_expressions(step):
                self._expr(saga, step, clause, expr, steps)
        for entry in saga.output or ():
            add(Occurrence("output", entry.name, entry.span, saga))
            self._expr(saga, None, "output", entry.value, steps)

    def _expr(self, saga: ir.Saga, step: ir.Step | None, clause: Clause, e: ir.Expr, steps: set[str]) -> None:
        for root, fld, node, _ in references(e):
            if root in steps:
                self.items.append(Occurrence("step_ref", root, _name_span(node), saga, step, clause))
            elif root == "input" and fld is not None and isinstance(node, ir.Path):
                self.items.append(Occurrence("input_ref", fld, node.keys[0].span, saga, step, clause))

    def at(self, line: int, col: int) -> Occurrence | None:
        """The occurrence under 1-based ``line``/``col`` (the innermost, i.e. the shortest)."""
        hits = [o for o in self.items if o.contains(line, col)]
        if not hits:
            return None
        return min(hits, key=lambda o: (o.span.end_line - o.span.line, o.span.end_col - o.span.col))

    def saga_at(self, line: int) -> ir.Saga | None:
        """The saga whose text holds 1-based ``line`` (the last one starting at or before it)."""
        found = None
        for saga in self.module.sagas:
            if saga.span.line <= line:
                found = saga
        return found

    def of_step(self, saga: ir.Saga, name: str) -> list[Occurrence]:
        """The definition of step ``name`` in ``saga`` and every reference to it, in source order."""
        return [o for o in self.items if o.saga is saga and o.name == name and o.kind in ("step", "step_ref")]
