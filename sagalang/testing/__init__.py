"""Fault injection: run a saga at every failure point and check the saga invariants.

A ``.saga`` file is a static graph, so every place where things can go wrong
can be listed before production finds it: each step failing for good, failing
once then succeeding on retry, timing out (outcome uncertain), each undo
failing once and for good, a cancel after every journal event, and a crash
after every journal append followed by a resume. :func:`explore` runs each of
them against fake handlers (or the registered ones) on an in-memory journal
and checks, from the journal and from the effects the handlers recorded:

- ``terminal``: the run ends in the state the semantics prescribe;
- ``kept-or-undone``: every effect is kept by a completed saga or undone exactly once;
- ``applied-once``: no effect is applied twice for one idempotency key;
- ``reverse-order``: undos run in reverse dependency order;
- ``pivot``: nothing at or after the pivot is undone;
- ``never-started``: no undo of a step that never started or was skipped;
- ``undo-data``: undo handlers only read data that exists at that point.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shlex
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import ir
from .. import semantics as sem
from ..context import Context, Failure
from ..events import Event, Listener
from ..expr import references
from ..graph import SagaGraph, build
from ..journal.base import Store
from ..journal.memory import MemoryStore
from ..plugins import Registry
from ..spec import Spec
from ..status import TERMINAL_EVENTS

__all__ = [
    "EffectLog",
    "FailurePoint",
    "Outcome",
    "Report",
    "explore",
    "explore_file",
    "failure_points",
    "fake_registry",
    "undo_data_risks",
]

INJECTED = "sagalang.InjectedFailure"
FLAKY = "sagalang.InjectedFlakyFailure"


# ---- effects -------------------------------------------------------------------


@dataclass
class Effect:
    """What one idempotency key did: applied (once at most) and undone (how often)."""

    key: str
    step: str
    handler: str
    applied: int = 0
    calls: int = 0
    undone: int = 0
    undo_args: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class EffectLog:
    """The fake world's memory: effects by idempotency key, in order of first application."""

    effects: dict[str, Effect] = field(default_factory=dict)
    undo_calls: list[str] = field(default_factory=list)
    missing_undo_args: list[str] = field(default_factory=list)

    def apply(self, key: str, step: str, handler: str) -> Effect:
        """A forward call: the effect happens once per key however often it is called."""
        eff = self.effects.get(key)
        if eff is None:
            eff = self.effects[key] = Effect(key, step, handler)
        eff.calls += 1
        if eff.applied == 0:
            eff.applied = 1
        return eff

    def undo(self, key: str, step: str, handler: str, args: dict[str, Any]) -> None:
        """An undo call: tolerates nothing to undo; counts real undos."""
        self.undo_calls.append(key)
        eff = self.effects.get(key)
        if eff is None or eff.applied == 0:
            return
        eff.undo_args.append(args)
        if eff.undone == 0:
            eff.undone = 1
        else:
            eff.undone += 1


# ---- failure points ---------------------------------------------------------------


@dataclass(frozen=True)
class FailurePoint:
    """One scenario: ``kind`` at ``step`` (or after journal event ``index``)."""

    kind: str  # fail | flaky | timeout | undo-flaky | undo-fail | cancel | crash
    step: str | None = None
    index: int | None = None
    trigger: str | None = None  # for undo faults: the step whose failure makes the undo run

    @property
    def id(self) -> str:
        """A stable name: ``fail:charge``, ``cancel@7``, ``undo-fail:reserve``."""
        if self.index is not None:
            return f"{self.kind}@{self.index}"
        return f"{self.kind}:{self.step}"


@dataclass
class Outcome:
    """What a failure point led to, and the invariants it broke."""

    point: FailurePoint
    status: str
    expected: tuple[str, ...]
    violations: list[str] = field(default_factory=list)
    compensated: list[str] = field(default_factory=list)
    events: int = 0

    @property
    def ok(self) -> bool:
        """True when every invariant held."""
        return not self.violations


@dataclass
class Report:
    """Every failure point explored for one saga."""

    spec: str
    saga: str
    baseline: str
    outcomes: list[Outcome]
    seconds: float
    fake: bool
    input_file: str | None = None

    @property
    def ok(self) -> bool:
        """True when every failure point kept every invariant."""
        return all(o.ok for o in self.outcomes)

    def reproducer(self, outcome: Outcome) -> str:
        """A one-line command that replays ``outcome``."""
        p = outcome.point
        inp = f" --input {shlex.quote(self.input_file)}" if self.input_file else ""
        if p.kind == "fail" and p.step is not None and "/" not in p.step:
            return f"sagalang run {shlex.quote(self.spec)}{inp} --fail-at {p.step}"
        return f"sagalang test {shlex.quote(self.spec)} --only {shlex.quote(p.id)}{' --fake' if self.fake else ''}"

    def to_json(self) -> dict[str, Any]:
        """The report as JSON."""
        return {
            "spec": self.spec,
            "saga": self.saga,
            "baseline": self.baseline,
            "seconds": round(self.seconds, 4),
            "failure_points": len(self.outcomes),
            "ok": self.ok,
            "outcomes": [
                {
                    "point": o.point.id,
                    "status": o.status,
                    "expected": list(o.expected),
                    "compensated": o.compensated,
                    "violations": o.violations,
                    **({"reproduce": self.reproducer(o)} if o.violations else {}),
                }
                for o in self.outcomes
            ],
        }


