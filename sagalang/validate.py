"""Validation: small rule functions over the IR and its graph, each yielding Diagnostics.

``validate_project`` runs every rule on every saga of every file and returns
all findings sorted; ``check`` raises once with all of them. Rules never
raise on bad input and never stop at the first problem. Every code a rule
emits is catalogued in :data:`sagalang.diagnostics.CATALOGUE`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, NamedTuple

from . import ir
from . import semantics as sem
from .diagnostics import Diagnostic, diagnostic, sort_diagnostics
from .diagnostics import did_you_mean as _did_you_mean
from .errors import HandlerError, SagaValidationError
from .expr import FUNCTIONS, ExprError, evaluate
from .graph import SagaGraph, build
from .plugins import Registry
from .project import Project, SourceFile, display_path, load_project
from .source import NO_SPAN, Span

__all__ = [
    "FILE_RULES",
    "INPUT_TYPES",
    "RESERVED_NAMES",
    "RULES",
    "SAGA_CONTEXT_FIELDS",
    "FileRule",
    "Rule",
    "SagaContext",
    "check",
    "file_rule",
    "rule",
    "validate_paths",
    "validate_project",
]

INPUT_TYPES = ("string", "integer", "number", "boolean", "object", "list", "any")
RESERVED_NAMES = frozenset({"input", "saga", "result"})
SAGA_CONTEXT_FIELDS = ("id", "name", "attempt")

Where = Literal["do", "undo", "when", "for", "output"]


@dataclass
class SagaContext:
    """Everything a rule may look at for one saga."""

    saga: ir.Saga
    source: SourceFile
    project: Project
    registry: Registry | None = None
    # Shared by every saga of one run (caches of project-wide facts: call graph, schema checks).
    extra: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def graph(self) -> SagaGraph:
        """The saga's dependency graph."""
        return build(self.saga)

    @property
    def file(self) -> str:
        """The display path used in diagnostics."""
        return self.source.display

    @property
    def folder(self) -> Path:
        """The folder relative paths in the spec are resolved against."""
        return self.source.path.parent

    @cached_property
    def scope(self) -> dict[str, tuple[ir.Saga, SourceFile]]:
        """Sagas this saga may ``call``."""
        return self.project.scope(self.source.path)

    @cached_property
    def steps(self) -> tuple[ir.Step, ...]:
        """Every step in source order (parallel blocks flattened)."""
        return self.saga.steps()

    @cached_property
    def input_fields(self) -> dict[str, ir.Field] | None:
        """Inline input fields by name (first wins), or None when the input is a schema or undeclared."""
        if isinstance(self.saga.input, ir.InputFields):
            out: dict[str, ir.Field] = {}
            for f in self.saga.input.fields:
                out.setdefault(f.name, f)
            return out
        return None

    @cached_property
    def callees(self) -> sem.CalleeScope:
        """How this saga's ``call`` steps resolve: in its file's scope, a callee's calls in the callee's file's."""
        return _scope_for(self, self.source.path)

    @cached_property
    def classes(self) -> sem.Classes:
        """Every step's class (compensatable, pivot, retriable, readonly) and the saga's pivot."""
        return sem.classify(self.graph, self.registry, self.callees)

    def pivot_like(self, step: ir.Step) -> bool:
        """Whether ``step`` cannot be undone once it completed (step objects judged by the registry, if any)."""
        return sem.is_pivot_like(step, self.registry, self.callees)

    def precedes(self, a: str, b: str) -> bool:
        """True when step ``a`` is guaranteed to have finished before ``b`` starts (never with an ``after`` cycle)."""
        return self.graph.is_dag and self.graph.is_ancestor(a, b)

    @cached_property
    def expressions(self) -> list[_ExprSite]:
        """Every expression of the saga, scanned once: steps' clauses, output, input defaults."""
        out: list[_ExprSite] = []
        for step in self.steps:
            out.extend(_ExprSite(step, where, e, _scan(e)) for where, e in _step_exprs(step))
        out.extend(_ExprSite(None, "output", entry.value, _scan(entry.value)) for entry in self.saga.output or ())
        if isinstance(self.saga.input, ir.InputFields):
            out.extend(
                _ExprSite(None, "default", f.default, _scan(f.default))
                for f in self.saga.input.fields
                if f.default is not None
            )
        return out

    def diag(self, code: str, message: str, span: object = None, hint: str | None = None) -> Diagnostic:
        """A diagnostic in this saga's file."""
        return diagnostic(code, message, self.file, span if isinstance(span, Span) else NO_SPAN, hint)


Rule = Callable[[SagaContext], Iterable[Diagnostic]]
FileRule = Callable[[SourceFile, Project, dict[str, Any]], Iterable[Diagnostic]]
RULES: list[Rule] = []
FILE_RULES: list[FileRule] = []


def rule(fn: Rule) -> Rule:
    """Register a per-saga rule."""
    RULES.append(fn)
    return fn


def file_rule(fn: FileRule) -> FileRule:
    """Register a per-file rule (it receives the file, the project and the run's shared cache)."""
    FILE_RULES.append(fn)
    return fn


# ---- helpers -------------------------------------------------------------------


class _Ref(NamedTuple):
    """One name an expression reads: the root, its first field (if a plain field), the node."""

    root: str
    field: str | None
    node: ir.Expr
    guarded: bool  # inside default()/coalesce(): a null (skipped) base is tolerated
    indexed: bool  # the first key is computed (``x[expr]``), so any field may be read


@dataclass(slots=True)
class _Scan:
    """What one expression contains: the names it reads, its function calls and map literals."""

    refs: list[_Ref] = field(default_factory=list)
    calls: list[ir.FuncCall] = field(default_factory=list)
    maps: list[ir.MapExpr] = field(default_factory=list)


