"""The whole run: start, go forward, and on failure or cancel roll back, then end in a terminal state.

How a run ends, once forward progress stops:

- every step done and the output computed: ``saga.completed``;
- a step failed for good, or a cancel (or the saga timeout) stopped it:
  past the pivot there is nothing to roll back to, so ``saga.stuck``;
  otherwise ``saga.compensating``, then every completed step is undone
  (shielded from cancellation) and the run ends ``saga.cancelled`` (a cancel),
  ``saga.compensated`` (a failure, unless a whole-saga retry starts again)
  or ``saga.aborted`` (an undo failed for good).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from ..context import Context, Failure
from .attempt import bind
from .compensation import compensate
from .forward import forward
from .live import live_runs
from .outcome import error_info, timeout_error
from .saga_retry import record_started, retry_saga
from .scope import Scope, root_scope, saga_output

if TYPE_CHECKING:
    from .run import Run, RunResult

__all__ = ["drive"]

log = logging.getLogger("sagalang.interpreter")

# How often a driver looks in a shared store for a cancel requested by another process.
CANCEL_POLL_SECONDS = 0.25


def drive(run: Run, fresh: bool) -> Coroutine[Any, Any, RunResult]:
    """Run (or continue) the saga to a terminal state, through the saga middleware if any."""
    return _through_middleware(run, fresh) if run.middleware else _drive(run, fresh)


async def _through_middleware(run: Run, fresh: bool) -> RunResult:
    ctx = Context(run.run_id, run.spec.entry, "", run.state.saga_attempt, run.run_id, input=run.input)

    async def innermost(c: Context) -> Any:
        return await _drive(run, fresh)

    call: Callable[[Context], Awaitable[Any]] = innermost
    for mw in reversed(run.middleware):
        call = bind(mw, call)
    result: RunResult = await call(ctx)
    return result


async def _drive(run: Run, fresh: bool) -> RunResult:
    live_runs.add(run)
    timer: asyncio.TimerHandle | None = None
    watcher: asyncio.Task[None] | None = None
    try:
        state = run.state
        if fresh or state.status == "queued" or not state.started_at:
            record_started(run, run.input, state.saga_attempt)
        timer = _saga_timer(run)
        if run.poll_cancels:
            watcher = asyncio.get_running_loop().create_task(_watch_cancel(run))
        while True:
            result = await _one_attempt(run)
            if result is not None:
                await run.journal.flush()
                return result
    finally:
        if timer is not None:
            timer.cancel()
        if watcher is not None:
            watcher.cancel()
        live_runs.discard(run)


def _saga_timer(run: Run) -> asyncio.TimerHandle | None:
    """The saga timeout, counted from the run's start (a resumed run has less time left)."""
    timeout = run.spec.saga.timeout
    if timeout is None:
        return None
    left = timeout.ms / 1000
    started = run.state.started_at
    if started:
        left -= max(0.0, run.clock.time() - started)
    return asyncio.get_running_loop().call_later(max(left, 0.0), run.cancel, "timeout")


async def _watch_cancel(run: Run) -> None:
    # Another process (``sagalang cancel``) flags the run in the store.
    stop = run.stop
    while stop.reason is None and stop.cancel_ignored is None:
        await asyncio.sleep(CANCEL_POLL_SECONDS)
        if await run.store.cancel_requested(run.run_id):
            run.cancel("cancel")
            return


async def _one_attempt(run: Run) -> RunResult | None:
    """One whole-saga attempt to its end: the run's result, or None when the saga starts again."""
    sc = root_scope(run)
    state, stop = run.state, run.stop
    if state.cancel_requested and stop.reason is None:
        if run.pivot_done():
            stop.cancel_ignored = "cancel"
        else:
            stop.reason = "cancel"
    error: dict[str, Any] | None = None
    if state.status == "compensating":
        # Resumed while rolling back: carry on with it.
        failed = state.failed_step
        if stop.reason is None and state.reason in ("cancel", "timeout"):
            stop.reason = state.reason
    else:
        failed = await forward(run, sc)
        if failed is None and stop.reason is None:
            try:
                output = saga_output(sc)
            except Failure as f:
                error = error_info(f, None)
                stop.reason = "failure"
            else:
                _complete(run, output)
                return run.result()
    return await _roll_back(run, sc, failed, error)


def _complete(run: Run, output: Any) -> None:
    journal = run.journal
    ignored = run.stop.cancel_ignored
    if ignored and not run.state.cancel_requested:
        journal.record(
            "saga.cancel_requested", None, None, None, {"reason": ignored, "ignored": "the pivot had completed"}
        )
    journal.record("saga.completed", None, None, None, {"output": output})


async def _roll_back(run: Run, sc: Scope, failed: str | None, error: dict[str, Any] | None) -> RunResult | None:
    """Forward progress stopped: end stuck, or compensate and end; None when a whole-saga retry starts."""
    state, journal = run.state, run.journal
    reason = "failure" if run.stop.reason in (None, "failure") else run.stop.reason
    assert reason is not None
    if failed is not None:
        error = state.steps[failed].error
    elif error is None:
        error = state.error
    if error is None:
        error = _stop_error(run, reason)
    stuck = run.pivot_done()
    if reason != "failure" and not state.cancel_requested and (stuck or state.status != "compensating"):
        # Record who stopped the run (a cancel from outside, or the saga timeout).
        journal.record("saga.cancel_requested", None, None, None, {"reason": reason})
    if stuck:
        journal.record("saga.stuck", None, None, None, {"step": failed, "error": error, "reason": reason})
        return run.result()
    if state.status != "compensating":
        data = {"reason": reason, "step": failed, "error": error}
        journal.record("saga.compensating", None, None, None, data)
    if not await _shielded(compensate(run, sc)):
        journal.record("saga.aborted", None, None, None, {"step": failed, "error": error})
        return run.result()
    if reason != "failure":
        journal.record("saga.cancelled", None, None, None, {"step": failed, "error": error, "reason": reason})
        return run.result()
    if await retry_saga(run, error):
        return None
    journal.record("saga.compensated", None, None, None, {"step": failed, "error": error})
    return run.result()


def _stop_error(run: Run, reason: str) -> dict[str, Any] | None:
    """The error of a run stopped by a cancel or its timeout (None for a failure)."""
    if reason == "failure":
        return None
    timeout = run.spec.saga.timeout
    if reason == "timeout":
        return timeout_error(timeout.ms / 1000 if timeout else 0)
    return {"type": "Cancelled", "message": f"saga {reason}", "names": ["Cancelled"]}


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