def _steps_with_effects(graph: SagaGraph) -> list[str]:
    return [n for n in graph.topo if graph.steps[n].kind != "readonly"]


def _terminal(events: Sequence[Event]) -> str:
    """How a run's journal ends: its terminal status, or ``running`` when it has none."""
    return next((TERMINAL_EVENTS[ev.kind] for ev in reversed(events) if ev.kind in TERMINAL_EVENTS), "running")


def _retries(policy: ir.RetryPolicy | None, error: str) -> bool:
    """Whether ``policy`` retries the first failure named ``error`` (the interpreter's own rule)."""
    from ..runtime.outcome import should_retry, timeout_error

    if error == "Timeout":
        return should_retry(policy, timeout_error(0), True, 1)
    names = [error, error.rpartition(".")[2]]
    return should_retry(policy, {"type": error, "names": names}, None, 1)


def failure_points(
    spec: Spec, ran: Iterable[str], events: int, registry: Registry | None = None, crashes: bool = True
) -> list[FailurePoint]:
    """Every failure point of ``spec``'s entry saga, given the steps a clean run ran and its event count."""
    graph = spec.graph
    ran_set = set(ran)
    points: list[FailurePoint] = []
    steps = [n for n in graph.topo if n in ran_set]
    for name in steps:
        points.append(FailurePoint("fail", name))
    for name in steps:
        step = graph.steps[name]
        if _retries(sem.effective_retry(spec.saga, step), FLAKY):
            points.append(FailurePoint("flaky", name))
    for name in steps:
        if graph.steps[name].call is None:
            points.append(FailurePoint("timeout", name))
    beyond = sem.no_return(graph, registry, spec.sagas)
    for name in steps:
        step = graph.steps[name]
        # An undo handler of its own (a call's undos are its callee's steps').
        if name in beyond or step.call is not None or not sem.has_undo(step, registry):
            continue
        trigger = next((d for d in graph.topo if d in graph.descendants(name) and d in ran_set), None)
        for kind in ("undo-flaky", "undo-fail"):
            points.append(FailurePoint(kind, name, trigger=trigger))
    for k in range(1, events):
        points.append(FailurePoint("cancel", index=k))
    if crashes:
        for k in range(1, events):
            points.append(FailurePoint("crash", index=k))
    return points


# ---- fakes and fault injection ------------------------------------------------------------


def _all_sagas(spec: Spec) -> list[ir.Saga]:
    """Every saga of every spec file the run carries (a resume re-validates them all)."""
    from ..errors import SagaSyntaxError
    from ..parser import parse

    found: dict[str, ir.Saga] = dict(spec.sagas)
    for rel, text in spec.sources.items():
        if rel.endswith(".saga"):
            try:
                module = parse(text, rel)
            except SagaSyntaxError:
                continue
            for saga in module.sagas:
                found.setdefault(saga.name, saga)
    return list(found.values())


def _fake_value(path: list[Any], leaf: Any = 1) -> Any:
    # A number is the most forgiving leaf: it works in arithmetic, comparisons,
    # conditions and interpolation; iterated fields get a list of two items.
    if not path:
        return leaf
    head, rest = path[0], path[1:]
    if isinstance(head, int):
        return [_fake_value(rest, leaf)] * (head + 1 if head >= 0 else 1)
    return {head: _fake_value(rest, leaf)}


def _from_schema(schema: Any, depth: int = 0) -> Any:
    """A small value that satisfies a JSON Schema (enough for fake step outputs)."""
    if not isinstance(schema, Mapping) or depth > 8:
        return None
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    t = schema.get("type")
    t = t[0] if isinstance(t, list) and t else t
    if t == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        required = schema.get("required") or list(props)
        return {k: _from_schema(props.get(k, {}), depth + 1) for k in required}
    if t == "array":
        item = _from_schema(schema.get("items", {}), depth + 1)
        return [item] * max(1, int(schema.get("minItems", 1)))
    if t == "integer":
        return int(schema.get("minimum", 1))
    if t == "number":
        return schema.get("minimum", 1)
    if t == "boolean":
        return True
    if t == "null":
        return None
    if t == "string":
        if schema.get("examples"):
            return schema["examples"][0]
        return _string_for(schema)
    return 1


_STRING_CANDIDATES = ("x", "/", "/x", "a", "0", "1.0.0", "a-b", "x.y", "https://example.com/x", "x@example.com", "A")


def _string_for(schema: Mapping[str, Any]) -> str:
    import re

    pattern = schema.get("pattern")
    fmt = schema.get("format")
    size = max(1, int(schema.get("minLength", 1)))
    candidates = list(_STRING_CANDIDATES)
    if fmt in ("uri", "url", "iri"):
        candidates.insert(0, "https://example.com/x")
    elif fmt == "email":
        candidates.insert(0, "x@example.com")
    for c in candidates:
        c = c if len(c) >= size else c + "x" * (size - len(c))
        if pattern is None or re.search(pattern, c):
            return c
    return "x" * size