def _scan(e: ir.Expr) -> _Scan:
    """One pass over ``e``, noting whether a null base is tolerated where each name is read.

    ``default(x, fb)`` tolerates a null or missing ``x`` (not ``fb``); ``coalesce(a, b, ...)``
    tolerates every argument but the last, which is its fallback.
    """
    out = _Scan()
    refs, calls = out.refs, out.calls
    stack: list[tuple[ir.Expr, bool]] = [(e, False)]
    pop, push = stack.pop, stack.append
    # Dispatch on the exact node type: this loop runs for every expression of every saga.
    while stack:
        node, guarded = pop()
        if type(node) is ir.Literal:
            continue
        if type(node) is ir.Path:
            base = node.base
            if type(base) is ir.Name:
                first = node.keys[0]
                fld = first.value if type(first) is ir.Literal else None
                if isinstance(fld, str):
                    refs.append(_Ref(base.id, fld, node, guarded, False))
                else:
                    refs.append(_Ref(base.id, None, node, guarded, True))
            else:
                push((base, guarded))
            for k in node.keys:
                if type(k) is not ir.Literal:
                    push((k, guarded))  # default() also tolerates a failing index expression
        elif type(node) is ir.Name:
            refs.append(_Ref(node.id, None, node, guarded, False))
        elif type(node) is ir.Template:
            for p in node.parts:
                if type(p) is not ir.Literal:
                    push((p, guarded))
        elif type(node) is ir.FuncCall:
            calls.append(node)
            n = len(node.args)
            for i, a in enumerate(node.args):
                if node.func == "default":
                    push((a, guarded or i == 0))
                elif node.func == "coalesce":
                    push((a, guarded or i < n - 1))
                else:
                    push((a, guarded))
        elif type(node) is ir.BoolOp:
            stack.extend((v, guarded) for v in node.values)
        elif type(node) is ir.Arith:
            stack.extend((v, guarded) for v in node.operands)
        elif type(node) is ir.Compare:
            push((node.left, guarded))
            push((node.right, guarded))
        elif type(node) is ir.Unary:
            push((node.operand, guarded))
        elif type(node) is ir.ListExpr:
            stack.extend((i, guarded) for i in node.items)
        elif type(node) is ir.MapExpr:
            out.maps.append(node)
            stack.extend((v, guarded) for v in node.values)
    return out


class _ExprSite(NamedTuple):
    """An expression with where it stands: its step (None: saga level) and clause."""

    step: ir.Step | None
    where: Where | Literal["default"]
    expr: ir.Expr
    scan: _Scan


def _step_exprs(step: ir.Step) -> Iterator[tuple[Where, ir.Expr]]:
    """Every expression of a step with the clause it belongs to (args count as ``do``)."""
    if step.foreach is not None:
        yield "for", step.foreach.iterable
    if step.when is not None:
        yield "when", step.when
    for action in (step.do, step.use):
        if action is not None:
            for arg in action.args:
                yield "do", arg.value
    if step.call is not None:
        for arg in step.call.args:
            yield "do", arg.value
    if step.undo is not None:
        for arg in step.undo.args:
            yield "undo", arg.value


def _constant(e: ir.Expr) -> tuple[bool, Any]:
    """``(True, value)`` when ``e`` reads no names and evaluates cleanly, else ``(False, None)``."""
    if _scan(e).refs:
        return False, None
    try:
        return True, evaluate(e, {})
    except ExprError:
        return False, None


def _scope_for(ctx: SagaContext, path: Path) -> sem.CalleeScope:
    """The sagas ``call`` resolves to in the file at ``path`` (one scope per file and run)."""
    scopes: dict[Path, sem.CalleeScope] = ctx.extra.setdefault("callee_scopes", {})
    found = scopes.get(path)
    if found is not None:
        return found
    names = ctx.project.scope(path)

    def resolve(name: str) -> tuple[ir.Saga, sem.CalleeScope] | None:
        target = names.get(name)
        return (target[0], _scope_for(ctx, target[1].path)) if target is not None else None

    scopes[path] = resolve
    return resolve


def _order_hint(ctx: SagaContext, step: str, target: str) -> str:
    if ctx.precedes(step, target):
        return f"{target!r} runs after {step!r}; read it in a later step or in the saga's output"
    return f"add 'after {target}' to step {step!r} (or move {target!r} before it)"


# ---- names and structure -------------------------------------------------------
# Each rule is small and independent; codes are catalogued in diagnostics.py.


def _first_seen(items: Iterable[tuple[str, Span]]) -> Iterator[tuple[str, Span, Span]]:
    """``(name, span, first_span)`` for every repeated name."""
    seen: dict[str, Span] = {}
    for name, span in items:
        if name in seen:
            yield name, span, seen[name]
        else:
            seen[name] = span


@rule
def duplicate_steps(ctx: SagaContext) -> Iterator[Diagnostic]:
    """E102: two steps with one name."""
    for name, span, first in _first_seen((s.name, s.span) for s in ctx.steps):
        yield ctx.diag("E102", f"duplicate step {name!r} (first defined at line {first.line})", span)


@rule
def duplicate_fields_and_entries(ctx: SagaContext) -> Iterator[Diagnostic]:
    """E103/E104: an input field or an output entry declared twice."""
    if isinstance(ctx.saga.input, ir.InputFields):
        for name, span, first in _first_seen((f.name, f.span) for f in ctx.saga.input.fields):
            yield ctx.diag("E103", f"duplicate input field {name!r} (first declared at line {first.line})", span)
    for name, span, first in _first_seen((e.name, e.span) for e in ctx.saga.output or ()):
        yield ctx.diag("E104", f"duplicate output entry {name!r} (first declared at line {first.line})", span)


@rule
def duplicate_args_and_keys(ctx: SagaContext) -> Iterator[Diagnostic]:
    """E105/E106: a call argument or a map key given twice."""
    for step in ctx.steps:
        for what, call in (("do", step.do), ("undo", step.undo), ("use", step.use), ("call", step.call)):
            if call is None:
                continue
            for name, span, _ in _first_seen((a.name, a.span) for a in call.args):
                yield ctx.diag("E105", f"argument {name!r} given twice in the '{what}' of step {step.name!r}", span)
    for site in ctx.expressions:
        for node in site.scan.maps:
            seen: set[str] = set()
            for key in node.keys:
                if key in seen:
                    yield ctx.diag("E106", f"duplicate key {key!r} in map", node.span)
                seen.add(key)


# How the transformer's internal clause keys are written in a spec.
_CLAUSE_WORDS = {"saga_timeout": "timeout", "output_schema": "output schema", "saga_retry": "retry saga", "for": "for"}


@rule
def duplicate_clauses(ctx: SagaContext) -> Iterator[Diagnostic]:
    """E107: a clause written twice in a saga or a step (the first one counts)."""
    hint = "keep one; the first one counts"
    for dup in ctx.saga.duplicates:
        word = _CLAUSE_WORDS.get(dup.clause, dup.clause)
        yield ctx.diag("E107", f"'{word}' given twice in saga {ctx.saga.name!r}", dup.span, hint)
    for step in ctx.steps:
        for dup in step.duplicates:
            word = _CLAUSE_WORDS.get(dup.clause, dup.clause)
            yield ctx.diag("E107", f"'{word}' given twice in step {step.name!r}", dup.span, hint)


