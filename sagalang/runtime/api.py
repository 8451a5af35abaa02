"""Running sagas from Python: start a run, resume one from its journal, cancel one.

A run is journal first: its record is created, then every transition is
appended before the next action, so :func:`resume` after a crash folds the
journal and continues exactly where the run stopped. A shared store (SQLite,
PostgreSQL) is driven under a lease whose epoch fences every write, so only
one process drives a run at a time.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Executor
from typing import Any

from ..errors import StoreError
from ..events import Listener
from ..journal.base import RunRecord, Store
from ..journal.leases import hold
from ..plugins import Registry
from ..spec import Spec
from ..state import RunState, fold
from .clock import Clock
from .driver import drive
from .live import live_runs
from .run import Middleware, Run, RunResult, StepMiddleware

__all__ = ["cancel", "drive", "live_run", "new_run_id", "prepare_resume", "resume", "run", "start"]

_ID_BYTES = 6  # 48 random bits per run id
_id_pool: list[bytes] = []


def new_run_id(saga: str) -> str:
    """A new run id: the saga's name and 12 random hex digits."""
    # Random bytes come from the system in blocks, a few hundred ids at a time.
    if not _id_pool:
        block = os.urandom(_ID_BYTES * 256)
        _id_pool.extend(block[i : i + _ID_BYTES] for i in range(0, len(block), _ID_BYTES))
    return f"{saga}-{_id_pool.pop().hex()}"


if hasattr(os, "register_at_fork"):
    # A forked child must not hand out the ids its parent still holds.
    os.register_at_fork(after_in_child=_id_pool.clear)


async def start(
    spec: Spec,
    input: Mapping[str, Any] | None,
    *,
    store: Store,
    registry: Registry,
    run_id: str | None = None,
    checked: bool = False,
    **options: Any,
) -> tuple[Run, bool]:
    """Check the input, create the run record and build its driver; False if the run existed already."""
    data = dict(input or {}) if checked else spec.prepare_input(input)
    rid = run_id or new_run_id(spec.entry)
    now = time.time()
    record = RunRecord(
        run_id=rid,
        saga=spec.entry,
        entry=spec.entry_file,
        spec=spec.sources,
        spec_hash=spec.spec_hash,
        input=data,
        handlers=spec.handler_names,
        status="running",
        created_at=now,
        updated_at=now,
        spec_path=str(spec.path) if spec.path is not None else None,
        # Injected faults belong to the run: a resume after a crash injects them again.
        extra={"fail_at": sorted(options["fail_at"])} if options.get("fail_at") else {},
    )
    _, created = await store.create_run(record)
    return Run(spec, store, registry, rid, data, **options), created


async def run(
    spec: Spec,
    input: Mapping[str, Any] | None = None,
    *,
    store: Store | None = None,
    registry: Registry | None = None,
    run_id: str | None = None,
    listeners: Sequence[Listener] = (),
    middleware: Sequence[Middleware] = (),
    step_middleware: Sequence[StepMiddleware] = (),
    fail_at: Iterable[str] = (),
    clock: Clock | None = None,
    executor: Executor | None = None,
) -> RunResult:
    """Run ``spec``'s entry saga with ``input`` to a terminal state.

    Raises :class:`~sagalang.errors.SagaInputError` before anything is
    journaled when the input does not match the saga's declaration. An
    existing ``run_id`` is resumed instead (or its result returned if it ended).
    """
    if store is None:
        from ..journal.memory import MemoryStore

        store = MemoryStore()
    registry = registry if registry is not None else Registry.discover()
    options: dict[str, Any] = {
        "listeners": listeners,
        "middleware": middleware,
        "step_middleware": step_middleware,
        "fail_at": fail_at,
        "clock": clock,
        "executor": executor,
    }
    data = spec.prepare_input(input)
    if run_id is not None and await store.get_run(run_id) is not None:
        return await resume(run_id, store=store, registry=registry, **options)
    r, created = await start(spec, data, store=store, registry=registry, run_id=run_id, checked=True, **options)
    if not created:
        return await resume(r.run_id, store=store, registry=registry, **options)
    if not store.shared:
        # No other process can reach the store, so none can drive the run: no lease.
        return await drive(r, fresh=True)
    # The lease makes this process the run's only driver; its epoch fences every write.
    async with hold(store, r.run_id) as epoch:
        r.journal.fence(epoch)
        return await drive(r, fresh=True)