def _iterated(e: ir.Expr) -> list[ir.Expr]:
    """Sub-expressions used as collections (fan-out source, len/join/sum ... argument)."""
    if isinstance(e, ir.FuncCall) and e.func in (
        "len",
        "join",
        "sum",
        "sorted",
        "unique",
        "keys",
        "values",
        "min",
        "max",
    ):
        return [e.args[0]] if e.args else []
    return []


def _merge(a: Any, b: Any) -> Any:
    if isinstance(a, dict) and isinstance(b, dict):
        out = dict(a)
        for k, v in b.items():
            out[k] = _merge(out[k], v) if k in out else v
        return out
    return a


def _read_paths(spec: Spec) -> dict[str, Any]:
    """For each step name, a fake output that has every field any expression reads of it."""
    outputs: dict[str, Any] = {}
    for saga in spec.sagas.values():
        exprs: list[tuple[ir.Expr, str | None]] = []
        for step in saga.steps():
            for inv in (step.do, step.use):
                if inv is not None:
                    exprs.extend((a.value, None) for a in inv.args)
            if step.undo is not None:
                # In an undo, `result` is this step's own output.
                exprs.extend((a.value, step.name) for a in step.undo.args)
            if step.call is not None:
                exprs.extend((a.value, None) for a in step.call.args)
            if step.when is not None:
                exprs.append((step.when, None))
            if step.foreach is not None:
                exprs.append((step.foreach.iterable, None))
        exprs.extend((e.value, None) for e in saga.output or ())
        listy: set[int] = set()
        for e, _ in exprs:
            stack: list[Any] = [e]
            while stack:
                node = stack.pop()
                listy.update(id(x) for x in _iterated(node))
                for f in dataclasses.fields(node):
                    v = getattr(node, f.name)
                    if isinstance(v, tuple):
                        stack.extend(x for x in v if dataclasses.is_dataclass(x) and not isinstance(x, type))
                    elif dataclasses.is_dataclass(v) and not isinstance(v, type) and f.name != "span":
                        stack.append(v)
        typed: dict[int, Any] = {}  # call arguments take the type the callee declares
        for step in saga.steps():
            if step.foreach is not None:
                listy.add(id(step.foreach.iterable))
            if step.call is not None:
                props = (spec.input_schemas.get(step.call.saga) or {}).get("properties") or {}
                for a in step.call.args:
                    if a.name in props:
                        typed[id(a.value)] = _from_schema(props[a.name])
        for e, owner in exprs:
            for root, _, node, _ in references(e):
                if root == "result" and owner is not None:
                    root = owner
                if not isinstance(node, ir.Path):
                    continue
                keys: list[Any] = []
                for k in node.keys:
                    if isinstance(k, ir.Literal) and isinstance(k.value, str | int) and not isinstance(k.value, bool):
                        keys.append(k.value)
                    else:
                        break
                if keys:
                    if id(node) in typed:
                        # A declared type beats a guess made from another use of the same field.
                        outputs[root] = _merge(_fake_value(keys, typed[id(node)]), outputs.get(root, {}))
                        continue
                    leaf: Any = ["a", "b"] if id(node) in listy else 1
                    outputs[root] = _merge(outputs.get(root, {}), _fake_value(keys, leaf))
        for step in saga.steps():
            if step.output_schema is not None:
                key = spec.schema_path(saga.name, step.output_schema.path)
                declared = _from_schema(spec.schemas.get(key))
                if isinstance(declared, dict):
                    outputs[step.name] = _merge(declared, outputs.get(step.name, {}))
    return outputs


@dataclass
class _Faults:
    """The active failure point, consulted by every fake or wrapped handler."""

    point: FailurePoint | None = None
    timeout_s: float = 0.02
    seen: dict[str, int] = field(default_factory=dict)

    def forward(self, step: str) -> str | None:
        p = self.point
        if p is None:
            return None
        if p.kind in ("fail", "undo-flaky", "undo-fail") and step == (p.trigger if p.kind != "fail" else p.step):
            return "fail"
        if p.step != step:
            return None
        count = self.seen.get(step, 0)
        self.seen[step] = count + 1
        if p.kind == "flaky" and count == 0:
            return "flaky"
        if p.kind == "timeout" and count == 0:
            return "timeout"
        return None

    def undo_retryable(self) -> bool | None:
        """An ``undo-fail`` undo fails for good (even under ``retry forever``); a flaky one may be retried."""
        return False if self.point is not None and self.point.kind == "undo-fail" else None

    def undo(self, step: str) -> str | None:
        p = self.point
        if p is None or p.step != step or p.kind not in ("undo-flaky", "undo-fail"):
            return None
        key = "undo:" + step
        count = self.seen.get(key, 0)
        self.seen[key] = count + 1
        if p.kind == "undo-fail" or count == 0:
            return "fail"
        return None


