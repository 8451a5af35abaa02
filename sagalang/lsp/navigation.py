"""Go to definition, find references, and rename a step across the file."""

from __future__ import annotations

import re
from pathlib import Path

from lsprotocol import types as lsp

from .. import ir
from ..errors import SagaError
from ..source import Span
from ..validate import RESERVED_NAMES
from .hover import handler_source
from .index import Occurrence
from .text import Text
from .workspace import Analysis, uri_of

__all__ = ["definition", "prepare_rename", "references", "rename"]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _at(analysis: Analysis, pos: lsp.Position) -> Occurrence | None:
    if analysis.index is None:
        return None
    line, col = analysis.text.line_col(analysis.text.offset(pos))
    return analysis.index.at(line + 1, col + 1)


def _step_def(occ: Occurrence) -> ir.Step | None:
    if occ.saga is None:
        return None
    return next((s for s in occ.saga.steps() if s.name == occ.name), None)


def _location(analysis: Analysis, path: Path, span: Span | None) -> lsp.Location:
    """A location in ``path``; positions are converted with that file's own text."""
    sf = analysis.project.files.get(path)
    if span is None or sf is None or sf.text is None:
        return lsp.Location(uri_of(path), lsp.Range(lsp.Position(0, 0), lsp.Position(0, 0)))
    text = analysis.text if path == analysis.path else Text(sf.text, analysis.text.encoding)
    return lsp.Location(uri_of(path), text.range(span))


def definition(analysis: Analysis, pos: lsp.Position) -> list[lsp.Location]:
    """Where the name under the cursor is defined: a step, an input field, a saga, a file, a handler's code."""
    occ = _at(analysis, pos)
    if occ is None:
        return []
    if occ.kind in ("step", "step_ref"):
        step = _step_def(occ)
        return [_location(analysis, analysis.path, step.span)] if step is not None else []
    if occ.kind in ("input_ref", "field") and occ.saga is not None and isinstance(occ.saga.input, ir.InputFields):
        return [_location(analysis, analysis.path, f.span) for f in occ.saga.input.fields if f.name == occ.name][:1]
    if occ.kind in ("call", "saga"):
        found = analysis.scope().get(occ.name)
        return [_location(analysis, found[1].path, found[0].span)] if found is not None else []
    if occ.kind == "import":
        target = (analysis.path.parent / occ.name).resolve()
        return [_location(analysis, target, None)] if target.is_file() or target in analysis.project.files else []
    if occ.kind == "handler" and analysis.registry is not None:
        try:
            h = analysis.registry.get(occ.name)
        except SagaError:
            return []
        where = handler_source(h) if h is not None else None
        if where is not None:
            start = lsp.Position(where[1] - 1, 0)
            return [lsp.Location(uri_of(where[0]), lsp.Range(start, start))]
    return []


def references(analysis: Analysis, pos: lsp.Position, include_declaration: bool) -> list[lsp.Location]:
    """Every place the step (or input field) under the cursor is named in its saga."""
    occ = _at(analysis, pos)
    if occ is None or analysis.index is None or occ.saga is None:
        return []
    if occ.kind in ("step", "step_ref"):
        found = analysis.index.of_step(occ.saga, occ.name)
        kinds = {"step"}
    elif occ.kind in ("field", "input_ref"):
        found = [o for o in analysis.index.items if o.saga is occ.saga and o.name == occ.name]
        found = [o for o in found if o.kind in ("field", "input_ref")]
        kinds = {"field"}
    else:
        return []
    return [_location(analysis, analysis.path, o.span) for o in found if include_declaration or o.kind not in kinds]


def prepare_rename(analysis: Analysis, pos: lsp.Position) -> lsp.Range | None:
    """The range of the step name that a rename would change (None: nothing renameable here)."""
    occ = _at(analysis, pos)
    if occ is None or occ.kind not in ("step", "step_ref") or _step_def(occ) is None:
        return None
    return analysis.text.range(occ.span)


def rename(analysis: Analysis, pos: lsp.Position, new_name: str) -> lsp.WorkspaceEdit | None:
    """Rename the step under the cursor: its definition and every reference in its saga.

    Raises ValueError with a message for the editor when the new name cannot be used.
    """
    occ = _at(analysis, pos)
    if occ is None or occ.kind not in ("step", "step_ref") or occ.saga is None or analysis.index is None:
        return None
    if not _IDENT.fullmatch(new_name):
        raise ValueError(f"{new_name!r} is not a name: use letters, digits and _, not starting with a digit")
    if new_name in RESERVED_NAMES:
        raise ValueError(f"{new_name!r} is reserved and cannot name a step")
    taken = {s.name for s in occ.saga.steps()} - {occ.name}
    loop_vars = {s.foreach.var for s in occ.saga.steps() if s.foreach is not None}
    if new_name in taken or new_name in loop_vars:
        raise ValueError(f"saga {occ.saga.name!r} already uses the name {new_name!r}")
    edits = [lsp.TextEdit(analysis.text.range(o.span), new_name) for o in analysis.index.of_step(occ.saga, occ.name)]
    return lsp.WorkspaceEdit(changes={analysis.uri: edits})
