"""The worker loop: drive queued and orphaned runs of a shared PostgreSQL journal.

Any number of workers, on any number of hosts, share one database. Each one:

* **claims** runs that need a driver — queued, or in flight with an expired
  lease (its worker died) — with ``SELECT ... FOR UPDATE SKIP LOCKED``, so
  concurrent workers take disjoint runs without waiting for each other;
* bumps each claimed run's **epoch** (the fencing token) and passes it to the
  interpreter, which writes every journal event with it: once another worker
  has taken a run over, a stale worker's next write fails with
  :class:`~sagalang.journal.base.StaleEpochError` and it abandons the run;
* **renews** its leases by heartbeat (one statement for all its runs), which
  also reports lost leases and cancel requests;
* sleeps on ``LISTEN sagalang_runs`` between claims — ``submit``, ``cancel``
  and hand-backs ``NOTIFY`` it — with a slow fallback poll that also finds
  runs whose lease expired;
* on SIGTERM stops claiming, lets in-flight runs finish for a grace period,
  then **hands back** the rest: their epoch is bumped and their lease cleared
  so another worker continues them at once, and nothing this worker still
  had in flight can write any more;
* survives lost connections and database restarts: every store operation
  retries with backoff, the listener reconnects, and the journal is the only
  state, so nothing is lost.

The library never prints; it logs to ``sagalang.worker``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import SagaError, StoreError
from .events import Event
from .journal.base import RunRecord, StaleEpochError, Store, WorkerStore
from .journal.leases import make_owner

if TYPE_CHECKING:
    from .spec import Spec

__all__ = ["Worker", "WorkerOptions", "WorkerStats", "make_worker_id", "queued_record", "submit"]

log = logging.getLogger("sagalang.worker")
_SPEC_CACHE = 64  # definitions kept parsed; one per spec version in use is plenty


def make_worker_id() -> str:
    """``host:pid:start`` (:func:`~sagalang.journal.leases.make_owner`): unique across hosts and restarts.

    The same form as every other lease owner, so ``sagalang resume``/``cancel`` on
    this host can tell at once that a worker which holds a lease has died.
    """
    return make_owner()


@dataclass
class WorkerOptions:
    """How a worker behaves; every duration is in seconds."""

    concurrency: int = 4
    lease: float = 30.0  # a dead worker's runs are taken over this long after its last heartbeat
    heartbeat: float | None = None  # default: lease / 3
    poll: float = 5.0  # fallback poll when no NOTIFY arrives (also finds expired leases)
    grace: float = 30.0  # SIGTERM: how long in-flight runs may take to finish before being handed back
    retry_refused: float = 60.0  # a run this worker cannot load is not claimed again for this long
    worker_id: str = field(default_factory=make_worker_id)


@dataclass
class WorkerStats:
    """What a worker did, for logs, tests and benchmarks."""

    claimed: int = 0
    finished: int = 0
    lost: int = 0  # taken over by another worker (stale epoch) or lease lost
    handed_back: int = 0
    failed: int = 0  # errors outside the saga (spec cannot load, store unreachable)
    statuses: dict[str, int] = field(default_factory=dict)


@dataclass
class _Active:
    record: RunRecord
    epoch: int
    task: asyncio.Task[None] | None = None
    cancel: asyncio.Event = field(default_factory=asyncio.Event)
    stopping: str | None = None  # why the worker itself stopped this run: "lost" | "handed back"


def queued_record(spec: Spec, input: Mapping[str, Any], run_id: str | None = None) -> RunRecord:
    """The record of a run of ``spec`` waiting for a worker (``input`` already checked)."""
    handlers = sorted(
        {inv.handler for s in spec.sagas.values() for st in s.steps() for inv in (st.do, st.undo, st.use) if inv}
    )
    return RunRecord(
        run_id=run_id or f"{spec.entry}-{uuid.uuid4().hex[:12]}",
        saga=spec.entry,
        entry=spec.entry_file,
        spec=dict(spec.sources),
        spec_hash=spec.spec_hash,
        input=dict(input),
        handlers=tuple(handlers),
        status="queued",
        spec_path=str(spec.path) if spec.path is not None else None,
    )


async def submit(store: Store, spec: Spec, input: Mapping[str, Any] | None, run_id: str | None = None) -> RunRecord:
    """Check ``input`` and enqueue a run (an existing ``run_id`` is returned unchanged)."""
    data = spec.prepare_input(dict(input or {}))
    stored, _ = await store.create_run(queued_record(spec, data, run_id))
    return stored


# The function that drives one claimed run to its end (or until cancelled):
# (store, record, epoch, owner, cancel_event) -> final status.
Driver = Callable[[WorkerStore, RunRecord, int, str, asyncio.Event], Any]


class Worker:
    """Claims and drives runs of one shared store until :meth:`stop` is called."""

    def __init__(
        self,
        store: WorkerStore,
        registry: Any = None,
        options: WorkerOptions | None = None,
        *,
        driver: Driver | None = None,
        listeners: tuple[Any, ...] = (),
        step_middleware: tuple[Any, ...] = (),
    ) -> None:
        self.store = store
        self.registry = registry
        self.options = options or WorkerOptions()
        self.listeners = listeners
        self.step_middleware = step_middleware
        self.stats = WorkerStats()
        self._driver = driver or self._drive_with_interpreter
        self._active: dict[str, _Active] = {}
        self._refused: dict[str, float] = {}
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._now = asyncio.Event()
        self._fences: dict[str, _FencedStore] = {}
        self._specs: dict[tuple[str, str, str], Spec] = {}
        # Sync handlers run here: one pool sized to the concurrency (the loop's default has cpu+4 threads).
        self.executor = ThreadPoolExecutor(
            max_workers=max(4, self.options.concurrency * 4), thread_name_prefix="sagalang-handler"
        )

    @property
    def worker_id(self) -> str:
        """This worker's owner id in the runs table."""
        return self.options.worker_id

    @property
    def active(self) -> list[str]:
        """Ids of the runs this worker drives right now."""
        return sorted(self._active)

    def stop(self, now: bool = False) -> None:
        """Ask for a graceful shutdown; ``now``: hand runs in flight back without waiting for them."""
        self._stop.set()
        self._wake.set()
        if now:
            self._now.set()

    # ---- the main loop -------------------------------------------------------

    async def run(self) -> WorkerStats:
        """Claim and drive runs until :meth:`stop`; then drain or hand back; returns the stats."""
        opts = self.options
        log.info(
            "worker %s: store %s, concurrency %d, lease %.1fs",
            self.worker_id,
            self.store.where,
            opts.concurrency,
            opts.lease,
        )
        await self._open_store()
        listener = asyncio.create_task(self._listen(), name="sagalang-listen")
        heartbeat = asyncio.create_task(self._heartbeat(), name="sagalang-heartbeat")
        try:
            if not self._stop.is_set():
                await self._claim_loop()
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
            await self._drain()
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            # A handler call of a handed-back run may still be running: do not wait for it.
            self.executor.shutdown(wait=False, cancel_futures=True)
        log.info(
            "worker %s stopped: %d claimed, %d finished, %d lost, %d handed back",
            self.worker_id,
            self.stats.claimed,
            self.stats.finished,
            self.stats.lost,
            self.stats.handed_back,
        )
        return self.stats

    async def _open_store(self) -> None:
        delay = 0.2
        while not self._stop.is_set():
            try:
                await self.store.open()
                return
            except StoreError as err:
                # Workers may start before the database does: wait for it rather than exit.
                log.warning("worker %s: %s; retrying in %.1fs", self.worker_id, err, delay)
                await self._sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    async def _claim_loop(self) -> None:
        opts = self.options
        poll = max(0.05, min(opts.poll, opts.lease / 2))
        delay = 0.2
        while not self._stop.is_set():
            self._wake.clear()
            free = opts.concurrency - len(self._active)
            if free > 0:
                now = time.monotonic()
                self._refused = {k: t for k, t in self._refused.items() if t > now}
                try:
                    claimed = await self.store.claim(
                        self.worker_id, opts.lease, free, exclude=[*self._active, *self._refused]
                    )
                    delay = 0.2
                except StoreError as err:
                    log.warning("worker %s: cannot claim runs: %s; retrying in %.1fs", self.worker_id, err, delay)
                    await self._sleep(delay)
                    delay = min(delay * 2, 10.0)
                    continue
                for rec in claimed:
                    self._start(rec)
            # Sleep until a NOTIFY, a finished run or the fallback poll (which finds expired leases).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), poll)

    def _start(self, rec: RunRecord) -> None:
        self.stats.claimed += 1
        act = _Active(rec, rec.epoch)
        if rec.cancel_requested:
            act.cancel.set()
        self._active[rec.run_id] = act
        act.task = asyncio.create_task(self._run_one(act), name=f"sagalang-run-{rec.run_id}")
        log.info("worker %s: claimed run %s (epoch %d, %s)", self.worker_id, rec.run_id, rec.epoch, rec.status)

    async def _run_one(self, act: _Active) -> None:
        rec = act.record
        try:
            status = await self._driver(self.store, rec, act.epoch, self.worker_id, act.cancel)
            self.stats.finished += 1
            self.stats.statuses[str(status)] = self.stats.statuses.get(str(status), 0) + 1
            log.info("worker %s: run %s %s", self.worker_id, rec.run_id, status)
        except StaleEpochError as err:
            if act.stopping is None:
                act.stopping = "lost"
                self.stats.lost += 1
                log.warning(
                    "worker %s: abandoned run %s: another worker took it over (%s)", self.worker_id, rec.run_id, err
                )
            else:
                log.info("worker %s: run %s %s", self.worker_id, rec.run_id, act.stopping)
        except asyncio.CancelledError:
            if act.stopping is None:
                raise
            log.info("worker %s: run %s %s", self.worker_id, rec.run_id, act.stopping)
        except SagaError as err:
            # The run cannot be driven here (spec does not load, handler missing, store gone):
            # give it back and leave it alone for a while; another worker may have what it needs.
            self.stats.failed += 1
            self._refused[rec.run_id] = time.monotonic() + self.options.retry_refused
            log.error("worker %s: cannot drive run %s: %s", self.worker_id, rec.run_id, err)
        except Exception:
            self.stats.failed += 1
            self._refused[rec.run_id] = time.monotonic() + self.options.retry_refused
            log.exception("worker %s: run %s failed unexpectedly", self.worker_id, rec.run_id)
        finally:
            self._active.pop(rec.run_id, None)
            if act.stopping is None:
                try:
                    await self.store.release(rec.run_id, self.worker_id, act.epoch)
                except StoreError as err:  # the lease simply expires
                    log.warning("worker %s: could not release run %s: %s", self.worker_id, rec.run_id, err)
            self._wake.set()

    # ---- heartbeat, cancel, LISTEN --------------------------------------------

    async def _heartbeat(self) -> None:
        opts = self.options
        every = opts.heartbeat or opts.lease / 3
        while True:
            await asyncio.sleep(every)
            leases = {rid: a.epoch for rid, a in self._active.items() if a.stopping is None}
            if not leases:
                continue
            try:
                held = await self.store.renew_many(self.worker_id, leases, opts.lease)
            except StoreError as err:
                # Keep going: fencing stops every write if the lease really lapses meanwhile.
                log.warning("worker %s: heartbeat failed: %s", self.worker_id, err)
                continue
            for rid, epoch in leases.items():
                act = self._active.get(rid)
                if act is None or act.epoch != epoch:
                    continue
                if rid not in held:
                    self._abandon(act, "lost")
                elif held[rid] and not act.cancel.is_set():
                    log.info("worker %s: cancel requested for run %s", self.worker_id, rid)
                    act.cancel.set()

    def _abandon(self, act: _Active, why: str) -> None:
        """Stop driving a run without writing anything more (its lease is gone or given away)."""
        if act.stopping is not None:
            return
        act.stopping = why
        fence = self._fences.get(act.record.run_id)
        if fence is not None:
            fence.fenced = why
        if why == "lost":
            self.stats.lost += 1
            log.warning("worker %s: lost the lease of run %s; abandoning it", self.worker_id, act.record.run_id)
        else:
            self.stats.handed_back += 1
        if act.task is not None:
            act.task.cancel()

    def _notified(self, payload: str) -> None:
        kind, _, run_id = payload.partition(":")
        if kind == "cancel":
            act = self._active.get(run_id)
            if act is not None and not act.cancel.is_set():
                log.info("worker %s: cancel requested for run %s", self.worker_id, run_id)
                act.cancel.set()
        elif kind in ("queued", "released") and len(self._active) < self.options.concurrency:
            self._wake.set()

    async def _listen(self) -> None:
        delay = 0.2
        while True:
            try:
                async for note in self.store.announcements():
                    if note:
                        self._notified(note)
                        continue
                    delay = 0.2
                    # Anything announced while we were not listening: look now.
                    self._wake.set()
                    await self._recheck_cancels()
            except asyncio.CancelledError:
                raise
            except Exception as err:  # connection lost, server restarting
                log.warning(
                    "worker %s: lost the announcements (%s); listening again in %.1fs", self.worker_id, err, delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _recheck_cancels(self) -> None:
        for rid, act in list(self._active.items()):
            if act.cancel.is_set():
                continue
            rec = await self.store.get_run(rid)
            if rec is not None and rec.cancel_requested:
                act.cancel.set()

    # ---- shutdown ------------------------------------------------------------

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.grace
        if self._active and not self._now.is_set():
            log.info(
                "worker %s: waiting up to %.1fs for %d run(s) in flight",
                self.worker_id,
                self.options.grace,
                len(self._active),
            )
        while self._active and not self._now.is_set() and loop.time() < deadline:
            tasks = [a.task for a in self._active.values() if a.task is not None]
            await asyncio.wait(tasks, timeout=min(0.2, max(0.0, deadline - loop.time())))
        for act in list(self._active.values()):
            await self._hand_back(act)
        rest = [a.task for a in self._active.values() if a.task is not None]
        if rest:
            await asyncio.wait(rest, timeout=5.0)

    async def _hand_back(self, act: _Active) -> None:
        rid = act.record.run_id
        fence = self._fences.get(rid)
        if fence is not None:
            fence.fenced = "handed back"  # first: nothing more from this worker may land
        try:
            handed = await asyncio.wait_for(self.store.hand_back(rid, self.worker_id, act.epoch), 10.0)
        except (StoreError, TimeoutError) as err:
            handed = False
            log.warning("worker %s: could not hand back run %s (%s); its lease will expire", self.worker_id, rid, err)
        if handed:
            log.info("worker %s: handed back run %s", self.worker_id, rid)
        self._abandon(act, "handed back")

    # ---- driving one run -------------------------------------------------------

    async def _drive_with_interpreter(
        self, store: WorkerStore, rec: RunRecord, epoch: int, owner: str, cancel: asyncio.Event
    ) -> str:
        """Continue ``rec`` with the interpreter, writing with ``epoch``; returns its final status.

        A queued run has an empty journal: resuming it starts it (``saga.started``).
        """
        from . import runtime

        fenced = _FencedStore(store, rec.run_id)
        self._fences[rec.run_id] = fenced
        try:
            r = await runtime.prepare_resume(
                rec.run_id,
                store=fenced,
                registry=self.registry,
                spec=self._spec_for(rec),
                epoch=epoch,
                listeners=self.listeners,
                step_middleware=self.step_middleware,
                executor=self.executor,
                # The worker forwards cancel requests (NOTIFY, heartbeat): the run need not poll for them.
                poll_cancels=False,
            )
            if isinstance(r, runtime.RunResult):
                return r.status
            bridge = asyncio.create_task(_forward_cancel(cancel, r))
            try:
                result = await runtime.drive(r, fresh=False)
            finally:
                bridge.cancel()
            return result.status
        finally:
            self._fences.pop(rec.run_id, None)

    def _spec_for(self, rec: RunRecord) -> Spec:
        """The run's definition, parsed and validated once per spec hash (not once per run)."""
        from .spec import Spec

        key = (rec.spec_hash, rec.entry, rec.saga)
        spec = self._specs.pop(key, None)
        if spec is None:
            spec = Spec.from_sources(rec.spec, rec.entry, saga=rec.saga, registry=self.registry)
        self._specs[key] = spec  # most recently used last
        while len(self._specs) > _SPEC_CACHE:
            del self._specs[next(iter(self._specs))]
        return spec


async def _forward_cancel(cancel: asyncio.Event, run: Any) -> None:
    """Turn a cancel request seen by the worker (NOTIFY or heartbeat) into the run's own cancel."""
    await cancel.wait()
    run.cancel("cancel")


class _FencedStore:
    """The store as one run's driver sees it: writes stop the moment this worker gives the run up.

    The database fences a stale worker by epoch; this fences it locally too, so
    a run the worker handed back (or lost) cannot write even while the database
    is unreachable, and its interpreter never reaches another handler call.
    """

    shared = True

    def __init__(self, store: WorkerStore, run_id: str) -> None:
        self._store = store
        self.run_id = run_id
        self.url = store.url
        self.fenced: str | None = None

    async def open(self) -> None:
        """The shared store is opened by the worker."""

    async def close(self) -> None:
        """The shared store is closed by the worker."""

    async def create_run(self, record: RunRecord) -> tuple[RunRecord, bool]:
        """Delegate."""
        return await self._store.create_run(record)

    async def get_run(self, run_id: str) -> RunRecord | None:
        """Delegate."""
        return await self._store.get_run(run_id)

    async def list_runs(self, status: str | None = None, limit: int | None = None) -> list[RunRecord]:
        """Delegate."""
        return await self._store.list_runs(status, limit)

    async def append(
        self, run_id: str, events: Sequence[Event], status: str | None = None, epoch: int | None = None
    ) -> list[Event]:
        """Append unless this worker has given the run up."""
        if self.fenced is not None:
            raise StaleEpochError(f"run {run_id!r} was {self.fenced} by this worker; not writing")
        return await self._store.append(run_id, events, status, epoch)

    async def events(self, run_id: str, after_seq: int = 0) -> list[Event]:
        """Delegate."""
        return await self._store.events(run_id, after_seq)

    async def request_cancel(self, run_id: str) -> bool:
        """Delegate."""
        return await self._store.request_cancel(run_id)

    async def cancel_requested(self, run_id: str) -> bool:
        """Delegate."""
        return await self._store.cancel_requested(run_id)

    async def acquire(self, run_id: str, owner: str, ttl: float) -> int | None:
        """Delegate."""
        return await self._store.acquire(run_id, owner, ttl)

    async def renew(self, run_id: str, owner: str, epoch: int, ttl: float) -> bool:
        """Delegate."""
        return await self._store.renew(run_id, owner, epoch, ttl)

    async def release(self, run_id: str, owner: str, epoch: int) -> None:
        """Delegate."""
        await self._store.release(run_id, owner, epoch)
