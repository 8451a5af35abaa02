"""What a saga will do: its forward order in parallel levels, and what each step's failure triggers.

Computed from the IR and its graph alone (nothing runs). For a step that fails
for good before the point of no return, the plan lists the undos that backward
recovery runs, in order: the steps certain to have completed (its ancestors),
the steps that may have completed (those that can run concurrently with it),
and the failing step itself, whose undo runs only if its outcome is uncertain
(it timed out or the process crashed during it). After the point of no return
there is no backward recovery, only retries.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from . import ir
from . import semantics as sem
from .graph import SagaGraph, build

__all__ = [
    "PLAN_FORMAT",
    "PLAN_VERSION",
    "FailurePlan",
    "SagaPlan",
    "StepPlan",
    "Undo",
    "describe_duration",
    "describe_retry",
    "format_plans",
    "plan_module",
    "plan_saga",
    "plans_to_json",
]

PLAN_FORMAT = "sagalang-plan"
PLAN_VERSION = 1

Certainty = Literal["completed", "may have completed", "if uncertain"]


@dataclass(frozen=True, slots=True)
class StepPlan:
    """One step as the plan shows it."""

    name: str
    level: int  # 1-based forward level
    kind: str
    action: Literal["do", "call", "use", "none"]
    target: str | None  # handler, or the sub-saga for ``call``
    undo: str | None  # undo handler, "step object" or "sub-saga"; None when nothing is undone
    marks: tuple[str, ...]  # readonly, pivot, retriable, conditional, fan-out, sub-saga, step object
    retry: str | None  # the effective retry policy, described


@dataclass(frozen=True, slots=True)
class Undo:
    """One undo that backward recovery runs, with how sure it is that the step ran."""

    step: str
    certainty: Certainty
    conditional: bool = False
    fan_out: bool = False
    sub_saga: bool = False
    inner: tuple[str, ...] = ()  # for a sub-saga: its steps with an undo, in its compensation order

    def label(self) -> str:
        """``name`` plus notes, e.g. ``upgrade (if it ran)`` or ``seats[each item]``."""
        text = self.step + ("[each item]" if self.fan_out else "")
        notes = []
        if self.certainty == "if uncertain":
            notes.append("if its outcome is uncertain")
        elif self.certainty == "may have completed":
            notes.append("if it completed meanwhile")
        if self.conditional and self.certainty != "if uncertain":
            notes.append("if it ran")
        if self.sub_saga:
            notes.append("its completed steps" + (": " + ", ".join(self.inner) if self.inner else ""))
        return text + (f" ({'; '.join(notes)})" if notes else "")


@dataclass(frozen=True, slots=True)
class FailurePlan:
    """What a step's failure for good triggers."""

    step: str
    recovery: Literal["backward", "forward"]
    # Groups in order; the undos of one group are independent of each other: they run together
    # (order parallel) or one at a time, the latest completed first (order reverse).
    compensation: tuple[tuple[Undo, ...], ...]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SagaPlan:
    """The plan of one saga."""

    saga: str
    file: str
    levels: tuple[tuple[str, ...], ...]
    steps: tuple[StepPlan, ...]
    pivot: str | None  # the explicit pivot, or the first step without undo that acts as one
    compensation_order: Literal["reverse", "parallel"]
    failures: tuple[FailurePlan, ...]
    notes: tuple[str, ...] = ()

    def step(self, name: str) -> StepPlan:
        """The plan of step ``name``."""
        return next(s for s in self.steps if s.name == name)

    def failure(self, name: str) -> FailurePlan:
        """What the failure of step ``name`` triggers."""
        return next(f for f in self.failures if f.step == name)


# ---- describing policies ------------------------------------------------------------------


def describe_duration(d: ir.Duration) -> str:
    """A duration the way it would be written in a spec (``1500ms`` → ``1.5s``)."""
    ms = d.ms
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms >= size and (ms * 10) % size == 0:
            value = ms / size
            return f"{value:g}{unit}"
    return f"{ms}ms"


def describe_retry(policy: ir.RetryPolicy | None) -> str | None:
    """A retry policy in spec syntax, without the ``retry`` keyword (None for no policy)."""
    if policy is None:
        return None
    parts = ["forever" if policy.attempts is None else f"attempts {policy.attempts}"]
    if policy.backoff is not None:
        b = policy.backoff
        parts.append(f"backoff {describe_duration(b.initial)}")
        if b.multiplier is not None:
            parts.append(f"x{b.multiplier:g}")
        if b.max is not None:
            parts.append(f"max {describe_duration(b.max)}")
    if policy.jitter:
        parts.append("jitter")
    if policy.on:
        parts.append("on " + ", ".join(policy.on))
    if policy.except_:
        parts.append("except " + ", ".join(policy.except_))
    return " ".join(parts)


# ---- computing the plan -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Known:
    """What the plan knows beyond the IR: the sagas ``call`` may run and the registered step objects."""

    callees: Mapping[str, ir.Saga]
    objects: sem.Objects = None

    def has_undo(self, step: ir.Step) -> bool:
        """Whether compensating ``step`` may undo something."""
        return sem.has_undo(step, self.objects, self.callees)