def _top(step: str) -> str:
    return step.split("/")[0]


async def _inject_forward(faults: _Faults, step: str, effect: Callable[[], Any]) -> Any:
    """Run ``effect`` (sync or async) under the active forward fault of ``step``."""
    fault = faults.forward(_top(step))
    if fault == "fail":
        raise Failure(INJECTED, f"injected failure at {step}", retryable=False)
    if fault == "flaky":
        raise Failure(FLAKY, f"injected transient failure at {step}")
    result = effect()
    if asyncio.iscoroutine(result):
        result = await result
    if fault == "timeout":
        # The effect happened but the caller never hears back: an uncertain outcome.
        await asyncio.sleep(faults.timeout_s * 20)
    return result


def _inject_undo(faults: _Faults, step: str) -> None:
    """Raise the active undo fault of ``step``, if any."""
    if faults.undo(_top(step)) == "fail":
        raise Failure(
            "sagalang.InjectedUndoFailure", f"injected undo failure at {step}", retryable=faults.undo_retryable()
        )


def fake_registry(spec: Spec, log: EffectLog, faults: _Faults, outputs: Mapping[str, Any] | None = None) -> Registry:
    """Fake handlers for every handler ``spec`` names: they record effects and undos in ``log``."""
    outputs = outputs if outputs is not None else _read_paths(spec)
    reg = Registry()
    undo_names: set[str] = set()
    do_names: set[str] = set()
    step_objects: set[str] = set()
    analyzers: set[str] = set()
    readonly: set[str] = set()
    for saga in _all_sagas(spec):
        for step in saga.steps():
            if step.kind == "readonly":
                readonly.add(step.name)
            if step.do is not None:
                do_names.add(step.do.handler)
            if step.undo is not None:
                undo_names.add(step.undo.handler)
            if step.use is not None:
                step_objects.add(step.use.handler)
        retry = saga.on_failure.retry if saga.on_failure is not None else None
        if retry is not None and retry.analyzer is not None:
            analyzers.add(retry.analyzer)

    def output_for(step: str) -> Any:
        return json.loads(json.dumps(outputs.get(step.split("/")[-1], {"ok": True})))

    def make_do(name: str) -> Callable[..., Any]:
        async def fake_do(ctx: Context, **args: Any) -> Any:
            def effect() -> Any:
                if ctx.step.split("/")[-1] not in readonly:
                    log.apply(ctx.idempotency_key, ctx.step, name)
                return output_for(ctx.step)

            return await _inject_forward(faults, ctx.step, effect)

        return fake_do

    def make_undo(name: str) -> Callable[..., Any]:
        async def fake_undo(ctx: Context, **args: Any) -> Any:
            _inject_undo(faults, ctx.step)
            log.undo(ctx.idempotency_key, ctx.step, name, args)
            return None

        return fake_undo

    class _FakeStep:
        """A step object whose execute and compensate are the fake do and undo."""

        def __init__(self, name: str) -> None:
            self._do = make_do(name)
            self._undo = make_undo(name)

        async def execute(self, ctx: Context, **args: Any) -> Any:
            return await self._do(ctx, **args)

        async def compensate(self, ctx: Context, **args: Any) -> Any:
            return await self._undo(ctx, **args)

        def can_compensate(self) -> bool:
            return True

    async def give_up(ctx: Context, **args: Any) -> None:
        return None

    for name in sorted(do_names - undo_names):
        reg.add(name, make_do(name), "<fake>")
    for name in sorted(undo_names - do_names):
        reg.add(name, make_undo(name), "<fake>")
    for name in sorted(do_names & undo_names):
        # One handler used both ways: it can tell by ctx.compensating.
        do, undo = make_do(name), make_undo(name)

        async def both(ctx: Context, _do: Any = do, _undo: Any = undo, **args: Any) -> Any:
            return await (_undo if ctx.compensating else _do)(ctx, **args)

        reg.add(name, both, "<fake>")
    for name in sorted(step_objects):
        reg.add(name, _FakeStep(name), "<fake>")
    for name in sorted(analyzers):
        reg.add(name, give_up, "<fake>")
    return reg


