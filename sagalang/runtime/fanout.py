"""Fan-out: a step run once per item of a list, at most ``limit`` items at a time.

Each item is journaled as the step with an ``item`` index and retried on its
own; the step succeeds once every item has, and its output is the list of the
items' outputs. The first item to fail for good stops the rest.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING

from .. import ir
from ..expr import ExprError, evaluate
from .attempt import run_attempts
from .outcome import CANCELLED, error_info, expr_failure, final
from .tasks import drain

if TYPE_CHECKING:
    from .run import Run
    from .scope import Scope

__all__ = ["fanout"]


async def fanout(run: Run, sc: Scope, step: ir.Step, q: str) -> bool:
    """Run ``step`` once per item; True when every item succeeded."""
    fe = step.foreach
    assert fe is not None
    journal, stop = run.journal, run.stop
    try:
        items = evaluate(fe.iterable, sc.env)
        if not isinstance(items, list):
            raise ExprError(f"'for {fe.var} in' needs a list, got {type(items).__name__}", fe.iterable.span)
    except ExprError as err:
        f = expr_failure(err, f"step {q!r}: items")
        journal.record("step.failed", q, None, None, final(error_info(f, None)))
        return False
    st = run.state.steps.get(q)
    if st is None or st.status == "pending":
        journal.record("step.started", q, None, 1, {"idempotency_key": run.key(q), "items": len(items)})
        st = run.state.steps[q]
    todo = deque(i for i in range(len(items)) if (it := st.items.get(i)) is None or it.status != "succeeded")
    limit = fe.limit or max(len(items), 1)
    inflight: dict[asyncio.Task[bool], int] = {}
    failure = next((i for i, it in st.items.items() if it.status == "failed"), None)
    while True:
        while todo and len(inflight) < limit and stop.reason is None and failure is None:
            i = todo.popleft()
            env = {**sc.env, fe.var: items[i]}
            if limit == 1 or (not todo and not inflight):
                # The only item to run: run it in this task.
                try:
                    ok = await run_attempts(run, sc, step, q, i, env)
                except asyncio.CancelledError:
                    stop.from_outside()
                    ok = False
                if not ok:
                    failure = i
                    stop.failed_for_good()
                continue
            inflight[asyncio.get_running_loop().create_task(run_attempts(run, sc, step, q, i, env))] = i
        if not inflight:
            break
        for i, ok in await drain(run, inflight):
            if not ok and failure is None:
                failure = i
                stop.failed_for_good()
    if failure is not None or stop.reason is not None or todo:
        error = st.items[failure].error if failure is not None and failure in st.items else CANCELLED
        journal.record("step.failed", q, None, None, {**final(error), "item": failure})
        return False
    outputs = [st.items[i].output for i in range(len(items))]
    journal.record("step.succeeded", q, None, None, {"output": outputs})
    return True
