"""Whole-saga retry: after a clean rollback, ask the analyzer, then start the saga again.

``on failure { retry saga N analyze HANDLER }``: the analyzer sees the error
and the (redacted) input and returns input overrides for the next attempt, or
None to give up. Each attempt gets idempotency keys of its own (``RUN#N/step``).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..context import Context
from ..errors import SagaError
from ..redact import redact, secret_values
from .outcome import backoff_delay

if TYPE_CHECKING:
    from .run import Run

__all__ = ["record_started", "retry_saga"]

log = logging.getLogger("sagalang.interpreter")


def record_started(run: Run, input: dict[str, Any], attempt: int) -> None:
    """Journal ``saga.started`` for (an attempt of) the entry saga."""
    saga = run.spec.saga
    data = {
        "saga": saga.name,
        "version": saga.version,
        "input": input,
        "attempt": attempt,
        "steps": run.spec.graph.order,  # a tuple, shared by every run (JSON: a list)
    }
    run.journal.record("saga.started", None, None, None, data)


async def retry_saga(run: Run, error: dict[str, Any] | None) -> bool:
    """Start the saga's next attempt if its policy and analyzer allow; False to give up."""
    policy = run.spec.saga.on_failure.retry if run.spec.saga.on_failure is not None else None
    attempt = run.state.saga_attempt
    if policy is None or attempt >= policy.attempts:
        return False
    overrides: dict[str, Any] | None = {}
    if policy.analyzer is not None:
        await run.journal.flush()
        overrides = await _analyze(run, policy.analyzer, error, attempt)
        if overrides is None:
            return False
    try:
        new_input = run.spec.prepare_input({**run.input, **(overrides or {})})
    except SagaError as err:
        log.warning("saga %s: analyzer's input rejected: %s", run.run_id, err)
        return False
    # A new value for a secret field is a secret too.
    run.journal.secrets |= secret_values(new_input, run.spec.secrets())
    delay = backoff_delay(policy, attempt, run.clock.random)
    data = {
        "attempt": attempt + 1,
        "overrides": overrides or {},
        "input": new_input,
        "delay_ms": round(delay * 1000),
        "error": error,
    }
    run.journal.record("saga.retrying", None, None, None, data)
    await run.journal.flush()
    if delay:
        await run.clock.sleep(delay)
    run.input = new_input
    run.stop.reason = None
    record_started(run, new_input, attempt + 1)
    return True


async def _analyze(run: Run, name: str, error: dict[str, Any] | None, attempt: int) -> dict[str, Any] | None:
    """The analyzer's input overrides, or None (it gave up, failed or answered nonsense)."""
    handler = run.table.handlers[name]
    if handler.func is None:
        return None
    kwargs: dict[str, Any] = {"error": error, "input": redact(run.input, run.journal.secrets), "attempt": attempt}
    params = handler.info.params
    if params is not None:
        kwargs = {k: v for k, v in kwargs.items() if any(p.name == k for p in params)}
    if handler.wants_context:
        key = f"{run.run_id}/analyze/{attempt}"
        kwargs["ctx"] = Context(run.run_id, run.spec.entry, "", attempt, key, input=run.input)
    try:
        res = handler.func(**kwargs)
        if inspect.isawaitable(res):
            res = await res
    except Exception:
        log.exception("saga %s: analyzer %s failed; not retrying", run.run_id, name)
        return None
    if res is None:
        return None
    if not isinstance(res, Mapping):
        kind = type(res).__name__
        log.warning("saga %s: analyzer %s returned %s, not a dict; not retrying", run.run_id, name, kind)
        return None
    return dict(res)
