"""Forward: a saga's steps run as their dependencies complete, independent ones concurrently.

A step runs inline in the driving task when it is the only thing to do, and
in a task of its own otherwise. When a step fails for good nothing new
starts; the steps in flight finish (or are interrupted, per policy), and the
failed step's name is handed back so the run can compensate.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .. import ir
from ..context import Failure
from ..expr import ExprError, evaluate, truthy
from .attempt import run_attempts
from .fanout import fanout
from .outcome import CANCELLED, error_info, expr_failure, final, injected_failure
from .schedule import Frontier, resume_point
from .scope import Scope, saga_output, sub_scope
from .tasks import drain

if TYPE_CHECKING:
    from .run import Run

__all__ = ["call_saga", "forward", "run_step"]


async def forward(run: Run, sc: Scope) -> str | None:
    """Run ``sc``'s steps as their dependencies complete; the (qualified) failed step's name, or None."""
    stop = run.stop
    done, failure = resume_point(sc.graph, run.state.steps, sc.prefix)
    frontier = Frontier(sc.graph, done)
    inflight: dict[asyncio.Task[bool], str] = {}
    while True:
        finished: Iterable[tuple[str, bool]]
        if frontier.ready and stop.reason is None and failure is None:
            name = frontier.take()
            if frontier.ready or inflight:
                inflight[asyncio.get_running_loop().create_task(run_step(run, sc, name))] = name
                continue
            # The only step to run: run it in this task.
            try:
                ok = await run_step(run, sc, name)
            except asyncio.CancelledError:
                stop.from_outside()
                ok = False
            finished = ((name, ok),)
        elif inflight:
            finished = await drain(run, inflight)
        else:
            break
        for name, ok in finished:
            if ok:
                frontier.done(name)
            elif failure is None:
                failure = sc.qualified(name)
                stop.failed_for_good()
    if failure is None and stop.reason is not None:
        return None
    return failure


async def run_step(run: Run, sc: Scope, name: str) -> bool:
    """Run one step (its condition, then a fan-out, a sub-saga or its handler); True when done."""
    step = sc.graph.steps[name]
    q = sc.qualified(name)
    if step.when is not None and ((st := run.state.steps.get(q)) is None or st.status == "pending"):
        try:
            go = truthy(evaluate(step.when, sc.env))
        except ExprError as err:
            f = expr_failure(err, f"step {q!r}: 'when'")
            run.journal.record("step.failed", q, None, None, final(error_info(f, None)))
            return False
        if not go:
            run.journal.record("step.skipped", q, None, None, {"reason": "when"})
            sc.env[name] = None
            return True
    if step.foreach is not None:
        ok = await fanout(run, sc, step, q)
    elif step.call is not None:
        ok = await call_saga(run, sc, step, q)
    else:
        ok = await run_attempts(run, sc, step, q, None, sc.env)
    if ok:
        sc.env[name] = run.state.steps[q].output
    return ok


async def call_saga(run: Run, sc: Scope, step: ir.Step, q: str) -> bool:
    """Run a sub-saga as one step; its steps are journaled as ``q/step``."""
    assert step.call is not None
    journal = run.journal
    st = run.state.steps.get(q)
    if st is None or st.status == "pending":
        journal.record("step.started", q, None, 1, {"idempotency_key": run.key(q), "saga": step.call.saga})
    try:
        if q in run.fail_at:
            raise injected_failure(q)
        sub = sub_scope(run, sc, step, q)
    except Failure as f:
        journal.record("step.failed", q, None, None, final(error_info(f, None)))
        return False
    failed = await forward(run, sub)
    if failed is not None or run.stop.reason is not None:
        err = run.state.steps[failed].error if failed is not None else CANCELLED
        journal.record("step.failed", q, None, None, {**final(err), "failed_step": failed})
        return False
    try:
        output = saga_output(sub)
    except Failure as f:
        journal.record("step.failed", q, None, None, final(error_info(f, None)))
        return False
    journal.record("step.succeeded", q, None, None, {"output": output})
    return True
