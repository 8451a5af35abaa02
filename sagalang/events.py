"""Journal events: frozen records, their names (contract) and the listener protocol."""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .status import TERMINAL_EVENTS  # public here too: the events that end a run, and the status they end it in

__all__ = ["CONTRACT_EVENTS", "EVENT_KINDS", "EXTRA_EVENTS", "TERMINAL_EVENTS", "Event", "Listener"]

# Names fixed by the contract (docs/semantics.md lists them).
CONTRACT_EVENTS = (
    "saga.started",
    "step.started",
    "step.succeeded",
    "step.failed",
    "step.retrying",
    "step.skipped",
    "compensation.started",
    "compensation.succeeded",
    "compensation.failed",
    "saga.completed",
    "saga.compensated",
    "saga.aborted",
    "saga.stuck",
    "saga.cancelled",
)
# Further events the journal needs to be a complete record of a run.
EXTRA_EVENTS = (
    "saga.compensating",  # backward recovery begins (data: reason, step, error)
    "saga.cancel_requested",  # someone asked to cancel (CLI, API, saga timeout)
    "saga.retrying",  # whole-saga retry after a clean rollback (data: attempt, input)
    "saga.resumed",  # a process took the run over after a crash
    "compensation.retrying",  # an undo failed and will be tried again
)
EVENT_KINDS = CONTRACT_EVENTS + EXTRA_EVENTS


@dataclass(slots=True)
class Event:
    """One journal record. ``data`` is JSON-serialisable and never holds secrets in clear.

    ``seq`` is the event's position in its run's journal, ``item`` the fan-out
    item index, ``epoch`` the fencing token of the writer. A journal record
    never changes once written: treat events as read-only. (They are not
    frozen dataclasses because a run makes two per step, and a frozen
    dataclass is several times slower to build.)
    """

    kind: str
    run_id: str
    seq: int = 0
    time: float = 0.0
    step: str | None = None
    item: int | None = None
    attempt: int | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    epoch: int = 0

    def to_json(self) -> dict[str, Any]:
        """The event as a JSON object (the ``--events`` JSON-lines format)."""
        out: dict[str, Any] = {"event": self.kind, "run_id": self.run_id, "seq": self.seq, "time": self.time}
        if self.step is not None:
            out["step"] = self.step
        if self.item is not None:
            out["item"] = self.item
        if self.attempt is not None:
            out["attempt"] = self.attempt
        if self.data:
            out["data"] = dict(self.data)
        if self.epoch:
            out["epoch"] = self.epoch
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Event:
        """Inverse of :meth:`to_json`."""
        return cls(
            kind=obj["event"],
            run_id=obj["run_id"],
            seq=int(obj.get("seq", 0)),
            time=float(obj.get("time", 0.0)),
            step=obj.get("step"),
            item=obj.get("item"),
            attempt=obj.get("attempt"),
            data=obj.get("data", {}),
            epoch=int(obj.get("epoch", 0)),
        )


class Listener(Protocol):
    """Receives every event of a run after it is journaled; may be sync or async."""

    def __call__(self, event: Event) -> Awaitable[None] | None:
        """Handle one event."""