@rule
def step_shape(ctx: SagaContext) -> Iterator[Diagnostic]:
    """E108-E111: a step needs exactly one action; undo only with do; reserved names."""
    step_names = {s.name for s in ctx.steps}
    for step in ctx.steps:
        actions = [k for k, v in (("do", step.do), ("call", step.call), ("use", step.use)) if v is not None]
        if not actions:
            yield ctx.diag(
                "E108", f"step {step.name!r} has no action", step.span, "give it one of 'do', 'call' or 'use'"
            )
        elif len(actions) > 1:
            yield ctx.diag(
                "E109",
                f"step {step.name!r} has more than one action ({', '.join(actions)})",
                step.span,
                "split it into one step per action",
            )
        if step.undo is not None and step.do is None and actions:
            why = "a step object provides its own undo" if step.use is not None else "a called saga compensates itself"
            yield ctx.diag("E110", f"'undo' with '{actions[0]}' in step {step.name!r}: {why}", step.undo.span)
        if step.name in RESERVED_NAMES:
            yield ctx.diag("E111", f"{step.name!r} is reserved and cannot name a step", step.span, "rename the step")
        if step.foreach is not None:
            var = step.foreach.var
            if var in RESERVED_NAMES:
                yield ctx.diag("E111", f"{var!r} is reserved and cannot name a loop variable", step.foreach.span)
            elif var in step_names:
                yield ctx.diag(
                    "E111",
                    f"loop variable {var!r} of step {step.name!r} has the name of a step",
                    step.foreach.span,
                    "rename the loop variable",
                )


# ---- ordering --------------------------------------------------------------------


@rule
def unknown_after(ctx: SagaContext) -> Iterator[Diagnostic]:
    """E201/E203/W204: ``after`` names a missing step, the step itself, or a step twice."""
    names = {s.name for s in ctx.steps}
    for step in ctx.steps:
        seen: set[str] = set()
        for ref in step.after or ():
            if ref.name == step.name:
                yield ctx.diag("E203", f"step {step.name!r} cannot run after itself", ref.span)
            elif ref.name not in names:
                yield ctx.diag(
                    "E201", f"unknown step {ref.name!r} in 'after'", ref.span, _did_you_mean(ref.name, names)
                )
            elif ref.name in seen:
                yield ctx.diag("W204", f"step {ref.name!r} listed twice in 'after'", ref.span)
            seen.add(ref.name)


@rule
def cycles(ctx: SagaContext) -> Iterator[Diagnostic]:
    """E202: ``after`` edges that form a cycle, shown as a chain of waits."""
    import networkx as nx

    g = ctx.graph
    if g.is_dag:
        return
    index = {n: i for i, n in enumerate(g.order)}
    # One cycle per strongly connected component: enumerating every simple cycle is exponential.
    components = [c for c in nx.strongly_connected_components(g.graph) if len(c) > 1]
    for comp in sorted(components, key=lambda c: min(index[n] for n in c)):
        first = min(comp, key=index.__getitem__)
        sub = g.graph.subgraph(comp)
        # The shortest cycle through `first`: a path first -> ... -> p plus the edge p -> first.
        back = min((p for p in sub.predecessors(first)), key=index.__getitem__)
        path = nx.shortest_path(sub, first, back)
        # Edge a -> b means b runs after a: read the path backwards as a chain of waits.
        chain = [first, *reversed(path[1:])]
        text = ", ".join(f"{a!r} runs after {b!r}" for a, b in zip(chain, [*chain[1:], first]))
        yield ctx.diag(
            "E202",
            f"dependency cycle: {text}",
            g.steps[first].span,
            "remove one of the 'after' edges in the cycle",
        )


# ---- expressions and data flow -------------------------------------------------------


def _key_span(ref: _Ref) -> Span:
    if isinstance(ref.node, ir.Path):
        return ref.node.keys[0].span
    return ref.node.span


def _check_ref(
    ctx: SagaContext,
    ref: _Ref,
    step: ir.Step | None,
    where: Where,
    ordered: bool,
    loop_vars: dict[str, str],
) -> Iterator[Diagnostic]:
    """One name read by an expression of ``step`` (None: the saga's output) in clause ``where``."""
    root = ref.root
    g = ctx.graph
    owner = f"step {step.name!r}" if step is not None else "the saga's output"
    if root == "input":
        fields = ctx.input_fields
        if ref.field is not None and fields is not None and ref.field not in fields:
            yield ctx.diag(
                "E302",
                f"saga {ctx.saga.name!r} has no input field {ref.field!r}",
                _key_span(ref),
                _did_you_mean(ref.field, fields) or "declare it in the saga's 'input { }'",
            )
        return
    if root == "saga":
        if ref.field is not None and ref.field not in SAGA_CONTEXT_FIELDS:
            yield ctx.diag(
                "E310",
                f"'saga' has no field {ref.field!r}",
                _key_span(ref),
                _did_you_mean(ref.field, SAGA_CONTEXT_FIELDS) or "fields: " + ", ".join(SAGA_CONTEXT_FIELDS),
            )
        return
    if root == "result":
        if where != "undo":
            yield ctx.diag(
                "E306",
                f"'result' is only defined in an undo, not in {f'the {where} of {owner}' if step else owner}",
                ref.node.span,
                f"read the step's output by its name, e.g. {step.name if step else 'step'}.field",
            )
        return
    if step is not None and step.foreach is not None and root == step.foreach.var:
        if where in ("for", "when"):
            yield ctx.diag(
                "E307",
                f"loop variable {root!r} is not defined in the '{where}' of its step {step.name!r}",
                ref.node.span,
                "the loop variable exists only in the step's do, undo and arguments",
            )
        return
    target = g.steps.get(root)
    if target is not None:
        own_undo = step is not None and root == step.name and where == "undo"
        if step is not None and ordered and not own_undo:
            if root == step.name:
                yield ctx.diag(
                    "E303",
                    f"step {step.name!r} reads its own output in its {where}, before it has one",
                    ref.node.span,
                    "only the step's undo may read its own output",
                )
                return
            if ctx.graph.is_dag and not ctx.precedes(root, step.name):
                yield ctx.diag(
                    "E303",
                    f"step {step.name!r} reads the output of {root!r}, "
                    f"which is not guaranteed to have completed before it",
                    ref.node.span,
                    _order_hint(ctx, step.name, root),
                )
                return
        if target.when is not None and not own_undo and isinstance(ref.node, ir.Path) and not ref.guarded:
            yield ctx.diag(
                "E304",
                f"{owner} reads {root!r}, which is skipped when its 'when' is false (its output is then null)",
                ref.node.span,
                f"wrap the read in default(...), e.g. default({root}.{ref.field or 'x'}, null)",
            )
        if target.foreach is not None and ref.field is not None and not ref.indexed:
            yield ctx.diag(
                "W305",
                f"{root!r} fans out, so its output is a list: '.{ref.field}' reads a field of the list",
                _key_span(ref),
                f"index it ({root}[0].{ref.field}) or pass the whole list",
            )
        return
    if root in loop_vars:
        yield ctx.diag(
            "E307",
            f"loop variable {root!r} of step {loop_vars[root]!r} used outside that step",
            ref.node.span,
            "read the fan-out step's output list instead",
        )
        return
    known = [*g.steps, "input", "saga"]
    if step is not None and step.foreach is not None:
        known.append(step.foreach.var)
    yield ctx.diag(
        "E301",
        f"unknown name {root!r} in {owner}",
        ref.node.span,
        _did_you_mean(root, known) or "names: input, saga, a step's name, the loop variable, result (in undo)",
    )


