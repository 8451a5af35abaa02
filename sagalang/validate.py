"""Validation: small rule functions over the IR and its graph, each yielding Diagnostics.

``validate_project`` runs every rule on every saga of every file and returns
all findings sorted; ``check`` raises once with all of them. Rules never
raise on bad input and never stop at the first problem.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from . import ir
from .diagnostics import Diagnostic, diagnostic, sort_diagnostics
from .errors import SagaValidationError
from .graph import SagaGraph, build
from .plugins import Registry
from .project import Project, SourceFile, load_project

__all__ = ["SagaContext", "Rule", "RULES", "rule", "validate_project", "validate_paths", "check"]


@dataclass
class SagaContext:
    """Everything a rule may look at for one saga."""

    saga: ir.Saga
    source: SourceFile
    project: Project
    registry: Registry | None = None
    extra: dict[str, object] = field(default_factory=dict)

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

    def diag(self, code: str, message: str, span: object = None, hint: str | None = None) -> Diagnostic:
        """A diagnostic in this saga's file."""
        from .source import NO_SPAN, Span

        return diagnostic(code, message, self.file, span if isinstance(span, Span) else NO_SPAN, hint)


Rule = Callable[[SagaContext], Iterable[Diagnostic]]
RULES: list[Rule] = []
FILE_RULES: list[Callable[[SourceFile, Project], Iterable[Diagnostic]]] = []


def rule(fn: Rule) -> Rule:
    """Register a per-saga rule."""
    RULES.append(fn)
    return fn


def file_rule(fn: Callable[[SourceFile, Project], Iterable[Diagnostic]]) -> Callable[[SourceFile, Project], Iterable[Diagnostic]]:
    """Register a per-file rule."""
    FILE_RULES.append(fn)
    return fn


# ---- rules -------------------------------------------------------------------
# Each rule is small and independent; codes are catalogued in diagnostics.py.


@rule
def duplicate_steps(ctx: SagaContext) -> Iterator[Diagnostic]:
    """E102: two steps with one name."""
    seen: dict[str, ir.Step] = {}
    for step in ctx.saga.steps():
        if step.name in seen:
            first = seen[step.name].span
            yield ctx.diag("E102", f"duplicate step {step.name!r} (first defined at line {first.line})", step.span)
        else:
            seen[step.name] = step


@rule
def unknown_after(ctx: SagaContext) -> Iterator[Diagnostic]:
    """E201: ``after`` names a step that does not exist."""
    names = {s.name for s in ctx.saga.steps()}
    for step in ctx.saga.steps():
        for ref in step.after or ():
            if ref.name == step.name:
                yield ctx.diag("E203", f"step {step.name!r} cannot run after itself", ref.span)
            elif ref.name not in names:
                yield ctx.diag("E201", f"unknown step {ref.name!r} in 'after'", ref.span, _did_you_mean(ref.name, names))


@rule
def cycles(ctx: SagaContext) -> Iterator[Diagnostic]:
    """E202: ``after`` edges that form a cycle."""
    import networkx as nx

    if ctx.graph.is_dag:
        return
    for cycle in sorted(nx.simple_cycles(ctx.graph.graph), key=lambda c: sorted(c)):
        first = min(cycle, key=lambda n: ctx.graph.order.index(n))
        i = cycle.index(first)
        ordered = cycle[i:] + cycle[:i]
        # networkx lists a cycle along its edges a->b (b runs after a); show "a waits for b" order.
        shown = " -> ".join([*ordered, first])
        yield ctx.diag(
            "E202",
            f"dependency cycle: {shown}",
            ctx.graph.steps[first].span,
            "remove one of the 'after' edges in the cycle",
        )


def _did_you_mean(name: str, options: Iterable[str]) -> str | None:
    import difflib

    close = difflib.get_close_matches(name, sorted(options), n=1)
    return f"did you mean {close[0]!r}?" if close else None


# ---- driver ------------------------------------------------------------------


def validate_project(project: Project, registry: Registry | None = None) -> list[Diagnostic]:
    """Every finding for every saga of every file in ``project``, sorted."""
    diags: list[Diagnostic] = list(project.diagnostics)
    for sf in project.modules():
        for file_check in FILE_RULES:
            diags.extend(file_check(sf, project))
        assert sf.module is not None
        for saga in sf.module.sagas:
            ctx = SagaContext(saga, sf, project, registry)
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