def _step_plan(g: SagaGraph, step: ir.Step, level: int, after_pivot: bool, known: _Known) -> StepPlan:
    marks: list[str] = []
    if step.kind in ("readonly", "pivot"):
        marks.append(step.kind)
    if step.kind == "retriable" or after_pivot:
        marks.append("retriable")
    if step.when is not None:
        marks.append("conditional")
    if step.foreach is not None:
        marks.append("fan-out")
    if step.call is not None:
        marks.append("sub-saga")
    if step.use is not None:
        marks.append("step object")
    action: Literal["do", "call", "use", "none"] = "none"
    target: str | None = None
    undo: str | None = None
    if step.do is not None:
        action, target = "do", step.do.handler
    elif step.call is not None:
        action, target = "call", step.call.saga
    elif step.use is not None:
        action, target = "use", step.use.handler
    if known.has_undo(step):
        undo = step.undo.handler if step.undo is not None else "sub-saga" if step.call is not None else "step object"
    retry = sem.effective_retry(g.saga, step)
    return StepPlan(step.name, level, step.kind, action, target, undo, tuple(marks), describe_retry(retry))


def _undo(g: SagaGraph, name: str, certainty: Certainty, known: _Known) -> Undo:
    step = g.steps[name]
    inner: tuple[str, ...] = ()
    if step.call is not None and step.call.saga in known.callees:
        inner = _callee_order(known.callees[step.call.saga], known, {g.saga.name})
    return Undo(name, certainty, step.when is not None, step.foreach is not None, step.call is not None, inner)


def _callee_order(saga: ir.Saga, known: _Known, seen: set[str]) -> tuple[str, ...]:
    """A called saga's undoable steps in its compensation order, nested calls as ``step/inner``."""
    if saga.name in seen:
        return ()  # recursion is reported by the validator; do not loop here
    g = build(saga)
    if not g.is_dag:
        return ()
    out: list[str] = []
    for n in g.reverse_order({n for n in g.steps if known.has_undo(g.steps[n])}):
        step = g.steps[n]
        if step.call is not None and step.call.saga in known.callees:
            out += [f"{n}/{i}" for i in _callee_order(known.callees[step.call.saga], known, seen | {saga.name})]
        else:
            out.append(n)
    return tuple(out)


def plan_saga(
    saga: ir.Saga, file: str = "", callees: Mapping[str, ir.Saga] | None = None, objects: sem.Objects = None
) -> SagaPlan:
    """The plan of ``saga`` (its graph must be acyclic; the validator reports cycles).

    ``callees`` are the sagas ``call`` may name (by name); with them, the plan spells
    out what compensating a sub-saga undoes. ``objects`` (a registry) says which
    step objects can compensate; without it every one is assumed to.
    """
    known = _Known(callees or {}, objects)
    g = build(saga)
    if not g.is_dag:
        raise ValueError(f"saga {saga.name!r} has a dependency cycle")
    level_of = {name: i + 1 for i, level in enumerate(g.levels) for name in level}
    no_return = list(sem.pivot_like_steps(g, objects, known.callees))
    pivot = sem.pivot(g, objects, known.callees)
    order = sem.compensation_order(saga)
    steps: list[StepPlan] = []
    failures: list[FailurePlan] = []
    for name in g.topo:
        step = g.steps[name]
        committed = [a for a in no_return if g.is_ancestor(a, name)]
        steps.append(_step_plan(g, step, level_of[name], bool(committed), known))
        if committed:
            failures.append(_forward(g, name, committed))
        else:
            failures.append(_backward(g, name, order, no_return, known))
    notes: list[str] = []
    if saga.timeout is not None:
        notes.append(
            f"saga timeout {describe_duration(saga.timeout)}: on expiry the saga is cancelled, "
            "which compensates like a failure of the steps then running"
        )
    retry = saga.on_failure.retry if saga.on_failure is not None else None
    if retry is not None:
        text = f"after a clean rollback the whole saga is tried again, {retry.attempts} attempts in all"
        if retry.analyzer:
            text += f"; the analyzer {retry.analyzer} sees the failure and may change the input or give up"
        notes.append(text)
    if saga.on_failure is not None and saga.on_failure.siblings == "cancel":
        notes.append("siblings still running when a step fails are cancelled, then compensated if they had effects")
    return SagaPlan(
        saga.name,
        file,
        tuple(g.levels),
        tuple(sorted(steps, key=lambda s: (s.level, g.order.index(s.name)))),
        pivot,
        order,
        tuple(sorted(failures, key=lambda f: (level_of[f.step], g.order.index(f.step)))),
        tuple(notes),
    )


def _forward(g: SagaGraph, name: str, committed: list[str]) -> FailurePlan:
    policy = sem.effective_retry(g.saga, g.steps[name])
    where = committed[0]
    if policy is None:
        note = f"past {where} there is no going back; no retry policy, so the saga is stuck at its first failure"
    elif policy.attempts is None:
        note = f"past {where} there is no going back; retry {describe_retry(policy)} until it succeeds"
    else:
        note = f"past {where} there is no going back; retry {describe_retry(policy)}, then the saga is stuck"
    return FailurePlan(name, "forward", (), (note,))