@rule
def data_flow(ctx: SagaContext) -> Iterator[Diagnostic]:
    """E301-E307, E310, W305: names an expression reads, and whether their values exist by then."""
    g = ctx.graph
    dag = g.is_dag
    loop_vars = {s.foreach.var: s.name for s in ctx.steps if s.foreach is not None}
    for site in ctx.expressions:
        step = site.step
        if site.where == "default":
            continue  # input defaults must be constants (E902)
        # A repeated step name is reported as E102; its ordering is undefined, so only names are checked.
        ordered = dag and step is not None and g.steps.get(step.name) is step
        for ref in site.scan.refs:
            yield from _check_ref(ctx, ref, step, site.where, ordered, loop_vars)


@rule
def functions(ctx: SagaContext) -> Iterator[Diagnostic]:
    """E308/E309: calls of unknown functions, or with the wrong number of arguments."""
    for site in ctx.expressions:
        for node in site.scan.calls:
            fn = FUNCTIONS.get(node.func)
            if fn is None:
                yield ctx.diag(
                    "E308",
                    f"unknown function {node.func!r}",
                    node.span,
                    _did_you_mean(node.func, FUNCTIONS) or "functions: " + ", ".join(sorted(FUNCTIONS)),
                )
                continue
            n = len(node.args)
            if n < fn.min_args or (fn.max_args is not None and n > fn.max_args):
                if fn.max_args == fn.min_args:
                    want = f"{fn.min_args}"
                elif fn.max_args is None:
                    want = f"at least {fn.min_args}"
                else:
                    want = f"{fn.min_args} to {fn.max_args}"
                yield ctx.diag(
                    "E309",
                    f"{node.func}() takes {want} argument{'' if want == '1' else 's'}, got {n}",
                    node.span,
                )


@rule
def unused_input(ctx: SagaContext) -> Iterator[Diagnostic]:
    """W403: an inline input field that no expression reads."""
    fields = ctx.input_fields
    if not fields:
        return
    used: set[str] = set()
    for site in ctx.expressions:
        for ref in site.scan.refs:
            if ref.root != "input":
                continue
            if ref.field is None:
                return  # the whole input is read (passed on, or indexed by a computed key)
            used.add(ref.field)
    for name, f in fields.items():
        if name not in used:
            yield ctx.diag(
                "W403",
                f"input field {name!r} is never read",
                f.span,
                "remove it, or use it in a step",
            )


@rule
def never_runs(ctx: SagaContext) -> Iterator[Diagnostic]:
    """W401: a step whose ``when`` is a constant false value."""
    from .expr import truthy

    for step in ctx.steps:
        if step.when is None:
            continue
        const, value = _constant(step.when)
        if const and not truthy(value):
            yield ctx.diag(
                "W401",
                f"step {step.name!r} never runs: its condition is always false",
                step.when.span,
                "remove the step, or fix the condition",
            )


# ---- handlers ------------------------------------------------------------------------


def _check_handler(
    ctx: SagaContext,
    name: str,
    span: Span,
    clause: Literal["do", "undo", "use", "analyze"],
    args: tuple[ir.Arg, ...] | None,
) -> Iterator[Diagnostic]:
    """One handler reference against the registry: exists, right kind, right arguments."""
    if "." not in name:
        yield ctx.diag(
            "E508",
            f"handler name {name!r} has no namespace",
            span,
            f"handler names are 'namespace.name', e.g. 'app.{name}'",
        )
        return
    registry = ctx.registry
    if registry is None:
        return
    ns = name.split(".")[0]
    try:
        found = registry.get(name)
    except HandlerError as err:
        warned: set[tuple[str, str]] = ctx.extra.setdefault("handler_load_failed", set())
        if (ctx.file, ns) not in warned:
            warned.add((ctx.file, ns))
            yield ctx.diag("E509", f"cannot load the handlers of namespace {ns!r}: {err}", span)
        return
    if found is None:
        if ns not in registry.namespaces():
            noted: set[tuple[str, str]] = ctx.extra.setdefault("namespace_unknown", set())
            if (ctx.file, ns) not in noted:
                noted.add((ctx.file, ns))
                yield ctx.diag(
                    "W502",
                    f"cannot check handler {name!r}: no handlers registered for namespace {ns!r}",
                    span,
                    "load its plugin with --plugin or [tool.sagalang] plugins to check it",
                )
            return
        same_ns = [n for n in registry.names() if n.split(".")[0] == ns]
        yield ctx.diag(
            "E501",
            f"unknown handler {name!r}",
            span,
            _did_you_mean(name, same_ns) or f"namespace {ns!r} has: {', '.join(same_ns) or 'nothing'}",
        )
        return
    info = found.info
    if clause == "use" and info.kind == "function":
        yield ctx.diag(
            "E505",
            f"'use' needs a step object, but {name!r} is a function",
            span,
            f"call it with 'do {name}(...)' and give the step an 'undo'",
        )
        return
    if clause != "use" and info.kind == "step":
        yield ctx.diag(
            "E506",
            f"{name!r} is a step object (it provides do and undo); '{clause}' needs a function",
            span,
            f"write 'use {name}(...)' instead",
        )
        return
    if args is None or info.params is None:
        return
    params = {p.name: p for p in info.params}
    given = set()
    for arg in args:
        given.add(arg.name)
        if arg.name not in params:
            yield ctx.diag(
                "E503",
                f"handler {name!r} has no parameter {arg.name!r}",
                arg.span,
                _did_you_mean(arg.name, params) or f"parameters: {', '.join(params) or 'none'}",
            )
    missing = [p.name for p in info.params if p.required and p.name not in given]
    if missing:
        yield ctx.diag(
            "E504",
            f"handler {name!r} needs argument{'s' if len(missing) > 1 else ''} {', '.join(missing)}",
            span,
        )


