"""Saga semantics: what each step is, and what a failure leads to, decided in one place.

Pure functions over the IR and its graph (no I/O, no asyncio). The validator,
the plan, the diagrams, ``sagalang test`` and the interpreter ask these
questions here and nowhere else:

* a step's **role** — compensatable, pivot, retriable or readonly (Garcia-Molina
  & Salem; Richardson) — explicit from its keyword or implied by its place;
* whether it **has an undo** (compensating it may undo something) and whether
  it is **pivot-like** (once it completed, backward recovery is over);
* the saga's **pivot** and its **no-return set** (the steps at or after the
  point of no return);
* the **effective policies**: a step's retry and timeout, the compensation's
  retry, timeout and order.

Two things outside the IR can matter, and callers pass them when they know them:

* ``objects`` — the registered step objects (a :class:`~sagalang.plugins.Registry`,
  or a function from a handler name to its step object). A ``use`` step can be
  undone when its object's ``can_compensate()`` says so; without ``objects`` it
  is assumed to compensate (a step object provides ``compensate``).
* ``callees`` — the sagas ``call`` steps run (a mapping by name, or a
  :data:`CalleeScope`). A ``call`` step has an undo when its callee has a step
  with one (compensating the call undoes those), and it is pivot-like when its
  callee cannot be fully undone (completing the call means the callee passed
  its own point of no return). An unknown callee — or none given — is judged by
  nothing: the call has an undo and is not pivot-like, which is how a run sees
  it, since a run judges a callee's steps one by one (they are journaled as
  ``call/step``). A call to a saga with nothing to undo and nothing irreversible
  is readonly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Literal, TypeAlias

from . import ir

if TYPE_CHECKING:
    from .graph import SagaGraph
    from .plugins import Registry

__all__ = [
    "CalleeScope",
    "Callees",
    "Classes",
    "Misplaced",
    "Objects",
    "Role",
    "StepClass",
    "StepObjects",
    "classify",
    "compensation_order",
    "compensation_retry",
    "compensation_timeout",
    "effective_retry",
    "effective_timeout",
    "forward_only",
    "has_undo",
    "is_pivot_like",
    "no_return",
    "pivot",
    "pivot_like_steps",
    "retries",
    "retries_forever",
    "saga_reversible",
    "scope_of",
    "step_objects",
]


class Role(StrEnum):
    """A step's class in the saga literature's order: compensatable, then the pivot, then retriable."""

    COMPENSATABLE = "compensatable"
    PIVOT = "pivot"
    RETRIABLE = "retriable"
    READONLY = "readonly"


class Misplaced(StrEnum):
    """Where a step stands although its role does not allow it (the validator reports each)."""

    BEFORE_PIVOT = "before-pivot"  # cannot be undone, yet runs before the pivot (E605)
    AFTER_PIVOT = "after-pivot"  # compensatable, yet runs after the pivot (E606)
    BESIDE_PIVOT = "beside-pivot"  # has side effects and may run at the same time as the pivot (E607)
    BEFORE_COMPENSATABLE = "before-compensatable"  # cannot be undone, yet compensatable steps may follow (E608)


@dataclass(frozen=True, slots=True)
class StepClass:
    """A step's role; ``implied`` when its place, not its keyword, gives it.

    ``role`` is None for a step that cannot be undone standing where no such
    step may (``misplaced`` says why): it is neither the pivot nor after it.
    """

    role: Role | None
    implied: bool = False
    misplaced: Misplaced | None = None


@dataclass(frozen=True, slots=True)
class Classes:
    """Every step's class (in source order) and the step that is the saga's point of no return."""

    of: Mapping[str, StepClass]
    pivot: str | None  # the explicit pivot, or the step without undo that acts as one

    def role(self, name: str) -> Role | None:
        """The role of step ``name``."""
        return self.of[name].role


# ---- what the IR alone does not say ----------------------------------------------------

# A handler name's registered step object; None when it is unknown (or not a step object).
StepObjects: TypeAlias = Callable[[str], object]
Objects: TypeAlias = "Registry | StepObjects | None"
# ``call NAME``: the saga it runs and the scope ``call`` steps inside that saga resolve in; None if unknown.
CalleeScope: TypeAlias = Callable[[str], "tuple[ir.Saga, CalleeScope] | None"]
Callees: TypeAlias = "Mapping[str, ir.Saga] | CalleeScope | None"


def step_objects(registry: Registry) -> StepObjects:
    """The step objects of ``registry`` by handler name (None for unknown ones or ones that fail to load)."""
    from .errors import HandlerError

    def lookup(name: str) -> object:
        try:
            found = registry.get(name)
        except HandlerError:
            return None
        return found.step if found is not None else None

    return lookup


def scope_of(sagas: Mapping[str, ir.Saga]) -> CalleeScope:
    """A scope in which every ``call`` resolves by name in ``sagas``, the callees' own calls too."""

    def resolve(name: str) -> tuple[ir.Saga, CalleeScope] | None:
        found = sagas.get(name)
        return (found, resolve) if found is not None else None

    return resolve


