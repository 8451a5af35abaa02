"""The one way a run writes its journal: record events, then flush them to the store before acting.

Journal first: :meth:`RunJournal.record` folds an event into the run's state
at once, and :meth:`RunJournal.flush` makes every recorded event durable and
then tells the listeners. The runtime flushes before anything leaves the run —
a handler or undo call, a wait for a timer or for other tasks, the end of the
run — so nothing happens outside that the journal does not already hold, and
a resume rebuilds exactly the state the run acted on. Events recorded between
two flushes (a step's result and the next step's start) reach the store in
one append, which is one transaction on SQLite and PostgreSQL.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..events import Event, Listener
from ..journal.base import Store
from ..redact import redact
from ..state import RunState, apply
from ..status import RUN_STATUS_AFTER

__all__ = ["STATUS_AFTER", "RunJournal"]

log = logging.getLogger("sagalang.interpreter")

EMPTY: Mapping[str, Any] = {}

# The status a store caches for a run after an event of this kind (as the plain strings stores keep).
STATUS_AFTER = {kind: status.value for kind, status in RUN_STATUS_AFTER.items()}


class RunJournal:
    """A run's journal writer: its store, its state (the fold so far), its listeners and its secrets."""

    __slots__ = ("_epoch0", "epoch", "listeners", "now", "pending", "run_id", "secrets", "state", "status", "store")

    def __init__(
        self,
        store: Store,
        state: RunState,
        now: Callable[[], float],
        listeners: Sequence[Listener] = (),
        secrets: frozenset[str] = frozenset(),
    ) -> None:
        self.store = store
        self.state = state
        self.run_id = state.run_id
        self.now = now
        self.listeners = tuple(listeners)
        self.secrets = secrets  # values masked in every event; grows with sub-saga and retry inputs
        self.epoch: int | None = None
        self._epoch0 = 0
        self.pending: list[Event] = []  # recorded, not yet in the store
        self.status: str | None = None  # the run status the pending events lead to, if they change it

    def fence(self, epoch: int | None) -> None:
        """Write from now on with ``epoch`` (the lease's fencing token; None: no lease)."""
        self.epoch = epoch
        self._epoch0 = epoch or 0

    def record(
        self,
        kind: str,
        step: str | None = None,
        item: int | None = None,
        attempt: int | None = None,
        data: Mapping[str, Any] = EMPTY,
    ) -> Event:
        """Record one event: fold it into the state now; it reaches the store at the next :meth:`flush`."""
        if self.secrets and data:
            data = redact(data, self.secrets)
        state = self.state
        ev = Event(kind, self.run_id, state.last_seq + 1, self.now(), step, item, attempt, data, self._epoch0)
        apply(state, ev)
        self.pending.append(ev)
        status = STATUS_AFTER.get(kind)
        if status is not None:
            self.status = status
        return ev

    async def flush(self) -> None:
        """Append every recorded event to the store (durable on return), then tell the listeners."""
        batch = self.pending
        if not batch:
            return
        status = self.status
        self.pending = []
        self.status = None
        await self.store.append(self.run_id, batch, status, self.epoch)
        for ev in batch if self.listeners else ():
            for listener in self.listeners:
                try:
                    res = listener(ev)
                    if res is not None and inspect.isawaitable(res):
                        await res
                except Exception:
                    # A broken listener must not break the saga; its failure is logged.
                    log.exception("listener %r failed on %s", listener, ev.kind)