def _wrap_real(registry: Registry, spec: Spec, log: EffectLog, faults: _Faults) -> Registry:
    """The registered handlers, each wrapped to inject the active fault and record effects."""
    reg = Registry()
    names: set[str] = set()
    undo_names: set[str] = set()
    readonly = {st.name for sg in _all_sagas(spec) for st in sg.steps() if st.kind == "readonly"}
    for saga in spec.sagas.values():
        for step in saga.steps():
            for inv in (step.do, step.use):
                if inv is not None:
                    names.add(inv.handler)
            if step.undo is not None:
                undo_names.add(step.undo.handler)
        retry = saga.on_failure.retry if saga.on_failure is not None else None
        if retry is not None and retry.analyzer is not None:
            names.add(retry.analyzer)
    from ..plugins import Handler

    for name in sorted(names | undo_names):
        real = registry.resolve(name)
        is_undo = name in undo_names and name not in names

        async def call_real(
            ctx: Context, args: dict[str, Any], real: Handler = real, compensating: bool = False
        ) -> Any:
            if real.step is not None:
                fn = real.step.compensate if compensating else real.step.execute
                res = fn(ctx, **args)
            elif real.wants_context:
                res = real.func(ctx=ctx, **args)  # type: ignore[misc]
            else:
                res = real.func(**args)  # type: ignore[misc]
            if asyncio.iscoroutine(res):
                res = await res
            return res

        if real.step is not None:

            class _Wrapped:
                def __init__(self, real: Handler = real, name: str = name) -> None:
                    self.real = real
                    self.name = name

                async def execute(self, ctx: Context, **args: Any) -> Any:
                    async def go() -> Any:
                        out = await call_real(ctx, args, self.real)
                        log.apply(ctx.idempotency_key, ctx.step, self.name)
                        return out

                    return await _inject_forward(faults, ctx.step, go)

                async def compensate(self, ctx: Context, **args: Any) -> Any:
                    _inject_undo(faults, ctx.step)
                    await call_real(ctx, args, self.real, compensating=True)
                    log.undo(ctx.idempotency_key, ctx.step, self.name, args)

                def can_compensate(self) -> bool:
                    can = getattr(self.real.step, "can_compensate", None)
                    return bool(can()) if callable(can) else True

            reg.add(name, _Wrapped(), real.info.source)
            continue

        async def wrapped(
            ctx: Context, _real: Handler = real, _name: str = name, _undo: bool = is_undo, **args: Any
        ) -> Any:
            if _undo or ctx.compensating:
                _inject_undo(faults, ctx.step)
                out = await call_real(ctx, args, _real)
                log.undo(ctx.idempotency_key, ctx.step, _name, args)
                return out
            if ctx.step == "":  # an analyzer
                return await call_real(ctx, args, _real)

            async def go() -> Any:
                out = await call_real(ctx, args, _real)
                if ctx.step.split("/")[-1] not in readonly:
                    log.apply(ctx.idempotency_key, ctx.step, _name)
                return out

            return await _inject_forward(faults, ctx.step, go)

        reg.add(name, wrapped, real.info.source)
    return reg


# ---- crash simulation -------------------------------------------------------------------


class _Crash(BaseException):
    """The simulated death of the process right after a journal append."""


class _CrashingStore:
    """A store that dies (raises _Crash) on the append after the ``limit``-th event."""

    def __init__(self, inner: Store, limit: int) -> None:
        self.inner = inner
        self.limit = limit
        self.count = 0
        self.url = inner.url
        self.dead = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def append(self, run_id: str, events: Any, status: str | None = None, epoch: int | None = None) -> Any:
        if self.dead:
            raise _Crash()
        room = self.limit - self.count
        if room <= 0:
            self.dead = True
            raise _Crash()
        batch = list(events)
        if len(batch) > room:
            # The crash cuts a batch short: only whole transactions survive a real crash,
            # so the batch is lost entirely.
            self.dead = True
            raise _Crash()
        out = await self.inner.append(run_id, batch, status=status, epoch=epoch)
        self.count += len(batch)
        return out


def _crashed(exc: BaseException) -> bool:
    if isinstance(exc, _Crash):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return any(_crashed(e) for e in exc.exceptions)
    return False


# ---- invariants ---------------------------------------------------------------------------


def undo_data_risks(spec: Spec) -> dict[str, list[str]]:
    """Per step: undo arguments that read data missing when the step's outcome is uncertain (W612)."""
    from ..validate import undo_data_risks as risks_of

    out: dict[str, list[str]] = {}
    for step in spec.saga.steps():
        for arg, what in risks_of(step):
            out.setdefault(step.name, []).append(f"{arg.name}: {what}")
    return out


def _expected(point: FailurePoint, spec: Spec, baseline: str, registry: Registry | None) -> tuple[str, ...]:
    graph = spec.graph
    beyond = sem.no_return(graph, registry, spec.sagas)
    gone_forward = ("stuck",) if point.step in beyond else ("compensated",)
    step = graph.steps.get(point.step or "")
    if point.kind == "fail":
        if point.step in beyond and step is not None and sem.is_pivot_like(step, registry, spec.sagas):
            # The step that cannot be undone failed itself: nothing was passed yet.
            return ("compensated",) if not (graph.ancestors(point.step) & beyond) else ("stuck",)
        return gone_forward
    if point.kind == "flaky":
        return (baseline,)
    if point.kind == "timeout":
        assert step is not None
        policy = sem.effective_retry(spec.saga, step)
        if _retries(policy, "Timeout"):
            return (baseline,)
        if point.step in beyond and step is not None and sem.is_pivot_like(step, registry, spec.sagas):
            return ("compensated",) if not (graph.ancestors(point.step or "") & beyond) else ("stuck",)
        return gone_forward
    if point.kind in ("undo-flaky", "undo-fail"):
        if point.trigger is None:
            return (baseline,)
        if point.kind == "undo-flaky":
            # A transient failure of one undo must not stop the rollback.
            return ("compensated",)
        return ("aborted",)
    if point.kind == "cancel":
        return ("cancelled", baseline)
    return (baseline,)


