"""One step's handler calls: each attempt journaled, retried by its policy, within its timeout.

``step.started`` is journaled before every call and ``step.succeeded`` or
``step.failed`` after it. A failure the policy retries is journaled as not
final, followed by ``step.retrying`` and a wait that a cancel interrupts. An
attempt whose outcome is unknown (it timed out, or was cancelled while
running) is *uncertain*: its effect may exist, so compensation undoes it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from .. import ir
from ..context import Context, Failure
from ..expr import ExprError, evaluate
from ..plugins import Handler
from .calls import StepCall, call_handler
from .outcome import (
    CANCELLED,
    NotCalled,
    TimedOut,
    backoff_delay,
    error_info,
    expr_failure,
    injected_failure,
    jsonable,
    should_retry,
    timeout_error,
)

if TYPE_CHECKING:
    from .run import Middleware, Run
    from .scope import Scope

__all__ = ["eval_args", "invoke", "run_attempts"]


class _Failed(NamedTuple):
    """An attempt that raised: the error as journaled, and what the retry decision needs to know."""

    error: dict[str, Any]
    retryable: bool | None
    uncertain: bool


def eval_args(args: Iterable[ir.Arg], env: Mapping[str, Any]) -> dict[str, Any]:
    """A call's arguments evaluated over ``env``."""
    return {a.name: evaluate(a.value, env) for a in args}


async def run_attempts(run: Run, sc: Scope, step: ir.Step, q: str, item: int | None, env: Mapping[str, Any]) -> bool:
    """Call the step's handler until it succeeds or fails for good; True when it succeeded."""
    call = run.table.calls[sc.saga.name][step.name]
    st = run.state.steps.get(q)
    if st is not None and item is not None:
        st = st.items.get(item)
    attempt = (st.attempts if st is not None else 0) + 1
    key = run.key(q, item)
    journal, stop = run.journal, run.stop
    while True:
        journal.record("step.started", q, item, attempt, {"idempotency_key": key})
        # Journal first: the start is durable before the handler may act (and a cancel heard now stops it).
        await journal.flush()
        try:
            args = _arguments(run, call, q, env)
            result = await invoke(
                run, call.handler, args, sc, q, item, attempt, key, call.timeout, compensating=False, zone=True
            )
            output = _output(run, sc, step, result)
        except (asyncio.CancelledError, NotCalled) as exc:
            # Cancelled while running: the call may have had its effect. Stopped before the call: it did not.
            running = isinstance(exc, asyncio.CancelledError)
            if running and stop.reason is None:
                stop.from_outside()
            journal.record("step.failed", q, item, attempt, {"error": CANCELLED, "uncertain": running, "final": True})
            return False
        except TimedOut as t:
            failed = _Failed(timeout_error(t.seconds), True, True)
        except Exception as exc:
            retryable = exc.retryable if isinstance(exc, Failure) else None
            failed = _Failed(error_info(exc, call.namespace), retryable, False)
        else:
            journal.record("step.succeeded", q, item, attempt, {"output": output})
            return True
        if stop.reason is None and should_retry(call.retry, failed.error, failed.retryable, attempt):
            assert call.retry is not None
            if not await _wait_to_retry(run, call.retry, q, item, attempt, failed):
                return False
            attempt += 1
            continue
        journal.record(
            "step.failed", q, item, attempt, {"error": failed.error, "uncertain": failed.uncertain, "final": True}
        )
        return False


def _arguments(run: Run, call: StepCall, q: str, env: Mapping[str, Any]) -> dict[str, Any]:
    """The call's arguments; raises for an injected fault, a bad expression, or a run stopped meanwhile."""
    if q in run.fail_at:
        raise injected_failure(q)
    try:
        args = eval_args(call.action.args, env) if call.action.args else {}
    except ExprError as err:
        raise expr_failure(err, f"step {q!r}: argument") from None
    if run.stop.reason is not None:
        raise NotCalled
    return args