def _backward(g: SagaGraph, name: str, order: str, no_return: list[str], known: _Known) -> FailurePlan:
    step = g.steps[name]
    certain = {a for a in g.ancestors(name) if known.has_undo(g.steps[a])}
    concurrent = g.concurrent(name)
    maybe = {c for c in concurrent if known.has_undo(g.steps[c])}
    involved = set(certain) | maybe
    if known.has_undo(step):
        involved.add(name)

    def certainty(n: str) -> Certainty:
        if n == name:
            return "if uncertain"
        return "completed" if n in certain else "may have completed"

    # Both orders respect dependencies: a step is undone only after every step that depended on it.
    # Undos of one group are independent of each other: with `order parallel` they run together;
    # with `order reverse` one at a time, the latest completed first (which only a run can tell).
    groups = tuple(tuple(_undo(g, n, certainty(n), known) for n in grp) for grp in g.reverse_levels(involved))
    notes: list[str] = []
    if not involved:
        notes.append("nothing to undo: no step with an undo can have completed")
    racing = [n for n in no_return if n in concurrent]
    if racing:
        notes.append(
            f"{', '.join(racing)} may run at the same time; if it completed first, the saga cannot roll back past it"
        )
    return FailurePlan(name, "backward", groups, tuple(notes))


def plan_module(
    module: ir.Module, callees: Mapping[str, ir.Saga] | None = None, objects: sem.Objects = None
) -> list[SagaPlan]:
    """The plans of every saga in ``module`` (``callees``: sagas of imported files, by name)."""
    scope = {**(callees or {}), **{s.name: s for s in module.sagas}}
    return [plan_saga(s, module.file, scope, objects) for s in module.sagas]


# ---- output -----------------------------------------------------------------------------


def _undo_json(u: Undo) -> dict[str, Any]:
    return {
        "step": u.step,
        "certainty": u.certainty,
        "conditional": u.conditional,
        "fan_out": u.fan_out,
        "sub_saga": u.sub_saga,
        "sub_saga_undo": list(u.inner),
    }


def plans_to_json(plans: Iterable[SagaPlan]) -> dict[str, Any]:
    """The plans as JSON-ready data (``sagalang plan --json``)."""
    out = []
    for p in plans:
        out.append(
            {
                "saga": p.saga,
                "file": p.file,
                "pivot": p.pivot,
                "levels": [list(level) for level in p.levels],
                "steps": [
                    {
                        "name": s.name,
                        "level": s.level,
                        "kind": s.kind,
                        "action": s.action,
                        "target": s.target,
                        "undo": s.undo,
                        "marks": list(s.marks),
                        "retry": s.retry,
                    }
                    for s in p.steps
                ],
                "compensation_order": p.compensation_order,
                "failures": [
                    {
                        "step": f.step,
                        "recovery": f.recovery,
                        "compensation": [[_undo_json(u) for u in group] for group in f.compensation],
                        "notes": list(f.notes),
                    }
                    for f in p.failures
                ],
                "notes": list(p.notes),
            }
        )
    return {"format": PLAN_FORMAT, "version": PLAN_VERSION, "sagas": out}


def format_plans(plans: Iterable[SagaPlan]) -> str:
    """The plans as readable text (``sagalang plan``)."""
    blocks = []
    for p in plans:
        lines = [f"saga {p.saga}" + (f"  ({p.file})" if p.file else "")]
        lines.append("  forward order (steps on one line may run at the same time):")
        width = max((len(s.name) for s in p.steps), default=0)
        for i, level in enumerate(p.levels, 1):
            names = []
            for n in level:
                s = p.step(n)
                names.append(n + (f" [{', '.join(s.marks)}]" if s.marks else ""))
            lines.append(f"    {i:>2}. {' | '.join(names)}")
        if p.pivot is not None:
            lines.append(f"  point of no return: {p.pivot}")
        how = (
            "independent undos, joined by +, at the same time"
            if p.compensation_order == "parallel"
            else "one undo at a time; of independent ones, joined by /, the latest completed first"
        )
        lines.append(f"  compensation order: {p.compensation_order} ({how})")
        lines.append("  if a step fails for good:")
        for f in p.failures:
            head = f"    {f.step:<{width}}  "
            if f.recovery == "forward":
                body = "forward recovery: " + "; ".join(f.notes)
                lines.append(head + body)
                continue
            if f.compensation:
                joiner = " + " if p.compensation_order == "parallel" else " / "
                groups = [joiner.join(u.label() for u in group) for group in f.compensation]
                lines.append(head + "undo " + " -> ".join(groups))
            else:
                lines.append(head + "nothing to undo")
            for note in f.notes:
                if not note.startswith("nothing to undo"):
                    lines.append(" " * len(head) + f"note: {note}")
        for note in p.notes:
            lines.append(f"  note: {note}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"