def _check(
    point: FailurePoint,
    spec: Spec,
    events: list[Event],
    log: EffectLog,
    expected: tuple[str, ...],
    registry: Registry | None,
) -> tuple[str, list[str], list[str]]:
    graph = spec.graph
    violations: list[str] = []
    status = _terminal(events)
    if status not in expected:
        violations.append(f"terminal: ended {status}, expected {' or '.join(expected)}")
    if point.kind == "undo-flaky" and status == "aborted":
        leaked = sorted({_top(e.step) for e in log.effects.values() if e.applied and not e.undone})
        comp = spec.saga.compensation
        advice = "" if comp is not None and comp.retry is not None else " (no compensation retry policy)"
        violations.append(
            f"kept-or-undone: one transient failure of {point.step}'s undo aborted the rollback{advice}; "
            f"left behind: {', '.join(leaked) or 'nothing'}"
        )
    started = {ev.step for ev in events if ev.kind == "step.started" and ev.step}
    skipped = {ev.step for ev in events if ev.kind == "step.skipped" and ev.step}
    comp_events = [ev for ev in events if ev.kind.startswith("compensation.") and ev.step]
    compensated_top = [
        ev.step for ev in comp_events if ev.kind == "compensation.succeeded" and ev.item is None and ev.step is not None
    ]
    beyond = sem.no_return(graph, registry, spec.sagas)
    top_steps = set(graph.steps)

    def undoable(step: ir.Step) -> bool:
        return sem.has_undo(step, registry, spec.sagas)

    def pivot_like(step: ir.Step) -> bool:
        return sem.is_pivot_like(step, registry, spec.sagas)

    # kept-or-undone and applied-once
    for eff in log.effects.values():
        top = _top(eff.step)
        if eff.calls > 1 and eff.applied > 1:
            violations.append(f"applied-once: effect of {eff.step} applied {eff.applied} times for {eff.key}")
        if eff.undone > 1:
            violations.append(f"kept-or-undone: effect of {eff.step} ({eff.key}) undone {eff.undone} times")
        step = graph.steps.get(top)
        if status == "completed" and eff.undone:
            violations.append(f"kept-or-undone: {eff.step} undone although the saga completed")
        if status in ("compensated", "cancelled") and not eff.undone and step is not None:
            if top in beyond:
                if undoable(step) and not pivot_like(step):
                    violations.append(f"kept-or-undone: {eff.step} ran after the pivot; its undo can never run")
                continue
            violations.append(
                f"kept-or-undone: effect of {eff.step} kept by a {status} saga"
                + ("" if undoable(step) else f" ({top} has no undo)")
            )
        stuck_leak = status == "stuck" and not eff.undone and step is not None and top in beyond
        if stuck_leak and step is not None and undoable(step) and not pivot_like(step):
            violations.append(f"kept-or-undone: {eff.step} has an undo that can never run (it follows the pivot)")
    # reverse-order: an undo waits for the undos of the steps that depend on it
    first_start: dict[str, int] = {}
    last_done: dict[str, int] = {}
    for ev in comp_events:
        s = _top(ev.step or "")
        if ev.kind == "compensation.started":
            first_start.setdefault(s, ev.seq)
        elif ev.kind == "compensation.succeeded":
            last_done[s] = ev.seq
    for a in first_start:
        if a not in top_steps:
            continue
        for b in graph.descendants(a):
            if b in last_done and last_done[b] > first_start[a]:
                violations.append(
                    f"reverse-order: undo of {a} started before the undo of {b} (which depends on it) ended"
                )
    # pivot
    for s in first_start:
        if s in beyond and s in top_steps and not undoable(graph.steps[s]):
            violations.append(f"pivot: {s} cannot be undone but its undo ran")
        elif s in beyond and s in top_steps:
            pivots = [p for p in graph.ancestors(s) if pivot_like(graph.steps[p])]
            done = {ev.step for ev in events if ev.kind == "step.succeeded" and ev.item is None}
            if any(p in done for p in pivots):
                violations.append(f"pivot: {s} was undone after the pivot completed")
    # never-started
    for s in first_start:
        if s not in started:
            violations.append(f"never-started: undo of {s}, which never started")
        if s in skipped:
            violations.append(f"never-started: undo of {s}, which was skipped")
    # undo-data
    risks = undo_data_risks(spec)
    uncertain_steps = {ev.step for ev in events if ev.kind == "step.failed" and ev.data.get("uncertain")}
    for s in sorted(first_start):
        if s in uncertain_steps and s in risks:
            for r in risks[s]:
                violations.append(
                    f"undo-data: undo of {s} reads {r.split(': ', 1)[1]} ({r.split(': ', 1)[0]}), "
                    f"which does not exist when {s}'s outcome is uncertain"
                )
    failed_comps = [ev for ev in comp_events if ev.kind == "compensation.failed"]
    for ev in failed_comps:
        err = ev.data.get("error") or {}
        if "ExprError" in (err.get("names") or []) or err.get("type") == "ExprError":
            violations.append(f"undo-data: undo of {ev.step} could not evaluate its arguments: {err.get('message')}")
    return status, violations, compensated_top


