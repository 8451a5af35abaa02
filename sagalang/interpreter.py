"""The interpreter: runs a validated saga with plugin handlers, journal first.

Every transition is appended to the store before the next action (the
step's ``step.started`` before its handler is called, its result after), then
folded into the run's :class:`~sagalang.state.RunState` and handed to the
listeners. A resume folds the stored journal and continues from there, so the
journal is the only state there is. The rules this module implements are
written down in ``docs/semantics.md``.

Shape of a run: :func:`run` / :func:`resume` build a :class:`_Run`, which
drives the entry saga's :class:`_Scope` forward (a sub-saga ``call`` gets a
nested scope whose steps are journaled as ``caller/step``). When a step fails
for good, or the run is cancelled, nothing new is scheduled, in-flight
siblings finish (or are cancelled), and the completed steps are compensated
in a task shielded from cancellation.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import math
import os
import random
import signal
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from . import ir
from .context import Context, Failure
from .errors import SagaError, StoreError
from .events import Event, Listener
from .expr import ExprError, evaluate, truthy
from .graph import SagaGraph
from .journal.base import RunRecord, Store
from .plugins import Handler, Registry
from .redact import redact, secret_values
from .spec import Spec
from .state import _APPLY, RunState, StepState, fold, mark_started, mark_succeeded

__all__ = [
    "CRASH_ENV",
    "Clock",
    "Middleware",
    "RunResult",
    "StepMiddleware",
    "SystemClock",
    "backoff_delay",
    "cancel",
    "error_names",
    "resume",
    "run",
]

log = logging.getLogger("sagalang.interpreter")
# Inside a coroutine run by a task (always, here) the current task is never None.
_current_task: Callable[[], asyncio.Task[Any]] = asyncio.current_task  # type: ignore[assignment]

CRASH_ENV = "SAGALANG_CRASH_AFTER_APPEND"
_EMPTY: Mapping[str, Any] = {}
_NO_SECRETS: frozenset[str] = frozenset()
_K = TypeVar("_K")  # what a set of running tasks is keyed by (step name, fan-out item)
# Status a store caches for a run after an event of this kind.
_STATUS_AFTER = {
    "saga.started": "running",
    "saga.retrying": "running",
    "saga.compensating": "compensating",
    "saga.completed": "completed",
    "saga.compensated": "compensated",
    "saga.aborted": "aborted",
    "saga.stuck": "stuck",
    "saga.cancelled": "cancelled",
}
# Step states after which a step's effects may exist and need undoing.
_MAY_HAVE_EFFECT = frozenset({"succeeded", "running", "compensating", "compensation_failed"})


def _event_maker() -> Callable[..., Event]:
    """A constructor for :class:`Event` that fills its slots directly.

    A frozen dataclass's ``__init__`` goes through ``object.__setattr__`` once
    per field, which makes it several times slower than the slot descriptors
    themselves; events are created twice per step, so the hot path uses this.
    """
    new = object.__new__
    kind, run_id, seq, at, step, item, attempt, data, epoch = (
        getattr(Event, f).__set__ for f in ("kind", "run_id", "seq", "time", "step", "item", "attempt", "data", "epoch")
    )

    def make(k: str, r: str, q: int, t: float, s: str | None, i: int | None, a: int | None, d: Any, e: int) -> Event:
        ev: Event = new(Event)
        kind(ev, k)
        run_id(ev, r)
        seq(ev, q)
        at(ev, t)
        step(ev, s)
        item(ev, i)
        attempt(ev, a)
        data(ev, d)
        epoch(ev, e)
        return ev

    return make


_new_event = _event_maker()

# The crash hook (a test aid): SIGKILL this process right after its k-th journal append.
_crash_env = os.environ.get(CRASH_ENV, "")
_CRASH_AFTER = int(_crash_env) if _crash_env.isdigit() else 0
_appended = 0  # appends so far, across every run of the process


def _crash_point(after: int) -> None:
    """Count one journal append; SIGKILL this process at the ``after``-th (the crash hook)."""
    global _appended
    _appended += 1
    if _appended == after:
        os.kill(os.getpid(), signal.SIGKILL)


# Runs driven by this process, so cancel() reaches them without polling the store.
_LIVE: dict[tuple[int, str], _Run] = {}


class Clock(Protocol):
    """Time as the interpreter sees it: injectable so tests control backoff."""

    def time(self) -> float:
        """Wall-clock seconds (event timestamps)."""

    async def sleep(self, seconds: float) -> None:
        """Wait between retries."""

    def random(self) -> float:
        """A number in [0, 1) for jitter."""


class SystemClock:
    """The real clock: ``time.time``, ``asyncio.sleep`` and ``random.random``."""

    time = staticmethod(time.time)
    random = staticmethod(random.random)

    async def sleep(self, seconds: float) -> None:
        """``asyncio.sleep``."""
        await asyncio.sleep(seconds)


Middleware = Callable[[Callable[[Context], Awaitable[Any]], Context], Awaitable[Any]]
StepMiddleware = Middleware


@dataclass
class RunResult:
    """How a run ended: its status, output (redacted), error and final state."""

    run_id: str
    status: str
    output: Any
    error: dict[str, Any] | None
    state: RunState

    @property
    def ok(self) -> bool:
        """True when the saga completed."""
        return self.status == "completed"

    def to_json(self) -> dict[str, Any]:
        """The result as JSON (``sagalang run --json``)."""
        out: dict[str, Any] = {"run_id": self.run_id, "status": self.status, "output": self.output}
        if self.error is not None:
            out["error"] = self.error
        if self.state.failed_step is not None:
            out["failed_step"] = self.state.failed_step
        out["compensated"] = list(self.state.compensation_path)
        return out


# ---- errors and retries -------------------------------------------------------


def error_names(exc: BaseException, namespace: str | None = None) -> list[str]:
    """The names ``retry on`` / ``except`` match against for ``exc``.

    A :class:`Failure`: its name (and the name's last part). Any other
    exception: its class name, ``namespace.ClassName``, and its base classes
    up to ``Exception``.
    """
    if isinstance(exc, Failure):
        names = [exc.name]
        short = exc.name.rpartition(".")[2]
        if short != exc.name:
            names.append(short)
        return names
    names = []
    for i, cls in enumerate(type(exc).__mro__):
        if cls is BaseException or cls is object:
            break
        names.append(cls.__name__)
        if i == 0 and namespace:
            names.append(f"{namespace}.{cls.__name__}")
        if cls is Exception:
            break
    return names


def _error(exc: BaseException, namespace: str | None) -> dict[str, Any]:
    if isinstance(exc, Failure):
        return {"type": exc.name, "message": exc.message, "names": error_names(exc)}
    names = error_names(exc, namespace)
    return {"type": names[0], "message": str(exc) or type(exc).__name__, "names": names}


def _timeout_error(seconds: float) -> dict[str, Any]:
    return {"type": "Timeout", "message": f"timed out after {seconds:g}s", "names": ["Timeout"]}


_CANCELLED = {"type": "Cancelled", "message": "cancelled while running", "names": ["Cancelled"]}


def _final(error: Mapping[str, Any] | None) -> dict[str, Any]:
    return {"error": error, "uncertain": False, "final": True}


def backoff_delay(policy: ir.RetryPolicy | ir.SagaRetry, retry: int, rnd: Callable[[], float] | None = None) -> float:
    """Seconds before retry number ``retry`` (1-based): ``initial × multiplier^(retry-1)``, capped; full jitter."""
    b = policy.backoff
    if b is None:
        return 0.0
    mult = b.multiplier or 1.0
    try:
        ms = b.initial.ms * mult ** (retry - 1)
    except OverflowError:
        ms = math.inf
    if b.max is not None:
        ms = min(ms, b.max.ms)
    if ms == math.inf:
        ms = b.initial.ms
    if isinstance(policy, ir.RetryPolicy) and policy.jitter:
        ms = (rnd or random.random)() * ms
    return ms / 1000.0


def _should_retry(policy: ir.RetryPolicy | None, err: Mapping[str, Any], retryable: bool | None, attempt: int) -> bool:
    if policy is None or retryable is False:
        return False
    if policy.attempts is not None and attempt >= policy.attempts:
        return False
    names = err.get("names", ())
    if policy.except_ and any(n in policy.except_ for n in names):
        return False
    return not (policy.on and retryable is not True and not any(n in policy.on for n in names))


def _jsonable(value: Any, where: str = "output") -> Any:
    """``value`` if it is JSON data (tuples become lists); else a non-retryable Failure."""
    t = type(value)
    if value is None or t is str or t is int or t is bool:
        return value
    if t is float:
        if math.isfinite(value):
            return value
        raise Failure(
            "sagalang.NotJSON", f"handler result {where} is {value!r}, which JSON cannot hold", retryable=False
        )
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if type(k) is not str and not isinstance(k, str):
                raise Failure("sagalang.NotJSON", f"handler result {where} has a non-text key {k!r}", retryable=False)
            # Plain text, whole numbers, booleans and None are kept as they are (no path built for them).
            tv = type(v)
            out[k] = v if v is None or tv is str or tv is int or tv is bool else _jsonable(v, f"{where}.{k}")
        return out
    if isinstance(value, list | tuple):
        return [
            v if v is None or type(v) is str or type(v) is int or type(v) is bool else _jsonable(v, f"{where}[{i}]")
            for i, v in enumerate(value)
        ]
    # Subclasses (enums, numpy-free number types): store the plain value.
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return _jsonable(float(value), where)
    if isinstance(value, str):
        return str.__str__(value)
    raise Failure(
        "sagalang.NotJSON",
        f"handler result {where} is a {t.__name__}, which is not JSON-serialisable "
        "(return dicts, lists, strings, numbers, booleans or None)",
        retryable=False,
    )


def _namespace(name: str) -> str:
    return name.partition(".")[0]


def _expr_failure(err: ExprError, what: str) -> Failure:
    where = f" (line {err.span.line}:{err.span.col})" if err.span.line else ""
    return Failure("sagalang.ExpressionError", f"{what}: {err}{where}", retryable=False)


# ---- scopes -------------------------------------------------------------------


class _Scope:
    """One saga being driven: the entry saga, or a sub-saga behind a ``call`` step."""

    __slots__ = (
        "comp",
        "dependents",
        "env",
        "fresh",
        "graph",
        "input",
        "key_prefix",
        "prefix",
        "retry",
        "saga",
        "spec_name",
        "timeout",
    )

    def __init__(self, run: _Run, saga: ir.Saga, graph: SagaGraph, prefix: str, input: dict[str, Any]) -> None:
        self.saga = saga
        self.spec_name = saga.name
        self.graph = graph
        self.prefix = prefix
        self.key_prefix = run.key_base + "/"  # idempotency keys: key_prefix + step
        self.input = input
        self.env: dict[str, Any] = {
            "input": input,
            "saga": {"id": run.run_id, "name": saga.name, "attempt": run.state.saga_attempt},
        }
        self.dependents = run.dependents_of(graph)
        defaults = saga.defaults
        self.retry = defaults.retry if defaults is not None else None
        self.timeout = defaults.timeout.ms / 1000 if defaults is not None and defaults.timeout is not None else None
        self.comp = saga.compensation
        self.fresh = run.fresh and not prefix
        if self.fresh:
            return  # nothing has run yet: no outputs to pick up
        steps = run.state.steps
        for name in graph.order:
            st = steps.get(prefix + name)
            # A step being (or already) compensated after a resume keeps the output it succeeded
            # with: undo arguments and sub-saga inputs may still refer to it.
            if st is not None and (st.status == "succeeded" or st.output is not None):
                self.env[name] = st.output
            elif st is not None and st.status == "skipped":
                self.env[name] = None


# ---- the run ------------------------------------------------------------------


class _Run:
    """Drives one run: emits events, schedules steps, compensates."""

    # Defaults, overridden per instance where a run differs (most runs never do).
    listeners: tuple[Listener, ...] = ()
    middleware: tuple[Middleware, ...] = ()
    step_middleware: tuple[StepMiddleware, ...] = ()
    fail_at: frozenset[str] = frozenset()
    clock: Clock = SystemClock()
    sync_journal = False  # set by the epoch setter
    stop: str | None = None  # why forward progress stopped: failure | cancel | timeout
    external_cancel = False
    cancel_ignored: str | None = None  # a cancel that came after the pivot
    fresh = False  # the run starts from nothing: no step has a state to look at yet
    crash_after = _CRASH_AFTER
    # Per (spec, registry), shared by its runs (see _resolve_handlers).
    handlers: dict[str, Handler]
    pivot_like: dict[tuple[str, str], bool]
    fast: dict[str, Any]  # handlers awaited directly: async functions without ctx
    quick_plans: dict[str, dict[str, tuple[Callable[..., Awaitable[Any]], tuple[ir.Arg, ...]]]]
    siblings_cancel: bool
    secret_fields: tuple[str, ...]

    def __init__(
        self,
        spec: Spec,
        store: Store,
        registry: Registry,
        run_id: str,
        input: dict[str, Any],
        *,
        listeners: Sequence[Listener] = (),
        middleware: Sequence[Middleware] = (),
        step_middleware: Sequence[StepMiddleware] = (),
        fail_at: Iterable[str] = (),
        clock: Clock | None = None,
        executor: Executor | None = None,
        state: RunState | None = None,
        epoch: int | None = None,
    ) -> None:
        self.spec = spec
        self.store = store
        self.registry = registry
        self.run_id = run_id
        self.input = input
        # The defaults (no listeners, middleware or faults, the system clock) are class attributes.
        if listeners:
            self.listeners = tuple(listeners)
        if middleware:
            self.middleware = tuple(middleware)
        if step_middleware:
            self.step_middleware = tuple(step_middleware)
        if fail_at:
            self.fail_at = frozenset(fail_at)
        if clock is not None:
            self.clock = clock
        self._now = self.clock.time
        # The memory store appends without a coroutine (nothing to wait for), and takes
        # compact rows for step events (the quick path's journal). Looked up on the class:
        # a wrapper that forwards attributes (a fault-injecting store) must see every
        # append through its own ``append``. Kept unbound: one bound method less per run.
        cls = type(store)
        self._append_now: Callable[[Store, str, Event, str | None], Event] | None = getattr(cls, "append_now", None)
        self._row_log: Callable[[Store, str], list[Any]] | None = getattr(cls, "row_log", None)
        self.executor = executor
        self.state = state or RunState(run_id, saga=spec.entry)
        self.seq = self.state.last_seq
        self.epoch = epoch
        # Tasks running a handler or a retry wait, which a cancel interrupts. A list: it holds
        # one or two tasks, and an empty set costs four times the memory (thousands of runs in flight).
        self.zones: list[asyncio.Task[Any]] = []
        self.done_order: dict[str, int] = {}  # step -> seq at which it finished (for reverse order)
        self.scopes: dict[str, _Scope] = {}
        self._resolve_handlers()
        self.secrets = secret_values(input, self.secret_fields) if self.secret_fields else _NO_SECRETS

    @property
    def key_base(self) -> str:
        """Idempotency keys start with this: the run id, plus ``#N`` from the N-th whole-saga attempt on.

        A whole-saga retry starts again after a clean rollback; reusing the first
        attempt's keys would let an idempotent handler answer with the effect it
        already undid, so each attempt of the saga gets keys of its own.
        """
        n = self.state.saga_attempt
        return self.run_id if n <= 1 else f"{self.run_id}#{n}"

    @property
    def epoch(self) -> int | None:
        """The fencing token this driver writes with (None: no lease)."""
        return self._epoch

    @epoch.setter
    def epoch(self, value: int | None) -> None:
        self._epoch = value
        self._epoch0 = value or 0
        self.sync_journal = value is None and self._append_now is not None

    # ---- set-up ---------------------------------------------------------------
    def _resolve_handlers(self) -> None:
        # Resolving is the same for every run of one spec with one registry: cache it on the spec.
        cache: dict[int, tuple[Registry, dict[str, Any]]] = self.spec.__dict__.setdefault("_plans", {})
        found = cache.get(id(self.registry))
        if found is not None and found[0] is self.registry:
            # Attribute by attribute: touching __dict__ would give every run a dict of its own.
            plan = found[1]
            self.handlers = plan["handlers"]
            self.pivot_like = plan["pivot_like"]
            self.fast = plan["fast"]
            self.quick_plans = plan["quick_plans"]
            self.siblings_cancel = plan["siblings_cancel"]
            self.secret_fields = plan["secret_fields"]
            return
        self.handlers = {}
        self.pivot_like = {}
        self._resolve_now()
        self.fast = {
            name: h.func
            for name, h in self.handlers.items()
            if h.func is not None and h.info.is_async and not h.wants_context
        }
        self.quick_plans = {name: self._quick_plans(saga) for name, saga in self.spec.sagas.items()}
        on_failure = self.spec.saga.on_failure
        self.siblings_cancel = bool(on_failure is not None and on_failure.siblings == "cancel")
        self.secret_fields = self.spec.secrets()
        names = ("handlers", "pivot_like", "fast", "quick_plans", "siblings_cancel", "secret_fields")
        cache[id(self.registry)] = (self.registry, {n: getattr(self, n) for n in names})

    def _quick_plans(self, saga: ir.Saga) -> dict[str, tuple[Callable[..., Awaitable[Any]], tuple[ir.Arg, ...]]]:
        """The steps of ``saga`` that :meth:`quick` may run: a plain async handler, nothing around it.

        No condition, fan-out, sub-saga, timeout or output schema; the handler an
        async function that takes no context. What the step needs per run (a
        quiet journal, no middleware, no injected faults, no secrets) is checked
        by :meth:`forward`.
        """
        defaults = saga.defaults
        if defaults is not None and defaults.timeout is not None:
            return {}
        plans: dict[str, tuple[Callable[..., Awaitable[Any]], tuple[ir.Arg, ...]]] = {}
        for step in saga.steps():
            if (
                step.do is None
                or step.when is not None
                or step.foreach is not None
                or step.call is not None
                or step.timeout is not None
                or step.output_schema is not None
            ):
                continue
            func = self.fast.get(step.do.handler)
            if func is not None:
                plans[step.name] = (func, tuple(step.do.args))
        return plans

    def _resolve_now(self) -> None:
        for saga in self.spec.sagas.values():
            for step in saga.steps():
                for inv in (step.do, step.undo, step.use):
                    if inv is not None and inv.handler not in self.handlers:
                        self.handlers[inv.handler] = self.registry.resolve(inv.handler)
                self.pivot_like[(saga.name, step.name)] = self._is_pivot_like(step)
            retry = saga.on_failure.retry if saga.on_failure is not None else None
            if retry is not None and retry.analyzer is not None:
                self.handlers[retry.analyzer] = self.registry.resolve(retry.analyzer)

    def _is_pivot_like(self, step: ir.Step) -> bool:
        # A completed step that cannot be undone ends backward recovery (DESIGN §5).
        if step.kind == "pivot":
            return True
        if step.kind == "readonly" or step.call is not None:
            return False
        if step.use is not None:
            obj = self.handlers[step.use.handler].step
            can = getattr(obj, "can_compensate", None)
            return not (can() if callable(can) else True)
        return step.undo is None

    @staticmethod
    def dependents_of(graph: SagaGraph) -> dict[str, list[str]]:
        """Each step's direct dependents (computed once per graph)."""
        found: dict[str, list[str]] | None = graph.__dict__.get("_sagalang_dependents")
        if found is None:
            found = {n: [] for n in graph.order}
            for name, deps in graph.deps.items():
                for d in deps:
                    found[d].append(name)
            graph.__dict__["_sagalang_dependents"] = found
        return found

    @staticmethod
    def initial_waiting(graph: SagaGraph) -> tuple[dict[str, int], tuple[str, ...]]:
        """How many dependencies each step waits for at the start, and the steps that wait for none."""
        found: tuple[dict[str, int], tuple[str, ...]] | None = graph.__dict__.get("_sagalang_waiting")
        if found is None:
            waiting = {n: len(graph.deps[n]) for n in graph.order}
            found = (waiting, tuple(n for n in graph.order if not waiting[n]))
            graph.__dict__["_sagalang_waiting"] = found
        return found

    def track(self, ev: Event) -> None:
        """Remember completion order (reverse completion order is the default undo order)."""
        if ev.item is None and ev.step is not None:
            kind = ev.kind
            if kind == "step.succeeded" or (kind == "step.failed" and ev.data.get("final", True)):
                self.done_order[ev.step] = ev.seq
            elif kind == "saga.retrying":
                self.done_order.clear()

    # ---- journal ----------------------------------------------------------------
    async def emit(
        self,
        kind: str,
        step: str | None = None,
        item: int | None = None,
        attempt: int | None = None,
        data: Mapping[str, Any] = _EMPTY,
    ) -> Event:
        """Journal one event, fold it into the state, then tell the listeners."""
        if self.sync_journal:
            ev = self.emit_now(kind, step, item, attempt, data)
        else:
            if self.secrets and data:
                data = redact(data, self.secrets)
            seq = self.seq = self.seq + 1
            ev = _new_event(kind, self.run_id, seq, self._now(), step, item, attempt, data, self._epoch0)
            # Journal first: the event is durable before anything else happens.
            stored = await self.store.append(self.run_id, (ev,), _STATUS_AFTER.get(kind), self._epoch)
            if stored:
                ev = stored[0]
                if ev.seq != seq:
                    self.seq = ev.seq
            self._after_append(ev)
        if self.listeners:
            await self._notify(ev)
        return ev

    def emit_now(
        self,
        kind: str,
        step: str | None = None,
        item: int | None = None,
        attempt: int | None = None,
        data: Mapping[str, Any] = _EMPTY,
    ) -> Event:
        """``emit`` without a coroutine, for a store that appends synchronously (memory) and no listeners."""
        if self.secrets and data:
            data = redact(data, self.secrets)
        seq = self.seq = self.seq + 1
        ev = _new_event(kind, self.run_id, seq, self._now(), step, item, attempt, data, 0)
        ev = self._append_now(self.store, self.run_id, ev, _STATUS_AFTER.get(kind))  # type: ignore[misc]
        if ev.seq != seq:
            self.seq = ev.seq
        # _after_append inlined: this is the hot path.
        if self.crash_after:
            _crash_point(self.crash_after)
        fn = _APPLY.get(kind)
        if fn is not None:
            fn(self.state, ev)
        self.state.last_seq = ev.seq
        if item is None and step is not None and (kind == "step.succeeded" or kind == "step.failed"):
            self.track(ev)
        return ev

    def _after_append(self, ev: Event) -> None:
        # Everything that follows a journal append: the crash hook, the fold, completion order.
        if self.crash_after:
            _crash_point(self.crash_after)
        kind = ev.kind
        fn = _APPLY.get(kind)  # state.apply inlined: this is the hot path
        if fn is not None:
            fn(self.state, ev)
        self.state.last_seq = ev.seq
        if ev.item is None and ev.step is not None and (kind == "step.succeeded" or kind == "step.failed"):
            self.track(ev)

    async def _notify(self, ev: Event) -> None:
        for listener in self.listeners:
            try:
                res = listener(ev)
                if res is not None and inspect.isawaitable(res):
                    await res
            except Exception:
                # A broken listener must not break the saga; its failure is logged.
                log.exception("listener %r failed on %s", listener, ev.kind)

    # ---- cancellation -------------------------------------------------------------
    def cancel(self, reason: str = "cancel") -> None:
        """Stop forward progress and interrupt running handlers (compensation follows).

        After the pivot completed there is nothing to roll back to: the request
        is recorded and the saga carries on forward.
        """
        if self.stop is None and self._pivot_done():
            self.cancel_ignored = self.cancel_ignored or reason
            return
        if self.stop is None:
            self.stop = reason
        for task in list(self.zones):
            task.cancel()

    def _external(self) -> None:
        # The task driving us was cancelled from outside: that is a cancel of the saga.
        if self.stop is None:
            self.stop = "cancel"
            self.external_cancel = True
        for task in list(self.zones):
            if task is not asyncio.current_task():
                task.cancel()

    # ---- forward ------------------------------------------------------------------
    async def forward(self, sc: _Scope) -> str | None:
        """Run ``sc``'s steps as their dependencies complete; the failed step's name, or None."""
        graph = sc.graph
        steps = self.state.steps
        prefix = sc.prefix
        failure: str | None = None
        if sc.fresh:
            # Nothing has run: every step waits for all its dependencies.
            sc.fresh = False
            waiting, roots = self.initial_waiting(graph)
            waiting = waiting.copy()
            ready: list[str] = list(roots)  # a list, not a deque: a deque's first block is 600 bytes
        else:
            waiting = {}
            ready = []
            done: set[str] = set()
            for name in graph.topo if steps else ():
                st = steps.get(prefix + name)
                status = st.status if st is not None else "pending"
                if status in ("succeeded", "skipped"):
                    done.add(name)
                elif status == "failed" and failure is None:
                    failure = prefix + name
            for name in graph.order:
                if name in done:
                    continue
                n = 0
                for d in graph.deps[name]:
                    if d not in done:
                        n += 1
                waiting[name] = n
                if n == 0:
                    ready.append(name)
        dependents = sc.dependents
        inflight: dict[asyncio.Task[bool], str] = {}
        plans = self.quick_plans.get(sc.spec_name, _EMPTY) if self._quick_ok() else _EMPTY
        me = _current_task() if plans else None  # the task steps run inline in
        rows: list[Any] = self._row_log(self.store, self.run_id) if plans and self._row_log is not None else []
        while True:
            if ready and self.stop is None and failure is None:
                name = ready.pop(0)
                plan = plans.get(name)
                if ready or inflight:
                    coro = self.quick(sc, name, plan[0], plan[1], rows) if plan is not None else self.step(sc, name)
                    inflight[asyncio.get_running_loop().create_task(coro)] = name
                    continue
                # One step ready and nothing running: run it inline, no task.
                try:
                    if plan is not None:
                        ok = await self.quick(sc, name, plan[0], plan[1], rows, me)
                    else:
                        ok = await self.step(sc, name)
                except asyncio.CancelledError:  # the driving task was cancelled from outside
                    self._external()
                    ok = False
                finished: Iterable[tuple[str, bool]] = ((name, ok),)
            elif inflight:
                finished = await self._drain(inflight)
            else:
                break
            for name, ok in finished:
                if ok:
                    for d in dependents[name]:
                        waiting[d] -= 1
                        if waiting[d] == 0:
                            ready.append(d)
                elif failure is None:
                    failure = prefix + name
                    self.failed_for_good()
        if failure is None and self.stop is not None:
            return None
        return failure

    def _quick_ok(self) -> bool:
        # The quick path journals compact rows itself: only with a synchronous
        # journal that takes them and nothing that must see each step go by.
        return bool(
            self.sync_journal
            and self._row_log is not None
            and not self.listeners
            and not self.step_middleware
            and not self.fail_at
            and not self.secrets
        )

    async def quick(
        self,
        sc: _Scope,
        name: str,
        func: Callable[..., Awaitable[Any]],
        arg_exprs: tuple[ir.Arg, ...],
        rows: list[Any],
        me: asyncio.Task[Any] | None = None,
    ) -> bool:
        """:meth:`step` for a plain async handler on a quiet journal, with the events folded inline.

        It journals and folds exactly what :meth:`attempts` would (``step.started``,
        then ``step.succeeded``); anything else (the handler raised, the run was
        stopped) is handed to :meth:`attempts` where it stands. ``me``: the task
        this runs in, if the caller knows it (``asyncio.current_task`` is a Python
        function before 3.12, and this is the hot path).
        """
        q = sc.prefix + name if sc.prefix else name
        state = self.state
        st = state.steps.get(q)
        seq = self.seq + 1
        if st is None or len(rows) != seq - 1 or st.status not in ("pending", "running"):
            return await self.step(sc, name)
        attempt = st.attempts + 1
        self.seq = seq
        t = self._now()
        rows.append(("step.started", seq, t, q, attempt, sc.key_prefix + q))
        if self.crash_after:
            _crash_point(self.crash_after)
        mark_started(st, attempt, t)
        state.last_seq = seq
        env = sc.env
        try:
            try:
                args = _eval_args(arg_exprs, env) if arg_exprs else {}
            except ExprError as err:
                raise _expr_failure(err, f"step {q!r}: argument") from None
            if self.stop is not None:
                raise _NotCalled
            task = me or _current_task()
            zones = self.zones
            zones.append(task)
            try:
                result = await func(**args)
            finally:
                zones.remove(task)
            output = _jsonable(result)
        except BaseException as exc:  # attempts() sorts it out, re-raising what it must
            ok = await self.attempts(sc, sc.graph.steps[name], q, None, env, pending=exc)
            if ok:  # a retry succeeded: later steps read its output, as after step()
                env[name] = state.steps[q].output
            return ok
        seq = self.seq + 1
        if len(rows) != seq - 1:  # someone else wrote meanwhile: the general append renumbers
            self.emit_now("step.succeeded", q, None, attempt, {"output": output})
        else:
            self.seq = seq
            t = self._now()
            rows.append(("step.succeeded", seq, t, q, attempt, output))
            if self.crash_after:
                _crash_point(self.crash_after)
            mark_succeeded(st, output, t)
            state.last_seq = seq
            self.done_order[q] = seq
        env[name] = st.output
        return True

    async def _drain(self, inflight: dict[asyncio.Task[bool], _K]) -> list[tuple[_K, bool]]:
        """Wait for tasks of ``inflight`` to finish; each finished one's key and outcome, taken out of it.

        A task that raised (a bug, not a failed step) cancels the others and is re-raised;
        a cancel from outside is a cancel of the saga (and nothing finished yet).
        """
        try:
            done, _ = await asyncio.wait(inflight, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            self._external()
            return []
        out: list[tuple[_K, bool]] = []
        for task in done:
            key = inflight.pop(task)
            exc = None if task.cancelled() else task.exception()
            if exc is not None:
                for other in inflight:
                    other.cancel()
                raise exc
            out.append((key, not task.cancelled() and task.result()))
        return out

    def failed_for_good(self) -> None:
        """A step failed for good: start nothing new anywhere; ``siblings cancel`` interrupts the rest."""
        if self.stop is None:
            self.stop = "failure"
            if self.siblings_cancel:
                for task in list(self.zones):
                    task.cancel()

    async def step(self, sc: _Scope, name: str) -> bool:
        """Run one step (condition, fan-out, sub-saga or handler); True when done."""
        step = sc.graph.steps[name]
        q = sc.prefix + name if sc.prefix else name
        if step.when is not None and ((st := self.state.steps.get(q)) is None or st.status == "pending"):
            try:
                go = truthy(evaluate(step.when, sc.env))
            except ExprError as err:
                f = _expr_failure(err, f"step {q!r}: 'when'")
                await self.emit(
                    "step.failed", q, None, None, {"error": _error(f, None), "uncertain": False, "final": True}
                )
                return False
            if not go:
                await self.emit("step.skipped", q, None, None, {"reason": "when"})
                sc.env[name] = None
                return True
        if step.foreach is not None:
            return await self.fanout(sc, step, q)
        if step.call is not None:
            return await self.call_saga(sc, step, q)
        ok = await self.attempts(sc, step, q, None, sc.env)
        if ok:
            sc.env[name] = self.state.steps[q].output
        return ok

    async def attempts(
        self,
        sc: _Scope,
        step: ir.Step,
        q: str,
        item: int | None,
        env: Mapping[str, Any],
        pending: BaseException | None = None,
    ) -> bool:
        """Call the step's handler until it succeeds or fails for good (retry policy).

        ``pending``: the first attempt was already journaled and ended with this
        exception (:meth:`quick` hands over its failures this way).
        """
        action = step.do or step.use
        assert action is not None
        handler = self.handlers[action.handler]
        policy = step.retry if step.retry is not None else sc.retry
        timeout = step.timeout.ms / 1000 if step.timeout is not None else sc.timeout
        st = self.state.steps.get(q)
        if st is not None and item is not None:
            st = st.items.get(item)
        attempt = (st.attempts if st is not None else 0) + (1 if pending is None else 0)
        key = f"{self.key_base}/{q}" if item is None else f"{self.key_base}/{q}/{item}"
        data = {"idempotency_key": key}
        # A plain async function without context, timeout or middleware is awaited right here.
        fast = self.fast.get(action.handler) if timeout is None and not self.step_middleware else None
        zones = self.zones
        quiet = self.sync_journal and not self.listeners
        while True:
            if pending is not None:
                pass  # journaled by the caller
            elif quiet:
                self.emit_now("step.started", q, item, attempt, data)
            else:
                await self.emit("step.started", q, item, attempt, data)
            uncertain = False
            retryable: bool | None
            try:
                if pending is not None:
                    exc, pending = pending, None
                    raise exc
                if q in self.fail_at:
                    raise Failure("sagalang.InjectedFailure", f"failure injected at step {q!r}", retryable=False)
                try:
                    args = _eval_args(action.args, env) if action.args else {}
                except ExprError as err:
                    raise _expr_failure(err, f"step {q!r}: argument") from None
                if self.stop is not None:
                    raise _NotCalled
                if fast is not None:
                    task = _current_task()
                    zones.append(task)
                    try:
                        result = await fast(**args)
                    finally:
                        zones.remove(task)
                else:
                    result = await self.invoke(
                        handler, args, sc, q, item, attempt, key, timeout, env, compensating=False, zone=True
                    )
                output = _jsonable(result)
                if step.output_schema is not None:
                    self.check_output(sc, step, output)
            except asyncio.CancelledError:
                if self.stop is None:
                    self._external()
                await self.emit(
                    "step.failed", q, item, attempt, {"error": _CANCELLED, "uncertain": True, "final": True}
                )
                return False
            except _NotCalled:
                # Stopped between journaling the start and calling: nothing happened.
                await self.emit(
                    "step.failed", q, item, attempt, {"error": _CANCELLED, "uncertain": False, "final": True}
                )
                return False
            except _TimedOut as t:
                einfo, retryable, uncertain = _timeout_error(t.seconds), True, True
            except Exception as exc:
                ns = _namespace(action.handler)
                einfo, retryable = _error(exc, ns), (exc.retryable if isinstance(exc, Failure) else None)
            else:
                if quiet:
                    self.emit_now("step.succeeded", q, item, attempt, {"output": output})
                else:
                    await self.emit("step.succeeded", q, item, attempt, {"output": output})
                return True
            if self.stop is None and _should_retry(policy, einfo, retryable, attempt):
                assert policy is not None
                delay = backoff_delay(policy, attempt, self.clock.random)
                await self.emit(
                    "step.failed", q, item, attempt, {"error": einfo, "uncertain": uncertain, "final": False}
                )
                await self.emit("step.retrying", q, item, attempt, {"delay_ms": round(delay * 1000), "error": einfo})
                try:
                    await self.zoned_sleep(delay)
                except asyncio.CancelledError:
                    if self.stop is None:
                        self._external()
                    was = self.state.steps[q]
                    was = was.items.get(item, was) if item is not None else was
                    await self.emit(
                        "step.failed", q, item, attempt, {"error": einfo, "uncertain": was.uncertain, "final": True}
                    )
                    return False
                attempt += 1
                continue
            await self.emit("step.failed", q, item, attempt, {"error": einfo, "uncertain": uncertain, "final": True})
            return False

    async def zoned_sleep(self, seconds: float) -> None:
        """Sleep between retries; a cancel interrupts it."""
        task = asyncio.current_task()
        assert task is not None
        self.zones.append(task)
        try:
            await self.clock.sleep(seconds)
        finally:
            self.zones.remove(task)

    def check_output(self, sc: _Scope, step: ir.Step, output: Any) -> None:
        """A step output that does not match its ``output schema`` is a permanent failure."""
        assert step.output_schema is not None
        validator = self.spec.output_validator(sc.spec_name, step.output_schema.path)
        problems = list(validator.iter_errors(output))
        if problems:
            first = min(problems, key=lambda e: list(map(str, e.absolute_path)))
            where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first.absolute_path)
            raise Failure(
                "sagalang.OutputSchemaError",
                f"output{where} does not match {step.output_schema.path}: {first.message}",
                retryable=False,
            )

    async def invoke(
        self,
        handler: Handler,
        args: dict[str, Any],
        sc: _Scope,
        q: str,
        item: int | None,
        attempt: int,
        key: str,
        timeout: float | None,
        env: Mapping[str, Any],
        *,
        compensating: bool,
        zone: bool,
        result: Any = None,
    ) -> Any:
        """Call a handler (async directly, sync in the thread pool) within its timeout."""
        if (
            timeout is None
            and zone
            and handler.func is not None
            and handler.info.is_async
            and not handler.wants_context
            and not self.step_middleware
        ):
            # The common case, kept lean: a plain async handler, no context, no timeout.
            task = _current_task()
            zones = self.zones
            zones.append(task)
            try:
                return await handler.func(**args)
            finally:
                zones.remove(task)
        ctx: Context | None = None
        if handler.wants_context or self.step_middleware:
            ctx = Context(
                saga_id=self.run_id,
                saga=sc.saga.name,
                step=q,
                attempt=attempt,
                idempotency_key=key,
                item=item,
                deadline=(time.monotonic() + timeout) if timeout is not None else None,
                compensating=compensating,
                result=result,
                input=sc.input,
                logger=logging.getLogger(f"sagalang.handlers.{_namespace(handler.info.name)}"),
            )
        call = self._caller(handler, args, compensating)
        if self.step_middleware:
            assert ctx is not None
            inner = call

            def chain(mw: Middleware, nxt: Callable[[Context], Awaitable[Any]]) -> Callable[[Context], Awaitable[Any]]:
                async def step_call(c: Context) -> Any:
                    return await mw(nxt, c)

                return step_call

            for mw in reversed(self.step_middleware):
                inner = chain(mw, inner)
            call = inner
        zoned = _current_task() if zone else None
        if zoned is not None:
            self.zones.append(zoned)
        try:
            if timeout is None:
                return await call(ctx)  # type: ignore[arg-type]
            cm = asyncio.timeout(timeout)
            try:
                async with cm:
                    return await call(ctx)  # type: ignore[arg-type]
            except TimeoutError:
                if cm.expired():
                    raise _TimedOut(timeout) from None
                raise
        finally:
            if zoned is not None:
                self.zones.remove(zoned)

    def _caller(
        self, handler: Handler, args: dict[str, Any], compensating: bool
    ) -> Callable[[Context], Awaitable[Any]]:
        if handler.step is not None:
            fn = handler.step.compensate if compensating else handler.step.execute
            if inspect.iscoroutinefunction(fn):

                async def step_async(ctx: Context) -> Any:
                    return await fn(ctx, **args)

                return step_async

            async def step_sync(ctx: Context) -> Any:
                loop = asyncio.get_running_loop()
                return await loop.run_in_executor(self.executor, functools.partial(fn, ctx, **args))

            return step_sync
        func = handler.func
        assert func is not None
        wants = handler.wants_context
        if handler.info.is_async:
            if wants:

                async def fn_async_ctx(ctx: Context) -> Any:
                    return await func(ctx=ctx, **args)

                return fn_async_ctx

            async def fn_async(ctx: Context) -> Any:
                return await func(**args)

            return fn_async

        async def fn_sync(ctx: Context) -> Any:
            loop = asyncio.get_running_loop()
            call = functools.partial(func, ctx=ctx, **args) if wants else functools.partial(func, **args)
            res = await loop.run_in_executor(self.executor, call)
            if inspect.isawaitable(res):
                res = await res
            return res

        return fn_sync

    # ---- fan-out ----------------------------------------------------------------------
    async def fanout(self, sc: _Scope, step: ir.Step, q: str) -> bool:
        """Run the step once per item, at most ``limit`` at a time."""
        fe = step.foreach
        assert fe is not None
        st = self.state.steps.get(q)
        try:
            items = evaluate(fe.iterable, sc.env)
            if not isinstance(items, list):
                raise ExprError(f"'for {fe.var} in' needs a list, got {type(items).__name__}", fe.iterable.span)
        except ExprError as err:
            f = _expr_failure(err, f"step {q!r}: items")
            await self.emit("step.failed", q, None, None, _final(_error(f, None)))
            return False
        if st is None or st.status == "pending":
            await self.emit(
                "step.started", q, None, 1, {"idempotency_key": f"{self.key_base}/{q}", "items": len(items)}
            )
            st = self.state.steps[q]
        todo = deque(i for i in range(len(items)) if (it := st.items.get(i)) is None or it.status != "succeeded")
        limit = fe.limit or max(len(items), 1)
        inflight: dict[asyncio.Task[bool], int] = {}
        failure: int | None = None
        for i, it in st.items.items():
            if it.status == "failed" and failure is None:
                failure = i
        while True:
            while todo and len(inflight) < limit and self.stop is None and failure is None:
                i = todo.popleft()
                env = {**sc.env, fe.var: items[i]}
                if limit == 1 or (len(todo) == 0 and not inflight):
                    try:
                        ok = await self.attempts(sc, step, q, i, env)
                    except asyncio.CancelledError:
                        self._external()
                        ok = False
                    if not ok:
                        failure = i
                        self.failed_for_good()
                    continue
                task = asyncio.get_running_loop().create_task(self.attempts(sc, step, q, i, env))
                inflight[task] = i
            if not inflight:
                break
            for i, ok in await self._drain(inflight):
                if not ok and failure is None:
                    failure = i
                    self.failed_for_good()
        if failure is not None or self.stop is not None or todo:
            error = st.items[failure].error if failure is not None and failure in st.items else _CANCELLED
            await self.emit("step.failed", q, None, None, {**_final(error), "item": failure})
            return False
        outputs = [st.items[i].output for i in range(len(items))]
        await self.emit("step.succeeded", q, None, None, {"output": outputs})
        sc.env[step.name] = self.state.steps[q].output
        return True

    # ---- sub-sagas ----------------------------------------------------------------------
    def sub_scope(self, sc: _Scope, step: ir.Step, q: str) -> _Scope:
        """The scope of a ``call`` step (its input from the call's arguments)."""
        found = self.scopes.get(q)
        if found is not None:
            return found
        assert step.call is not None
        callee = self.spec.sagas[step.call.saga]
        try:
            args = {a.name: evaluate(a.value, sc.env) for a in step.call.args}
        except ExprError as err:
            raise _expr_failure(err, f"step {q!r}: argument") from None
        try:
            sub_input = self.spec.prepare_input(args, callee.name)
        except SagaError as err:
            raise Failure("sagalang.InputError", str(err), retryable=False) from None
        self.secrets |= secret_values(sub_input, self.spec.secrets(callee.name))
        sub = _Scope(self, callee, self.spec.graphs[callee.name], q + "/", sub_input)
        self.scopes[q] = sub
        return sub

    async def call_saga(self, sc: _Scope, step: ir.Step, q: str) -> bool:
        """Run a sub-saga as one step; its steps are journaled as ``q/step``."""
        assert step.call is not None
        st = self.state.steps.get(q)
        key = f"{self.key_base}/{q}"
        if st is None or st.status == "pending":
            await self.emit("step.started", q, None, 1, {"idempotency_key": key, "saga": step.call.saga})
        if q in self.fail_at:
            f = Failure("sagalang.InjectedFailure", f"failure injected at step {q!r}", retryable=False)
            await self.emit("step.failed", q, None, None, _final(_error(f, None)))
            return False
        try:
            sub = self.sub_scope(sc, step, q)
        except Failure as f:
            await self.emit("step.failed", q, None, None, _final(_error(f, None)))
            return False
        failed = await self.forward(sub)
        if failed is not None or self.stop is not None:
            err = self.state.steps[failed].error if failed is not None else _CANCELLED
            await self.emit(
                "step.failed", q, None, None, {"error": err, "uncertain": False, "final": True, "failed_step": failed}
            )
            return False
        try:
            output = self.saga_output(sub)
        except Failure as f:
            await self.emit("step.failed", q, None, None, _final(_error(f, None)))
            return False
        await self.emit("step.succeeded", q, None, None, {"output": output})
        sc.env[step.name] = self.state.steps[q].output
        return True

    def saga_output(self, sc: _Scope) -> Any:
        """The saga's ``output { }`` mapping, or every step's output when it has none."""
        if sc.saga.output is None:
            return {n: sc.env.get(n) for n in sc.graph.order if n in sc.env}
        try:
            return _jsonable({e.name: evaluate(e.value, sc.env) for e in sc.saga.output})
        except ExprError as err:
            raise _expr_failure(err, f"saga {sc.saga.name!r}: output") from None

    # ---- compensation ----------------------------------------------------------------
    def _needs_undo(self, sc: _Scope, name: str) -> bool:
        step = sc.graph.steps[name]
        st = self.state.steps.get(sc.prefix + name)
        if st is None or st.status in ("pending", "skipped", "compensated"):
            return False
        if step.call is not None:
            try:
                sub = self.sub_scope(sc, step, sc.prefix + name)
            except Failure:
                return False  # its arguments never evaluated, so none of its steps ran
            return any(self._needs_undo(sub, n) for n in sub.graph.order)
        if step.foreach is not None:
            if not self._has_undo(step):
                return False
            return any(self._item_needs_undo(it) for it in st.items.values())
        if not self._has_undo(step):
            return False
        return st.status in _MAY_HAVE_EFFECT or (st.status == "failed" and st.uncertain)

    @staticmethod
    def _item_needs_undo(it: StepState) -> bool:
        return it.status in _MAY_HAVE_EFFECT or (it.status == "failed" and it.uncertain)

    def _has_undo(self, step: ir.Step) -> bool:
        if step.undo is not None:
            return True
        if step.use is not None:
            return self._can_compensate(step.use)
        return False

    def _can_compensate(self, inv: ir.Invocation) -> bool:
        obj = self.handlers[inv.handler].step
        can = getattr(obj, "can_compensate", None)
        return bool(can()) if callable(can) else obj is not None

    async def compensate(self, sc: _Scope) -> bool:
        """Undo ``sc``'s completed (and uncertain) steps; False if an undo failed for good."""
        names = [n for n in sc.graph.order if self._needs_undo(sc, n)]
        if not names:
            return True
        parallel = sc.comp is not None and sc.comp.order == "parallel"
        if not parallel:
            # Reverse completion order; steps that never finished (in flight) count as the latest.
            late = 1 << 62
            order = sorted(
                names,
                key=lambda n: (self.done_order.get(sc.prefix + n, late), sc.graph.order.index(n)),
                reverse=True,
            )
            ok = True
            for name in order:
                if not await self.undo(sc, name):
                    ok = False
                    break
            return ok
        chosen = set(names)
        finished: dict[str, asyncio.Event] = {n: asyncio.Event() for n in names}
        results: dict[str, bool] = {}

        async def one(name: str) -> None:
            for later in sc.graph.descendants(name) & chosen:
                await finished[later].wait()
            if all(results.get(d, True) for d in sc.graph.descendants(name) & chosen):
                results[name] = await self.undo(sc, name)
            else:
                results[name] = False
            finished[name].set()

        await asyncio.gather(*(one(n) for n in names))
        return all(results.values())

    async def undo(self, sc: _Scope, name: str) -> bool:
        """Compensate one step: a sub-saga's steps, each fan-out item, or the step itself."""
        step = sc.graph.steps[name]
        q = sc.prefix + name
        st = self.state.steps[q]
        if step.call is not None:
            await self.emit("compensation.started", q, None, st.compensation_attempts + 1)
            ok = await self.compensate(self.sub_scope(sc, step, q))
            if ok:
                await self.emit("compensation.succeeded", q, None, None)
            else:
                await self.emit("compensation.failed", q, None, None, {"final": True, "error": self._comp_error(q)})
            return ok
        if step.foreach is not None:
            fe = step.foreach
            await self.emit("compensation.started", q, None, st.compensation_attempts + 1)
            try:
                items = evaluate(fe.iterable, sc.env)
            except ExprError:
                items = []
            ok = True
            for i in sorted(st.items, reverse=True):
                it = st.items[i]
                if not self._item_needs_undo(it):
                    continue
                env = {**sc.env, fe.var: items[i] if isinstance(items, list) and i < len(items) else None}
                if not await self.undo_once(sc, step, q, i, env, it):
                    ok = False
                    break
            if ok:
                await self.emit("compensation.succeeded", q, None, None)
            else:
                await self.emit("compensation.failed", q, None, None, {"final": True, "error": self._comp_error(q)})
            return ok
        return await self.undo_once(sc, step, q, None, sc.env, st)

    def _comp_error(self, q: str) -> dict[str, Any] | None:
        for name, st in self.state.steps.items():
            if (name == q or name.startswith(q + "/")) and st.status == "compensation_failed" and st.error:
                return st.error
            for it in st.items.values():
                if name == q and it.status == "compensation_failed" and it.error:
                    return it.error
        return None

    async def undo_once(
        self, sc: _Scope, step: ir.Step, q: str, item: int | None, env: Mapping[str, Any], st: StepState
    ) -> bool:
        """Call the undo handler until it succeeds or fails for good (compensation policy)."""
        inv = step.undo or step.use
        assert inv is not None
        handler = self.handlers[inv.handler]
        comp = sc.comp
        policy = comp.retry if comp is not None else None
        timeout = comp.timeout.ms / 1000 if comp is not None and comp.timeout is not None else None
        # An uncertain step's output is unknown: its undo sees None and must find
        # what to undo by the idempotency key.
        result = None if st.uncertain else st.output
        uncertain = st.uncertain or st.output is None
        env = {**env, "result": result} if item is not None else {**env, "result": result, step.name: result}
        key = f"{self.key_base}/{q}" if item is None else f"{self.key_base}/{q}/{item}"
        ns = _namespace(inv.handler)
        attempt = st.compensation_attempts + 1
        retryable: bool | None
        while True:
            await self.emit("compensation.started", q, item, attempt)
            try:
                args: dict[str, Any] = {}
                for a in inv.args:
                    try:
                        args[a.name] = evaluate(a.value, env)
                    except ExprError as err:
                        if not uncertain:
                            raise _expr_failure(err, f"undo of {q!r}: argument {a.name!r}") from None
                        # The step's outcome is unknown, so its output is too: the undo
                        # gets None and finds what to undo by the idempotency key.
                        args[a.name] = None
                await self.invoke(
                    handler, args, sc, q, item, attempt, key, timeout, env, compensating=True, zone=False, result=result
                )
            except _TimedOut as t:
                einfo, retryable = _timeout_error(t.seconds), True
            except Exception as exc:
                einfo, retryable = _error(exc, ns), (exc.retryable if isinstance(exc, Failure) else None)
            else:
                await self.emit("compensation.succeeded", q, item, attempt)
                return True
            if _should_retry(policy, einfo, retryable, attempt):
                assert policy is not None
                delay = backoff_delay(policy, attempt, self.clock.random)
                await self.emit("compensation.failed", q, item, attempt, {"error": einfo, "final": False})
                await self.emit(
                    "compensation.retrying", q, item, attempt, {"delay_ms": round(delay * 1000), "error": einfo}
                )
                await self.clock.sleep(delay)
                attempt += 1
                continue
            await self.emit("compensation.failed", q, item, attempt, {"error": einfo, "final": True})
            return False

    # ---- the whole run ----------------------------------------------------------------
    def root_scope(self) -> _Scope:
        """A fresh scope for the entry saga (after a whole-saga retry too)."""
        self.scopes = {}
        sc = _Scope(self, self.spec.saga, self.spec.graph, "", self.input)
        self.fresh = False
        return sc

    def _pivot_done(self) -> bool:
        for q, st in self.state.steps.items():
            if st.status != "succeeded":
                continue
            saga, name = self._owner(q)
            if self.pivot_like.get((saga, name), False):
                return True
        return False

    def _owner(self, q: str) -> tuple[str, str]:
        saga = self.spec.saga
        parts = q.split("/")
        for part in parts[:-1]:
            step = self.spec.graphs[saga.name].steps.get(part)
            if step is None or step.call is None:
                break
            saga = self.spec.sagas[step.call.saga]
        return saga.name, parts[-1]

    def drive(self, fresh: bool) -> Coroutine[Any, Any, RunResult]:
        """Run (or continue) the saga to a terminal state (through the saga middleware, if any)."""
        return self._drive_through(fresh) if self.middleware else self._drive(fresh)

    async def _drive_through(self, fresh: bool) -> RunResult:
        ctx = Context(self.run_id, self.spec.entry, "", self.state.saga_attempt, self.run_id, input=self.input)

        async def innermost(c: Context) -> Any:
            return await self._drive(fresh)

        call: Callable[[Context], Awaitable[Any]] = innermost
        for mw in reversed(self.middleware):
            call = _bind(mw, call)
        result: RunResult = await call(ctx)
        return result

    async def _drive(self, fresh: bool) -> RunResult:
        key = (id(self.store), self.run_id)
        _LIVE[key] = self
        timer: asyncio.TimerHandle | None = None
        watcher: asyncio.Task[None] | None = None
        try:
            saga = self.spec.saga
            state = self.state
            if fresh or state.status == "queued" or not state.started_at:
                steps = state.steps
                self.fresh = not steps or all(st.status == "pending" for st in steps.values())
                await self._started(self.input, state.saga_attempt)
            if saga.timeout is not None:
                left = saga.timeout.ms / 1000
                if state.started_at:
                    left -= max(0.0, self.clock.time() - state.started_at)
                timer = asyncio.get_running_loop().call_later(max(left, 0.0), self.cancel, "timeout")
            # A store that delivers cancel requests itself (the worker's: LISTEN/NOTIFY) needs no polling.
            if not _is_memory(self.store) and not getattr(self.store, "pushes_cancel", False):
                watcher = asyncio.get_running_loop().create_task(self._watch_cancel())
            # The whole-saga attempts (one, unless the saga retries after a clean rollback).
            while True:
                sc = self.root_scope()
                state = self.state
                if state.cancel_requested and self.stop is None:
                    if self._pivot_done():
                        self.cancel_ignored = "cancel"
                    else:
                        self.stop = "cancel"
                if state.status == "compensating":
                    failed = state.failed_step
                    self.stop = self.stop or (state.reason if state.reason in ("cancel", "timeout") else None)
                else:
                    failed = await self.forward(sc)
                    if failed is None and self.stop is None:
                        try:
                            output = self.saga_output(sc)
                        except Failure as f:
                            state.error = _error(f, None)
                            failed = None
                            self.stop = "failure"
                            output = None
                        else:
                            if self.cancel_ignored and not state.cancel_requested:
                                note = {"reason": self.cancel_ignored, "ignored": "the pivot had completed"}
                                await self.emit("saga.cancel_requested", None, None, None, note)
                            await self.emit("saga.completed", None, None, None, {"output": output})
                            return self.result()
                reason = "failure" if self.stop in (None, "failure") else self.stop
                error = self.state.steps[failed].error if failed is not None else (state.error or None)
                if reason != "failure" and error is None:
                    error = {"type": "Cancelled", "message": f"saga {reason}", "names": ["Cancelled"]}
                    if reason == "timeout":
                        error = _timeout_error(saga.timeout.ms / 1000 if saga.timeout else 0)
                if self._pivot_done():
                    if reason != "failure" and not state.cancel_requested:
                        await self.emit("saga.cancel_requested", None, None, None, {"reason": reason})
                    await self.emit("saga.stuck", None, None, None, {"step": failed, "error": error, "reason": reason})
                    return self._finish()
                if state.status != "compensating":
                    if reason != "failure" and not state.cancel_requested:
                        await self.emit("saga.cancel_requested", None, None, None, {"reason": reason})
                    await self.emit(
                        "saga.compensating", None, None, None, {"reason": reason, "step": failed, "error": error}
                    )
                ok = await _shielded(self.compensate(sc))
                if not ok:
                    await self.emit("saga.aborted", None, None, None, {"step": failed, "error": error})
                    return self._finish()
                if reason != "failure":
                    ended = {"step": failed, "error": error, "reason": reason}
                    await self.emit("saga.cancelled", None, None, None, ended)
                    return self._finish()
                if await self._retry_saga(error):
                    continue
                await self.emit("saga.compensated", None, None, None, {"step": failed, "error": error})
                return self._finish()
        finally:
            if timer is not None:
                timer.cancel()
            if watcher is not None:
                watcher.cancel()
            if _LIVE.get(key) is self:
                del _LIVE[key]

    async def _started(self, input: dict[str, Any], attempt: int) -> None:
        """Journal ``saga.started`` for (an attempt of) the entry saga."""
        saga = self.spec.saga
        data = {
            "saga": saga.name,
            "version": saga.version,
            "input": input,
            "attempt": attempt,
            "steps": self.spec.graph.order,  # a tuple, shared by every run (JSON: a list)
        }
        await self.emit("saga.started", None, None, None, data)

    async def _watch_cancel(self) -> None:
        # Another process (``sagalang cancel``) flags the run in the store.
        while self.stop is None and self.cancel_ignored is None:
            await asyncio.sleep(0.25)
            # A store may offer a cheap flag read (SQLite does); get_run decodes the whole record.
            probe = getattr(self.store, "cancel_requested", None)
            if probe is not None:
                flagged = bool(await probe(self.run_id))
            else:
                rec = await self.store.get_run(self.run_id)
                flagged = rec is not None and rec.cancel_requested
            if flagged:
                self.cancel("cancel")
                return

    async def _retry_saga(self, error: dict[str, Any] | None) -> bool:
        """Whole-saga retry after a clean rollback: ask the analyzer, then start again."""
        saga = self.spec.saga
        policy = saga.on_failure.retry if saga.on_failure is not None else None
        attempt = self.state.saga_attempt
        if policy is None or attempt >= policy.attempts:
            return False
        overrides: dict[str, Any] | None = {}
        if policy.analyzer is not None:
            overrides = await self._analyze(policy.analyzer, error, attempt)
            if overrides is None:
                return False
        new_input = {**self.input, **(overrides or {})}
        try:
            new_input = self.spec.prepare_input(new_input)
        except SagaError as err:
            log.warning("saga %s: analyzer's input rejected: %s", self.run_id, err)
            return False
        # A new value for a secret field is a secret too.
        self.secrets |= secret_values(new_input, self.spec.secrets())
        delay = backoff_delay(policy, attempt, self.clock.random)
        await self.emit(
            "saga.retrying",
            None,
            None,
            None,
            {
                "attempt": attempt + 1,
                "overrides": overrides or {},
                "input": new_input,
                "delay_ms": round(delay * 1000),
                "error": error,
            },
        )
        if delay:
            await self.clock.sleep(delay)
        self.input = new_input
        self.stop = None
        await self._started(new_input, attempt + 1)
        return True

    async def _analyze(self, name: str, error: dict[str, Any] | None, attempt: int) -> dict[str, Any] | None:
        handler = self.handlers[name]
        if handler.func is None:
            return None
        kwargs: dict[str, Any] = {"error": error, "input": redact(self.input, self.secrets), "attempt": attempt}
        params = handler.info.params
        if params is not None:
            kwargs = {k: v for k, v in kwargs.items() if any(p.name == k for p in params)}
        if handler.wants_context:
            kwargs["ctx"] = Context(
                self.run_id, self.spec.entry, "", attempt, f"{self.run_id}/analyze/{attempt}", input=self.input
            )
        try:
            res = handler.func(**kwargs)
            if inspect.isawaitable(res):
                res = await res
        except Exception:
            log.exception("saga %s: analyzer %s failed; not retrying", self.run_id, name)
            return None
        if res is None:
            return None
        if not isinstance(res, Mapping):
            log.warning(
                "saga %s: analyzer %s returned %s, not a dict; not retrying", self.run_id, name, type(res).__name__
            )
            return None
        return dict(res)

    def _finish(self) -> RunResult:
        return self.result()

    def result(self) -> RunResult:
        """The run's result from its state."""
        st = self.state
        return RunResult(self.run_id, st.status, st.output, st.error, st)


class _NotCalled(Exception):
    """The run stopped after a step's start was journaled but before its handler ran."""


class _TimedOut(Exception):
    def __init__(self, seconds: float) -> None:
        super().__init__(f"timed out after {seconds:g}s")
        self.seconds = seconds


def _eval_args(args: Iterable[ir.Arg], env: Mapping[str, Any]) -> dict[str, Any]:
    # A function of its own: a comprehension inline would give the caller's frame a closure cell per call.
    return {a.name: evaluate(a.value, env) for a in args}


def _bind(mw: Middleware, nxt: Callable[[Context], Awaitable[Any]]) -> Callable[[Context], Awaitable[Any]]:
    async def call(c: Context) -> Any:
        return await mw(nxt, c)

    return call


def _is_memory(store: Store) -> bool:
    return getattr(store, "url", "").startswith("memory:")


async def _shielded(coro: Awaitable[bool]) -> bool:
    """Run compensation to its end even if the caller is cancelled meanwhile."""
    task = asyncio.ensure_future(coro)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                break
            cancelled = True
    result = task.result()
    if cancelled:
        log.warning("compensation finished although the run was cancelled meanwhile")
    return result


# ---- public API -----------------------------------------------------------------------


_ID_BYTES = 6  # 48 random bits per run id: uuid4's other 74 bits buy nothing here
_id_pool: list[bytes] = []


def _new_run_id(saga: str) -> str:
    # os.urandom is a system call (a third of a microsecond here): take 256 ids' worth at a time.
    if not _id_pool:
        block = os.urandom(_ID_BYTES * 256)
        _id_pool.extend(block[i : i + _ID_BYTES] for i in range(0, len(block), _ID_BYTES))
    return f"{saga}-{_id_pool.pop().hex()}"


if hasattr(os, "register_at_fork"):
    # A forked child must not hand out the ids its parent still holds.
    os.register_at_fork(after_in_child=_id_pool.clear)


async def _open_default_store(store: Store | None) -> Store:
    if store is not None:
        return store
    from .journal.memory import MemoryStore

    return MemoryStore()


async def start(
    spec: Spec,
    input: Mapping[str, Any] | None,
    *,
    store: Store,
    registry: Registry,
    run_id: str | None = None,
    checked: bool = False,
    **options: Any,
) -> tuple[_Run, bool]:
    """Check the input, create the run record and build its driver (used by run and the coordinator)."""
    if not checked:
        data = spec.prepare_input(input)
    elif type(input) is dict:
        data = input  # the caller's prepare_input made it
    else:
        data = dict(input or {})
    rid = run_id or _new_run_id(spec.entry)
    now = time.time()
    record = RunRecord(
        run_id=rid,
        saga=spec.entry,
        entry=spec.entry_file,
        spec=spec.sources,
        spec_hash=spec.spec_hash,
        input=data,
        handlers=spec.handler_names,
        status="running",
        created_at=now,
        updated_at=now,
        spec_path=str(spec.path) if spec.path is not None else None,
        # Injected faults belong to the run: a resume after a crash injects them again.
        extra={"fail_at": sorted(options["fail_at"])} if options.get("fail_at") else {},
    )
    _, created = await store.create_run(record)
    r = _Run(spec, store, registry, rid, data, **options)
    return r, created


async def run(
    spec: Spec,
    input: Mapping[str, Any] | None = None,
    *,
    store: Store | None = None,
    registry: Registry | None = None,
    run_id: str | None = None,
    listeners: Sequence[Listener] = (),
    middleware: Sequence[Middleware] = (),
    step_middleware: Sequence[StepMiddleware] = (),
    fail_at: Iterable[str] = (),
    clock: Clock | None = None,
    executor: Executor | None = None,
) -> RunResult:
    """Run ``spec``'s entry saga with ``input`` to a terminal state.

    Raises :class:`~sagalang.errors.SagaInputError` before anything is
    journaled when the input does not match the saga's declaration. An
    existing ``run_id`` is resumed instead (or its result returned if it ended).
    """
    store = await _open_default_store(store)
    registry = registry if registry is not None else Registry.discover()
    options: dict[str, Any] = {
        "listeners": listeners,
        "middleware": middleware,
        "step_middleware": step_middleware,
        "fail_at": fail_at,
        "clock": clock,
        "executor": executor,
    }
    data = spec.prepare_input(input)
    rid = run_id or _new_run_id(spec.entry)
    if run_id is not None and await store.get_run(run_id) is not None:
        return await resume(run_id, store=store, registry=registry, **options)
    # prepare_input returned a new dict: the run may keep it as it is.
    r, created = await start(spec, data, store=store, registry=registry, run_id=rid, checked=True, **options)
    if not created:
        return await resume(rid, store=store, registry=registry, **options)
    if _is_memory(store):
        # A memory store lives and dies with this process: no other driver can exist.
        return await r.drive(fresh=True)
    from .journal.leases import hold

    # The lease makes this process the run's only driver; its epoch fences every write.
    async with hold(store, rid) as epoch:
        r.epoch = epoch
        return await r.drive(fresh=True)


async def resume(
    run_id: str,
    *,
    store: Store,
    registry: Registry | None = None,
    listeners: Sequence[Listener] = (),
    middleware: Sequence[Middleware] = (),
    step_middleware: Sequence[StepMiddleware] = (),
    fail_at: Iterable[str] = (),
    clock: Clock | None = None,
    executor: Executor | None = None,
) -> RunResult:
    """Continue a run from its journal: fold, then go on where it stopped.

    Steps in flight at the crash are retried with the same idempotency key; if
    the run was compensating they count as uncertain and are compensated.
    """
    from .journal.leases import hold

    if await store.get_run(run_id) is None:
        raise StoreError(f"no run {run_id!r} in {store.url}")
    # Raises LeaseHeldError naming the live process that drives the run.
    async with hold(store, run_id) as epoch:
        r = await prepare_resume(
            run_id,
            store=store,
            registry=registry,
            listeners=listeners,
            middleware=middleware,
            step_middleware=step_middleware,
            fail_at=fail_at,
            clock=clock,
            executor=executor,
            epoch=epoch,
        )
        if isinstance(r, RunResult):
            return r
        return await r.drive(fresh=False)


async def prepare_resume(
    run_id: str, *, store: Store, registry: Registry | None = None, spec: Spec | None = None, **options: Any
) -> _Run | RunResult:
    """The driver of a stored run, or its result when it has ended already.

    ``spec``: the run's definition if the caller has it already (the worker caches
    one per spec hash); used only when its hash matches the stored run's.
    """
    record = await store.get_run(run_id)
    if record is None:
        raise StoreError(f"no run {run_id!r} in {store.url}")
    events = await store.events(run_id)
    state = fold(events, RunState(run_id, saga=record.saga, status="queued"))
    if state.terminal:
        return RunResult(run_id, state.status, state.output, state.error, state)
    registry = registry if registry is not None else Registry.discover()
    if spec is None or spec.spec_hash != record.spec_hash or spec.entry != record.saga:
        spec = Spec.from_sources(record.spec, record.entry, saga=record.saga, registry=registry)
    data = dict(record.input)
    for ev in events:
        if ev.kind == "saga.retrying":
            for k, v in dict(ev.data.get("overrides", {})).items():
                if v != "***":
                    data[k] = v
    if not options.get("fail_at") and record.extra.get("fail_at"):
        options["fail_at"] = tuple(record.extra["fail_at"])
    r = _Run(spec, store, registry, run_id, data, state=state, **options)
    for ev in events:
        r.track(ev)
    if record.cancel_requested:
        state.cancel_requested = True
    if events:
        await r.emit("saga.resumed", None, None, None, {"status": state.status})
    return r


async def cancel(run_id: str, *, store: Store, registry: Registry | None = None, drive: bool = False) -> bool:
    """Ask a run to stop and compensate; False if it is unknown or already ended.

    A run driven by this process is interrupted at once; one driven elsewhere
    notices the store's flag. With ``drive=True`` a run nobody drives (its
    process died) is resumed here, which compensates it.
    """
    ok = await store.request_cancel(run_id)
    if not ok:
        return False
    live = _LIVE.get((id(store), run_id))
    if live is not None:
        live.cancel("cancel")
    elif drive:
        await resume(run_id, store=store, registry=registry)
    return True


def live_run(store: Store, run_id: str) -> Any:
    """The driver of ``run_id`` if this process is running it (for the coordinator)."""
    return _LIVE.get((id(store), run_id))
