"""Many sagas at once: start them concurrently, track the active ones, cancel, wait.

The seed's ``SagaCoordinator`` in asyncio form. Every run is an ordinary
:func:`sagalang.interpreter.run` in its own task, sharing one store, registry,
listeners and middleware; ``max_concurrency`` bounds how many drive at once.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from concurrent.futures import Executor
from typing import Any

from .events import Listener
from .journal.base import Store
from .plugins import Registry
from .runtime import Clock, Middleware, Run, RunResult, StepMiddleware, drive, live_run, prepare_resume, start
from .spec import Spec

__all__ = ["Coordinator"]

_NO_CONTEXT = contextvars.Context()  # where the bookkeeping callback runs: it reads no context variable


class Coordinator:
    """Starts, tracks, cancels and awaits sagas sharing one store and registry."""

    def __init__(
        self,
        store: Store | None = None,
        registry: Registry | None = None,
        *,
        listeners: Sequence[Listener] = (),
        middleware: Sequence[Middleware] = (),
        step_middleware: Sequence[StepMiddleware] = (),
        max_concurrency: int | None = None,
        clock: Clock | None = None,
        executor: Executor | None = None,
    ) -> None:
        if store is None:
            from .journal.memory import MemoryStore

            store = MemoryStore()
        self.store: Store = store
        self.registry = registry if registry is not None else Registry.discover()
        self._options: dict[str, Any] = {
            "listeners": tuple(listeners),
            "middleware": tuple(middleware),
            "step_middleware": tuple(step_middleware),
            "clock": clock,
            "executor": executor,
        }
        self._limit = asyncio.Semaphore(max_concurrency) if max_concurrency else None
        self._tasks: dict[str, asyncio.Task[RunResult]] = {}  # runs still going
        self._done: dict[str, RunResult | asyncio.Future[RunResult]] = {}  # ended: result (or failed task)
        self._drivers: dict[str, Run] = {}
        self._ended_cb = self._ended

    async def start(
        self,
        spec: Spec,
        input: Mapping[str, Any] | None = None,
        *,
        run_id: str | None = None,
        fail_at: Iterable[str] = (),
    ) -> str:
        """Check the input, journal the run's creation and start it; returns its run id."""
        driver, created = await start(
            spec, input, store=self.store, registry=self.registry, run_id=run_id, fail_at=fail_at, **self._options
        )
        if not created:
            return await self.resume(driver.run_id)
        self._drivers[driver.run_id] = driver
        task = asyncio.get_running_loop().create_task(self._drive(driver, True), name=driver.run_id)
        self._track(driver.run_id, task)
        return driver.run_id

    async def resume(self, run_id: str) -> str:
        """Continue a stored run in the background (e.g. after a crash)."""
        found = await prepare_resume(run_id, store=self.store, registry=self.registry, **self._options)
        loop = asyncio.get_running_loop()
        if isinstance(found, RunResult):
            self._done[run_id] = found
        else:
            self._drivers[run_id] = found
            self._track(run_id, loop.create_task(self._drive(found, False), name=run_id))
        return run_id

    def _track(self, run_id: str, task: asyncio.Task[RunResult]) -> None:
        self._tasks[run_id] = task
        # One callback for every run (the task's name is its run id), run in an empty
        # context: no closure and no copy of the context for each of thousands of runs.
        task.add_done_callback(self._ended_cb, context=_NO_CONTEXT)

    def _ended(self, t: asyncio.Task[RunResult]) -> None:
        # Keep the outcome, drop the finished task (its coroutine, frame and context) and its driver.
        run_id = t.get_name()
        self._drivers.pop(run_id, None)
        if self._tasks.get(run_id) is t:
            del self._tasks[run_id]
            self._done[run_id] = t.result() if not t.cancelled() and t.exception() is None else t

    def _drive(self, driver: Run, fresh: bool) -> Coroutine[Any, Any, RunResult]:
        if self._limit is None:
            return drive(driver, fresh)
        return self._drive_limited(driver, fresh)

    async def _drive_limited(self, driver: Run, fresh: bool) -> RunResult:
        assert self._limit is not None
        async with self._limit:
            return await drive(driver, fresh)

    def active(self) -> list[str]:
        """Ids of the runs still going."""
        return [rid for rid, t in self._tasks.items() if not t.done()]

    async def cancel(self, run_id: str) -> bool:
        """Cancel a run: stop it and compensate; False if it is unknown or has ended."""
        if not await self.store.request_cancel(run_id):
            return False
        # A run still waiting for a concurrency slot stops before its first step.
        driver = self._drivers.get(run_id) or live_run(self.store, run_id)
        if driver is not None:
            driver.cancel("cancel")
        return True

    async def wait(self, run_id: str) -> RunResult:
        """The result of one run, once it has ended."""
        task = self._tasks.get(run_id)
        if task is not None:
            return await task
        found = self._done[run_id]
        return found if isinstance(found, RunResult) else await found

    async def wait_all(self) -> dict[str, RunResult]:
        """Wait for every run started so far; results by run id (in start order)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)
            await asyncio.sleep(0)  # let the done callbacks move the results over
        return {rid: await self.wait(rid) for rid in list(self._done)}

    async def close(self) -> None:
        """Cancel every active run (each compensates) and wait for them to end."""
        for rid in self.active():
            await self.cancel(rid)
        if self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)