@rule
def handlers(ctx: SagaContext) -> Iterator[Diagnostic]:
    """E501-E509, W502: every handler a saga names, checked against the registry."""
    for step in ctx.steps:
        clauses: tuple[tuple[Literal["do", "undo", "use"], ir.Invocation | None], ...] = (
            ("do", step.do),
            ("undo", step.undo),
            ("use", step.use),
        )
        for clause, inv in clauses:
            if inv is not None:
                yield from _check_handler(ctx, inv.handler, inv.span, clause, inv.args)
    policy = ctx.saga.on_failure
    if policy is not None and policy.retry is not None and policy.retry.analyzer:
        yield from _check_handler(ctx, policy.retry.analyzer, policy.retry.span, "analyze", None)


# ---- sub-sagas -----------------------------------------------------------------------


_Node = tuple[Path, str]


def _call_graph(ctx: SagaContext) -> Any:
    """Every ``call`` edge of the project, (file, saga) -> (file, saga); built once per run."""
    cached = ctx.extra.get("call_graph")
    if cached is not None:
        return cached
    import networkx as nx

    g = nx.DiGraph()
    for sf in ctx.project.modules():
        assert sf.module is not None
        scope = ctx.project.scope(sf.path)
        for saga in sf.module.sagas:
            g.add_node((sf.path, saga.name))
            for step in saga.steps():
                if step.call is not None and step.call.saga in scope:
                    callee, csf = scope[step.call.saga]
                    g.add_edge((sf.path, saga.name), (csf.path, callee.name))
    ctx.extra["call_graph"] = g
    return g


@rule
def calls(ctx: SagaContext) -> Iterator[Diagnostic]:
    """E704-E707: ``call`` of an unknown saga, call cycles, arguments against the callee's input."""
    import networkx as nx

    me: _Node = (ctx.source.path, ctx.saga.name)
    for step in ctx.steps:
        call = step.call
        if call is None:
            continue
        target = ctx.scope.get(call.saga)
        if target is None:
            yield ctx.diag(
                "E704",
                f"unknown saga {call.saga!r} in 'call'",
                call.span,
                _did_you_mean(call.saga, ctx.scope) or "define it in this file or import the file that does",
            )
            continue
        callee, csf = target
        them: _Node = (csf.path, callee.name)
        graph = _call_graph(ctx)
        if them == me:
            yield ctx.diag("E705", f"saga {ctx.saga.name!r} calls itself", call.span, "a saga cannot recurse")
        elif nx.has_path(graph, them, me):
            chain = [ctx.saga.name, *(n for _, n in nx.shortest_path(graph, them, me))]
            yield ctx.diag(
                "E705",
                f"saga {ctx.saga.name!r} calls itself through other sagas: {' -> '.join(chain)}",
                call.span,
                "break the cycle of 'call' steps",
            )
        if not isinstance(callee.input, ir.InputFields):
            continue
        fields = {f.name: f for f in callee.input.fields}
        given: set[str] = set()
        for arg in call.args:
            given.add(arg.name)
            if arg.name not in fields:
                yield ctx.diag(
                    "E706",
                    f"saga {callee.name!r} has no input {arg.name!r}",
                    arg.span,
                    _did_you_mean(arg.name, fields) or f"its inputs: {', '.join(fields) or 'none'}",
                )
        missing = [n for n, f in fields.items() if f.default is None and n not in given]
        if missing:
            yield ctx.diag(
                "E707",
                f"call of saga {callee.name!r} misses required input{'s' if len(missing) > 1 else ''} "
                + ", ".join(missing),
                call.span,
            )


# ---- step classes (compensatable -> pivot -> retriable) --------------------------------


def _why_irreversible(step: ir.Step) -> str:
    """Why a pivot-like step cannot be undone, for messages."""
    if step.kind == "pivot":
        return "it is the pivot"
    if step.kind == "retriable":
        return "it is retriable (no undo)"
    if step.call is not None:
        return f"it calls saga {step.call.saga!r}, which cannot be fully undone"
    if step.use is not None:
        return "its step object cannot compensate"
    return "it has side effects but no undo"


@rule
def undo_by_kind(ctx: SagaContext) -> Iterator[Diagnostic]:
    """E601-E604: at most one pivot; pivot, readonly and retriable steps have no undo."""
    pivots = [s for s in ctx.steps if s.kind == "pivot"]
    for extra in pivots[1:]:
        yield ctx.diag(
            "E601",
            f"second pivot {extra.name!r}: saga {ctx.saga.name!r} already has pivot {pivots[0].name!r} "
            f"(line {pivots[0].span.line})",
            extra.span,
            "a saga has at most one point of no return; make the other steps compensatable or retriable",
        )
    codes = {"pivot": "E602", "readonly": "E603", "retriable": "E604"}
    for step in ctx.steps:
        if step.undo is not None and step.kind in codes:
            yield ctx.diag(
                codes[step.kind],
                f"{step.kind} step {step.name!r} has an undo",
                step.undo.span,
                f"remove the undo, or drop '{step.kind}' if the step can be compensated",
            )


def undo_data_risks(step: ir.Step) -> list[tuple[ir.Arg, str]]:
    """Undo arguments that read the step's own output, which is missing when its outcome is uncertain.

    Shared by the W612 rule and by ``sagalang test`` (its ``undo-data`` invariant).
    """
    from .expr import references

    risks: list[tuple[ir.Arg, str]] = []
    if step.undo is None:
        return risks
    for arg in step.undo.args:
        for root, fld, _, guarded in references(arg.value):
            if not guarded and root in ("result", step.name):
                risks.append((arg, f"{root}.{fld}" if fld else root))
    return risks


