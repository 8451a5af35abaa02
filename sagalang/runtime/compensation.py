"""Compensation: undo every completed (or uncertain) step, in reverse order, each undo retried by its policy.

Steps are undone in the reverse of the order they finished, or, with
``compensation { order parallel }``, each as soon as the undos of the steps
that depend on it are done. A sub-saga undoes its own steps; a fan-out undoes
its items in reverse. An undo that fails for good stops the rollback (the run
is then ``aborted``). Undos are never interrupted by a cancel.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .. import ir
from .. import semantics as sem
from ..context import Failure
from ..expr import ExprError, evaluate
from ..state import StepState
from .attempt import invoke
from .outcome import TimedOut, backoff_delay, error_info, expr_failure, namespace_of, should_retry, timeout_error
from .schedule import undo_order
from .scope import Scope, sub_scope

if TYPE_CHECKING:
    from .run import Run

__all__ = ["compensate", "needs_undo"]

# Step states after which a step's effects may exist and need undoing.
_MAY_HAVE_EFFECT = frozenset({"succeeded", "running", "compensating", "compensation_failed"})


def _may_have_effect(st: StepState) -> bool:
    return st.status in _MAY_HAVE_EFFECT or (st.status == "failed" and st.uncertain)


def needs_undo(run: Run, sc: Scope, name: str) -> bool:
    """Whether step ``name`` of ``sc`` has effects that compensation must undo."""
    step = sc.graph.steps[name]
    st = run.state.steps.get(sc.qualified(name))
    if st is None or st.status in ("pending", "skipped", "compensated"):
        return False
    if step.call is not None:
        try:
            sub = sub_scope(run, sc, step, sc.qualified(name))
        except Failure:
            return False  # its arguments never evaluated, so none of its steps ran
        return any(needs_undo(run, sub, n) for n in sub.graph.order)
    if not run.table.has_undo(step):
        return False
    if step.foreach is not None:
        return any(_may_have_effect(it) for it in st.items.values())
    return _may_have_effect(st)


async def compensate(run: Run, sc: Scope) -> bool:
    """Undo ``sc``'s completed (and uncertain) steps; False if an undo failed for good."""
    names = [n for n in sc.graph.order if needs_undo(run, sc, n)]
    if not names:
        return True
    if sem.compensation_order(sc.saga) == "reverse":
        for name in undo_order(sc.graph, names, run.state.steps, sc.prefix):
            if not await undo(run, sc, name):
                return False
        return True
    return await _compensate_in_parallel(run, sc, names)


async def _compensate_in_parallel(run: Run, sc: Scope, names: list[str]) -> bool:
    # Each undo waits for the undos of the chosen steps that depend on it.
    chosen = set(names)
    finished: dict[str, asyncio.Event] = {n: asyncio.Event() for n in names}
    results: dict[str, bool] = {}

    async def one(name: str) -> None:
        await run.journal.flush()
        later = sc.graph.descendants(name) & chosen
        for other in later:
            await finished[other].wait()
        results[name] = all(results.get(d, True) for d in later) and await undo(run, sc, name)
        finished[name].set()

    await asyncio.gather(*(one(n) for n in names))
    return all(results.values())


async def undo(run: Run, sc: Scope, name: str) -> bool:
    """Compensate one step: a sub-saga's steps, each fan-out item, or the step itself."""
    step = sc.graph.steps[name]
    q = sc.qualified(name)
    st = run.state.steps[q]
    if step.call is None and step.foreach is None:
        return await undo_once(run, sc, step, q, None, sc.env, st)
    journal = run.journal
    journal.record("compensation.started", q, None, st.compensation_attempts + 1)
    if step.call is not None:
        ok = await compensate(run, sub_scope(run, sc, step, q))
    else:
        ok = await _undo_items(run, sc, step, q, st)
    if ok:
        journal.record("compensation.succeeded", q, None, None)
    else:
        journal.record("compensation.failed", q, None, None, {"final": True, "error": _undo_error(run, q)})
    return ok


async def _undo_items(run: Run, sc: Scope, step: ir.Step, q: str, st: StepState) -> bool:
    fe = step.foreach
    assert fe is not None
    try:
        items = evaluate(fe.iterable, sc.env)
    except ExprError:
        items = []
    for i in sorted(st.items, reverse=True):
        it = st.items[i]
        if not _may_have_effect(it):
            continue
        env = {**sc.env, fe.var: items[i] if isinstance(items, list) and i < len(items) else None}
        if not await undo_once(run, sc, step, q, i, env, it):
            return False
    return True


def _undo_error(run: Run, q: str) -> dict[str, Any] | None:
    """The error of the undo that failed for good within step ``q`` (its items, or its sub-saga's steps)."""
    for name, st in run.state.steps.items():
        if (name == q or name.startswith(q + "/")) and st.status == "compensation_failed" and st.error:
            return st.error
        for it in st.items.values():
            if name == q and it.status == "compensation_failed" and it.error:
                return it.error
    return None


async def undo_once(
    run: Run, sc: Scope, step: ir.Step, q: str, item: int | None, env: Mapping[str, Any], st: StepState
) -> bool:
    """Call the undo handler until it succeeds or fails for good (the compensation policy)."""
    inv = step.undo or step.use
    assert inv is not None
    handler = run.table.handlers[inv.handler]
    policy = sem.compensation_retry(sc.saga)
    limit = sem.compensation_timeout(sc.saga)
    timeout = limit.ms / 1000 if limit is not None else None
    # An uncertain step's output is unknown: its undo sees None and must find
    # what to undo by the idempotency key.
    result = None if st.uncertain else st.output
    uncertain = st.uncertain or st.output is None
    env = {**env, "result": result} if item is not None else {**env, "result": result, step.name: result}
    key = run.key(q, item)
    attempt = st.compensation_attempts + 1
    journal = run.journal
    retryable: bool | None
    while True:
        journal.record("compensation.started", q, item, attempt)
        await journal.flush()
        try:
            args = _undo_args(inv, env, q, uncertain)
            await invoke(
                run, handler, args, sc, q, item, attempt, key, timeout, compensating=True, zone=False, result=result
            )
        except TimedOut as t:
            einfo, retryable = timeout_error(t.seconds), True
        except Exception as exc:
            einfo = error_info(exc, namespace_of(inv.handler))
            retryable = exc.retryable if isinstance(exc, Failure) else None
        else:
            journal.record("compensation.succeeded", q, item, attempt)
            return True
        if should_retry(policy, einfo, retryable, attempt):
            assert policy is not None
            delay = backoff_delay(policy, attempt, run.clock.random)
            journal.record("compensation.failed", q, item, attempt, {"error": einfo, "final": False})
            data = {"delay_ms": round(delay * 1000), "error": einfo}
            journal.record("compensation.retrying", q, item, attempt, data)
            await journal.flush()
            await run.clock.sleep(delay)
            attempt += 1
            continue
        journal.record("compensation.failed", q, item, attempt, {"error": einfo, "final": True})
        return False


def _undo_args(inv: ir.Invocation, env: Mapping[str, Any], q: str, uncertain: bool) -> dict[str, Any]:
    args: dict[str, Any] = {}
    for a in inv.args:
        try:
            args[a.name] = evaluate(a.value, env)
        except ExprError as err:
            if not uncertain:
                raise expr_failure(err, f"undo of {q!r}: argument {a.name!r}") from None
            # The step's outcome is unknown, so its output is too: the undo
            # gets None and finds what to undo by the idempotency key.
            args[a.name] = None
    return args