class _FastClock:
    """No real waiting between retries: exploration stays quick."""

    time = staticmethod(time.time)

    @staticmethod
    def random() -> float:
        return 0.5

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)


def _with_timeouts(spec: Spec, seconds: float) -> Spec:
    """``spec`` with every step timeout (and compensation timeout) shortened for exploration."""
    ms = max(1, int(seconds * 1000))
    sagas = {}
    for name, saga in spec.sagas.items():
        body: list[ir.Step | ir.Parallel] = []
        for item in saga.body:
            if isinstance(item, ir.Parallel):
                body.append(dataclasses.replace(item, steps=tuple(_short(s, ms) for s in item.steps)))
            else:
                body.append(_short(item, ms))
        defaults = saga.defaults
        if defaults is not None and defaults.timeout is not None:
            defaults = dataclasses.replace(defaults, timeout=ir.Duration(ms))
        sagas[name] = dataclasses.replace(saga, body=tuple(body), defaults=defaults, timeout=None)
    return dataclasses.replace(spec, sagas=sagas, graphs={n: build(s) for n, s in sagas.items()})


def _short(step: ir.Step, ms: int) -> ir.Step:
    return dataclasses.replace(step, timeout=ir.Duration(ms))


# ---- exploration -------------------------------------------------------------------------


async def _one_run(
    spec: Spec,
    data: Mapping[str, Any],
    registry: Registry,
    point: FailurePoint | None,
    faults: _Faults,
) -> list[Event]:
    from ..interpreter import cancel, resume, run

    store = MemoryStore()
    await store.open()
    run_id = f"{spec.entry}-test"
    fail_at: tuple[str, ...] = ()
    listeners: list[Listener] = []
    target: Any = store
    if point is not None and point.kind == "cancel":
        index = point.index or 0
        fired = False

        async def canceller(event: Event) -> None:
            nonlocal fired
            if not fired and event.seq >= index:
                fired = True
                await cancel(run_id, store=store)

        listeners.append(canceller)
    if point is not None and point.kind == "crash":
        target = _CrashingStore(store, point.index or 0)
    try:
        await run(
            spec,
            data,
            store=target,
            registry=registry,
            run_id=run_id,
            listeners=listeners,
            fail_at=fail_at,
            clock=_FastClock(),
        )
    except BaseException as exc:
        if not _crashed(exc):
            raise
        # The process is gone: let stray tasks notice, then a new "process" resumes.
        await asyncio.sleep(0)
        await resume(run_id, store=store, registry=registry, clock=_FastClock())
    return await store.events(run_id)


