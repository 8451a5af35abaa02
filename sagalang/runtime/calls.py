"""Calling handlers: resolved once per spec and registry, then called the way each one is written.

A handler is an ``async def`` or a plain function (run in the thread pool), may
take a ``ctx`` parameter, or is a step object whose ``execute`` / ``compensate``
do and undo the step. :class:`HandlerTable` resolves every handler a spec uses
once, shared by all its runs; :func:`call_handler` makes one call.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Awaitable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from .. import ir
from .. import semantics as sem
from ..context import Context
from ..plugins import Handler, Registry
from ..spec import Spec

__all__ = ["HandlerTable", "StepCall", "call_handler"]


@dataclass(frozen=True, slots=True)
class StepCall:
    """How one step's action is called: its handler, its effective retry policy and timeout."""

    action: ir.Invocation
    handler: Handler
    retry: ir.RetryPolicy | None
    timeout: float | None  # seconds
    namespace: str  # the handler's namespace: error names are qualified with it


@dataclass(frozen=True, slots=True)
class HandlerTable:
    """Everything a run of one spec needs to know about its handlers, resolved once."""

    handlers: Mapping[str, Handler]
    # Step objects: whether execute and compensate are coroutine functions.
    step_async: Mapping[str, tuple[bool, bool]]
    # (saga, step) -> completing it ends backward recovery.
    pivot_like: Mapping[tuple[str, str], bool]
    # The logger each handler's context carries: ``sagalang.handlers.NAMESPACE``.
    loggers: Mapping[str, logging.Logger]
    # saga -> step -> how its action is called (steps with a ``do`` or ``use``).
    calls: Mapping[str, Mapping[str, StepCall]]

    @classmethod
    def of(cls, spec: Spec, registry: Registry) -> HandlerTable:
        """The table of ``spec`` with ``registry`` (cached on the spec: every run of it shares one)."""
        cache = spec.handler_tables
        found = cache.get(id(registry))
        if found is not None and found[0] is registry:
            table: HandlerTable = found[1]
            return table
        table = cls._resolve(spec, registry)
        cache[id(registry)] = (registry, table)
        return table

    @classmethod
    def _resolve(cls, spec: Spec, registry: Registry) -> HandlerTable:
        handlers: dict[str, Handler] = {}
        for name in spec.handler_names:
            handlers[name] = registry.resolve(name)
        step_async = {
            name: (inspect.iscoroutinefunction(h.step.execute), inspect.iscoroutinefunction(h.step.compensate))
            for name, h in handlers.items()
            if h.step is not None
        }
        loggers = {name: logging.getLogger(f"sagalang.handlers.{name.partition('.')[0]}") for name in handlers}
        calls = {saga.name: _step_calls(saga, handlers) for saga in spec.sagas.values()}
        table = cls(handlers, step_async, {}, loggers, calls)
        pivot_like = table.pivot_like
        assert isinstance(pivot_like, dict)
        for saga in spec.sagas.values():
            for step in saga.steps():
                # No callees: a run judges a sub-saga's steps one by one (they are journaled as call/step).
                pivot_like[(saga.name, step.name)] = sem.is_pivot_like(step, table.step_object)
        return table

    def step_object(self, handler: str) -> object:
        """The step object registered as ``handler`` (None for a function handler)."""
        return self.handlers[handler].step

    def has_undo(self, step: ir.Step) -> bool:
        """Whether compensating ``step`` may undo something (its ``call`` is judged by its own steps)."""
        return sem.has_undo(step, self.step_object)


def _step_calls(saga: ir.Saga, handlers: Mapping[str, Handler]) -> dict[str, StepCall]:
    out: dict[str, StepCall] = {}
    for step in saga.steps():
        action = step.do or step.use
        if action is None:
            continue
        timeout = sem.effective_timeout(saga, step)
        seconds = timeout.ms / 1000 if timeout is not None else None
        handler = handlers[action.handler]
        retry = sem.effective_retry(saga, step)
        out[step.name] = StepCall(action, handler, retry, seconds, action.handler.partition(".")[0])
    return out


def call_handler(
    table: HandlerTable,
    handler: Handler,
    args: dict[str, Any],
    ctx: Context | None,
    executor: Executor | None,
    compensating: bool,
) -> Awaitable[Any]:
    """The call of ``handler`` with ``args`` (and ``ctx`` where it takes one); sync ones run in ``executor``."""
    if handler.step is not None:
        fn = handler.step.compensate if compensating else handler.step.execute
        if table.step_async[handler.info.name][1 if compensating else 0]:
            return fn(ctx, **args)  # type: ignore[no-any-return]
        return asyncio.get_running_loop().run_in_executor(executor, functools.partial(fn, ctx, **args))
    func = handler.func
    assert func is not None
    if handler.info.is_async:
        return func(ctx=ctx, **args) if handler.wants_context else func(**args)  # type: ignore[no-any-return]
    call = functools.partial(func, ctx=ctx, **args) if handler.wants_context else functools.partial(func, **args)
    return _in_thread(call, executor)


async def _in_thread(call: functools.partial[Any], executor: Executor | None) -> Any:
    res = await asyncio.get_running_loop().run_in_executor(executor, call)
    # A sync function may hand back an awaitable (a coroutine it made): wait for it too.
    if inspect.isawaitable(res):
        res = await res
    return res