@rule
def undo_reads_output(ctx: SagaContext) -> Iterator[Diagnostic]:
    """W612: an undo reads an output that does not exist when the step's outcome is uncertain."""
    for step in ctx.steps:
        for arg, what in undo_data_risks(step):
            yield ctx.diag(
                "W612",
                f"undo of {step.name!r} reads {what}, which does not exist when {step.name!r} times out or "
                "crashes mid-call",
                arg.span,
                "key the undo by data known beforehand (input, ctx.idempotency_key) or use default(...)",
            )


@rule
def step_classes(ctx: SagaContext) -> Iterator[Diagnostic]:
    """E605-E608, I609, W610, W611: where compensatable, pivot and retriable steps may stand."""
    g = ctx.graph
    if not g.is_dag:
        return
    classes = ctx.classes
    comp = {n for n, c in classes.of.items() if c.role is sem.Role.COMPENSATABLE}
    pivot = classes.pivot
    # Steps that may still be compensated: retrying one of them forever blocks the rollback.
    before: set[str] = set(comp)
    if pivot is not None and g.steps[pivot].kind == "pivot":
        before = {n for n in g.order if g.is_ancestor(n, pivot)} | {c for c in comp if not g.is_ancestor(pivot, c)}
        for name in g.order:
            yield from _around_explicit_pivot(ctx, g.steps[name], classes.of[name], pivot)
    else:
        if pivot is not None:
            before |= g.ancestors(pivot)
        for name in g.topo:
            step = g.steps[name]
            if ctx.pivot_like(step):
                yield from _around_implied_pivot(ctx, step, classes.of[name], pivot, comp)
    yield from _forever_before_pivot(ctx, [g.steps[n] for n in g.order if n in before])


# Where a step stands although its class does not allow it, in a saga with a ``pivot`` step:
# code, message and hint (formatted with the step, the pivot and why the step cannot be undone).
_MISPLACED: dict[sem.Misplaced, tuple[str, str, str]] = {
    sem.Misplaced.BEFORE_PIVOT: (
        "E605",
        "step {step!r} runs before the pivot {pivot!r} but cannot be undone ({why})",
        "give it an undo (or mark it readonly if it changes nothing)",
    ),
    sem.Misplaced.AFTER_PIVOT: (
        "E606",
        "step {step!r} can be undone but runs after the pivot {pivot!r}, where nothing is compensated",
        "move it before the pivot, or drop its undo and give it a retry policy",
    ),
    sem.Misplaced.BESIDE_PIVOT: (
        "E607",
        "step {step!r} may run concurrently with the pivot {pivot!r}",
        "order it with 'after': before {pivot!r} (with an undo) or after it (retriable)",
    ),
}


def _around_explicit_pivot(ctx: SagaContext, step: ir.Step, cls: sem.StepClass, pivot: str) -> Iterator[Diagnostic]:
    """E605, E606, E607, W610 for one step of a saga with a ``pivot`` step."""
    if step.kind == "pivot":
        return
    if cls.misplaced is not None:
        code, message, hint = _MISPLACED[cls.misplaced]
        facts = {"step": step.name, "pivot": pivot, "why": _why_irreversible(step)}
        yield ctx.diag(code, message.format(**facts), step.span, hint.format(**facts))
    elif ctx.graph.is_ancestor(pivot, step.name) and _never_retried(ctx, step):
        yield _stuck_warning(ctx, step, pivot)


def _around_implied_pivot(
    ctx: SagaContext, step: ir.Step, cls: sem.StepClass, pivot: str | None, comp: set[str]
) -> Iterator[Diagnostic]:
    """E607, E608, I609, W610 for one step without undo of a saga without a ``pivot`` step."""
    g = ctx.graph
    why = _why_irreversible(step)
    if cls.misplaced is sem.Misplaced.BEFORE_COMPENSATABLE:
        later = [c for c in g.topo if c in comp and not g.is_ancestor(c, step.name)]
        shown = ", ".join(repr(c) for c in later[:3]) + (" ..." if len(later) > 3 else "")
        yield ctx.diag(
            "E608",
            f"step {step.name!r} cannot be undone ({why}), yet compensatable step"
            f"{'s' if len(later) > 1 else ''} {shown} may run after or alongside it",
            step.span,
            f"give {step.name!r} an undo, or make it the pivot and order every compensatable step before it",
        )
    elif pivot is None or cls.misplaced is sem.Misplaced.BESIDE_PIVOT:
        yield ctx.diag(
            "E607",
            f"step {step.name!r} ({why}) may run concurrently with {pivot!r}, which acts as the pivot",
            step.span,
            f"order it after {pivot!r} with 'after'",
        )
    elif step.name == pivot:
        yield ctx.diag(
            "I609",
            f"step {step.name!r} acts as the pivot: {why}, and every compensatable step runs before it",
            step.span,
            "mark it 'pivot' to make this explicit",
        )
    else:
        yield ctx.diag(
            "I609",
            f"step {step.name!r} acts as a retriable step: it runs after {pivot!r}, the saga's point of no return",
            step.span,
        )
        if _never_retried(ctx, step):
            yield _stuck_warning(ctx, step, pivot)


def _never_retried(ctx: SagaContext, step: ir.Step) -> bool:
    """A step (not a call: its callee's steps retry on their own) that one failure stops for good."""
    return step.call is None and not sem.retries(sem.effective_retry(ctx.saga, step))


def _stuck_warning(ctx: SagaContext, step: ir.Step, pivot: str) -> Diagnostic:
    return ctx.diag(
        "W610",
        f"step {step.name!r} runs after the point of no return {pivot!r} and is never retried: "
        "if it fails the saga is stuck",
        step.span,
        "add 'retry forever backoff ...' (or attempts N) to the step or to the saga's defaults",
    )


def _forever_before_pivot(ctx: SagaContext, steps: list[ir.Step]) -> Iterator[Diagnostic]:
    defaults = ctx.saga.defaults.retry if ctx.saga.defaults is not None else None
    via_defaults: list[str] = []
    for step in steps:
        if not sem.retries_forever(sem.effective_retry(ctx.saga, step)):
            continue
        if step.retry is not None:
            yield ctx.diag(
                "W611",
                f"step {step.name!r} retries forever before the point of no return: "
                "if it keeps failing the saga can never compensate",
                step.retry.span,
                "bound it with 'retry attempts N'",
            )
        else:
            via_defaults.append(step.name)
    if via_defaults and defaults is not None:
        yield ctx.diag(
            "W611",
            f"the default 'retry forever' applies to step {via_defaults[0]!r}"
            + (f" and {len(via_defaults) - 1} more" if len(via_defaults) > 1 else "")
            + " before the point of no return: the saga could never compensate",
            defaults.span,
            "bound the default with 'retry attempts N' and retry forever only after the pivot",
        )