def _objects(objects: Objects) -> StepObjects | None:
    if objects is None or callable(objects):
        return objects
    return step_objects(objects)


def _scope(callees: Callees) -> CalleeScope | None:
    if callees is None or callable(callees):
        return callees
    return scope_of(callees)


def _object_compensates(inv: ir.Invocation, objects: StepObjects | None) -> bool:
    """Whether a ``use`` step's object can undo what it did (assumed so when it is not known)."""
    obj = objects(inv.handler) if objects is not None else None
    can = getattr(obj, "can_compensate", None)
    return bool(can()) if callable(can) else True


# ---- one step --------------------------------------------------------------------------


def has_undo(step: ir.Step, objects: Objects = None, callees: Callees = None) -> bool:
    """Whether compensating ``step`` may undo something: an ``undo``, a step object that can
    compensate, or a ``call`` of a saga with a step that has an undo (an unknown callee counts).

    ``readonly``, ``pivot`` and ``retriable`` steps never have one (the validator
    rejects the clause on them: E602-E604).
    """
    return _has_undo(step, _objects(objects), _scope(callees), frozenset())


def _has_undo(step: ir.Step, objects: StepObjects | None, scope: CalleeScope | None, busy: frozenset[int]) -> bool:
    if step.kind != "step":
        return False
    if step.undo is not None:
        return True
    if step.use is not None:
        return _object_compensates(step.use, objects)
    if step.call is None:
        return False
    found = scope(step.call.saga) if scope is not None else None
    if found is None:
        return True  # a run compensates whatever the callee ran
    callee, inner = found
    if id(callee) in busy:
        return False  # a call cycle (E705) adds nothing a first pass did not find
    busy = busy | {id(callee)}
    return any(_has_undo(s, objects, inner, busy) for s in callee.steps())


def is_pivot_like(step: ir.Step, objects: Objects = None, callees: Callees = None) -> bool:
    """Whether completing ``step`` ends backward recovery: the pivot, a retriable step, a step
    with side effects and no undo, or a ``call`` of a saga that cannot be fully undone.
    """
    return _pivot_like(step, _objects(objects), _scope(callees), frozenset())


def _pivot_like(step: ir.Step, objects: StepObjects | None, scope: CalleeScope | None, busy: frozenset[int]) -> bool:
    if step.kind in ("pivot", "retriable"):
        return True
    if step.kind == "readonly":
        return False
    if step.call is not None:
        found = scope(step.call.saga) if scope is not None else None
        if found is None or id(found[0]) in busy:
            return False  # judged by the callee's steps one by one, as a run does
        callee, inner = found
        return not _reversible(callee, objects, inner, busy | {id(callee)})
    if step.use is not None:
        return not _object_compensates(step.use, objects)
    return step.do is not None and step.undo is None


def saga_reversible(saga: ir.Saga, objects: Objects = None, callees: Callees = None) -> bool:
    """Whether everything ``saga`` does can be undone: none of its steps is pivot-like (callees included)."""
    return _reversible(saga, _objects(objects), _scope(callees), frozenset({id(saga)}))


