"""Completion: keywords that fit where the cursor is, readable step names, input fields, handlers, units.

The cursor's context is read from the text as it is (it rarely parses while
the user types): the blocks it is inside, the clause it is in, the word being
typed. What the names mean comes from the last version of the document that
parsed: its steps, its dependency graph, its input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lsprotocol import types as lsp

from .. import ir
from ..errors import SagaError
from ..expr import FUNCTIONS
from ..graph import build
from ..plugins import Registry
from ..transform import DURATION_UNITS
from ..validate import SAGA_CONTEXT_FIELDS
from .keywords import keyword_doc
from .text import Frame, Text, Token, frames_at

__all__ = ["Context", "complete", "context_at"]

_K = lsp.CompletionItemKind
_PARTIAL = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*$")
_DURATION = re.compile(r"(?<![\w.])[0-9]+(?:\.[0-9]+)?([a-z]*)$")
_CLAUSES = {"do", "undo", "use", "call", "retry", "timeout", "description", "output", "analyze", "order", "siblings"}
_UNIT_WORDS = {"ms": "milliseconds", "s": "seconds", "m": "minutes", "h": "hours", "d": "days"}

_BLOCK_KEYWORDS: dict[str | None, tuple[str, ...]] = {
    None: ("saga", "import"),
    "saga": (
        "description",
        "input",
        "output",
        "defaults",
        "timeout",
        "compensation",
        "on failure",
        "step",
        "pivot step",
        "readonly step",
        "retriable step",
        "parallel",
    ),
    "parallel": ("step", "pivot step", "readonly step", "retriable step"),
    "step": ("description", "do", "undo", "use", "call", "retry", "timeout", "output schema"),
    "defaults": ("timeout", "retry"),
    "compensation": ("order", "retry", "timeout"),
    "failure": ("siblings", "retry saga"),
}
_AFTER_WORD = {
    "retry": ("attempts", "forever"),
    "order": ("reverse", "parallel"),
    "siblings": ("wait", "cancel"),
    "input": ("schema",),
    "output": ("schema",),
    "on": ("failure",),
}
_OPERATORS = (":", ",", "(", "[", "+", "-", "*", "/", "%", "=", "<", ">", "and", "or", "not")
_SPECIFIC = {"on failure": "failure", "output schema": "schema"}
_TYPES = ("string", "integer", "number", "boolean", "object", "list", "any")


@dataclass
class Context:
    """Where the cursor is: the blocks around it, the clause it is in, the text before it on its line."""

    frames: list[Frame]
    clause: str | None  # do, undo, when, for, after, ... (None at a statement's start)
    target: str | None  # the handler or saga the clause calls (do NAME, call NAME)
    header_step: str | None  # the step whose header (before its "{") the cursor is in
    prefix: str  # the line's text before the cursor
    partial: str  # the word being typed
    depth: int  # brackets open in the current clause
    interpolation: bool  # inside ${...} of a string
    in_string: bool  # inside a string's text
    previous: str  # the token before the word being typed ("" at the start of the text)

    @property
    def block(self) -> str | None:
        """The kind of the innermost block (None at the top level)."""
        kinds = [f.kind for f in self.frames if f.kind != "map"]
        return kinds[-1] if kinds else None

    def name_of(self, kind: str) -> str | None:
        """The name of the innermost enclosing block of ``kind`` (a saga or a step)."""
        for f in reversed(self.frames):
            if f.kind == kind:
                return f.name
        return None


def _string_state(token: Token | None, offset: int) -> tuple[bool, bool, str]:
    """Whether the cursor is inside a string, inside its ``${``, and the expression text typed there."""
    if token is None or token.kind != "string" or token.end != offset:
        return False, False, ""
    body = token.text
    closed = len(body) > 1 and body[-1] == body[0] and not body.endswith("\\" + body[0])
    if closed:
        return False, False, ""
    opened = body.rfind("${")
    if opened != -1 and "}" not in body[opened:]:
        return True, True, body[opened + 2 :]
    return True, False, ""


def _clause(body: list[Token]) -> tuple[str | None, str | None, str | None, int]:
    """The clause keyword the cursor is in, what it calls, the step whose header it is in, the brackets open."""
    depth = 0
    clause: str | None = None
    target: str | None = None
    header: str | None = None
    for i, tok in enumerate(body):
        following = body[i + 1].text if i + 1 < len(body) else None
        if tok.kind == "punct" and tok.text in "([":
            depth += 1
        elif tok.kind == "punct" and tok.text in ")]":
            depth = max(0, depth - 1)
        elif tok.kind == "word" and depth == 0:
            if tok.text == "step":
                header, clause, target = following or "", "header", None
            elif tok.text in ("after", "when", "for", "in", "limit") and header is not None:
                clause = tok.text
            elif tok.text in _CLAUSES:
                clause, target, header = tok.text, following, None
    return clause, target, header, depth


def context_at(text: str, offset: int) -> Context:
    """The completion context at ``offset`` of ``text``."""
    frames, toks = frames_at(text, offset)
    open_at = frames[-1].open if frames else -1
    body = [t for t in toks if t.start > open_at]
    line_start = text.rfind("\n", 0, offset) + 1
    prefix = text[line_start:offset]
    in_string, interp, typed = _string_state(toks[-1] if toks else None, offset)
    clause, target, header, depth = _clause(body)
    found = _PARTIAL.search(typed if interp else prefix)
    partial = found.group() if found and not (in_string and not interp) else ""
    earlier = [t for t in toks if t.end <= offset - len(partial)] if not in_string else toks[:-1]
    previous = earlier[-1].text if earlier else ""
    return Context(frames, clause, target, header, prefix, partial, depth, interp, in_string, previous)


# ---- items --------------------------------------------------------------------------------


def _replace(text: Text, offset: int, partial: str) -> lsp.Range:
    return text.offset_range(offset - len(partial), offset)


def _item(
    label: str,
    kind: lsp.CompletionItemKind,
    rng: lsp.Range,
    detail: str | None = None,
    *,
    insert: str | None = None,
    snippet: bool = False,
    doc: str | None = None,
    filter_text: str | None = None,
) -> lsp.CompletionItem:
    return lsp.CompletionItem(
        label=label,
        kind=kind,
        detail=detail,
        documentation=lsp.MarkupContent(lsp.MarkupKind.Markdown, doc) if doc else None,
        text_edit=lsp.TextEdit(rng, insert if insert is not None else label),
        insert_text_format=lsp.InsertTextFormat.Snippet if snippet else lsp.InsertTextFormat.PlainText,
        filter_text=filter_text or label,
    )


def _keywords(words: tuple[str, ...], rng: lsp.Range) -> list[lsp.CompletionItem]:
    """Keyword items; a two-word item (``on failure``) is documented by its more specific word."""
    return [_item(w, _K.Keyword, rng, doc=keyword_doc(_SPECIFIC.get(w, w.split()[0]))) for w in words]


def _saga(module: ir.Module | None, ctx: Context) -> ir.Saga | None:
    if module is None:
        return None
    name = ctx.name_of("saga")
    return next((s for s in module.sagas if s.name == name), module.sagas[0] if module.sagas else None)


def readable_steps(saga: ir.Saga, step: str | None, clause: str | None) -> list[str]:
    """The steps an expression may read at this point, by the data-flow rule.

    In a step: the steps certain to have finished before it starts (its ancestors
    in the dependency graph), and in its undo the step itself; in the output,
    every step. A step that is not in the graph yet (being written) sees the
    steps written before it.
    """
    names = [s.name for s in saga.steps()]
    if step is None:
        return names
    g = build(saga)
    if step in g.steps and g.is_dag:
        before = g.ancestors(step)
        return [n for n in names if n in before or (clause == "undo" and n == step)]
    return names[: names.index(step)] if step in names else names


def _expression_items(module: ir.Module | None, ctx: Context, rng: lsp.Range) -> list[lsp.CompletionItem]:
    saga = _saga(module, ctx)
    items: list[lsp.CompletionItem] = []
    step_name = ctx.name_of("step") or ctx.header_step
    if saga is not None:
        conditional = {s.name for s in saga.steps() if s.when is not None}
        for name in readable_steps(saga, step_name, ctx.clause):
            note = "skipped when its 'when' is false: read it through default(...)" if name in conditional else None
            items.append(_item(name, _K.Variable, rng, "step output", doc=note))
        step = next((s for s in saga.steps() if s.name == step_name), None)
        if step is not None and step.foreach is not None and ctx.clause not in ("for", "when", "header"):
            items.append(_item(step.foreach.var, _K.Variable, rng, "the fan-out item"))
    items.append(_item("input", _K.Module, rng, "the saga's input"))
    items.append(_item("saga", _K.Module, rng, "the run: id, name, attempt"))
    if ctx.clause == "undo":
        items.append(_item("result", _K.Variable, rng, "this step's output"))
    for fn in FUNCTIONS.values():
        items.append(_item(fn.name, _K.Function, rng, fn.doc, insert=f"{fn.name}($1)", snippet=True))
    return items


def _field_items(module: ir.Module | None, ctx: Context, rng: lsp.Range) -> list[lsp.CompletionItem]:
    saga = _saga(module, ctx)
    if saga is None or not isinstance(saga.input, ir.InputFields):
        return []
    out = []
    for f in saga.input.fields:
        detail = f.type.name + (" secret" if f.secret else "") + (" (optional)" if f.default is not None else "")
        out.append(_item(f.name, _K.Field, rng, detail))
    return out


def _handler_items(registry: Registry | None, rng: lsp.Range, with_args: bool) -> list[lsp.CompletionItem]:
    if registry is None:
        return []
    try:
        handlers = registry.all()
    except SagaError:
        handlers = [registry.handlers[n] for n in registry.names()]
    out = []
    for h in handlers:
        params = [p for p in h.info.params or () if p.required]
        args = ", ".join(f"{p.name}: ${{{i}}}" for i, p in enumerate(params, 1))
        insert = f"{h.info.name}({args})$0" if with_args else h.info.name
        detail = h.info.kind + (": " + ", ".join(p.name for p in h.info.params) if h.info.params else "")
        out.append(_item(h.info.name, _K.Function, rng, detail, insert=insert, snippet=with_args, doc=h.info.doc))
    return out


def _units(rng: lsp.Range, number: str) -> list[lsp.CompletionItem]:
    return [
        _item(unit, _K.Unit, rng, _UNIT_WORDS[unit], filter_text=number + unit, insert=unit)
        for unit in sorted(DURATION_UNITS, key=DURATION_UNITS.__getitem__)
    ]


def complete(
    text: Text, offset: int, module: ir.Module | None, registry: Registry | None, scope: dict[str, ir.Saga]
) -> list[lsp.CompletionItem]:
    """The completion items at ``offset``."""
    ctx = context_at(text.text, offset)
    if ctx.in_string and not ctx.interpolation:
        return []
    rng = _replace(text, offset, ctx.partial.rsplit(".", 1)[-1] if "." in ctx.partial else ctx.partial)
    duration = _DURATION.search(ctx.prefix)
    if duration is not None and re.search(r"\b(timeout|backoff|max)\s+[0-9.]+[a-z]*$", ctx.prefix):
        return _units(_replace(text, offset, duration.group(1)), ctx.prefix[duration.start() : duration.start(1)])
    if ctx.depth == 0 and ctx.previous in ("do", "undo", "use", "analyze") and ctx.clause == ctx.previous:
        # A handler name is dotted: the whole name typed so far is replaced.
        return _handler_items(registry, _replace(text, offset, ctx.partial), with_args=ctx.previous != "analyze")
    if ctx.partial.startswith("input."):
        return _field_items(module, ctx, rng)
    if ctx.partial.startswith("saga."):
        return [_item(f, _K.Field, rng, "of the running saga") for f in SAGA_CONTEXT_FIELDS]
    if "." in ctx.partial:
        return []
    return _by_clause(text, offset, ctx, module, registry, scope)


def _by_clause(
    text: Text,
    offset: int,
    ctx: Context,
    module: ir.Module | None,
    registry: Registry | None,
    scope: dict[str, ir.Saga],
) -> list[lsp.CompletionItem]:
    rng = _replace(text, offset, ctx.partial)
    before = ctx.prefix[: len(ctx.prefix) - len(ctx.partial)].rstrip()
    last = ctx.previous
    calling = ctx.clause in ("do", "undo", "use", "call")
    if ctx.interpolation or (ctx.depth > 0 and not (calling and ctx.depth == 1 and last in ("(", ","))):
        return _expression_items(module, ctx, rng) if ctx.interpolation or last.endswith(_OPERATORS) else []
    if calling and ctx.depth == 1:
        return _parameter_items(registry, scope, ctx, rng)
    if ctx.depth == 0 and last == "call" and ctx.clause == "call":
        return [
            _item(n, _K.Module, rng, "saga", insert=_call_snippet(s), snippet=True) for n, s in sorted(scope.items())
        ]
    if ctx.clause in ("when", "in") or (ctx.block == "output" and last.endswith(":")):
        return _expression_items(module, ctx, rng)
    if ctx.clause == "after" and (last == "after" or last.endswith(",")):
        saga = _saga(module, ctx)
        names = [s.name for s in saga.steps() if s.name != ctx.header_step] if saga else []
        return [_item(n, _K.Reference, rng, "step") for n in names]
    if ctx.block == "input" and last.endswith(":"):
        return [_item(t, _K.TypeParameter, rng, "input type") for t in _TYPES]
    return _keyword_items(ctx, before, last, rng)


def _keyword_items(ctx: Context, before: str, last: str, rng: lsp.Range) -> list[lsp.CompletionItem]:
    """Keywords that may follow what is written before the cursor."""
    if last == "on" and ctx.block != "saga":
        return []
    if last in _AFTER_WORD and ctx.depth == 0:
        words = ("saga",) if last == "retry" and ctx.block == "failure" else _AFTER_WORD[last]
        return _keywords(words, rng)
    if ctx.clause == "header":
        return _keywords(("for", "after", "when"), rng)
    if before == "" or before.endswith(("{", "}")):
        return _keywords(_BLOCK_KEYWORDS.get(ctx.block, ()), rng)
    if ctx.clause == "retry" and ctx.depth == 0:
        return _keywords(("backoff", "max", "jitter", "on", "except"), rng)
    return []


def _parameter_items(
    registry: Registry | None, scope: dict[str, ir.Saga], ctx: Context, rng: lsp.Range
) -> list[lsp.CompletionItem]:
    """The argument names of the handler (or sub-saga) being called."""
    names: list[tuple[str, str]] = []
    if ctx.clause == "call" and ctx.target in scope:
        saga = scope[ctx.target]
        if isinstance(saga.input, ir.InputFields):
            names = [(f.name, f.type.name) for f in saga.input.fields]
    elif registry is not None and ctx.target:
        try:
            h = registry.get(ctx.target)
        except SagaError:
            h = None
        if h is not None:
            names = [(p.name, p.annotation or ("required" if p.required else "optional")) for p in h.info.params or ()]
    return [_item(n, _K.Property, rng, detail, insert=f"{n}: ") for n, detail in names]


def _call_snippet(saga: ir.Saga) -> str:
    fields = saga.input.fields if isinstance(saga.input, ir.InputFields) else ()
    args = ", ".join(f"{f.name}: ${{{i}}}" for i, f in enumerate((f for f in fields if f.default is None), 1))
    return f"{saga.name}({args})$0"