# ---- policies --------------------------------------------------------------------------


def _check_backoff(ctx: SagaContext, backoff: ir.Backoff | None) -> Iterator[Diagnostic]:
    if backoff is None:
        return
    if backoff.multiplier is not None and backoff.multiplier < 1:
        yield ctx.diag(
            "E802",
            f"backoff multiplier x{backoff.multiplier:g} is below 1: delays would shrink",
            backoff.span,
            "use x1 for a constant delay, or more to grow it",
        )
    if backoff.max is not None and backoff.max.ms < backoff.initial.ms:
        yield ctx.diag(
            "E803",
            f"backoff max {_ms(backoff.max.ms)} is below the initial delay {_ms(backoff.initial.ms)}",
            backoff.max.span,
        )


def _ms(ms: int) -> str:
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms >= size and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def _check_retry(ctx: SagaContext, policy: ir.RetryPolicy | None) -> Iterator[Diagnostic]:
    if policy is None:
        return
    if policy.attempts is not None and policy.attempts < 1:
        yield ctx.diag(
            "E801",
            f"retry attempts must be at least 1 (it counts the first call), got {policy.attempts}",
            policy.span,
        )
    both = sorted(set(policy.on) & set(policy.except_))
    if both:
        yield ctx.diag(
            "W808",
            f"error{'s' if len(both) > 1 else ''} {', '.join(both)} listed in both 'on' and 'except'",
            policy.span,
            "keep each error name in one of the lists",
        )
    yield from _check_backoff(ctx, policy.backoff)


def _check_timeout(ctx: SagaContext, timeout: ir.Duration | None, what: str) -> Iterator[Diagnostic]:
    if timeout is not None and timeout.ms <= 0:
        yield ctx.diag("E804", f"{what} timeout must be longer than zero", timeout.span)


@rule
def policies(ctx: SagaContext) -> Iterator[Diagnostic]:
    """E801-E806, W807, W808: retry, timeout, fan-out limit and saga retry values."""
    saga = ctx.saga
    defaults = saga.defaults
    yield from _check_timeout(ctx, saga.timeout, "saga")
    if defaults is not None:
        yield from _check_retry(ctx, defaults.retry)
        yield from _check_timeout(ctx, defaults.timeout, "default step")
    if saga.compensation is not None:
        yield from _check_retry(ctx, saga.compensation.retry)
        yield from _check_timeout(ctx, saga.compensation.timeout, "compensation")
    if saga.on_failure is not None and saga.on_failure.retry is not None:
        sr = saga.on_failure.retry
        if sr.attempts < 1:
            yield ctx.diag("E806", f"saga retry attempts must be at least 1, got {sr.attempts}", sr.span)
        yield from _check_backoff(ctx, sr.backoff)
    for step in ctx.steps:
        yield from _check_retry(ctx, step.retry)
        yield from _check_timeout(ctx, step.timeout, "step")
        if step.foreach is not None and step.foreach.limit is not None and step.foreach.limit < 1:
            yield ctx.diag(
                "E805",
                f"fan-out limit must be at least 1, got {step.foreach.limit}",
                step.foreach.span,
                "drop 'limit' to run every item at once",
            )
    if saga.timeout is not None and saga.timeout.ms > 0:
        cap = saga.timeout.ms
        if defaults is not None and defaults.timeout is not None and defaults.timeout.ms > cap:
            yield ctx.diag(
                "W807",
                f"default step timeout {_ms(defaults.timeout.ms)} is longer than the saga timeout {_ms(cap)}",
                defaults.timeout.span,
            )
        for step in ctx.steps:
            if step.timeout is not None and step.timeout.ms > cap:
                yield ctx.diag(
                    "W807",
                    f"step {step.name!r} timeout {_ms(step.timeout.ms)} is longer than the saga timeout {_ms(cap)}",
                    step.timeout.span,
                    "the saga times out first; shorten the step timeout or lengthen the saga's",
                )


# ---- input declarations and schemas -----------------------------------------------------


def _type_problem(t: ir.TypeRef) -> tuple[str, Span] | None:
    if t.name not in INPUT_TYPES:
        return f"unknown type {t.name!r}", t.span
    if t.arg is not None:
        if t.name != "list":
            return f"type {t.name!r} takes no element type", t.arg.span
        return _type_problem(t.arg)
    return None


def _matches(value: Any, t: ir.TypeRef) -> bool:
    name = t.name
    if name == "any":
        return True
    if name == "string":
        return isinstance(value, str)
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if name == "boolean":
        return isinstance(value, bool)
    if name == "object":
        return isinstance(value, dict)
    if name == "list":
        return isinstance(value, list) and (t.arg is None or all(_matches(v, t.arg) for v in value))
    return True


def _type_text(t: ir.TypeRef) -> str:
    return t.name + (f"[{_type_text(t.arg)}]" if t.arg is not None else "")


@rule
def input_types(ctx: SagaContext) -> Iterator[Diagnostic]:
    """E901-E903: input field types, and defaults that are constants of that type."""
    if not isinstance(ctx.saga.input, ir.InputFields):
        return
    for f in ctx.saga.input.fields:
        problem = _type_problem(f.type)
        if problem is not None:
            yield ctx.diag(
                "E901",
                f"input field {f.name!r}: {problem[0]}",
                problem[1],
                "types: " + ", ".join(INPUT_TYPES) + ", list[T]",
            )
        if f.default is None:
            continue
        const, value = _constant(f.default)
        if not const:
            yield ctx.diag(
                "E902",
                f"default of input field {f.name!r} is not a constant",
                f.default.span,
                "defaults are literals: strings, numbers, booleans, null, lists and maps of them",
            )
        elif problem is None and value is not None and not _matches(value, f.type):
            yield ctx.diag(
                "E903",
                f"default of input field {f.name!r} is not of type {_type_text(f.type)}",
                f.default.span,
            )