async def resume(
    run_id: str,
    *,
    store: Store,
    registry: Registry | None = None,
    listeners: Sequence[Listener] = (),
    middleware: Sequence[Middleware] = (),
    step_middleware: Sequence[StepMiddleware] = (),
    fail_at: Iterable[str] = (),
    clock: Clock | None = None,
    executor: Executor | None = None,
) -> RunResult:
    """Continue a run from its journal: fold, then go on where it stopped.

    Steps in flight at the crash are retried with the same idempotency key; if
    the run was compensating they count as uncertain and are compensated.
    """
    if await store.get_run(run_id) is None:
        raise StoreError(f"no run {run_id!r} in {store.url}")
    options: dict[str, Any] = {
        "listeners": listeners,
        "middleware": middleware,
        "step_middleware": step_middleware,
        "fail_at": fail_at,
        "clock": clock,
        "executor": executor,
    }
    # Raises LeaseHeldError naming the live process that drives the run.
    async with hold(store, run_id) as epoch:
        r = await prepare_resume(run_id, store=store, registry=registry, epoch=epoch, **options)
        if isinstance(r, RunResult):
            return r
        return await drive(r, fresh=False)


async def prepare_resume(
    run_id: str, *, store: Store, registry: Registry | None = None, spec: Spec | None = None, **options: Any
) -> Run | RunResult:
    """The driver of a stored run, or its result when it has ended already.

    ``spec``: the run's definition if the caller has it already (the worker caches
    one per spec hash); used only when its hash matches the stored run's.
    """
    record = await store.get_run(run_id)
    if record is None:
        raise StoreError(f"no run {run_id!r} in {store.url}")
    events = await store.events(run_id)
    state = fold(events, RunState(run_id, saga=record.saga, status="queued"))
    if state.terminal:
        return RunResult.of(state)
    registry = registry if registry is not None else Registry.discover()
    if spec is None or spec.spec_hash != record.spec_hash or spec.entry != record.saga:
        spec = Spec.from_sources(record.spec, record.entry, saga=record.saga, registry=registry)
    if not options.get("fail_at") and record.extra.get("fail_at"):
        options["fail_at"] = tuple(record.extra["fail_at"])
    r = Run(spec, store, registry, run_id, _current_input(record, events), state=state, **options)
    if record.cancel_requested:
        state.cancel_requested = True
    if events:
        r.journal.record("saga.resumed", None, None, None, {"status": state.status})
    return r


def _current_input(record: RunRecord, events: Sequence[Any]) -> dict[str, Any]:
    """The input of the run's current attempt: the stored input with each whole-saga retry's overrides."""
    data = dict(record.input)
    for ev in events:
        if ev.kind == "saga.retrying":
            for k, v in dict(ev.data.get("overrides", {})).items():
                if v != "***":
                    data[k] = v
    return data


async def cancel(run_id: str, *, store: Store, registry: Registry | None = None, drive: bool = False) -> bool:
    """Ask a run to stop and compensate; False if it is unknown or already ended.

    A run driven by this process is interrupted at once; one driven elsewhere
    notices the store's flag. With ``drive=True`` a run nobody drives (its
    process died) is resumed here, which compensates it.
    """
    if not await store.request_cancel(run_id):
        return False
    live = live_runs.get(store, run_id)
    if live is not None:
        live.cancel("cancel")
    elif drive:
        await resume(run_id, store=store, registry=registry)
    return True


def live_run(store: Store, run_id: str) -> Run | None:
    """The driver of ``run_id`` if this process is running it (for the coordinator)."""
    return live_runs.get(store, run_id)