def _reversible(saga: ir.Saga, objects: StepObjects | None, scope: CalleeScope | None, busy: frozenset[int]) -> bool:
    return not any(_pivot_like(s, objects, scope, busy) for s in saga.steps())


def _nature(step: ir.Step, pivot_like: bool, objects: StepObjects | None, scope: CalleeScope | None) -> Role | None:
    """The role a step has wherever it stands; None for a side effect that cannot be undone."""
    if step.kind != "step":
        return Role(step.kind)
    if pivot_like:
        return None
    if _has_undo(step, objects, scope, frozenset()):
        return Role.COMPENSATABLE
    return Role.READONLY  # nothing to undo and nothing irreversible (e.g. a call of a readonly saga)


# ---- the saga's classes, pivot and point of no return -----------------------------------


def classify(graph: SagaGraph, objects: Objects = None, callees: Callees = None) -> Classes:
    """Every step's class and the saga's pivot (the explicit one, else the step that acts as one).

    Before the pivot every step with side effects has an undo; the pivot is the
    point of no return; the steps after it are retriable. A step without undo
    and without a keyword acts as the pivot when every compensatable step runs
    before it, and as a retriable step when it runs after that one. With an
    ``after`` cycle only the steps' own natures are given (no pivot).
    """
    objs, scope = _objects(objects), _scope(callees)
    irreversible = {n for n, s in graph.steps.items() if _pivot_like(s, objs, scope, frozenset())}
    nature = {n: _nature(s, n in irreversible, objs, scope) for n, s in graph.steps.items()}
    if not graph.is_dag:
        return Classes({n: _plain(graph.steps[n], nature[n]) for n in graph.order}, None)
    explicit = next((n for n in graph.order if graph.steps[n].kind == "pivot"), None)
    if explicit is not None:
        found = _around_pivot(graph, explicit, nature, irreversible)
        return Classes({n: found[n] for n in graph.order}, explicit)
    found, acting = _implied_pivot(graph, nature, irreversible)
    return Classes({n: found[n] for n in graph.order}, acting)


def _plain(step: ir.Step, role: Role | None) -> StepClass:
    """A step classed by its nature alone (implied when a keyword-less step turns out readonly)."""
    return StepClass(role, role is Role.READONLY and step.kind == "step")


def _around_pivot(
    graph: SagaGraph, pivot_name: str, nature: Mapping[str, Role | None], irreversible: set[str]
) -> dict[str, StepClass]:
    """The classes of a saga with a ``pivot`` step: before it compensatable, after it retriable."""
    out: dict[str, StepClass] = {}
    for name, step in graph.steps.items():
        role = nature[name]
        if step.kind == "pivot":
            out[name] = StepClass(Role.PIVOT)  # a second pivot is reported on its own (E601)
        elif graph.is_ancestor(name, pivot_name):
            out[name] = StepClass(role, False, Misplaced.BEFORE_PIVOT if name in irreversible else None)
        elif graph.is_ancestor(pivot_name, name):
            if role is Role.COMPENSATABLE:
                out[name] = StepClass(role, False, Misplaced.AFTER_PIVOT)
            elif role is None:
                out[name] = StepClass(Role.RETRIABLE, True)
            else:
                out[name] = _plain(step, role)
        elif role is Role.READONLY:
            out[name] = _plain(step, role)  # reads only: it may run alongside the pivot
        else:
            out[name] = StepClass(role, False, Misplaced.BESIDE_PIVOT)
    return out


