"""The in-process store (``memory:``): a journal that lives as long as the process.

Used by tests, by ``sagalang test`` and wherever durability is not wanted. It
implements the whole :class:`~sagalang.journal.base.Store` protocol, leases
and fencing included, so code written against it behaves the same on SQLite.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

from ..errors import StoreError
from ..events import Event
from ..status import status_after
from .base import TERMINAL_STATES, RunCursor, RunFilter, RunPage, RunRecord, StaleEpochError
from .leases import lease_is_live
from .queries import matches, order_key

__all__ = ["MemoryStore"]


class MemoryStore:
    """Runs and journals in dictionaries; ``append`` is "durable" once it returns."""

    url = "memory:"
    shared = False

    def __init__(self) -> None:
        self._runs: dict[str, RunRecord] = {}
        self._events: dict[str, list[Event]] = {}
        # The cached status changes often; it lives beside the (frozen) record.
        self._status: dict[str, tuple[str, float]] = {}

    async def open(self) -> None:
        """Nothing to connect to."""

    async def close(self) -> None:
        """Nothing to release; the data stays until the object is dropped."""

    async def create_run(self, record: RunRecord) -> tuple[RunRecord, bool]:
        """Insert ``record``; if its id exists, return the existing run and False."""
        existing = self._record(record.run_id)
        if existing is not None:
            return existing, False
        rec = record
        if not (record.created_at and record.updated_at):
            now = time.time()
            rec = dataclasses.replace(record, created_at=record.created_at or now, updated_at=now)
        self._runs[rec.run_id] = rec
        self._events[rec.run_id] = []
        return rec, True

    def _record(self, run_id: str) -> RunRecord | None:
        rec = self._runs.get(run_id)
        if rec is None:
            return None
        status = self._status.get(run_id)
        if status is not None and status[0] != rec.status:
            rec = self._runs[run_id] = dataclasses.replace(rec, status=status[0], updated_at=status[1])
        return rec

    async def get_run(self, run_id: str) -> RunRecord | None:
        """One run, or None."""
        return self._record(run_id)

    async def list_runs(self, status: str | None = None, limit: int | None = None) -> list[RunRecord]:
        """Runs, newest first, optionally only those in ``status``."""
        runs = [r for r in map(self._record, list(self._runs)) if r is not None]
        runs.sort(key=lambda r: (r.created_at, r.run_id), reverse=True)
        if status is not None:
            runs = [r for r in runs if r.status == status]
        return runs if limit is None else runs[:limit]

    def _matching(self, where: RunFilter) -> list[RunRecord]:
        return [r for r in map(self._record, list(self._runs)) if r is not None and matches(r, where)]

    async def query_runs(self, where: RunFilter, limit: int, after: RunCursor | None = None) -> RunPage:
        """Up to ``limit`` runs matching ``where`` after ``after``, last updated first."""
        runs = self._matching(where)
        if after is not None:
            edge = (after.updated_at, after.run_id)
            runs = [r for r in runs if order_key(r) < edge]
        runs.sort(key=order_key, reverse=True)
        page = tuple(runs[:limit])
        more = len(runs) > limit and bool(page)
        return RunPage(page, RunCursor(page[-1].updated_at, page[-1].run_id) if more else None)

    async def count_runs(self, where: RunFilter) -> dict[str, int]:
        """How many runs matching ``where`` are in each status."""
        counts: dict[str, int] = {}
        for r in self._matching(where):
            counts[r.status] = counts.get(r.status, 0) + 1
        return counts

    async def saga_counts(self) -> dict[str, int]:
        """How many runs of each saga the store holds."""
        counts: dict[str, int] = {}
        for r in self._matching(RunFilter()):
            counts[r.saga] = counts.get(r.saga, 0) + 1
        return counts

    async def saga_names(self) -> list[str]:
        """The names of the sagas the store has runs of, sorted."""
        return sorted(await self.saga_counts())

    async def append(
        self, run_id: str, events: Sequence[Event], status: str | None = None, epoch: int | None = None
    ) -> list[Event]:
        """Append ``events`` (seq assigned here) and optionally update the cached status."""
        journal = self._events.get(run_id)
        if journal is None:
            raise StoreError(f"unknown run {run_id!r}")
        rec = self._runs[run_id]
        if epoch is not None and epoch != rec.epoch:
            raise StaleEpochError(f"run {run_id!r} is now driven by epoch {rec.epoch}, not {epoch}")
        seq = len(journal)
        out: list[Event] = []
        for ev in events:
            seq += 1
            # The interpreter numbers its own events; only renumber when it guessed wrong.
            if ev.seq != seq or ev.run_id != run_id or not ev.time:
                ev = dataclasses.replace(ev, seq=seq, run_id=run_id, time=ev.time or time.time())
            journal.append(ev)
            out.append(ev)
        # When the caller does not say, the events imply the status (the fold stays the truth).
        new_status = status if status is not None else status_after(ev.kind for ev in out)
        if new_status is not None:
            self._status[run_id] = (new_status, time.time())
        return out

    async def events(self, run_id: str, after_seq: int = 0) -> list[Event]:
        """The run's events with ``seq > after_seq``, in order."""
        journal = self._events.get(run_id, [])
        return journal[after_seq:] if after_seq >= 0 else list(journal)

    async def request_cancel(self, run_id: str) -> bool:
        """Flag the run for cancellation; False if it is unknown or already terminal."""
        rec = self._record(run_id)
        if rec is None or rec.status in TERMINAL_STATES:
            return False
        self._runs[run_id] = dataclasses.replace(rec, cancel_requested=True, updated_at=time.time())
        return True

    async def cancel_requested(self, run_id: str) -> bool:
        """Whether a cancel was requested for the run (False if it is unknown)."""
        rec = self._runs.get(run_id)
        return bool(rec is not None and rec.cancel_requested)

    async def acquire(self, run_id: str, owner: str, ttl: float) -> int | None:
        """Take the run's lease; returns the new epoch, or None if another live owner holds it."""
        rec = self._record(run_id)
        if rec is None:
            raise StoreError(f"unknown run {run_id!r}")
        now = time.time()
        if rec.owner != owner and lease_is_live(rec, now):
            return None
        epoch = rec.epoch + 1
        self._runs[run_id] = dataclasses.replace(rec, owner=owner, lease_until=now + ttl, epoch=epoch)
        return epoch

    async def renew(self, run_id: str, owner: str, epoch: int, ttl: float) -> bool:
        """Extend the lease; False if it was lost (another epoch took over)."""
        rec = self._record(run_id)
        if rec is None or rec.epoch != epoch or rec.owner != owner:
            return False
        self._runs[run_id] = dataclasses.replace(rec, lease_until=time.time() + ttl)
        return True

    async def release(self, run_id: str, owner: str, epoch: int) -> None:
        """Give the lease up."""
        rec = self._record(run_id)
        if rec is not None and rec.epoch == epoch and rec.owner == owner:
            self._runs[run_id] = dataclasses.replace(rec, owner=None, lease_until=None)