def _schema_problem(ctx: SagaContext, schema: ir.InputSchema, what: str, owner: str = "") -> Diagnostic | None:
    """E904-E906 for one schema file; each file is read and checked once per run."""
    cache: dict[Path, tuple[str, str, str | None] | None] = ctx.extra.setdefault("schemas", {})
    try:
        path = (ctx.folder / schema.path).resolve()
        if path not in cache:
            cache[path] = _check_schema_file(path)
    except (OSError, ValueError):  # a NUL byte, or a name too long for the file system
        return ctx.diag("E904", f"{what} {schema.path!r}{owner}: file not found", schema.span)
    found = cache[path]
    if found is None:
        return None
    code, message, hint = found
    return ctx.diag(code, f"{what} {schema.path!r}{owner}: {message}", schema.span, hint)


def _check_schema_file(path: Path) -> tuple[str, str, str | None] | None:
    import json

    if not path.is_file():
        return "E904", f"file not found ({display_path(path)})", "paths are relative to the spec's folder"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        return "E905", f"cannot read: {err}", None
    except json.JSONDecodeError as err:
        return "E905", f"invalid JSON at line {err.lineno} column {err.colno}: {err.msg}", None
    # jsonschema is imported here, not at module level: `sagalang validate` on specs without schemas skips it.
    from jsonschema.exceptions import SchemaError
    from jsonschema.validators import validator_for

    if not isinstance(doc, dict | bool):
        return "E906", f"not a JSON Schema: the document is a {type(doc).__name__}, not an object", None
    try:
        validator_for(doc).check_schema(doc)
    except SchemaError as err:
        where = "/".join(str(p) for p in err.absolute_path)
        return "E906", f"invalid JSON Schema{f' at /{where}' if where else ''}: {err.message}", None
    return None


@rule
def schemas(ctx: SagaContext) -> Iterator[Diagnostic]:
    """E904-E906: ``input schema`` and ``output schema`` files exist and hold valid JSON Schemas."""
    if isinstance(ctx.saga.input, ir.InputSchema):
        found = _schema_problem(ctx, ctx.saga.input, "input schema")
        if found is not None:
            yield found
    for step in ctx.steps:
        if step.output_schema is not None:
            found = _schema_problem(ctx, step.output_schema, "output schema", f" of step {step.name!r}")
            if found is not None:
                yield found


# ---- files -----------------------------------------------------------------------------


def _resolved_imports(sf: SourceFile, project: Project) -> Iterator[tuple[ir.Import, SourceFile]]:
    """Each import statement of ``sf`` with the file it loaded (skipping ones that failed: E701/E703)."""
    assert sf.module is not None
    loaded = set(sf.imports)
    for imp in sf.module.imports:
        try:
            target = (sf.path.parent / imp.path).resolve()
        except (OSError, ValueError):  # a NUL byte or an overlong name: E703 was reported by the loader
            continue
        other = project.files.get(target)
        if target in loaded and other is not None:
            yield imp, other


@file_rule
def duplicate_sagas(sf: SourceFile, project: Project, shared: dict[str, Any]) -> Iterator[Diagnostic]:
    """E101: two sagas with one name in a file, or a name that an imported file also defines."""
    assert sf.module is not None
    seen: dict[str, str] = {}
    for imp, other in _resolved_imports(sf, project):
        for saga in other.module.sagas if other.module is not None else ():
            if saga.name in seen and seen[saga.name] != other.display:
                yield diagnostic(
                    "E101",
                    f"saga {saga.name!r} is defined in both {seen[saga.name]} and {other.display}",
                    sf.display,
                    imp.span,
                    "rename one of them",
                )
            seen.setdefault(saga.name, other.display)
    local: dict[str, ir.Saga] = {}
    for saga in sf.module.sagas:
        if saga.name in local:
            yield diagnostic(
                "E101",
                f"duplicate saga {saga.name!r} (first defined at line {local[saga.name].span.line})",
                sf.display,
                saga.span,
            )
        elif saga.name in seen:
            yield diagnostic(
                "E101",
                f"saga {saga.name!r} is also defined in imported file {seen[saga.name]}",
                sf.display,
                saga.span,
                "rename the saga, or drop the import",
            )
        local.setdefault(saga.name, saga)


@file_rule
def unused_imports(sf: SourceFile, project: Project, shared: dict[str, Any]) -> Iterator[Diagnostic]:
    """W402/W404: an import none of whose sagas this file calls, or a file imported twice."""
    assert sf.module is not None
    scope = project.scope(sf.path)
    called: set[Path] = set()
    for saga in sf.module.sagas:
        for step in saga.steps():
            if step.call is None:
                continue
            if step.call.saga not in scope:
                return  # an unknown saga (E704) may be meant to come from any import: say nothing more
            called.add(scope[step.call.saga][1].path)
    imported: set[Path] = set()
    for imp, other in _resolved_imports(sf, project):
        if other.path in imported:
            yield diagnostic("W404", f"{imp.path!r} is imported twice", sf.display, imp.span, "remove this import")
            continue
        imported.add(other.path)
        if other.path not in called and other.module is not None:
            yield diagnostic(
                "W402",
                f"unused import {imp.path!r}: no saga of it is called here",
                sf.display,
                imp.span,
                "remove the import",
            )


# ---- driver ----------------------------------------------------------------------------


def validate_project(project: Project, registry: Registry | None = None) -> list[Diagnostic]:
    """Every finding for every saga of every file in ``project``, sorted."""

    diags: list[Diagnostic] = list(project.diagnostics)
    shared: dict[str, Any] = {}
    for sf in project.modules():
        for file_check in FILE_RULES:
            diags.extend(file_check(sf, project, shared))
        assert sf.module is not None
        for saga in sf.module.sagas:
            ctx = SagaContext(saga, sf, project, registry, shared)
            for check_rule in RULES:
                diags.extend(check_rule(ctx))
    return sort_diagnostics(diags)


def validate_paths(
    paths: Iterable[str | Path], registry: Registry | None = None, root: str | Path | None = None
) -> tuple[Project, list[Diagnostic]]:
    """Load ``paths`` (files or folders) and validate everything they reach."""
    project = load_project(paths, root)
    return project, validate_project(project, registry)


def check(paths: Iterable[str | Path], registry: Registry | None = None, root: str | Path | None = None) -> Project:
    """Validate and raise :class:`SagaValidationError` with every error found."""
    project, diags = validate_paths(paths, registry, root)
    errors = [d for d in diags if d.severity == "error"]
    if errors:
        raise SagaValidationError(errors)
    return project
