"""The Store protocol every journal backend implements (memory, SQLite, PostgreSQL).

A store keeps runs (their spec, input and a cached status) and each run's
append-only journal of events. ``append`` is durable when it returns; the
run's state is a fold over its events (:func:`sagalang.state.fold`).
Leases with a fencing epoch make sure only one process drives a run.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ..errors import StoreError
from ..events import Event
from ..status import TERMINAL_RUN_STATUSES, RunStatus

__all__ = [
    "RUN_STATES",
    "TERMINAL_STATES",
    "LeaseHeldError",
    "RunCursor",
    "RunExistsError",
    "RunFilter",
    "RunPage",
    "RunQueries",
    "RunRecord",
    "StaleEpochError",
    "Store",
    "WorkerStore",
]

# The statuses a store caches for a run (sagalang.status holds the vocabulary).
RUN_STATES: tuple[RunStatus, ...] = tuple(RunStatus)
TERMINAL_STATES = TERMINAL_RUN_STATUSES


class StaleEpochError(StoreError):
    """A write came from a process whose lease (epoch) is no longer current."""


class RunExistsError(StoreError):
    """A run with this id exists already (raised only where idempotent reuse is not wanted)."""


class LeaseHeldError(StoreError):
    """Another live process drives this run."""


@dataclass(frozen=True, slots=True)
class RunRecord:
    """A run as the store keeps it; ``status`` is a cache of the journal's fold.

    ``spec`` maps each spec file's path (relative to the entry file's folder)
    to its text, so a resume runs the definition the run started with.
    """

    run_id: str
    saga: str
    entry: str
    spec: Mapping[str, str]
    spec_hash: str
    input: Mapping[str, Any]
    handlers: tuple[str, ...] = ()
    status: str = RunStatus.RUNNING.value
    created_at: float = 0.0
    updated_at: float = 0.0
    owner: str | None = None
    lease_until: float | None = None
    epoch: int = 0
    cancel_requested: bool = False
    spec_path: str | None = None  # where the entry file was when the run started
    extra: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class Store(Protocol):
    """Journal storage. All methods are coroutines; ``append`` is durable on return."""

    url: str
    # Whether other processes can reach this store's runs (SQLite, PostgreSQL). A store only
    # this process sees (memory:) needs no lease, and nobody else can ask to cancel its runs.
    shared: bool

    async def open(self) -> None:
        """Connect, create or migrate the schema."""

    async def close(self) -> None:
        """Flush and release resources."""

    async def create_run(self, record: RunRecord) -> tuple[RunRecord, bool]:
        """Insert ``record``; if its id exists, return the existing run and False."""

    async def get_run(self, run_id: str) -> RunRecord | None:
        """One run, or None."""

    async def list_runs(self, status: str | None = None, limit: int | None = None) -> list[RunRecord]:
        """Runs, newest first, optionally only those in ``status``."""

    async def append(
        self, run_id: str, events: Sequence[Event], status: str | None = None, epoch: int | None = None
    ) -> list[Event]:
        """Append ``events`` (seq assigned here) and optionally update the cached status.

        With ``epoch`` given, the write fails with StaleEpochError unless it is
        the run's current epoch (fencing).
        """

    async def events(self, run_id: str, after_seq: int = 0) -> list[Event]:
        """The run's events with ``seq > after_seq``, in order."""

    async def request_cancel(self, run_id: str) -> bool:
        """Flag the run for cancellation; False if it is unknown or already terminal."""

    async def cancel_requested(self, run_id: str) -> bool:
        """Whether the run is flagged for cancellation (a cheap read the driver polls)."""

    async def acquire(self, run_id: str, owner: str, ttl: float) -> int | None:
        """Take the run's lease; returns the new epoch, or None if another live owner holds it."""

    async def renew(self, run_id: str, owner: str, epoch: int, ttl: float) -> bool:
        """Extend the lease; False if it was lost (another epoch took over)."""

    async def release(self, run_id: str, owner: str, epoch: int) -> None:
        """Give the lease up."""


@runtime_checkable
class WorkerStore(Store, Protocol):
    """A store ``sagalang worker`` processes share: they claim runs under leases and hear about new work.

    An announcement is ``queued:RUN`` (a run waits for a driver; ``queued:*`` for
    several), ``cancel:RUN`` (a cancel was requested) or ``released:RUN`` (a
    lease was given up).
    """

    where: str  # the store, as logs name it (no password)

    async def claim(self, owner: str, ttl: float, limit: int, exclude: Iterable[str] = ()) -> list[RunRecord]:
        """Lease up to ``limit`` runs that need a driver (queued, or their lease expired); their records."""

    async def renew_many(self, owner: str, leases: Mapping[str, int], ttl: float) -> dict[str, bool]:
        """Extend ``owner``'s leases (run id -> epoch); for each one still held: whether a cancel is requested."""

    async def hand_back(self, run_id: str, owner: str, epoch: int) -> bool:
        """Give a run back so another worker takes it at once; nothing more from ``epoch`` may be written."""

    def announcements(self) -> AsyncIterator[str]:
        """Announcements as they are made; first ``""`` once listening (look for anything missed before).

        Ends with :class:`StoreError` when the connection is lost; the caller listens again.
        """


# ---- an optional ability: filtered, counted, keyset-paginated listings ---------------------


@dataclass(frozen=True, slots=True)
class RunFilter:
    """Which runs a query selects; a field left empty does not filter.

    ``updated_from`` is inclusive and ``updated_to`` exclusive (Unix seconds of
    the run's last update); ``id_contains`` matches a plain substring of the run id.
    """

    statuses: tuple[str, ...] = ()
    saga: str | None = None
    id_contains: str | None = None
    updated_from: float | None = None
    updated_to: float | None = None


@dataclass(frozen=True, slots=True)
class RunCursor:
    """A position in the runs ordered by last update, newest first: the last run a page showed.

    Keyset pagination: the next page is the runs strictly after ``(updated_at, run_id)``
    in that order, so a page costs the same however deep it is.
    """

    updated_at: float
    run_id: str

    def encode(self) -> str:
        """The cursor as URL-safe text (:meth:`decode` reads it back exactly)."""
        return f"{self.updated_at!r}_{self.run_id}"

    @classmethod
    def decode(cls, text: str) -> RunCursor:
        """The cursor :meth:`encode` wrote; ValueError for anything else."""
        head, sep, run_id = text.partition("_")
        at = float(head) if sep else math.nan
        if not math.isfinite(at):
            raise ValueError(f"not a run cursor: {text!r}")
        return cls(at, run_id)


@dataclass(frozen=True, slots=True)
class RunPage:
    """One page of a listing and where the next one starts (None on the last page)."""

    runs: tuple[RunRecord, ...]
    next: RunCursor | None = None


@runtime_checkable
class RunQueries(Protocol):
    """Listings for a view over many runs; the memory, SQLite and PostgreSQL stores offer them.

    Runs are ordered by last update, newest first (ties by run id, descending);
    the SQL stores serve every query from an index on that order.
    """

    async def query_runs(self, where: RunFilter, limit: int, after: RunCursor | None = None) -> RunPage:
        """Up to ``limit`` runs matching ``where`` that come after ``after`` in the order."""

    async def count_runs(self, where: RunFilter) -> dict[str, int]:
        """How many runs matching ``where`` are in each status (statuses with none are left out)."""

    async def saga_counts(self) -> dict[str, int]:
        """How many runs the store holds of each saga, by saga name."""

    async def saga_names(self) -> list[str]:
        """The names of the sagas the store has runs of, sorted (cheaper than counting them)."""