async def explore(
    spec: Spec,
    data: Mapping[str, Any],
    *,
    registry: Registry | None = None,
    only: Iterable[str] = (),
    spec_label: str = "",
    input_file: str | None = None,
    timeout_s: float = 0.02,
    crashes: bool = True,
) -> Report:
    """Run ``spec`` at every failure point; fake handlers unless ``registry`` is given."""
    t0 = time.perf_counter()
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()

    def quiet(lp: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        # Tasks of a simulated crashed process die with _Crash: that is the point.
        exc = context.get("exception")
        if exc is not None and _crashed(exc):
            return
        if previous is not None:
            previous(lp, context)
        else:
            lp.default_exception_handler(context)

    loop.set_exception_handler(quiet)
    wanted = set(only)
    fast = _with_timeouts(spec, timeout_s)
    fake = registry is None

    def fresh() -> tuple[EffectLog, _Faults, Registry]:
        log = EffectLog()
        faults = _Faults(timeout_s=timeout_s)
        reg = fake_registry(fast, log, faults) if registry is None else _wrap_real(registry, fast, log, faults)
        return log, faults, reg

    log, faults, reg = fresh()
    base_events = await _one_run(fast, data, reg, None, faults)
    baseline = _terminal(base_events)
    ran = {ev.step for ev in base_events if ev.kind == "step.started" and ev.step and ev.item is None}
    points = failure_points(fast, ran, len(base_events), registry, crashes)
    outcomes: list[Outcome] = []
    for point in points:
        if wanted and point.id not in wanted:
            continue
        log, faults, reg = fresh()
        faults.point = point
        events = await _one_run(fast, data, reg, point, faults)
        expected = _expected(point, fast, baseline, registry)
        status, violations, compensated = _check(point, fast, events, log, expected, registry)
        outcomes.append(Outcome(point, status, expected, violations, compensated, len(events)))
    return Report(
        spec_label or spec.entry_file,
        spec.entry,
        baseline,
        outcomes,
        time.perf_counter() - t0,
        fake,
        input_file,
    )


def _sample_input(spec: Spec) -> dict[str, Any]:
    """An input that satisfies the entry saga's declaration (defaults, else simple values)."""
    schema = spec.input_schemas.get(spec.entry) or {}
    out: dict[str, Any] = {}
    samples = {"string": "x", "integer": 2, "number": 1.5, "boolean": True, "object": {}, "array": ["a", "b"]}
    for name, prop in (schema.get("properties") or {}).items():
        if "default" in prop:
            continue
        t = prop.get("type")
        t = t[0] if isinstance(t, list) else t
        if name in (schema.get("required") or []):
            out[name] = samples.get(t, "x")
    return out


def explore_file(
    path: str | Path,
    *,
    registry: Registry | None = None,
    input_data: Mapping[str, Any] | None = None,
    input_file: str | Path | None = None,
    only: Iterable[str] = (),
    unchecked: bool = False,
) -> Report:
    """Load a spec (and its ``NAME.input.json`` when present) and explore it."""
    from ..spec import load

    p = Path(path)
    spec = load(p, registry=registry if registry is not None else Registry(), check=not unchecked)
    if input_data is None:
        candidate = Path(input_file) if input_file is not None else p.with_suffix(".input.json")
        if candidate.is_file():
            input_data = json.loads(candidate.read_text(encoding="utf-8"))
            input_file = candidate
        else:
            input_data = _sample_input(spec)
    return asyncio.run(
        explore(
            spec,
            input_data,
            registry=registry,
            only=only,
            spec_label=str(path),
            input_file=str(input_file) if input_file is not None else None,
            # A resume re-validates the stored spec, so an invalid one cannot be resumed.
            crashes=not unchecked,
        )
    )


# ---- given / when / expect ---------------------------------------------------------------


@dataclass
class ScenarioResult:
    """What a scenario did: the run's status, the undo order, the effects and the journal."""

    status: str
    compensated: list[str]
    events: list[Event]
    effects: EffectLog
    violations: list[str]

    def expect(self, status: str | None = None, compensated: Iterable[str] | None = None) -> ScenarioResult:
        """Assert the terminal status and the exact undo order (and that every invariant held)."""
        problems: list[str] = []
        if status is not None and self.status != status:
            problems.append(f"expected the saga to end {status}, it ended {self.status}")
        if compensated is not None and list(compensated) != self.compensated:
            problems.append(f"expected undo order {list(compensated)}, got {self.compensated}")
        problems.extend(self.violations)
        if problems:
            raise AssertionError("; ".join(problems))
        return self


@dataclass
class Scenario:
    """Given a spec and an input, when something fails, expect an outcome (fake handlers by default)."""

    spec: Spec
    input: dict[str, Any] = field(default_factory=dict)
    point: FailurePoint | None = None
    registry: Registry | None = None

    def given(self, input: Mapping[str, Any] | None = None, **fields: Any) -> Scenario:
        """The saga's input (a mapping and/or keyword fields)."""
        return dataclasses.replace(self, input={**dict(input or {}), **fields})

    def when_fails(self, step: str) -> Scenario:
        """``step`` fails for good."""
        return dataclasses.replace(self, point=FailurePoint("fail", step))

    def when_fails_once(self, step: str) -> Scenario:
        """``step`` fails once, then succeeds if its retry policy allows."""
        return dataclasses.replace(self, point=FailurePoint("flaky", step))

    def when_times_out(self, step: str) -> Scenario:
        """``step`` does its work but times out: its outcome is uncertain."""
        return dataclasses.replace(self, point=FailurePoint("timeout", step))

    def when_undo_fails(self, step: str, trigger: str, once: bool = False) -> Scenario:
        """``trigger`` fails and then the undo of ``step`` fails (once, or for good)."""
        return dataclasses.replace(
            self, point=FailurePoint("undo-flaky" if once else "undo-fail", step, trigger=trigger)
        )

    def when_cancelled_after(self, events: int) -> Scenario:
        """The saga is cancelled right after its ``events``-th journal event."""
        return dataclasses.replace(self, point=FailurePoint("cancel", index=events))

    def when_crashes_after(self, appends: int) -> Scenario:
        """The process dies right after its ``appends``-th journal append; a new one resumes."""
        return dataclasses.replace(self, point=FailurePoint("crash", index=appends))

    def run(self) -> ScenarioResult:
        """Run the scenario and check the invariants."""
        return asyncio.run(self._run())

    async def _run(self) -> ScenarioResult:
        fast = _with_timeouts(self.spec, 0.02)
        log = EffectLog()
        faults = _Faults()
        reg = (
            fake_registry(fast, log, faults) if self.registry is None else _wrap_real(self.registry, fast, log, faults)
        )
        faults.point = self.point
        events = await _one_run(fast, self.input, reg, self.point, faults)
        status = _terminal(events)
        point = self.point or FailurePoint("none")
        _, violations, compensated = _check(point, fast, events, log, (status,), self.registry)
        return ScenarioResult(status, compensated, events, log, violations)


def scenario(path: str | Path, registry: Registry | None = None, saga: str | None = None) -> Scenario:
    """A :class:`Scenario` for the spec at ``path`` (validated first)."""
    from ..spec import load

    spec = load(path, registry=registry if registry is not None else Registry(), saga=saga)
    return Scenario(spec, registry=registry)
