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
from ..context import Context
from ..plugins import Handler, Registry
from ..spec import Spec

__all__ = ["HandlerTable", "call_handler"]


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
        table = cls(handlers, step_async, {}, loggers)
        pivot_like = table.pivot_like
        assert isinstance(pivot_like, dict)
        for saga in spec.sagas.values():
            for step in saga.steps():
                pivot_like[(saga.name, step.name)] = table.ends_backward_recovery(step)
        return table

    def can_compensate(self, inv: ir.Invocation) -> bool:
        """Whether the step object behind ``inv`` says it can undo its work."""
        obj = self.handlers[inv.handler].step
        can = getattr(obj, "can_compensate", None)
        return bool(can()) if callable(can) else obj is not None

    def has_undo(self, step: ir.Step) -> bool:
        """Whether ``step`` can be compensated: an ``undo``, or a step object that can compensate."""
        if step.undo is not None:
            return True
        if step.use is not None:
            return self.can_compensate(step.use)
        return False

    def ends_backward_recovery(self, step: ir.Step) -> bool:
        """Whether completing ``step`` ends backward recovery (a pivot, or an effect nothing can undo)."""
        if step.kind == "pivot":
            return True
        if step.kind == "readonly" or step.call is not None:
            return False
        return not self.has_undo(step)


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