def _output(run: Run, sc: Scope, step: ir.Step, result: Any) -> Any:
    """The handler's result as the step's output: JSON data, matching its output schema if it has one."""
    output = jsonable(result)
    if step.output_schema is not None:
        check_output(run, sc, step, output)
    return output


async def _wait_to_retry(
    run: Run, policy: ir.RetryPolicy, q: str, item: int | None, attempt: int, failed: _Failed
) -> bool:
    """Journal the failed attempt and the retry, then wait its backoff; False if a cancel came meanwhile."""
    journal = run.journal
    delay = backoff_delay(policy, attempt, run.clock.random)
    journal.record(
        "step.failed", q, item, attempt, {"error": failed.error, "uncertain": failed.uncertain, "final": False}
    )
    journal.record("step.retrying", q, item, attempt, {"delay_ms": round(delay * 1000), "error": failed.error})
    await journal.flush()
    try:
        await run.stop.zoned(run.clock.sleep(delay))
    except asyncio.CancelledError:
        if run.stop.reason is None:
            run.stop.from_outside()
        was = run.state.steps[q]
        was = was.items.get(item, was) if item is not None else was
        data = {"error": failed.error, "uncertain": was.uncertain, "final": True}
        journal.record("step.failed", q, item, attempt, data)
        return False
    return True


def check_output(run: Run, sc: Scope, step: ir.Step, output: Any) -> None:
    """A step output that does not match its ``output schema`` is a permanent failure."""
    assert step.output_schema is not None
    validator = run.spec.output_validator(sc.saga.name, step.output_schema.path)
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
    run: Run,
    handler: Handler,
    args: dict[str, Any],
    sc: Scope,
    q: str,
    item: int | None,
    attempt: int,
    key: str,
    timeout: float | None,
    *,
    compensating: bool,
    zone: bool,
    result: Any = None,
) -> Any:
    """Call a handler within its timeout, through the step middleware; ``zone``: a cancel interrupts it."""
    ctx: Context | None = None
    if handler.wants_context or run.step_middleware:
        deadline = time.monotonic() + timeout if timeout is not None else None
        logger = run.table.loggers[handler.info.name]
        ctx = Context(run.run_id, sc.saga.name, q, attempt, key, item, deadline, compensating, result, sc.input, logger)
    if run.step_middleware:
        call = _through_middleware(run, handler, args, compensating, run.step_middleware)
        work: Awaitable[Any] = call(ctx)  # type: ignore[arg-type]
    else:
        work = call_handler(run.table, handler, args, ctx, run.executor, compensating)
    if timeout is not None:
        work = _within(work, timeout)
    if not zone:
        return await work
    # A cancel interrupts the call by cancelling the task it runs in.
    zones = run.stop.zones
    task = asyncio.current_task()
    assert task is not None
    zones.append(task)
    try:
        return await work
    finally:
        zones.remove(task)


async def _within(work: Awaitable[Any], seconds: float) -> Any:
    cm = asyncio.timeout(seconds)
    try:
        async with cm:
            return await work
    except TimeoutError:
        if cm.expired():
            raise TimedOut(seconds) from None
        raise


def _through_middleware(
    run: Run, handler: Handler, args: dict[str, Any], compensating: bool, middleware: tuple[Middleware, ...]
) -> Callable[[Context], Awaitable[Any]]:
    async def innermost(ctx: Context) -> Any:
        return await call_handler(run.table, handler, args, ctx, run.executor, compensating)

    call: Callable[[Context], Awaitable[Any]] = innermost
    for mw in reversed(middleware):
        call = bind(mw, call)
    return call


def bind(mw: Middleware, nxt: Callable[[Context], Awaitable[Any]]) -> Callable[[Context], Awaitable[Any]]:
    """``nxt`` wrapped by the middleware ``mw``."""

    async def call(c: Context) -> Any:
        return await mw(nxt, c)

    return call