def _implied_pivot(
    graph: SagaGraph, nature: Mapping[str, Role | None], irreversible: set[str]
) -> tuple[dict[str, StepClass], str | None]:
    """The classes of a saga without a ``pivot`` step, and the first step without undo that acts as one."""
    comp_mask = graph.mask(n for n, r in nature.items() if r is Role.COMPENSATABLE)
    out: dict[str, StepClass] = {}
    acting: str | None = None
    for name in graph.topo:
        step, role = graph.steps[name], nature[name]
        if name not in irreversible:
            out[name] = _plain(step, role)
        elif comp_mask & ~graph.ancestor_mask(name):
            out[name] = StepClass(role, False, Misplaced.BEFORE_COMPENSATABLE)
        elif acting is None:
            acting = name
            out[name] = StepClass(role or Role.PIVOT, role is None)
        elif graph.is_ancestor(acting, name):
            out[name] = StepClass(role or Role.RETRIABLE, role is None)
        else:
            out[name] = StepClass(role, False, Misplaced.BESIDE_PIVOT)
    return out, acting


def pivot(graph: SagaGraph, objects: Objects = None, callees: Callees = None) -> str | None:
    """The saga's point of no return: its ``pivot`` step, else the step without undo that acts as one."""
    return classify(graph, objects, callees).pivot


def pivot_like_steps(graph: SagaGraph, objects: Objects = None, callees: Callees = None) -> tuple[str, ...]:
    """The steps whose completion ends backward recovery, in dependency order."""
    objs, scope = _objects(objects), _scope(callees)
    return tuple(n for n in graph.topo if _pivot_like(graph.steps[n], objs, scope, frozenset()))


def forward_only(graph: SagaGraph, objects: Objects = None, callees: Callees = None) -> frozenset[str]:
    """The steps that start only after a pivot-like step completed: their failure is retried, never rolled back."""
    passed = set(pivot_like_steps(graph, objects, callees))
    out: set[str] = set()
    for name in graph.topo:
        if any(d in passed or d in out for d in graph.deps[name]):
            out.add(name)
    return frozenset(out)


def no_return(graph: SagaGraph, objects: Objects = None, callees: Callees = None) -> frozenset[str]:
    """The steps at or after the point of no return: the pivot-like steps and every step after one."""
    return frozenset(pivot_like_steps(graph, objects, callees)) | forward_only(graph, objects, callees)


# ---- policies ---------------------------------------------------------------------------


def effective_retry(saga: ir.Saga, step: ir.Step) -> ir.RetryPolicy | None:
    """The retry policy of ``step``'s attempts: its own, else the saga's default.

    None for a ``call`` step: a call is not retried as a whole, its callee's
    steps retry by the callee's policies.
    """
    if step.call is not None:
        return None
    if step.retry is not None:
        return step.retry
    return saga.defaults.retry if saga.defaults is not None else None


def effective_timeout(saga: ir.Saga, step: ir.Step) -> ir.Duration | None:
    """How long one attempt of ``step`` may take: its own timeout, else the saga's default.

    None for a ``call`` step: its callee's steps have their own timeouts.
    """
    if step.call is not None:
        return None
    if step.timeout is not None:
        return step.timeout
    return saga.defaults.timeout if saga.defaults is not None else None


def compensation_retry(saga: ir.Saga) -> ir.RetryPolicy | None:
    """The retry policy of ``saga``'s undo calls (one attempt without one)."""
    return saga.compensation.retry if saga.compensation is not None else None


def compensation_timeout(saga: ir.Saga) -> ir.Duration | None:
    """How long one undo call of ``saga`` may take (no limit without a timeout)."""
    return saga.compensation.timeout if saga.compensation is not None else None


def compensation_order(saga: ir.Saga) -> Literal["reverse", "parallel"]:
    """``reverse`` (the default: one undo at a time, latest completed first) or ``parallel``."""
    if saga.compensation is not None and saga.compensation.order == "parallel":
        return "parallel"
    return "reverse"


def retries(policy: ir.RetryPolicy | None) -> bool:
    """Whether ``policy`` allows another attempt after a failure (forever, or more than one attempt)."""
    return policy is not None and (policy.attempts is None or policy.attempts > 1)


def retries_forever(policy: ir.RetryPolicy | None) -> bool:
    """Whether ``policy`` retries until the step succeeds (``retry forever``)."""
    return policy is not None and policy.attempts is None
